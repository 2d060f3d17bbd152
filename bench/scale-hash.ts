/**
 * `bun run bench scale-hash [--quick] [--sizes 1000,10000] [--no-big] [--no-scan] [--breakdown]`: the walking
 * and hashing side of issue 11 ("100,000 files on one machine"). Each figure is a median of RUNS
 * runs (BENCH_RUNS, default 3), each run of ours next to a run of its reference in the same
 * sequence, so a busy machine slows both. Ends with one table row per target:
 *
 *   target 1  warm `scan -o inventory.json` of 100k files, all hashed and looked up before,
 *             0 requests          vs `find DIR -type f -printf '%s %T@\n'` (the floor)  ≤ 10x, peak RSS ≤ 300 MB
 *             warm `hash`         vs the floor                                          ≤ 5x
 *   target 3  cold `hash` of 100k small files vs `find … -print0 | xargs -0 -P2 sha256sum` ≤ 1.5x
 *   target 4  the hash cache is one store (hashes/v2.sqlite, nothing else left behind) and a warm
 *             run reads no file (its time is target 1's warm `hash` row)
 *   target 6  default `hash` of one 2 GiB safetensors vs `openssl dgst -sha256`          ≤ 1.15x
 *             default `hash` of 8 × 256 MiB safetensors vs `xargs -n1 -P2 openssl dgst -sha256` ≤ 1.15x
 *             `hash --algo sha256` gives openssl's digest (exact), default output has no AutoV3 (lazy)
 *
 * The small-file trees are 4 KiB safetensors, 500 per folder (bench/_scale-tree.ts); targets 1 and 3
 * are judged at 100,000 files, smaller trees are printed for the trend. Peak RSS is the command's
 * own (GNU time). The warm scan looks up against a fake Civitai on 127.0.0.1 that knows every file,
 * and must make no request. `--breakdown` adds where the warm scan's time and memory go.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeSafetensors } from "./hash.ts";
import { startScaleCivitai } from "./_scale-civitai.ts";
import { scaleTree, treeDir } from "./_scale-tree.ts";
import { cliCommand, median, timeCommand, verdicts, type Timed } from "./_util.ts";

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const BREAKDOWN = argv.includes("--breakdown");
const BIG = !argv.includes("--no-big");
/** Skip the warm scans (minutes at 100k: the first one fills the metadata cache). */
const SCAN = !argv.includes("--no-scan");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const sizesArg = argv.indexOf("--sizes");
const SIZES: number[] =
  sizesArg !== -1 ? (argv[sizesArg + 1] ?? "").split(",").map(Number) : QUICK ? [1000, 10_000] : [1000, 10_000, 50_000, 100_000];
/** Where targets 1 and 3 are judged. */
const TARGET_SIZE = 100_000;
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

interface Pair {
  ours: number[];
  ref: number[];
  rss: number[];
}

/** One line of the closing table. */
interface Row {
  what: string;
  measured: string;
  reference: string;
  ratio: string;
  limit: string;
  pass: boolean;
  rss: string;
}

/** The first `bytes` of a file, as text (an inventory's head, without reading its 450 MB). */
function headOf(path: string, bytes: number): string {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(bytes);
    return buf.toString("utf8", 0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

async function run(cmd: string[], env: Record<string, string>, peakRss = false): Promise<Timed> {
  const r = await timeCommand(cmd, { env, stdout: "ignore", peakRss });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return r;
}

/** `runs` interleaved pairs: before each pair `prepare` (untimed), then the reference, then ours. */
async function pairs(runs: number, ref: string[], ours: string[], env: Record<string, string>, prepare?: () => void): Promise<Pair> {
  const out: Pair = { ours: [], ref: [], rss: [] };
  for (let i = 0; i < runs; i++) {
    prepare?.();
    out.ref.push((await run(ref, env)).ms);
    prepare?.();
    const timed = await run(ours, env, true);
    out.ours.push(timed.ms);
    out.rss.push(timed.maxRssBytes ?? 0);
  }
  return out;
}
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Medians of a pair as a row (and a trend line now). */
function rowOf(what: string, p: Pair, refLabel: string, limit: number, rssLimitMb?: number): Row {
  const ours = median(p.ours);
  const ref = median(p.ref);
  const ratio = ours / ref;
  const rssMb = median(p.rss) / MiB;
  const pass = ratio <= limit && (rssLimitMb === undefined || rssMb <= rssLimitMb);
  console.log(
    `      ${what.padEnd(44)} ours ${secs(ours).padStart(8)}   ${refLabel} ${secs(ref).padStart(8)}   ${ratio.toFixed(2).padStart(5)}x   peak RSS ${rssMb.toFixed(0)} MiB`,
  );
  return {
    what,
    measured: secs(ours),
    reference: `${secs(ref)} (${refLabel})`,
    ratio: `${ratio.toFixed(2)}x`,
    limit: `≤ ${limit}x${rssLimitMb !== undefined ? `, ≤ ${rssLimitMb} MB` : ""}`,
    pass,
    rss: `${rssMb.toFixed(0)} MiB`,
  };
}

function printTable(rows: readonly Row[]): void {
  const head: Row = {
    what: "what",
    measured: "measured",
    reference: "reference",
    ratio: "ratio",
    limit: "limit",
    pass: true,
    rss: "peak RSS",
  };
  const cells = (r: Row, verdict: string) => [r.what, r.measured, r.reference, r.ratio, r.limit, verdict, r.rss];
  const all = [cells(head, "result"), ...rows.map((r) => cells(r, r.pass ? "PASS" : "MISS"))];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(all[0]!));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const c of all.slice(1)) console.log(line(c));
  for (const r of rows)
    verdicts.push({ label: r.what, pass: r.pass, detail: `${r.measured} vs ${r.reference}, ${r.ratio} (${r.limit}), peak RSS ${r.rss}` });
}

/** Target 4: one store file, and a warm run read no file. */
function storeRow(k: string, left: readonly string[], storeMb: number, noRead: boolean): Row {
  return {
    what: `target 4: hash cache at ${k} files`,
    measured: `${left.join(" + ")}, ${storeMb.toFixed(1)} MiB`,
    reference: "one store; warm run reads no file",
    ratio: "-",
    limit: "one file",
    pass: left.length === 1 && left[0] === "v2.sqlite" && noRead,
    rss: "-",
  };
}

/** Targets 1, 3 and 4 on the trees of small files. */
async function smallFiles(cli: string[], work: string, env: Record<string, string>, rows: Row[]): Promise<void> {
  for (const size of SIZES) {
    const tree = scaleTree(size, (l) => console.log(`      ${l}`));
    const dir = treeDir(tree);
    const judged = size === TARGET_SIZE;
    const k = `${size / 1000}k`;
    console.log(`   ${size} files of 4 KiB, 500 per folder`);
    const cacheDir = join(work, `cache-${size}`);
    const hash = [...cli, "hash", "-q", "--cache-dir", cacheDir, dir];
    const floor = ["find", dir, "-type", "f", "-printf", "%s %T@\\n"];
    // Page cache warmed for both sides alike: every file read once before any timing.
    await run(["sh", "-c", `find "${dir}" -type f -print0 | xargs -0 cat > /dev/null`], env);

    const xargs = ["sh", "-c", `find "${dir}" -type f -print0 | xargs -0 -P2 sha256sum > /dev/null`];
    const cold = await pairs(RUNS, xargs, hash, env, () => rmSync(cacheDir, { recursive: true, force: true }));
    const c = rowOf(`target 3: cold hash, ${k} small files`, cold, "xargs -0 -P2 sha256sum", 1.5);
    const hashesDir = join(cacheDir, "hashes");
    const left = readdirSync(hashesDir).sort();
    const storeMb = statSync(join(hashesDir, "v2.sqlite")).size / MiB;
    console.log(`      hash cache: ${left.join(", ")}; ${storeMb.toFixed(1)} MiB for ${size} entries`);

    const warm = await pairs(RUNS, floor, hash, env);
    const w = rowOf(`target 1: warm hash, ${k} files`, warm, "find -printf", 5);
    const check = await run(
      hash.filter((a) => a !== "-q"),
      env,
    );
    const noRead = /\b0 hashed \(0 B read\)/.test(check.stderr);
    if (!noRead) console.log(`      warm hash read files: ${check.stderr.trim()}`);

    if (!SCAN) {
      if (judged) rows.push({ ...w, pass: w.pass && noRead }, c, storeRow(k, left, storeMb, noRead));
      continue;
    }
    const civitai = startScaleCivitai(tree.sha256);
    try {
      const inventory = join(work, `inventory-${size}.json`);
      const scan = [...cli, "scan", "-q", "--cache-dir", cacheDir, "--api-url", civitai.url, "-o", inventory, dir];
      const seeded = await run(scan, env);
      console.log(`      first scan (hashes cached, lookups made): ${secs(seeded.ms)}, ${civitai.requests} requests`);
      // A daily re-scan comes hours later; a folder of the metadata cache written in the last 2 s
      // is not trusted by the record cache (racy rule), so wait that out once.
      await Bun.sleep(2500);
      const building = await run(scan, env, true);
      console.log(
        `      second scan (answers from the metadata cache, records built and kept): ${secs(building.ms)}, peak RSS ${((building.maxRssBytes ?? 0) / MiB).toFixed(0)} MiB`,
      );
      civitai.requests = 0;
      // The scan before wrote ~1 GB (packs, inventory) that the kernel would otherwise flush to disk
      // during the timed runs, 30 s later; hours later, on a daily re-scan, it is long written.
      await run(["sync"], env);
      const warmScan = await pairs(RUNS, floor, scan, env);
      const s = rowOf(`target 1: warm scan -o inventory.json, ${k} files`, warmScan, "find -printf", 10, 300);
      const requests = civitai.requests;
      // The head of the inventory (before its records) says how many records were given kept.
      const head = headOf(inventory, 4096);
      const given = Number(/"records": (\d+)/.exec(head)?.[1] ?? 0);
      console.log(
        `      warm scan requests: ${requests}; records given kept: ${given}; inventory ${(statSync(inventory).size / MiB).toFixed(0)} MiB`,
      );
      if (judged) {
        s.pass &&= requests === 0;
        s.measured += `, ${requests} requests`;
        rows.push(s, { ...w, pass: w.pass && noRead }, c);
        rows.push(storeRow(k, left, storeMb, noRead));
      }
      if (BREAKDOWN) await breakdown(dir, cacheDir, civitai.url, join(work, `inventory-${size}-breakdown.json`));
    } finally {
      await civitai.stop();
    }
  }
}

/** Target 6: the default algorithms on big safetensors, at the speed of openssl. */
async function bigFiles(cli: string[], work: string, env: Record<string, string>, rows: Row[]): Promise<void> {
  console.log(`   target 6: big safetensors, default algorithms (SHA-256 + AutoV2; AutoV3 only when asked)`);
  const big = join(work, "big.safetensors");
  writeSafetensors(big, 2 * GiB);
  await run(["sh", "-c", `cat "${big}" > /dev/null`], env); // page cache warmed for both tools alike
  const openssl = ["openssl", "dgst", "-sha256", big];
  const one = await pairs(RUNS, openssl, [...cli, "hash", "--no-cache", big], env);
  rows.push(rowOf("target 6: default hash, one 2 GiB safetensors", one, "openssl dgst -sha256", 1.15));
  const exact = await pairs(RUNS, openssl, [...cli, "hash", "--no-cache", "--algo", "sha256", big], env);
  rowOf("(--algo sha256, for comparison)", exact, "openssl dgst -sha256", 1.15);
  // Exact: --algo gives what was asked and nothing else, and the digest is openssl's.
  const ref = (await timeCommand(openssl)).stdout.trim().split(" ").at(-1);
  const sha = JSON.parse((await timeCommand([...cli, "hash", "--no-cache", "--json", "--algo", "sha256", big])).stdout).files[0].hashes;
  const dflt = JSON.parse((await timeCommand([...cli, "hash", "--no-cache", "--json", big])).stdout).files[0].hashes;
  const exactOk = JSON.stringify(sha) === JSON.stringify({ sha256: ref }) && dflt.autov3 === undefined && dflt.sha256 === ref;
  rows.push({
    what: "target 6: --algo sha256 exact, AutoV3 lazy",
    measured: `--algo sha256 → {${Object.keys(sha).join(",")}}; default → {${Object.keys(dflt).join(",")}}`,
    reference: "openssl's digest",
    ratio: "-",
    limit: "same digest, no AutoV3 by default",
    pass: exactOk,
    rss: "-",
  });
  rmSync(big);

  const many = join(work, "many");
  mkdirSync(many);
  for (let i = 0; i < 8; i++) writeSafetensors(join(many, `part${i}.safetensors`), 256 * MiB);
  await run(["sh", "-c", `cat "${many}"/* > /dev/null`], env);
  const xargs = ["sh", "-c", `ls "${many}"/*.safetensors | xargs -n1 -P2 openssl dgst -sha256 > /dev/null`];
  const eight = await pairs(RUNS, xargs, [...cli, "hash", "--no-cache", many], env);
  rows.push(rowOf("target 6: default hash, 8 × 256 MiB safetensors", eight, "xargs -n1 -P2 openssl", 1.15));
  rmSync(many, { recursive: true });
}

export async function benchScaleHash(): Promise<boolean> {
  const cli = cliCommand();
  const work = mkdtempSync(join(process.env.TMPDIR || tmpdir(), "civitai-meta-bench-scale-hash-"));
  // No config file or cache of the user's: every run sees only what this benchmark made.
  const env = { XDG_CONFIG_HOME: join(work, "config"), CIVITAI_API_KEY: "" };
  const rows: Row[] = [];
  console.log(`# scale: hashing and walking (median of ${RUNS} interleaved runs; CLI: ${cli.join(" ")})`);
  try {
    await smallFiles(cli, work, env, rows);
    if (BIG) await bigFiles(cli, work, env, rows);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!SIZES.includes(TARGET_SIZE)) console.log(`(targets 1, 3 and 4 are judged at ${TARGET_SIZE} files only; not run)`);
  printTable(rows);
  return rows.every((r) => r.pass);
}

/**
 * Where a warm scan's time and memory go, phase by phase, in a child process running the same code
 * (bench/scale-breakdown.ts), so the figures are not mixed with this process's fake server.
 */
async function breakdown(dir: string, cacheDir: string, apiUrl: string, output: string): Promise<void> {
  const r = await timeCommand([process.execPath, join(import.meta.dir, "scale-breakdown.ts"), dir, cacheDir, apiUrl, output], {
    peakRss: true,
  });
  if (r.code !== 0) throw new Error(`breakdown failed: ${r.stderr}`);
  process.stdout.write(r.stdout.replace(/^/gm, "      "));
  console.log(`      (breakdown process peak RSS ${((r.maxRssBytes ?? 0) / MiB).toFixed(0)} MiB)`);
}

if (import.meta.main) process.exitCode = (await benchScaleHash()) ? 0 : 1;
