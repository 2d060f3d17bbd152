/**
 * `bun run bench scale-lookup`: the Civitai side of issue 11, against the fake Civitai on 127.0.0.1
 * (never the network) with +100 ms before every answer.
 *
 * - Target 5, the metadata cache at 100,000 entries: writing them in the lookup's batches, reading
 *   them back in batches, each in a child process for its peak RSS; the read is compared with
 *   `cat`-ing the same files (`find … -exec cat {} +`), run interleaved. Also: the largest folder,
 *   the bytes on disk.
 * - Target 7, requests: 10,000 files of which 1,000 are unknown safetensors (with an AutoV3), the
 *   fallback host on: ≤ 2,250 requests on the first scan, 0 on a second scan a day later (the
 *   cache's clock moved by a day).
 * - Target 8, the lookup lead: a cold lookup of 10,000 known files (with model details) against
 *   one GET per file with 5 in flight. The GET-per-file reference is linear in the files by
 *   construction (each answer waits 100 ms, 5 at a time), so it is timed on 1,000 files and
 *   scaled by 10, interleaved with our runs.
 *
 * The fake servers run in processes of their own (fake-civitai-process.ts), so their work is not
 * timed as ours. Timed figures are medians of 3 runs. `bun bench/scale-lookup.ts --only 7,8` runs some targets;
 * `--child …` is the internal entry point of the child runs.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pLimit from "p-limit";
import { makeVersion } from "../test/helpers/fake-civitai.ts";
import { fileSha, startFakeProcess } from "./fake-civitai-process.ts";
import { versionKeyBySha256 } from "../src/civitai/cache-keys.ts";
import { createCivitaiClient } from "../src/civitai/civitai-client.ts";
import { leanVersion, type LeanFile, type LeanVersion } from "../src/civitai/lean.ts";
import { lookupFiles, type LookupItem } from "../src/civitai/lookup.ts";
import { createMetaCache } from "../src/civitai/meta-cache.ts";
import { check, median, timeCommand } from "./_util.ts";

const DELAY_MS = 100;
const CONCURRENCY = 4;
const RUNS = 3;
const CACHE_ENTRIES = 100_000;
const DAY = 24 * 60 * 60 * 1000;
const ORIGINS = ["https://civitai.com", "https://civitai.red"];

const sha = (label: string, i: number) => createHash("sha256").update(`${label} ${i}`).digest("hex");
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// --- target 5: the metadata cache at 100k entries ------------------------------------------------

/** A realistic lean answer (the fake's by-hash shape: two files, one image), made once. */
const TEMPLATE = leanVersion(
  makeVersion({
    versionId: 100_000,
    modelId: 10_000,
    sha256: sha("cache", 0),
    autov3: "0123456789ab",
    files: [{ sha256: sha("vae", 0), type: "VAE" }],
  }),
);

/** The template for hash `i` (its own ids and hashes), cheap to make so only the cache is timed. */
function entryFor(i: number) {
  const hash = sha("cache", i);
  const [primary, vae] = TEMPLATE.files as [LeanFile, LeanFile];
  const version: LeanVersion = {
    ...TEMPLATE,
    id: 100_000 + i,
    modelId: 10_000 + i,
    name: `v${i}`,
    files: [
      {
        ...primary,
        id: 1_000_000 + 2 * i,
        hashes: { ...primary.hashes, SHA256: hash, AutoV2: hash.slice(0, 10), AutoV3: hash.slice(0, 12) },
      },
      { ...vae, id: 1_000_001 + 2 * i, hashes: { ...vae.hashes, SHA256: sha("vae", i) } },
    ],
  };
  return { key: versionKeyBySha256(hash), answer: { versions: [version], matchedBy: "sha256" as const, host: ORIGINS[0] } };
}

/** Child: writes (or reads) CACHE_ENTRIES entries the way a lookup does; prints ms and hits. */
async function cacheChild(mode: string, dir: string): Promise<void> {
  const cache = createMetaCache({ dir, origins: ORIGINS });
  let hits = 0;
  let started: number;
  if (mode === "write") {
    started = performance.now();
    // Made per batch (a few µs an entry), as a lookup has them: 100k at once would time the GC.
    for (let i = 0; i < CACHE_ENTRIES; i += 100) await cache.writeVersions(Array.from({ length: 100 }, (_, j) => entryFor(i + j)));
    hits = cache.stats.writes;
  } else {
    const keys = Array.from({ length: CACHE_ENTRIES }, (_, i) => versionKeyBySha256(sha("cache", i)));
    started = performance.now();
    for (let i = 0; i < keys.length; i += 500) {
      for (const answer of await cache.readVersions(keys.slice(i, i + 500))) if (answer?.kind === "found") hits++;
    }
  }
  const ms = performance.now() - started;
  console.log(JSON.stringify({ ms, hits }));
}

/**
 * Runs a cache child; its peak RSS comes from GNU time (timeCommand's peakRss). The child's own
 * ru_maxrss starts at this process's size, and under `bun run bench scale`, after the hashing and
 * report parts, that put 352 MB on a read that peaks at ~170 MB.
 */
async function runChild(args: string[]): Promise<{ ms: number; hits: number; maxRss: number }> {
  const r = await timeCommand([process.execPath, import.meta.path, "--child", ...args], { peakRss: true });
  if (r.code !== 0) throw new Error(`child ${args.join(" ")} failed: ${r.stderr.trim()}`);
  const { ms, hits } = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { ms: number; hits: number };
  return { ms, hits, maxRss: r.maxRssBytes ?? 0 };
}

async function timeCat(dir: string): Promise<number> {
  const started = performance.now();
  const proc = Bun.spawn(["sh", "-c", 'find "$1" -name "*.json" -type f -exec cat {} + > /dev/null', "sh", dir], { stderr: "inherit" });
  await proc.exited;
  return performance.now() - started;
}

function folderStats(dir: string): { largest: number; files: number; bytes: number } {
  let largest = 0;
  let files = 0;
  let bytes = 0;
  const walk = (d: string) => {
    const names = readdirSync(d, { withFileTypes: true });
    largest = Math.max(largest, names.length);
    for (const n of names) {
      if (n.isDirectory()) walk(join(d, n.name));
      else {
        files++;
        bytes += statSync(join(d, n.name)).blocks * 512;
      }
    }
  };
  walk(dir);
  return { largest, files, bytes };
}

async function target5(): Promise<boolean> {
  const root = mkdtempSync(join(tmpdir(), "civitai-meta-bench-cache-"));
  try {
    const writes: { ms: number; maxRss: number }[] = [];
    for (let run = 0; run < RUNS; run++) {
      rmSync(join(root, "meta"), { recursive: true, force: true });
      writes.push(await runChild(["write", join(root, "meta")]));
    }
    const reads: { ms: number; hits: number; maxRss: number }[] = [];
    const cats: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      cats.push(await timeCat(join(root, "meta")));
      reads.push(await runChild(["read", join(root, "meta")]));
    }
    const disk = folderStats(join(root, "meta"));
    const write = median(writes.map((w) => w.ms));
    const read = median(reads.map((r) => r.ms));
    const cat = median(cats);
    const rssRead = Math.max(...reads.map((r) => r.maxRss));
    const rssWrite = Math.max(...writes.map((w) => w.maxRss));
    console.log(`# target 5: metadata cache, ${CACHE_ENTRIES.toLocaleString("en")} entries (fs driver, sharded)`);
    console.log(
      `      write (batches of 100): ${s(write)} (${((write * 1000) / CACHE_ENTRIES).toFixed(0)} µs/entry), peak RSS ${mb(rssWrite)}`,
    );
    console.log(
      `      read (batches of 500):  ${s(read)} (${((read * 1000) / CACHE_ENTRIES).toFixed(0)} µs/entry), peak RSS ${mb(rssRead)}; cat of the same files ${s(cat)} (${(read / cat).toFixed(1)}x)`,
    );
    console.log(`      on disk: ${disk.files.toLocaleString("en")} files, ${mb(disk.bytes)}; largest folder ${disk.largest} entries`);
    let ok = check(
      "target 5: all entries read back",
      reads.every((r) => r.hits === CACHE_ENTRIES),
      `${reads[0]?.hits} of ${CACHE_ENTRIES}`,
    );
    ok = check("target 5: no folder over 1,000 entries", disk.largest <= 1000, `largest ${disk.largest}`) && ok;
    ok = check("target 5: reading 100k entries ≤ 3x cat-ing them", read <= 3 * cat, `${(read / cat).toFixed(1)}x (${s(read)})`) && ok;
    ok = check("target 5: reading 100k entries in ≤ 300 MB", rssRead <= 300 * 1024 * 1024, mb(rssRead)) && ok;
    return ok;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// --- target 7: requests for 10k files with 1,000 unknown safetensors ------------------------------

function client(urls: string[], concurrency = CONCURRENCY) {
  return createCivitaiClient({ userAgent: "civitai-meta/bench", civitaiHosts: urls, concurrency });
}

async function target7(): Promise<boolean> {
  const [primary, fallback] = await Promise.all([
    startFakeProcess({ publish: [{ label: "known", n: 9000 }] }),
    startFakeProcess({ publish: [] }),
  ]);
  const root = mkdtempSync(join(tmpdir(), "civitai-meta-bench-requests-"));
  try {
    const items: LookupItem[] = [
      ...Array.from({ length: 9000 }, (_, i) => ({ sha256: fileSha("known", i) })),
      ...Array.from({ length: 1000 }, (_, i) => ({ sha256: fileSha("unknown", i), autov3: fileSha("unknown v3", i).slice(0, 12) })),
    ];
    let now = Date.now();
    const run = async () => {
      const cache = createMetaCache({ dir: join(root, "meta"), origins: [primary.url, fallback.url], now: () => now });
      await Promise.all([primary.reset(DELAY_MS), fallback.reset(DELAY_MS)]);
      const started = performance.now();
      const result = await lookupFiles(
        items,
        { api: client([primary.url, fallback.url]), cache, hosts: { primary: primary.url, fallback: fallback.url } },
        { details: true, offline: false, refresh: false, concurrency: CONCURRENCY },
      );
      const ms = performance.now() - started;
      const [p, f] = await Promise.all([primary.counts(), fallback.counts()]);
      const found = [...result.entries.values()].filter((e) => e.status === "found").length;
      return { ms, requests: p.total! + f.total!, found, counters: result.counters.requests };
    };
    const first = await run();
    now += DAY;
    const nextDay = await run();
    const perFound = (first.counters.ids + first.counters.bulk + first.counters.models) / 9000;
    console.log(`# target 7: 10,000 files, 1,000 of them unknown safetensors, fallback on, +${DELAY_MS} ms per answer`);
    console.log(`      first scan: ${first.requests} requests (${JSON.stringify(first.counters)}), ${s(first.ms)}, ${first.found} found`);
    console.log(`      next day:   ${nextDay.requests} requests, ${s(nextDay.ms)}`);
    console.log(`      (before issue 11: 4,190 requests and 112 s, then all of it again the next day)`);
    let ok = check("target 7: first scan ≤ 2,250 requests", first.requests <= 2250 && first.found === 9000, `${first.requests}`);
    ok =
      check(
        "target 7: found files ≤ 0.025 requests per file",
        perFound <= 0.025,
        `${perFound.toFixed(4)} (ids, bulk and model requests per found file)`,
      ) && ok;
    ok = check("target 7: next day 0 requests", nextDay.requests === 0, `${nextDay.requests}`) && ok;
    return ok;
  } finally {
    await Promise.all([primary.stop(), fallback.stop()]);
    rmSync(root, { recursive: true, force: true });
  }
}

// --- target 8: the lookup lead ---------------------------------------------------------------------

async function target8(): Promise<boolean> {
  const civitai = await startFakeProcess({ publish: [{ label: "lead", n: 10_000 }] });
  const root = mkdtempSync(join(tmpdir(), "civitai-meta-bench-lead-"));
  try {
    const shas = Array.from({ length: 10_000 }, (_, i) => fileSha("lead", i));
    const ours: number[] = [];
    const naive: number[] = [];
    let requests = 0;
    for (let run = 0; run < RUNS; run++) {
      await civitai.reset(DELAY_MS);
      const cache = createMetaCache({ dir: join(root, `meta-${run}`), origins: [civitai.url] });
      const started = performance.now();
      const result = await lookupFiles(
        shas.map((sha256) => ({ sha256 })),
        { api: client([civitai.url]), cache, hosts: { primary: civitai.url } },
        { details: true, offline: false, refresh: false, concurrency: CONCURRENCY },
      );
      ours.push(performance.now() - started);
      requests = (await civitai.counts()).total!;
      if ([...result.entries.values()].some((e) => e.status !== "found")) throw new Error("target 8: not every file found");

      await civitai.reset(DELAY_MS);
      const api = client([civitai.url], 5);
      const limit = pLimit(5);
      const naiveStarted = performance.now();
      await Promise.all(shas.slice(0, 1000).map((hash) => limit(() => api.versionByHash(civitai.url, hash))));
      naive.push((performance.now() - naiveStarted) * 10);
    }
    const oursMs = median(ours);
    const naiveMs = median(naive);
    console.log(`# target 8: cold lookup of 10,000 known files (with model details, fs cache), +${DELAY_MS} ms per answer`);
    console.log(`      ours: ${s(oursMs)}, ${requests} requests (concurrency ${CONCURRENCY}); runs ${ours.map(s).join(", ")}`);
    console.log(`      one GET per file, 5 in flight: ${s(naiveMs)} (1,000 files timed, × 10), 10,000 requests`);
    return check("target 8: ours ≤ 0.1x one GET per file", oursMs / naiveMs <= 0.1, `${(oursMs / naiveMs).toFixed(3)}x`);
  } finally {
    await civitai.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const TARGETS: Record<string, () => Promise<boolean>> = { "5": target5, "7": target7, "8": target8 };

/** All three targets, or those named (`bun bench/scale-lookup.ts --only 7,8`). */
export async function benchScaleLookup(only: readonly string[] = Object.keys(TARGETS)): Promise<boolean> {
  let ok = true;
  for (const name of only) {
    const target = TARGETS[name];
    if (!target) throw new Error(`no target ${name}; known: ${Object.keys(TARGETS).join(", ")}`);
    ok = (await target()) && ok;
  }
  return ok;
}

if (import.meta.main) {
  const [flag, mode, dir] = process.argv.slice(2);
  if (flag === "--child" && mode && dir) await cacheChild(mode, dir);
  else if (flag === "--only" && mode) process.exitCode = (await benchScaleLookup(mode.split(","))) ? 0 : 1;
  else process.exitCode = (await benchScaleLookup()) ? 0 : 1;
}
