import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { collectFiles, type CollectOptions } from "../../../src/scan/collect.ts";
import { SKIP_REASON, walk } from "../../../src/scan/walker.ts";
import type { FoundFile, HashAlgo } from "../../../src/scan/types.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const PAST = new Date(Date.now() - 3600_000);

/** `folders` folders of `each` small model files, plus a file hard-linked from the first folder into the last. */
function library(folders: number, each: number): { root: string; linked: string[] } {
  const root = tmp.make();
  for (let d = 0; d < folders; d++) {
    mkdirSync(join(root, `d${d}`));
    for (let i = 0; i < each; i++) {
      const p = join(root, `d${d}`, `m${i}.safetensors`);
      writeFileSync(p, `model ${d}/${i}`);
      utimesSync(p, PAST, PAST);
    }
  }
  const first = join(root, "d0", "shared.safetensors");
  writeFileSync(first, "shared");
  utimesSync(first, PAST, PAST);
  const second = join(root, `d${folders - 1}`, "a-link.safetensors");
  linkSync(first, second);
  return { root, linked: [first, second] };
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

function options(root: string, cacheDir: string | false, earlyPartFiles: number): CollectOptions {
  return {
    paths: [root],
    extensions: [],
    exclude: [],
    algos: (): HashAlgo[] => ["sha256"],
    cacheDir,
    jobs: 2,
    earlyPartFiles,
    onWarning: (m) => {
      throw new Error(`unexpected warning: ${m}`);
    },
  };
}

describe("the walk hands over each folder's files as it goes", () => {
  test("files with one link and no link of their own, with the identity object the result keeps", async () => {
    const { root, linked } = library(3, 2);
    const early: FoundFile[] = [];
    const result = await walk([root], { onFolderFiles: (files) => early.push(...files) > 0, stability: "deferred" });
    // Six files of one link each; the hard-linked file is left for the end of the walk.
    expect(early.map((f) => f.path).sort()).toEqual(result.files.filter((f) => f.paths.length === 1).map((f) => f.path));
    expect(early).toHaveLength(6);
    expect(early.some((f) => linked.includes(f.path))).toBe(false);
    for (const f of early) expect(result.files.find((r) => r.path === f.path)!.identity).toBe(f.identity);
  });
});

describe("collectFiles reads files while the walk goes on", () => {
  test("the same results in walk order as reading after the walk, hard links included, and the cache filled", async () => {
    const { root, linked } = library(6, 5);
    const cacheDir = tmp.make();
    const early = await collectFiles(options(root, cacheDir, 4));
    const after = await collectFiles(options(root, false, 1_000_000));
    expect(early.hashes.map((h) => [h.file.paths, h.hashes, h.cached, h.error])).toEqual(
      after.hashes.map((h) => [h.file.paths, h.hashes, h.cached, h.error]),
    );
    expect(early.walk.files).toEqual(after.walk.files);
    // Every result belongs to the walk's own FoundFile, and holds the file's real SHA-256.
    for (const [i, h] of early.hashes.entries()) {
      expect(h.file).toBe(early.walk.files[i]!);
      expect(h.hashes.sha256).toBe(sha256(h.file.path));
    }
    expect(early.hashes.find((h) => h.file.paths.length === 2)!.file.paths).toEqual([...linked].sort());
    expect(early.stats).toMatchObject({ filesHashed: 31, filesCached: 0, bytesRead: after.stats.bytesRead });
    const warm = await collectFiles(options(root, cacheDir, 4));
    expect(warm.stats).toMatchObject({ filesHashed: 0, filesCached: 31 });
  });

  test("a file sent early that changed since the walk found it is left out, as the second look would", async () => {
    const { root } = library(4, 3);
    const changing = join(root, "d0", "m0.safetensors");
    let changed = false;
    const result = await collectFiles({
      ...options(root, false, 3),
      // The first progress report comes when the first folder's files are handed over, before any is read.
      onHashProgress: () => {
        if (changed) return;
        changed = true;
        writeFileSync(changing, "grown since the walk found it");
      },
    });
    expect(changed).toBe(true);
    expect(result.hashes.map((h) => h.file.path)).not.toContain(changing);
    expect(result.walk.files.map((f) => f.path)).not.toContain(changing);
    expect(result.walk.skipped).toContainEqual({ path: changing, reason: SKIP_REASON.sizeChanged });
    expect(result.stats.filesHashed).toBe(12);
  });
});

describe("an interrupt while files are read during the walk", () => {
  test("collectFiles stops promptly with the abort, and the store opens clean for the next run", async () => {
    const { root } = library(8, 6);
    const cacheDir = tmp.make();
    const controller = new AbortController();
    let reports = 0;
    const started = performance.now();
    const run = collectFiles({
      ...options(root, cacheDir, 4),
      signal: controller.signal,
      // The first report comes when the first folder's files are handed over: the walk is not done.
      onHashProgress: () => {
        if (reports++ === 0) controller.abort();
      },
    });
    await expect(run).rejects.toThrow();
    expect(reports).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(10_000);
    // The next run finds a sound store (a damaged one would be a warning: options() throws on any)
    // and hashes or reuses every file, with the right SHA-256.
    const again = await collectFiles(options(root, cacheDir, 4));
    expect(again.hashes).toHaveLength(49);
    for (const h of again.hashes) expect(h.hashes.sha256).toBe(sha256(h.file.path));
    expect(again.stats.filesHashed + again.stats.filesCached).toBe(49);
  });
});
