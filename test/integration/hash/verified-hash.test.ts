/**
 * What a verified download records in the hash cache (issue 14), checked through what the next scan
 * does with it (collectFiles: the walk and the cached hashing `scan` uses): a file recorded is not
 * read, one written since its check, or gone, is not recorded.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { linkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openVerifiedHashes, settledMtime } from "../../../src/hash/verified-hash.ts";
import { isSafetensorsPath } from "../../../src/hash/hash-algos.ts";
import { collectFiles } from "../../../src/scan/collect.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

/** Hashes no file could have: a hit can only come from the record. */
const RECORDED = { sha256: "a".repeat(64), autov3: "b".repeat(12) };

async function scanOf(dir: string, cacheDir: string) {
  const warnings: string[] = [];
  const r = await collectFiles({
    paths: [dir],
    extensions: [".safetensors", ".ckpt"],
    exclude: [],
    // As `hash` asks: AutoV3 too for a safetensors (scan reads it lazily, from this same cache).
    algos: (f) => (isSafetensorsPath(f.path) ? ["sha256", "autov2", "autov3"] : ["sha256", "autov2"]),
    cacheDir,
    onWarning: (w) => warnings.push(w),
  });
  expect(warnings).toEqual([]);
  return { stats: r.stats, byName: new Map(r.hashes.map((h) => [h.file.path.slice(dir.length + 1), h])) };
}

describe("openVerifiedHashes", () => {
  test("a file given a settled mtime is recorded under each of its names, and the scan reads none of them", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    const checkedFrom = Date.now();
    const file = join(dir, "m.safetensors");
    writeFileSync(file, "bytes");
    utimesSync(file, new Date(), settledMtime(checkedFrom));
    linkSync(file, join(dir, "other.safetensors"));
    const plain = join(dir, "p.ckpt");
    writeFileSync(plain, "other bytes");
    utimesSync(plain, new Date(), settledMtime(checkedFrom));

    const rec = (await openVerifiedHashes(cacheDir, (w) => expect(w).toBeUndefined()))!;
    await rec.record(file, { ...RECORDED, checkedFrom });
    await rec.record(join(dir, "other.safetensors"), { ...RECORDED, checkedFrom });
    await rec.record(plain, { sha256: "c".repeat(64), checkedFrom });
    rec.close();

    const { stats, byName } = await scanOf(dir, cacheDir);
    expect(stats).toMatchObject({ filesHashed: 0, bytesRead: 0 });
    expect(byName.get("m.safetensors")).toMatchObject({
      cached: true,
      hashes: { sha256: RECORDED.sha256, autov2: RECORDED.sha256.slice(0, 10), autov3: RECORDED.autov3 },
    });
    expect(byName.get("p.ckpt")).toMatchObject({ cached: true, hashes: { sha256: "c".repeat(64) } });
  });

  test("an AutoV3 known to be absent (not safetensors-shaped) is recorded as absent: the scan reads nothing for it either", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    const checkedFrom = Date.now();
    const file = join(dir, "not-really.safetensors");
    writeFileSync(file, "no header");
    utimesSync(file, new Date(), settledMtime(checkedFrom));
    const rec = (await openVerifiedHashes(cacheDir, () => {}))!;
    await rec.record(file, { sha256: RECORDED.sha256, autov3: null, checkedFrom });
    rec.close();
    const { stats, byName } = await scanOf(dir, cacheDir);
    expect(stats.filesHashed).toBe(0);
    expect(byName.get("not-really.safetensors")!.hashes).toEqual({ sha256: RECORDED.sha256, autov2: RECORDED.sha256.slice(0, 10) });
  });

  test("a file written since its check, or gone, is not recorded: the scan reads (or skips) it, never trusts the record", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    const checkedFrom = Date.now() - 60_000;
    const changed = join(dir, "changed.ckpt");
    writeFileSync(changed, "changed after the check");
    // As old as the racy rule wants, but newer than the check: someone wrote it meanwhile.
    utimesSync(changed, new Date(), new Date(checkedFrom + 1));
    const rec = (await openVerifiedHashes(cacheDir, () => {}))!;
    await rec.record(changed, { sha256: RECORDED.sha256, checkedFrom });
    await rec.record(join(dir, "gone.ckpt"), { sha256: RECORDED.sha256, checkedFrom });
    rec.close();
    const { stats, byName } = await scanOf(dir, cacheDir);
    expect(stats.filesHashed).toBe(1);
    expect(byName.get("changed.ckpt")!.hashes.sha256).not.toBe(RECORDED.sha256);
  });

  test("--no-cache: nothing to record into", async () => {
    expect(await openVerifiedHashes(false, () => {})).toBeNull();
  });
});
