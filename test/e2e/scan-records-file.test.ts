/**
 * `scan` keeps the records it has built in one unlinked file under TMPDIR until the inventory is
 * written (report/record-spill.ts; issue 11, target 2). When that folder is missing or full the
 * scan stops with one error naming the folder and what to do, and the inventory already at `-o`
 * is left as it was.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, rmdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../helpers/run-cli.ts";
import { buildSafetensors, kohyaMetadata, sdxlLoraTensors } from "../helpers/safetensors.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const PAST = new Date(Date.now() - 3600_000);

function library(files: number): string {
  const dir = tmp.make();
  for (let i = 0; i < files; i++) {
    const built = buildSafetensors(sdxlLoraTensors(), kohyaMetadata({ ss_output_name: `lora_${i}` }));
    const path = join(dir, `m${i}.safetensors`);
    writeFileSync(path, built.bytes);
    utimesSync(path, PAST, PAST);
  }
  return dir;
}

/** An offline scan (nothing asked of any host) with its own cache, TMPDIR as given. */
function scan(dir: string, out: string, tmpdir: string) {
  return runCli(["scan", "--offline", "--cache-dir", tmp.make(), "-o", out, dir], { env: { TMPDIR: tmpdir } });
}

const GOOD = '{"an":"inventory from before"}\n';

describe("scan's records file", () => {
  test("TMPDIR that does not exist: one error naming it, exit 1, the old inventory intact", async () => {
    const dir = library(2);
    const out = join(tmp.make(), "inventory.json");
    writeFileSync(out, GOOD);
    const missing = join(tmp.make(), "no-such-folder");
    const r = await scan(dir, out, missing);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot keep the scan's records in the temporary folder ${missing} (ENOENT)`);
    expect(r.stderr).toContain("Set TMPDIR to a writable folder");
    expect(r.stderr).not.toContain("    at "); // no stack trace
    expect(readFileSync(out, "utf8")).toBe(GOOD);
    expect(readdirSync(join(out, ".."))).toEqual(["inventory.json"]);
  });

  test("a TMPDIR too small for the records (a 64 KiB tmpfs): one error, exit 1, nothing left there, the old inventory intact", async () => {
    const small = tmp.make();
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small], { stderr: "pipe" });
    if (mounted.exitCode !== 0) {
      console.warn(`skipped: cannot mount a tmpfs here (${mounted.stderr.toString().trim()})`);
      return;
    }
    try {
      // ~4 KB of JSON per record: 40 records do not fit in 64 KiB.
      const dir = library(40);
      const out = join(tmp.make(), "inventory.json");
      writeFileSync(out, GOOD);
      const r = await scan(dir, out, small);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot keep the scan's records in the temporary folder ${small} (ENOSPC)`);
      expect(r.stderr).toMatch(/about \d+ MB free/);
      expect(readFileSync(out, "utf8")).toBe(GOOD);
      expect(readdirSync(small)).toEqual([]);
    } finally {
      Bun.spawnSync(["umount", small]);
    }
  });

  test("a scan leaves nothing in TMPDIR, and the inventory lists every file", async () => {
    const dir = library(3);
    const own = join(tmp.make(), "tmp");
    mkdirSync(own);
    const out = join(tmp.make(), "inventory.json");
    const r = await scan(dir, out, own);
    expect(r.code).toBe(0);
    expect(readdirSync(own)).toEqual([]);
    rmdirSync(own);
    const inv = JSON.parse(readFileSync(out, "utf8"));
    expect(inv.records.map((x: { path: string }) => x.path)).toEqual([0, 1, 2].map((i) => join(dir, `m${i}.safetensors`)));
  });
});
