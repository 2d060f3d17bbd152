/**
 * What a warm scan does again and what it does not (issue 11): header facts are kept in the hash
 * cache with the hashes, under the same identity, so an unchanged file's header is not read
 * again; a sidecar beside it is read again when it changed, appeared or vanished; a changed model
 * file is read again. Runs runScan offline (no lookups) on real safetensors files.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, closeSync, mkdirSync, openSync, renameSync, rmSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createMetaCache } from "../../../src/civitai/meta-cache.ts";
import type { CivitaiApi } from "../../../src/civitai/api-types.ts";
import { runScan, type ScanOptions, type ScanResult } from "../../../src/scan/scan.ts";
import { collectFiles } from "../../../src/scan/collect.ts";
import { SKIP_REASON } from "../../../src/scan/walker.ts";
import type { HashAlgo } from "../../../src/scan/types.ts";
import { buildSafetensors, kohyaMetadata, sdxlLoraTensors } from "../../helpers/safetensors.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const PAST = new Date(Date.now() - 3600_000);

function writeLora(dir: string, name: string, meta: Record<string, string> = {}): string {
  const built = buildSafetensors(sdxlLoraTensors(), { ...kohyaMetadata({ ss_output_name: name }), ...meta });
  const path = join(dir, name);
  writeFileSync(path, built.bytes);
  utimesSync(path, PAST, PAST);
  return path;
}

function writeSidecar(path: string, body: object): void {
  writeFileSync(path, JSON.stringify(body));
  utimesSync(path, PAST, PAST);
}

const offlineApi = {} as CivitaiApi;

function scan(dir: string, cacheDir: string | false, extra: Partial<ScanOptions> = {}): Promise<ScanResult> {
  return runScan({
    paths: [dir],
    extensions: [],
    exclude: [],
    hashCacheDir: cacheDir,
    api: offlineApi,
    metaCache: createMetaCache({ dir: false, origins: ["https://civitai.com"] }),
    hosts: { primary: "https://civitai.com" },
    details: false,
    offline: true,
    refresh: false,
    concurrency: 1,
    tool: { name: "civitai-meta", version: "test" },
    onWarning: (m) => {
      throw new Error(`unexpected warning: ${m}`);
    },
    ...extra,
  });
}

/** collectFiles of `root` for its SHA-256 only, without a cache or warnings. */
const hashOnly = (root: string) => ({
  paths: [root],
  extensions: [],
  exclude: [],
  algos: (): HashAlgo[] => ["sha256"],
  cacheDir: false as const,
  onWarning: () => {},
});

const localOf = (r: ScanResult, name: string) => r.inventory.records.find((x) => x.path.endsWith(`/${name}`))!.local!;

describe("a warm scan keeps what it knows", () => {
  test("an unchanged file's header is not read again; its local section is the same", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    writeLora(dir, "a.safetensors");
    writeLora(dir, "b.safetensors", { ss_network_dim: "16" });
    const cold = await scan(dir, cacheDir);
    expect(cold.counters.localBytesRead).toBeGreaterThan(0);
    const warm = await scan(dir, cacheDir);
    expect(warm.counters.localBytesRead).toBe(0);
    expect(warm.counters.hashCacheHits).toBe(2);
    expect(warm.inventory.records.map((r) => r.local)).toEqual(cold.inventory.records.map((r) => r.local));
    expect(localOf(warm, "b.safetensors").training?.networkDim).toBe(16);
    // --local-metadata wants what the compact facts lack: read again, then kept with it.
    const withMeta = await scan(dir, cacheDir, { localMetadata: true });
    expect(withMeta.counters.localBytesRead).toBeGreaterThan(0);
    expect(localOf(withMeta, "a.safetensors").header?.metadata?.ss_output_name).toBe("a.safetensors");
    const again = await scan(dir, cacheDir, { localMetadata: true });
    expect(again.counters.localBytesRead).toBe(0);
    // Facts that hold metadata also serve a run that does not want it, without it.
    const compact = await scan(dir, cacheDir);
    expect(compact.counters.localBytesRead).toBe(0);
    expect(localOf(compact, "a.safetensors").header?.metadata).toBeUndefined();
  });

  test("a changed model file is read again (header and hashes)", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    const path = writeLora(dir, "a.safetensors");
    await scan(dir, cacheDir);
    writeLora(dir, "a.safetensors", { ss_network_dim: "64" });
    const after = await scan(dir, cacheDir);
    expect(after.counters.localBytesRead).toBeGreaterThan(0);
    expect(after.counters.hashed).toBe(1);
    expect(localOf(after, "a.safetensors").training?.networkDim).toBe(64);
    expect(path).toContain(dir);
  });

  test("a sidecar that appears, changes or vanishes is seen; the header is still not read again", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    writeLora(dir, "a.safetensors");
    writeLora(dir, "b.safetensors");
    await scan(dir, cacheDir);

    const info = join(dir, "a.civitai.info");
    writeSidecar(info, { id: 11, modelId: 1, name: "first", model: { name: "Model A" } });
    const appeared = await scan(dir, cacheDir);
    expect(appeared.counters.localBytesRead).toBe(0);
    expect(localOf(appeared, "a.safetensors").sidecars?.map((s) => s.versionName)).toEqual(["first"]);
    expect(localOf(appeared, "b.safetensors").sidecars).toBeUndefined();

    const unchanged = await scan(dir, cacheDir);
    expect(localOf(unchanged, "a.safetensors").sidecars?.map((s) => s.versionName)).toEqual(["first"]);

    writeSidecar(info, { id: 12, modelId: 1, name: "second, longer", model: { name: "Model A" } });
    const changed = await scan(dir, cacheDir);
    expect(changed.counters.localBytesRead).toBe(0);
    expect(localOf(changed, "a.safetensors").sidecars?.map((s) => s.versionName)).toEqual(["second, longer"]);

    // Same size and mtime, new content: the ctime and inode still tell.
    const replacement = join(dir, "replacement.tmp");
    writeSidecar(replacement, { id: 13, modelId: 1, name: "third, longer!", model: { name: "Model A" } });
    rmSync(info);
    writeFileSync(info, JSON.stringify({ id: 14, modelId: 1, name: "fourth, longer", model: { name: "Model A" } }));
    utimesSync(info, PAST, PAST);
    const replaced = await scan(dir, cacheDir);
    expect(localOf(replaced, "a.safetensors").sidecars?.map((s) => s.versionName)).toEqual(["fourth, longer"]);
    rmSync(replacement);

    rmSync(info);
    const vanished = await scan(dir, cacheDir);
    expect(vanished.counters.localBytesRead).toBe(0);
    expect(localOf(vanished, "a.safetensors").sidecars).toBeUndefined();
  });

  test("--no-cache: the same local sections, every header read", async () => {
    const dir = tmp.make();
    writeLora(dir, "a.safetensors");
    const first = await scan(dir, false);
    const second = await scan(dir, false);
    expect(second.counters.localBytesRead).toBe(first.counters.localBytesRead);
    expect(second.inventory.records[0]!.local).toEqual(first.inventory.records[0]!.local);
  });
});

describe("the second look at files that will be read (docs/cases.md D7)", () => {
  test("a file that grows between the walk and its hashing is skipped as in progress, not hashed", async () => {
    const dir = tmp.make();
    const growing = writeLora(dir, "growing.safetensors");
    writeLora(dir, "steady.safetensors");
    const result = await collectFiles({
      ...hashOnly(dir),
      // Runs after the walk and before any hashing: another program appends now.
      presetHashes: async () => {
        appendFileSync(growing, "more bytes");
        return new Map();
      },
    });
    expect(result.hashes.map((h) => h.file.path)).toEqual([join(dir, "steady.safetensors")]);
    expect(result.walk.skipped).toEqual([{ path: growing, reason: SKIP_REASON.sizeChanged }]);
    expect(result.stats.filesHashed).toBe(1);
  });

  test("replaced, modified in place or removed since the walk: each skipped with its reason", async () => {
    const dir = tmp.make();
    const replaced = writeLora(dir, "replaced.safetensors");
    const modified = writeLora(dir, "modified.safetensors");
    const removed = writeLora(dir, "removed.safetensors");
    const result = await collectFiles({
      ...hashOnly(dir),
      presetHashes: async () => {
        // A new inode under the old name (made while the old one exists, so it cannot be reused).
        renameSync(writeLora(dir, "new.tmp"), replaced);
        const fd = openSync(modified, "r+");
        writeSync(fd, "x", 100);
        closeSync(fd);
        rmSync(removed);
        return new Map();
      },
    });
    expect(result.hashes).toEqual([]);
    expect(result.walk.skipped).toEqual([
      { path: modified, reason: SKIP_REASON.modified },
      { path: removed, reason: SKIP_REASON.removed },
      { path: replaced, reason: SKIP_REASON.replaced },
    ]);
  });
});

describe("files found under a folder that is a link", () => {
  test("their real path (the cache key) is resolved through the folder", async () => {
    const dir = tmp.make();
    const real = join(dir, "real");
    mkdirSync(real);
    writeLora(real, "a.safetensors");
    const linked = join(tmp.make(), "linked");
    Bun.spawnSync(["ln", "-s", real, linked]);
    const result = await collectFiles({
      ...hashOnly(linked),
    });
    expect(result.hashes.map((h) => [h.file.path, h.file.realPath])).toEqual([
      [join(linked, "a.safetensors"), join(real, "a.safetensors")],
    ]);
  });
});

describe("files written just now (racy: not trusted by the next run)", () => {
  test("keep their local section in this run, and are read again next time", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    const built = buildSafetensors(sdxlLoraTensors(), kohyaMetadata({ ss_output_name: "fresh" }));
    writeFileSync(join(dir, "fresh.safetensors"), built.bytes); // mtime: now
    const first = await scan(dir, cacheDir);
    expect(localOf(first, "fresh.safetensors").training?.outputName).toBe("fresh");
    const second = await scan(dir, cacheDir);
    expect(second.counters.localBytesRead).toBeGreaterThan(0);
    expect(second.counters.hashed).toBe(1);
    expect(localOf(second, "fresh.safetensors")).toEqual(localOf(first, "fresh.safetensors"));
  });
});
