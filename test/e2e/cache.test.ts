import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
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
    const scope = "https-civitai.com-443:https-civitai.red-443";
    const metaDir = join(cacheDir, "meta", "v3", ...scope.split(":"), "version", "sha256", "ab");
    mkdirSync(metaDir, { recursive: true });
    writeFileSync(join(metaDir, "garbage.json"), "{ torn");
    const hex = (c: string) => `ab${c.repeat(62)}`;
    const entry = (c: string, storedAt: number, expiresAt: number) => {
      const key = `version:sha256:ab:${hex(c)}`;
      writeFileSync(
        join(metaDir, `${hex(c)}.json`),
        JSON.stringify({ v: 3, scope, key, storedAt, expiresAt, kind: "not_found", misses: 1 }),
      );
      return join(metaDir, `${hex(c)}.json`);
    };
    const expired = entry("1", 1, 2);
    const valid = entry("2", Date.now(), Date.now() + 86_400_000);
    // An entry of format 2 (raw answers, unsharded): never read again, so prune removes it.
    const v2Dir = join(cacheDir, "meta", "v2", ...scope.split(":"), "version", "sha256");
    mkdirSync(v2Dir, { recursive: true });
    writeFileSync(
      join(v2Dir, `${hex("3")}.json`),
      JSON.stringify({ v: 2, storedAt: 1, expiresAt: 9e15, kind: "not_found", scope, data: null }),
    );

    const info = await runCli(["cache", "info", "--cache-dir", cacheDir]);
    expect(info.code).toBe(0);
    expect(info.stdout).toContain("hashes    2 entries");
    expect(info.stdout).toContain("metadata  4 entries");

    rmSync(join(models, "a.safetensors"));
    const prune = await runCli(["cache", "prune", "--cache-dir", cacheDir]);
    expect(prune.code).toBe(0);
    // T11: "{ torn" is not an entry we wrote (no envelope): it is left alone, and not counted.
    expect(prune.stderr).toContain("pruned 1 of 2 hash entries, 2 of 3 metadata entries, 0 of 0 images and 0 of 0 record packs");
    expect(existsSync(valid)).toBe(true);
    expect(existsSync(expired)).toBe(false);
    expect(existsSync(join(v2Dir, `${hex("3")}.json`))).toBe(false);
    expect(existsSync(join(metaDir, "garbage.json"))).toBe(true);
    expect((await runCli(["cache", "info", "--cache-dir", cacheDir])).stdout).toContain("hashes    1 entry,");
    // The surviving entry is still a hit.
    expect((await runCli(["hash", "--cache-dir", cacheDir, models])).stderr).toContain("1 from cache");

    entry("4", Date.now(), Date.now() + 86_400_000);
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

  test("info twice says the same and leaves no -wal/-shm beside the hash store", async () => {
    // Before the fix info opened the store read-only, which cannot remove the -wal and -shm it
    // makes: they stayed, and the next info counted them (32.0 KiB, then 64.0 KiB).
    const models = tmp.make();
    const cacheDir = tmp.make();
    writeFileSync(join(models, "a.safetensors"), "a");
    expect((await runCli(["hash", "--cache-dir", cacheDir, models])).code).toBe(0);
    expect(readdirSync(join(cacheDir, "hashes"))).toEqual(["v2.sqlite"]);
    const first = await runCli(["cache", "info", "--cache-dir", cacheDir]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("hashes    1 entry,");
    expect(readdirSync(join(cacheDir, "hashes"))).toEqual(["v2.sqlite"]);
    const second = await runCli(["cache", "info", "--cache-dir", cacheDir]);
    expect(second.stdout).toBe(first.stdout);
  });

  test("the caches are found as scan finds them: --cache-dir, then CIVITAI_META_CACHE_DIR, then the config's cache.dir", async () => {
    const models = tmp.make();
    writeFileSync(join(models, "a.safetensors"), "a");
    utimesSync(join(models, "a.safetensors"), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    const configured = tmp.make();
    const xdgConfig = tmp.make();
    mkdirSync(join(xdgConfig, "civitai-meta"));
    writeFileSync(join(xdgConfig, "civitai-meta", "config.json"), JSON.stringify({ cache: { dir: configured } }));
    const env = { XDG_CONFIG_HOME: xdgConfig, XDG_CACHE_HOME: tmp.make(), CIVITAI_META_CACHE_DIR: undefined, NO_COLOR: "1" };
    const cwd = tmp.make();
    expect((await runCli(["scan", models, "--offline", "-o", join(cwd, "inv.json")], { env, cwd })).code).toBe(0);

    const info = await runCli(["cache", "info"], { env, cwd });
    expect(info.code).toBe(0);
    expect(info.stdout).toStartWith(`cache     ${configured}\nhashes    1 entry`);
    const other = tmp.make();
    const fromEnv = await runCli(["cache", "info"], { env: { ...env, CIVITAI_META_CACHE_DIR: other }, cwd });
    expect(fromEnv.stdout).toStartWith(`cache     ${other}\nhashes    0 entries`);
    const clear = await runCli(["cache", "clear", "--hashes"], { env, cwd });
    expect(clear.code).toBe(0);
    expect(clear.stderr).toContain(`1 entry removed from ${join(configured, "hashes")}`);
  });

  test("clear leaves a file that is not a SQLite database at the store's name (docs/cases.md T11), and removes a real store", async () => {
    const cacheDir = tmp.make();
    mkdirSync(join(cacheDir, "hashes"));
    const notOurs = join(cacheDir, "hashes", "v2.sqlite");
    writeFileSync(notOurs, "my notes, not a database\n");
    expect((await runCli(["cache", "clear", "--hashes", "--cache-dir", cacheDir])).code).toBe(0);
    expect(readFileSync(notOurs, "utf8")).toBe("my notes, not a database\n");
    rmSync(notOurs);
    const models = tmp.make();
    writeFileSync(join(models, "a.safetensors"), "a");
    expect((await runCli(["hash", "--cache-dir", cacheDir, models])).code).toBe(0);
    expect(existsSync(notOurs)).toBe(true);
    expect((await runCli(["cache", "clear", "--hashes", "--cache-dir", cacheDir])).code).toBe(0);
    expect(existsSync(notOurs)).toBe(false);
  });

  test("clear with no cache there says there was nothing to clear, and where it looked; it printed nothing", async () => {
    const cacheDir = join(tmp.make(), "never-used");
    const r = await runCli(["cache", "clear", "--cache-dir", cacheDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`nothing to clear in ${cacheDir}`);
  });

  test("an unknown action is a usage error", async () => {
    const r = await runCli(["cache", "wipe"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("info, prune, clear");
  });
});
