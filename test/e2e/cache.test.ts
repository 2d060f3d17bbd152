import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

const count = (dir: string) =>
  existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.endsWith(".json")).length : 0;

describe("cache command", () => {
  test("info counts entries; prune drops entries of vanished files and expired metadata; clear empties one or both", async () => {
    const models = tmp.make();
    const cacheDir = tmp.make();
    const past = new Date(Date.now() - 3600_000);
    for (const name of ["a.safetensors", "b.safetensors"]) {
      writeFileSync(join(models, name), name);
      utimesSync(join(models, name), past, past);
    }
    expect((await runCli(["hash", "--cache-dir", cacheDir, models])).code).toBe(0);
    const metaDir = join(cacheDir, "meta", "v2", "https-civitai.com-443", "https-civitai.red-443", "version");
    mkdirSync(metaDir, { recursive: true });
    writeFileSync(join(metaDir, "garbage.json"), "{ torn");
    const entry = (expiresAt: number) =>
      JSON.stringify({ v: 2, storedAt: 1, expiresAt, kind: "not_found", scope: "https-civitai.com-443:https-civitai.red-443", data: null });
    writeFileSync(join(metaDir, "expired.json"), entry(2));
    writeFileSync(join(metaDir, "valid.json"), entry(Date.now() + 86_400_000));

    const info = await runCli(["cache", "info", "--cache-dir", cacheDir]);
    expect(info.code).toBe(0);
    expect(info.stdout).toContain("hashes    2 entries");
    expect(info.stdout).toContain("metadata  3 entries");

    rmSync(join(models, "a.safetensors"));
    const prune = await runCli(["cache", "prune", "--cache-dir", cacheDir]);
    expect(prune.code).toBe(0);
    // T11: "{ torn" is not an entry we wrote (no envelope): it is left alone, and not counted.
    expect(prune.stderr).toContain("pruned 1 of 2 hash entries, 1 of 2 metadata entries and 0 of 0 images");
    expect(existsSync(join(metaDir, "valid.json"))).toBe(true);
    expect(existsSync(join(metaDir, "expired.json"))).toBe(false);
    expect(existsSync(join(metaDir, "garbage.json"))).toBe(true);
    expect((await runCli(["cache", "info", "--cache-dir", cacheDir])).stdout).toContain("hashes    1 entry,");
    // The surviving entry is still a hit.
    expect((await runCli(["hash", "--cache-dir", cacheDir, models])).stderr).toContain("1 from cache");

    writeFileSync(join(metaDir, "again.json"), entry(Date.now() + 86_400_000));
    const clearMeta = await runCli(["cache", "clear", "--metadata", "--cache-dir", cacheDir]);
    expect(clearMeta.code).toBe(0);
    // Our entries are gone; the file we did not write stays, with its folder.
    expect(count(join(cacheDir, "meta"))).toBe(1);
    expect(existsSync(join(metaDir, "garbage.json"))).toBe(true);
    expect((await runCli(["cache", "info", "--cache-dir", cacheDir])).stdout).toContain("hashes    1 entry,");
    const clear = await runCli(["cache", "clear", "--cache-dir", cacheDir]);
    expect(clear.code).toBe(0);
    expect(clear.stderr).toContain("cleared the hash cache: 1 entry removed");
    expect((await runCli(["cache", "info", "--cache-dir", cacheDir])).stdout).toContain("hashes    0 entries, 0 B");
    expect(existsSync(join(cacheDir, "hashes"))).toBe(false);
  });

  test("an unknown action is a usage error", async () => {
    const r = await runCli(["cache", "wipe"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("info, prune, clear");
  });
});
