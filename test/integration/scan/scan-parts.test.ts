/**
 * scan looks up distinct SHA-256s a part at a time and hands each part's records to a temporary
 * records file before the next part (issue 11, target 2: memory that does not grow with the
 * library). Parts must not change the inventory, a stop (rate limit) in one part must carry to the
 * next, and the records file must leave nothing behind. Runs runScan on real files against an
 * in-memory Civitai (CivitaiApi) that counts its calls; parts of two make the edges easy to hit.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiError, type CivitaiApi, type VersionIdMatch } from "../../../src/civitai/api-types.ts";
import type { ApiModel, ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import { createMetaCache } from "../../../src/civitai/meta-cache.ts";
import { runScan, type ScanOptions, type ScanResult } from "../../../src/scan/scan.ts";
import { decodePack } from "../../../src/scan/record-pack-format.ts";
import { memorySource } from "../../../src/report/inventory-read.ts";
import { chunksText, reportChunks } from "../../../src/report/render.ts";
import { makeModel, makeVersion } from "../../helpers/fake-civitai.ts";
import { buildSafetensors, kohyaMetadata, sdxlLoraTensors } from "../../helpers/safetensors.ts";
import { tmpDirs } from "../../helpers/tmp.ts";
import { sha256Hex } from "../../helpers/fake-storage.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const PAST = new Date(Date.now() - 3600_000);
const HOST = "https://civitai.com";

/** Calls by method; `fail` may throw for a call (0-based index over all calls). */
class CountingCivitai implements CivitaiApi {
  calls: string[] = [];
  fail?: (method: string, index: number) => ApiError | undefined;
  constructor(
    private readonly versions: ApiModelVersion[],
    private readonly models: ApiModel[],
  ) {}
  private call(method: string): void {
    const err = this.fail?.(method, this.calls.length);
    this.calls.push(method);
    if (err) throw err;
  }
  private bySha(sha: string): ApiModelVersion | undefined {
    return this.versions.find((v) => v.files?.some((f) => f.hashes?.SHA256?.toLowerCase() === sha.toLowerCase()));
  }
  async versionsByHashes(_host: string, sha256s: string[]): Promise<(ApiModelVersion | null)[]> {
    this.call("versionsByHashes");
    return sha256s.map((s) => this.bySha(s)).filter((v) => v !== undefined);
  }
  async versionIdsByHashes(_host: string, sha256s: string[]): Promise<VersionIdMatch[]> {
    this.call("versionIdsByHashes");
    return sha256s.flatMap((s) => {
      const v = this.bySha(s);
      return v ? [{ modelVersionId: v.id, hash: s.toUpperCase() }] : [];
    });
  }
  async versionByHash(): Promise<ApiModelVersion | null> {
    this.call("versionByHash");
    return null;
  }
  async modelsByIds(_host: string, ids: number[]): Promise<ApiModel[]> {
    this.call("modelsByIds");
    return this.models.filter((m) => ids.includes(m.id));
  }
}

/**
 * Eight distinct files (six known, two not) plus two copies of the first, named so that copies
 * and the two versions of one model fall into different parts of two; the first two versions are
 * of one model, so each is the other's update and "other version".
 */
function library(): { dir: string; api: () => CountingCivitai } {
  const dir = tmp.make();
  const shas: string[] = [];
  for (let i = 0; i < 8; i++) {
    const built = buildSafetensors(sdxlLoraTensors(), kohyaMetadata({ ss_output_name: `lora_${i}` }));
    const path = join(dir, `m${i}.safetensors`);
    writeFileSync(path, built.bytes);
    utimesSync(path, PAST, PAST);
    shas.push(sha256Hex(built.bytes));
  }
  mkdirSync(join(dir, "z"));
  for (const copy of ["a-copy.safetensors", "z/copy.safetensors"]) {
    copyFileSync(join(dir, "m0.safetensors"), join(dir, copy));
    utimesSync(join(dir, copy), PAST, PAST);
  }
  const versions = shas
    .slice(0, 6)
    .map((sha256, i) =>
      makeVersion({ versionId: 100 + i, modelId: i < 2 ? 10 : 10 + i, sha256, publishedAt: `2026-0${i + 1}-01T00:00:00.000Z` }),
    );
  const models = [
    makeModel({ modelId: 10, versions: [versions[1]!, versions[0]!] }),
    ...versions.slice(2).map((v, i) => makeModel({ modelId: 12 + i, versions: [v] })),
  ];
  return { dir, api: () => new CountingCivitai(versions, models) };
}

function scan(dir: string, api: CivitaiApi, extra: Partial<ScanOptions> = {}): Promise<ScanResult> {
  return runScan({
    paths: [dir],
    extensions: [],
    exclude: [],
    hashCacheDir: tmp.make(),
    api,
    metaCache: createMetaCache({ dir: tmp.make(), origins: [HOST] }),
    hosts: { primary: HOST },
    details: true,
    offline: false,
    refresh: false,
    concurrency: 2,
    tool: { name: "civitai-meta", version: "test" },
    onWarning: () => {},
    now: () => Date.parse("2026-11-01T00:00:00Z"),
    ...extra,
  });
}

/** `dir` and every folder below it last written an hour ago (the record cache's racy rule then trusts them). */
function ageFolders(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) ageFolders(join(dir, e.name));
  utimesSync(dir, PAST, PAST);
}

/** The inventory as scan writes it, without what differs between runs (timing, request and cache-hit counts). */
async function written(result: ScanResult): Promise<string> {
  const text = chunksText(reportChunks(result.source, "json"));
  return text.replace(/"(generatedAt|durationMs|requests)": [^,\n]+/g, '"$1": "-"').replace(/"(hashes|metadata)": \d+/g, '"$1": "-"');
}

describe("scan looks up in parts", () => {
  test("parts of one give the inventory one part gives, byte for byte, in every format", async () => {
    const lib = library();
    const whole = await scan(lib.dir, lib.api());
    // One SHA-256 a part: the three copies of m0 (paths first, second and last) come in one part,
    // m1 (third) in the next, so records reach the facts out of path order.
    const parts = await scan(lib.dir, lib.api(), { lookupPartSize: 1 });
    try {
      expect(await written(parts)).toBe(await written(whole));
      for (const format of ["csv", "md", "junit"] as const) {
        expect(chunksText(reportChunks(parts.source, format))).toBe(chunksText(reportChunks(whole.source, format)));
      }
      // The JSON text kept in the records file (most records are written as stored, the decorated
      // ones again) is what rendering the records themselves gives.
      expect(chunksText(reportChunks(parts.source, "json"))).toBe(chunksText(reportChunks(memorySource(parts.inventory), "json")));
      // What the parts had to get right across their edges: copies, versions of one model, updates.
      const inv = parts.inventory;
      const m0 = inv.records.find((r) => r.path.endsWith("/m0.safetensors"))!;
      expect(m0.duplicate?.copies).toBe(3);
      expect(m0.otherVersions?.map((v) => v.versionId)).toEqual([101]);
      expect(m0.update?.newest.versionId).toBe(101);
      expect(m0.update?.newest.inLibrary).toEqual([join(lib.dir, "m1.safetensors")]);
      expect(inv.summary.byStatus).toEqual({ found: 8, gone: 0, not_found: 2, error: 0, skipped: 0 });
      expect(inv.summary.duplicates?.sets).toBe(1);
      // The records are the ones an in-memory source makes of the same inventory.
      expect(memorySource(inv).facts.facts.updates.map((u) => u.path)).toEqual(parts.source.facts.facts.updates.map((u) => u.path));
      expect(inv.records.map((r) => r.path)).toEqual(inv.records.map((r) => r.path).sort());
    } finally {
      whole.close();
      parts.close();
    }
  });

  test("a rate limit in one part carries to the next: nothing more is asked, the rest are errors with its message", async () => {
    const lib = library();
    const api = lib.api();
    const retryAt = new Date(Date.now() + 3_600_000);
    // The first part's bulk request is answered; the first request of the second part is refused.
    let refused = -1;
    api.fail = (method, index) => {
      if (index === 0 || refused !== -1) return undefined;
      refused = index;
      return new ApiError("Civitai: too many requests", "rate_limited", 429, retryAt);
    };
    const result = await scan(lib.dir, api, { lookupPartSize: 2, details: false });
    try {
      expect(result.stopped?.kind).toBe("rate_limited");
      // Once refused, no part asks again.
      expect(api.calls.length).toBe(refused + 1);
      const statuses = result.inventory.records.map((r) => r.status);
      expect(statuses.filter((s) => s === "found").length).toBeGreaterThan(0);
      const errors = result.inventory.records.filter((r) => r.status === "error");
      expect(errors.length).toBeGreaterThan(2);
      for (const r of errors) expect(r.error).toContain("too many requests");
    } finally {
      result.close();
    }
  });

  test("a second scan answers every part from the cache and asks nothing", async () => {
    const lib = library();
    const cacheDir = tmp.make();
    const metaDir = tmp.make();
    const options = (api: CivitaiApi): Partial<ScanOptions> => ({
      lookupPartSize: 3,
      hashCacheDir: cacheDir,
      metaCache: createMetaCache({ dir: metaDir, origins: [HOST] }),
      api,
    });
    const first = await scan(lib.dir, lib.api(), options(lib.api()));
    const api = lib.api();
    const second = await scan(lib.dir, api, options(api));
    try {
      expect(api.calls).toEqual([]);
      // Every version (eight SHA-256s) and model came from the cache.
      expect(second.counters.metadataCacheHits).toBeGreaterThanOrEqual(8);
      expect(await written(second)).toBe(await written(first));
    } finally {
      first.close();
      second.close();
    }
  });

  test("records kept across parts of two: each folder's pack holds every record, and the next scan is given them all", async () => {
    const lib = library();
    const cacheDir = tmp.make();
    const metaDir = tmp.make();
    const options = (api: CivitaiApi): Partial<ScanOptions> => ({
      lookupPartSize: 2,
      hashCacheDir: cacheDir,
      metaCache: createMetaCache({ dir: metaDir, origins: [HOST] }),
      api,
      // The real clock: the record cache judges the metadata folders' mtimes by it.
      now: Date.now,
    });
    (await scan(lib.dir, lib.api(), options(lib.api()))).close();
    // The metadata folders as a day later (not written in the last 2 s): the next scan keeps records.
    ageFolders(metaDir);
    const built = await scan(lib.dir, lib.api(), options(lib.api()));
    const packs = (readdirSync(join(cacheDir, "records", "v1"), { recursive: true }) as string[]).filter((n) => n.endsWith(".pack"));
    const names = packs
      .map((n) => decodePack(readFileSync(join(cacheDir, "records", "v1", n)))!)
      .map((p) => [p.dir, [...p.entries.keys()].sort()] as const)
      .sort((a, b) => a[0].localeCompare(b[0]));
    // m0 and m1 hold each other's update, which is not access: every record is kept.
    expect(names).toEqual([
      [lib.dir, ["a-copy.safetensors", ...[...Array(8).keys()].map((i) => `m${i}.safetensors`)]],
      [join(lib.dir, "z"), ["copy.safetensors"]],
    ]);
    const api = lib.api();
    const given = await scan(lib.dir, api, options(api));
    try {
      expect(api.calls).toEqual([]);
      expect(given.inventory.summary.cacheHits.records).toBe(10);
      expect(await written(given)).toBe((await written(built)).replace(/"records": \d+/, '"records": 10'));
      // The real clock: the run's own times differ.
      const runFields = (t: string) =>
        t.replace(/timestamp="[^"]*"|time="[^"]*"|name="generatedAt" value="[^"]*"|Scanned \d{4}-[^ ]+ [^ ]+/g, "");
      for (const format of ["csv", "md", "junit"] as const) {
        expect(runFields(chunksText(reportChunks(given.source, format)))).toBe(runFields(chunksText(reportChunks(built.source, format))));
      }
    } finally {
      built.close();
      given.close();
    }
  });

  test("more folders than packs kept open (300 of one file each): every record is given, the same inventory", async () => {
    // 256 packs stay open for the report (record-cache.ts MAX_KEPT_PACKS): the files of the folders
    // past them are given through the hash cache, their records' bytes copied.
    const dir = tmp.make();
    for (let i = 0; i < 300; i++) {
      const folder = join(dir, `f${String(i).padStart(3, "0")}`);
      mkdirSync(folder);
      writeFileSync(join(folder, "model.ckpt"), `checkpoint ${i}`);
      utimesSync(join(folder, "model.ckpt"), PAST, PAST);
    }
    const cacheDir = tmp.make();
    const metaDir = tmp.make();
    const options = (api: CivitaiApi): Partial<ScanOptions> => ({
      hashCacheDir: cacheDir,
      metaCache: createMetaCache({ dir: metaDir, origins: [HOST] }),
      api,
      now: Date.now,
    });
    const unknown = () => new CountingCivitai([], []);
    (await scan(dir, unknown(), options(unknown()))).close();
    ageFolders(metaDir);
    const built = await scan(dir, unknown(), options(unknown()));
    const api = unknown();
    const given = await scan(dir, api, options(api));
    try {
      expect(built.inventory.summary.cacheHits.records).toBe(0);
      expect(api.calls).toEqual([]);
      expect(given.inventory.summary.cacheHits.records).toBe(300);
      expect(given.inventory.records.map((r) => r.status)).toEqual(Array(300).fill("not_found"));
      expect(await written(given)).toBe((await written(built)).replace(/"records": \d+/, '"records": 300'));
    } finally {
      built.close();
      given.close();
    }
  });

  test("the records file is unlinked at once: nothing is left in TMPDIR during or after the scan", async () => {
    const lib = library();
    const tmpRoot = tmp.make();
    const before = process.env.TMPDIR;
    process.env.TMPDIR = tmpRoot;
    let result: ScanResult | undefined;
    // The scan's caches are made there too (tmp.make): only the records file's folder is looked for.
    const spills = () => readdirSync(tmpRoot).filter((n) => n.startsWith("civitai-meta-records-"));
    try {
      result = await scan(lib.dir, lib.api(), { lookupPartSize: 2 });
      expect(spills()).toEqual([]);
      // Still readable after it is gone from the folder.
      expect(result.inventory.records.length).toBe(10);
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
      result?.close();
      result?.close(); // twice is harmless
    }
    expect(spills()).toEqual([]);
    expect(readdirSync(lib.dir).sort()).toEqual(["a-copy.safetensors", ...[...Array(8).keys()].map((i) => `m${i}.safetensors`), "z"]);
  });
});
