import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { modelKey, versionKeyByAutov3, versionKeyBySha256 } from "../../../src/civitai/cache-keys.ts";
import type { ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import { leanModel, leanVersion } from "../../../src/civitai/lean.ts";
import { createMetaCache, DEFAULT_TTL_FOUND_MS, NOT_FOUND_TTL_STEPS_MS, type VersionAnswer } from "../../../src/civitai/meta-cache.ts";
import { pruneMetaCache } from "../../../src/civitai/meta-cache-prune.ts";
import { TEMP_PREFIX } from "../../../src/shared/temp-name.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs("civitai-meta-metacache-");

// Created at load time so `test.skipIf(!mounted)` knows whether a read-only mount is possible.
const mountRoot = mkdtempSync(join(tmpdir(), "civitai-meta-metacache-ro-"));
const roDir = join(mountRoot, "ro");
mkdirSync(roDir);
const mountResult = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", roDir], { stderr: "pipe" });
const mounted = mountResult.exitCode === 0;
if (!mounted) console.log(`read-only cache tests skipped: mount failed: ${mountResult.stderr.toString().trim()}`);
afterAll(() => {
  if (mounted) Bun.spawnSync(["umount", roDir]);
  rmSync(mountRoot, { recursive: true, force: true });
  tmp.cleanup();
});

const SHA = "ab".repeat(32);
const KEY = versionKeyBySha256(SHA);
const MODULE = resolve(import.meta.dir, "../../../src/civitai/meta-cache.ts");
const LEAN_MODULE = resolve(import.meta.dir, "../../../src/civitai/lean.ts");
const ORIGINS = ["https://civitai.com", "https://civitai.red"];
const SCOPE = "https-civitai.com-443:https-civitai.red-443";
const DAY = 24 * 60 * 60 * 1000;
/** Where this scope's entries live under a cache dir (format 3, keyed by both API origins, sharded). */
const scoped = (dir: string, ...parts: string[]) => join(dir, "v3", "https-civitai.com-443", "https-civitai.red-443", ...parts);
const shaFile = (dir: string, sha = SHA) => scoped(dir, "version", "sha256", sha.slice(0, 2), `${sha}.json`);

function apiVersion(id: number, over: Partial<ApiModelVersion> = {}, sha = SHA): ApiModelVersion {
  return { id, modelId: 1, name: `v${id}`, files: [{ id: 1, hashes: { SHA256: sha.toUpperCase(), AutoV3: "0123456789AB" } }], ...over };
}

function answer(...ids: number[]): VersionAnswer {
  return { versions: ids.map((id) => leanVersion(apiVersion(id))), matchedBy: "sha256", host: "https://civitai.com" };
}

function clock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** Every entry file under `dir` (temp files excluded), recursively. */
function entryFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...entryFiles(path));
    else if (name.endsWith(".json") && !name.startsWith(".")) out.push(path);
  }
  return out;
}

describe("round trip and TTL", () => {
  test("found versions, with host and match kind, on disk under a shard folder", async () => {
    const dir = tmp.make();
    const cache = createMetaCache({ origins: ORIGINS, dir });
    await cache.setVersion(KEY, answer(2, 1));
    expect(existsSync(shaFile(dir))).toBe(true);
    const again = createMetaCache({ origins: ORIGINS, dir });
    const got = await again.getVersion(KEY);
    expect(got).toEqual({ kind: "found", ...answer(2, 1) });
    expect(again.stats).toMatchObject({ hits: 1, misses: 0 });
    expect(cache.stats).toMatchObject({ writes: 1, invalid: 0 });
    // Lean and compact: no raw API fields, nulls left out.
    const text = readFileSync(shaFile(dir), "utf8");
    expect(JSON.parse(text)).toMatchObject({ v: 3, scope: SCOPE, key: KEY, kind: "found", matchedBy: "sha256" });
    expect(text).not.toContain("null");
  });

  test("found expires after 7 days; not-found after 3 days, then 7, then 30 as it repeats", async () => {
    const c = clock();
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make(), now: c.now });
    const nf = versionKeyByAutov3("0123456789ab");
    await cache.setVersion(KEY, answer(1));
    const steps: number[] = [];
    for (let i = 0; i < 4; i++) {
      expect(await cache.getVersion(nf)).toBeNull(); // absent or expired: the caller asks, then records the miss
      await cache.setVersion(nf, null);
      const got = await cache.getVersion(nf);
      expect(got).toEqual({ kind: "not_found", misses: i + 1 });
      let lived = 0;
      while ((await cache.getVersion(nf)) !== null) {
        c.advance(DAY);
        lived += DAY;
      }
      steps.push(lived);
    }
    expect(steps).toEqual([3 * DAY, 7 * DAY, 30 * DAY, 30 * DAY]);
    expect(NOT_FOUND_TTL_STEPS_MS).toEqual([3 * DAY, 7 * DAY, 30 * DAY]);
    expect(await cache.getVersion(KEY)).toBeNull(); // 70 days later
    const fresh = createMetaCache({ origins: ORIGINS, dir: tmp.make(), now: c.now });
    await fresh.setVersion(KEY, answer(1));
    c.advance(DEFAULT_TTL_FOUND_MS - 1);
    expect((await fresh.getVersion(KEY))?.kind).toBe("found");
    c.advance(1);
    expect(await fresh.getVersion(KEY)).toBeNull();
  });

  test("a configured not-found TTL is used for every repeat; models, found and not", async () => {
    const c = clock();
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make(), now: c.now, ttlFoundMs: 100, ttlNotFoundMs: 10 });
    const model = leanModel({ id: 1102, name: "SynthwavePunk", description: "<p>Hi &amp; bye</p>" });
    await cache.setModel(1102, model);
    await cache.setModel(7, null);
    expect(await cache.getModel(1102)).toEqual({ kind: "found", model });
    expect(model.description).toBe("Hi & bye"); // turned into text once, when the answer arrived
    expect(await cache.getModel(7)).toEqual({ kind: "not_found", misses: 1 });
    c.advance(10);
    expect(await cache.getModel(7)).toBeNull();
    await cache.setModel(7, null);
    c.advance(9);
    expect(await cache.getModel(7)).toEqual({ kind: "not_found", misses: 2 });
    c.advance(1);
    expect(await cache.getModel(7)).toBeNull();
    expect(await cache.getModel(1102)).not.toBeNull();
    c.advance(80);
    expect(await cache.getModel(1102)).toBeNull();
    await expect(cache.setModel(5, leanModel({ id: 6 }))).rejects.toThrow(TypeError);
  });

  test("C2: values that destr would coerce come back unchanged", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    const v = leanVersion(
      apiVersion(1, { name: "1234567890", description: "12345e7890", baseModel: "true", trainedWords: ["null", "0x10"] }),
    );
    await cache.setVersion(KEY, { versions: [v], matchedBy: "sha256" });
    const got = await cache.getVersion(KEY);
    expect(got?.kind === "found" && got.versions[0]).toMatchObject({
      name: "1234567890",
      description: "12345e7890",
      baseModel: "true",
      trainedWords: ["null", "0x10"],
    });
  });

  test("memory mode (dir: false) writes nothing to disk", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: false });
    await cache.setVersion(KEY, answer(1));
    expect((await cache.getVersion(KEY))?.kind).toBe("found");
    expect(await cache.storage.getKeys()).toEqual([KEY]);
  });

  test("refresh mode ignores reads but still writes, and starts repeat counts over", async () => {
    const dir = tmp.make();
    const plain = createMetaCache({ origins: ORIGINS, dir });
    await plain.setVersion(KEY, answer(1));
    const nf = versionKeyBySha256("cd".repeat(32));
    await plain.setVersion(nf, null);
    await plain.setVersion(nf, null);
    const refreshing = createMetaCache({ origins: ORIGINS, dir, refresh: true });
    expect(await refreshing.getVersion(KEY)).toBeNull();
    expect(await refreshing.getVersion(nf)).toBeNull();
    expect(await refreshing.getModel(1)).toBeNull();
    await refreshing.setVersion(KEY, answer(2));
    await refreshing.setVersion(nf, null);
    const after = createMetaCache({ origins: ORIGINS, dir });
    const got = await after.getVersion(KEY);
    expect(got?.kind === "found" && got.versions[0]?.id).toBe(2);
    expect(await after.getVersion(nf)).toEqual({ kind: "not_found", misses: 1 });
  });

  test("a not-found replacing a found keeps it as lastFound, with when it was seen", async () => {
    const c = clock();
    const dir = tmp.make();
    await createMetaCache({ origins: ORIGINS, dir, now: c.now }).setVersion(KEY, answer(5));
    const seen = c.now();
    c.advance(8 * DAY);
    const cache = createMetaCache({ origins: ORIGINS, dir, now: c.now });
    expect(await cache.getVersion(KEY)).toBeNull(); // expired: history only
    await cache.setVersion(KEY, null);
    expect(cache.lastFound(KEY)).toMatchObject({ at: seen, matchedBy: "sha256", host: "https://civitai.com" });
    const got = await createMetaCache({ origins: ORIGINS, dir, now: c.now }).getVersion(KEY);
    expect(got).toMatchObject({ kind: "not_found", misses: 1, lastFound: { at: seen } });
    expect(got?.kind === "not_found" && got.lastFound?.versions[0]?.id).toBe(5);
  });

  test("a failed write is reported, not thrown", async () => {
    const dir = tmp.make();
    const notADir = join(dir, "file");
    writeFileSync(notADir, "x");
    const errors: unknown[] = [];
    const cache = createMetaCache({ origins: ORIGINS, dir: notADir, onWriteError: (err) => errors.push(err) });
    await cache.setVersion(KEY, answer(1));
    expect(cache.stats).toMatchObject({ writes: 0, writeErrors: 1 });
    expect(errors).toHaveLength(1);
    expect(await cache.getVersion(KEY)).toBeNull();
  });

  test("an answer that would not read back is not written", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    // Keyed by another hash than its file holds: it would be a miss on every read.
    await cache.setVersion(versionKeyBySha256("ef".repeat(32)), answer(1));
    expect(cache.stats).toMatchObject({ writes: 0, invalid: 1 });
    await expect(cache.setVersion(KEY, { versions: [], matchedBy: "sha256" })).rejects.toThrow(TypeError);
  });
});

describe("batches", () => {
  test("reads and writes go to the store in one call per batch; no folder holds more than a shard", async () => {
    const dir = tmp.make();
    const cache = createMetaCache({ origins: ORIGINS, dir });
    const shas = Array.from({ length: 2000 }, (_, i) => createHash("sha256").update(String(i)).digest("hex"));
    const calls = { get: 0, set: 0 };
    const { setItems } = cache.storage;
    cache.storage.setItems = (...args) => (calls.set++, setItems(...args));
    // Batch reads go to the fs driver itself (meta-cache.ts getItems): counted there.
    const driver = cache.storage.getMount("").driver;
    const getItems = driver.getItems!.bind(driver);
    driver.getItems = (...args) => (calls.get++, getItems(...args));
    await cache.writeVersions(
      shas.map((sha) => ({
        key: versionKeyBySha256(sha),
        answer: { versions: [leanVersion(apiVersion(7, {}, sha))], matchedBy: "sha256" },
      })),
    );
    const read = await cache.readVersions(shas.map((sha) => versionKeyBySha256(sha)));
    expect(calls).toEqual({ get: 1, set: 1 });
    expect(read.every((r) => r?.kind === "found")).toBe(true);
    const shardRoot = scoped(dir, "version", "sha256");
    const shards = readdirSync(shardRoot);
    expect(shards.every((s) => /^[0-9a-f]{2}$/.test(s))).toBe(true);
    expect(Math.max(...shards.map((s) => readdirSync(join(shardRoot, s)).length))).toBeLessThan(100);
  });
});

describe("corrupt or inconsistent entries are misses (docs/cases.md C1)", () => {
  const storedAt = Date.now();
  const good = JSON.parse(
    JSON.stringify({ v: 3, scope: SCOPE, key: KEY, storedAt, expiresAt: storedAt + DAY, kind: "found", ...answer(1) }),
  );
  const v1 = good.versions[0];
  const cases: [string, string][] = [
    ["empty file", ""],
    ["truncated JSON", JSON.stringify(good).slice(0, 60)],
    ["numeric-looking", "1234567890"],
    ["a JSON string", '"found"'],
    ["null", "null"],
    ["an array", "[1,2]"],
    ["binary garbage", "\u0000\u0001\uFFFD{"],
    ["format 2", JSON.stringify({ ...good, v: 2 })],
    ["no scope", JSON.stringify({ ...good, scope: undefined })],
    ["another scope's entry", JSON.stringify({ ...good, scope: "http-127.0.0.1-8080:none" })],
    ["written under another key", JSON.stringify({ ...good, key: versionKeyBySha256("cd".repeat(32)) })],
    ["unknown kind", JSON.stringify({ ...good, kind: "maybe" })],
    ["found without versions", JSON.stringify({ ...good, versions: undefined })],
    ["found with an empty list", JSON.stringify({ ...good, versions: [] })],
    ["a version with a string id", JSON.stringify({ ...good, versions: [{ ...v1, id: "1" }] })],
    ["a version whose files do not hold the key's hash", JSON.stringify({ ...good, versions: [{ ...v1, files: [] }] })],
    [
      "a hash stored upper-case",
      JSON.stringify({ ...good, versions: [{ ...v1, files: [{ ...v1.files[0], hashes: { SHA256: SHA.toUpperCase() } }] }] }),
    ],
    ["the same version twice", JSON.stringify({ ...good, versions: [v1, v1] })],
    ["a name that is a number", JSON.stringify({ ...good, versions: [{ ...v1, name: 5 }] })],
    [
      "an image with a javascript: URL",
      JSON.stringify({ ...good, versions: [{ ...v1, images: [{ url: "javascript:alert(1)", nsfwLevel: 1 }] }] }),
    ],
    ["unlisted, but the file is listed", JSON.stringify({ ...good, unlisted: true })],
    ["matched by AutoV3 without naming it", JSON.stringify({ ...good, matchedBy: "autov3" })],
    ["matched by an AutoV3 no file has", JSON.stringify({ ...good, matchedBy: "autov3", autov3: "999999999999" })],
    ["not_found carrying versions", JSON.stringify({ ...good, kind: "not_found", misses: 1 })],
    [
      "lastFound seen after it was stored",
      JSON.stringify({
        ...good,
        kind: "not_found",
        misses: 1,
        versions: undefined,
        matchedBy: undefined,
        host: undefined,
        lastFound: { ...answer(1), at: storedAt + 1 },
      }),
    ],
    [
      "lastFound for another hash",
      JSON.stringify({
        ...good,
        kind: "not_found",
        misses: 1,
        versions: undefined,
        matchedBy: undefined,
        host: undefined,
        lastFound: { ...answer(1), versions: [{ ...v1, files: [] }], at: 5 },
      }),
    ],
    ["not_found without a repeat count", JSON.stringify({ ...good, kind: "not_found" })],
    ["expiresAt a string", JSON.stringify({ ...good, expiresAt: String(good.expiresAt) })],
    ["expired", JSON.stringify({ ...good, storedAt: 0, expiresAt: 1 })],
    ["a lifetime no config can set", JSON.stringify({ ...good, expiresAt: 9e15 })],
    // A clock a year ahead (another machine's, or ours before it was set back) wrote it: served
    // until then, it would live a year instead of 7 days.
    ["stored a year from now", JSON.stringify({ ...good, storedAt: storedAt + 365 * DAY, expiresAt: storedAt + 365 * DAY + DAY })],
    ["hostile host", JSON.stringify({ ...good, host: "javascript:alert(1)" })],
    ["bad matchedBy", JSON.stringify({ ...good, matchedBy: "name" })],
  ];
  for (const [name, content] of cases) {
    test(name, async () => {
      const dir = tmp.make();
      mkdirSync(scoped(dir, "version", "sha256", "ab"), { recursive: true });
      writeFileSync(shaFile(dir), content);
      const cache = createMetaCache({ origins: ORIGINS, dir });
      expect(await cache.getVersion(KEY)).toBeNull();
      expect(cache.stats).toMatchObject({ hits: 0, misses: 1 });
      // …and the next answer replaces it.
      await cache.setVersion(KEY, answer(3));
      const got = await cache.getVersion(KEY);
      expect(got?.kind === "found" && got.versions[0]?.id).toBe(3);
    });
  }

  test("the reference entries themselves are hits (the cases above fail for their one defect)", async () => {
    const dir = tmp.make();
    mkdirSync(scoped(dir, "version", "sha256", "ab"), { recursive: true });
    writeFileSync(shaFile(dir), JSON.stringify(good));
    expect((await createMetaCache({ origins: ORIGINS, dir }).getVersion(KEY))?.kind).toBe("found");
    const notFound = {
      ...good,
      kind: "not_found",
      misses: 1,
      versions: undefined,
      matchedBy: undefined,
      host: undefined,
      lastFound: { ...answer(1), at: 5 },
    };
    writeFileSync(shaFile(dir), JSON.stringify(notFound));
    expect(await createMetaCache({ origins: ORIGINS, dir }).getVersion(KEY)).toMatchObject({
      kind: "not_found",
      misses: 1,
      lastFound: { at: 5 },
    });
  });

  test("a model entry holding another model's id is a miss", async () => {
    const dir = tmp.make();
    const key = modelKey(5);
    const entry = {
      v: 3,
      scope: SCOPE,
      key,
      storedAt: Date.now(),
      expiresAt: Date.now() + DAY,
      kind: "found",
      model: leanModel({ id: 6 }),
    };
    mkdirSync(scoped(dir, "model", "05"), { recursive: true });
    writeFileSync(scoped(dir, "model", "05", "5.json"), JSON.stringify(entry));
    expect(await createMetaCache({ origins: ORIGINS, dir }).getModel(5)).toBeNull();
    writeFileSync(scoped(dir, "model", "05", "5.json"), JSON.stringify({ ...entry, model: leanModel({ id: 5 }) }));
    expect((await createMetaCache({ origins: ORIGINS, dir }).getModel(5))?.kind).toBe("found");
  });
});

describe("C10: hostile keys never leave the dir", () => {
  test("C10: the cache API accepts only well-formed keys", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    for (const key of [
      "../x",
      `version:sha256:ab:../../${SHA.slice(6)}`,
      `version:sha256:ab:${SHA.toUpperCase()}`,
      `version:sha256:cd:${SHA}`,
      `version:sha256:${SHA}`,
      `version:sha256:ab:${SHA}?x`,
      "version/sha256/x",
      "a:b",
      "",
    ]) {
      await expect(cache.getVersion(key)).rejects.toThrow(TypeError);
      await expect(cache.setVersion(key, answer(1))).rejects.toThrow(TypeError);
    }
    await expect(cache.getModel(-1)).rejects.toThrow(TypeError);
    await expect(cache.setModel(1.5, null)).rejects.toThrow(TypeError);
  });

  test("C10: the driver refuses traversal; other odd keys stay inside", async () => {
    const parent = tmp.make();
    const dir = join(parent, "cache");
    const { storage } = createMetaCache({ origins: ORIGINS, dir });
    for (const key of ["../../evil", "..:..:evil", "a/../../evil", "x:..", ".hidden", "a\u0000b", "a b"]) {
      await expect(storage.setItemRaw(key, "x")).rejects.toThrow();
      await expect(storage.setItems([{ key, value: "x" }])).rejects.toThrow();
    }
    for (const key of ["/etc/passwd", "a/b", "a:b", "c?d=../../e", "C:\\windows"]) {
      await storage.setItemRaw(key, "{}");
    }
    expect(readdirSync(parent)).toEqual(["cache"]);
    expect(entryFiles(dir).every((f) => f.startsWith(dir + "/"))).toBe(true);
    // unstorage folds a/b into a:b: one file, which is why our keys never contain either.
    expect(existsSync(scoped(dir, "a", "b.json"))).toBe(true);
    expect(existsSync(scoped(dir, "etc", "passwd.json"))).toBe(true);
    expect(existsSync("/etc/passwd.json")).toBe(false);
    expect(readdirSync(dir)).toEqual(["v3"]);
    // A batch read never reads outside either.
    await expect(storage.getItems(["../../evil"])).rejects.toThrow();
    expect(await storage.getItems(["a:b", "x:.hidden"])).toEqual([
      { key: "a:b", value: {} },
      { key: "x:.hidden", value: null },
    ]);
  });
});

describe("atomic writes across processes (docs/cases.md C3, C4)", () => {
  // A writer in another process alternates a ~0.3 MB and a small value on one key: in-place writes
  // (unstorage 1.17's fs drivers) showed torn reads in most iterations of exactly this loop. The
  // big value is as big as a valid entry gets (100 files with 1,000-character names and ten
  // 128-digit hashes each; docs/cases.md B13 bounds every string and list of an entry).
  const writerScript = (dir: string) => {
    const path = join(dir, "writer.ts");
    writeFileSync(
      path,
      `import { createMetaCache } from ${JSON.stringify(MODULE)};
import { leanVersion } from ${JSON.stringify(LEAN_MODULE)};
const [dir, rounds, keys] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const cache = createMetaCache({ origins: ${JSON.stringify(ORIGINS)}, dir });
const sha = (k) => (k + 1).toString(16).padStart(64, "0");
const many = (k) => Array.from({ length: 100 }, (_, j) => ({
  id: j + 1,
  name: "n".repeat(996) + String(j).padStart(4, "0"),
  hashes: Object.fromEntries([["SHA256", sha(k)], ...Array.from({ length: 9 }, (_, h) => ["Extra" + h, "f".repeat(128)])]),
}));
for (let i = 0; rounds === 0 || i < rounds; i++) {
  const k = i % keys;
  const files = i % 2 ? many(k) : [{ id: 1, hashes: { SHA256: sha(k) } }];
  const v = leanVersion({ id: i + 1, name: "v" + i, files });
  await cache.writeVersions([{ key: "version:sha256:" + sha(k).slice(0, 2) + ":" + sha(k), answer: { versions: [v], matchedBy: "sha256" } }]);
  if (i === 3) console.log("ready");
}
`,
    );
    return path;
  };

  test("C4: a reader in another process never sees a torn or invalid value", async () => {
    const dir = tmp.make();
    const cacheDir = join(dir, "cache");
    const key1 = "1".padStart(64, "0");
    const file = scoped(cacheDir, "version", "sha256", "00", `${key1}.json`);
    const child = Bun.spawn([process.execPath, writerScript(dir), cacheDir, "40", "1"], { stdout: "pipe", stderr: "pipe" });
    let exited = false;
    void child.exited.then(() => (exited = true));
    const reader = createMetaCache({ origins: ORIGINS, dir: cacheDir });
    let parsed = 0;
    let invalid = 0;
    let cacheMisses = 0;
    while (!exited) {
      let text: string | null = null;
      try {
        text = await readFile(file, "utf8");
      } catch {
        // not written yet
      }
      if (text !== null) {
        try {
          const entry = JSON.parse(text);
          if (entry.kind === "found" && Array.isArray(entry.versions)) parsed++;
          else invalid++;
        } catch {
          invalid++;
        }
        if ((await reader.getVersion(versionKeyBySha256(key1))) === null) cacheMisses++;
      }
    }
    expect(await child.exited).toBe(0);
    expect(invalid).toBe(0);
    expect(cacheMisses).toBe(0);
    expect(parsed).toBeGreaterThan(0);
    const final = await reader.getVersion(versionKeyBySha256(key1));
    expect(final?.kind === "found" && final.versions[0]?.id).toBe(40);
  });

  test("C3: SIGKILL mid-loop: every entry file still parses", async () => {
    const dir = tmp.make();
    const cacheDir = join(dir, "cache");
    const child = Bun.spawn([process.execPath, writerScript(dir), cacheDir, "0", "4"], { stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    expect(out).toContain("ready");
    await Bun.sleep(150); // let it get well into big writes
    child.kill("SIGKILL");
    await child.exited;
    const files = entryFiles(cacheDir);
    expect(files.length).toBe(4);
    const cache = createMetaCache({ origins: ORIGINS, dir: cacheDir });
    for (const f of files) {
      const entry = JSON.parse(readFileSync(f, "utf8"));
      expect(entry).toMatchObject({ v: 3, kind: "found" });
      const sha = f.slice(f.lastIndexOf("/") + 1, -".json".length);
      expect((await cache.getVersion(versionKeyBySha256(sha)))?.kind).toBe("found");
    }
    // Leftover temp files from the killed writer are never listed as entries.
    expect((await cache.storage.getKeys()).every((k) => /^version:sha256:[0-9a-f]{2}:[0-9a-f]{64}$/.test(k))).toBe(true);
  });

  test("C4: many concurrent writes in one process end with one valid entry", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => {
        const v = leanVersion(apiVersion(i + 1));
        v.description = "y".repeat(500 * (i % 7)); // up to 3,000 characters, within what a stored entry may hold (docs/cases.md B13)
        return cache.setVersion(KEY, { versions: [v], matchedBy: "sha256" });
      }),
    );
    const got = await cache.getVersion(KEY);
    expect(got?.kind).toBe("found");
    expect(cache.stats.writes).toBe(30);
  });

  test("C4: two processes writing distinct keys at once lose nothing", async () => {
    const dir = tmp.make();
    const cacheDir = join(dir, "cache");
    const script = join(dir, "many.ts");
    writeFileSync(
      script,
      `import { createMetaCache } from ${JSON.stringify(MODULE)};
import { leanVersion } from ${JSON.stringify(LEAN_MODULE)};
const [dir, tag] = [process.argv[2], process.argv[3]];
const cache = createMetaCache({ origins: ${JSON.stringify(ORIGINS)}, dir });
const sha = (k) => (tag + k.toString(16)).padStart(64, "0");
for (let b = 0; b < 10; b++) {
  await cache.writeVersions(Array.from({ length: 50 }, (_, i) => {
    const s = sha(b * 50 + i);
    return { key: "version:sha256:" + s.slice(0, 2) + ":" + s, answer: { versions: [leanVersion({ id: 1, files: [{ id: 1, hashes: { SHA256: s } }] })], matchedBy: "sha256" } };
  }));
}
`,
    );
    const procs = ["a", "b"].map((tag) => Bun.spawn([process.execPath, script, cacheDir, tag], { stdout: "pipe", stderr: "pipe" }));
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0]);
    const cache = createMetaCache({ origins: ORIGINS, dir: cacheDir });
    const keys = ["a", "b"].flatMap((tag) =>
      Array.from({ length: 500 }, (_, k) => versionKeyBySha256((tag + k.toString(16)).padStart(64, "0"))),
    );
    const read = await cache.readVersions(keys);
    expect(read.filter((r) => r?.kind === "found")).toHaveLength(1000);
  });
});

describe("C5: a read-only cache location", () => {
  test.skipIf(!mounted)("C5: entries still read; writes fail without a throw and are reported", async () => {
    const dir = join(roDir, "meta");
    const before = createMetaCache({ origins: ORIGINS, dir });
    await before.setVersion(KEY, answer(1));
    expect(Bun.spawnSync(["mount", "-o", "remount,ro", roDir]).exitCode).toBe(0);
    try {
      const errors: unknown[] = [];
      const cache = createMetaCache({ origins: ORIGINS, dir, onWriteError: (err) => errors.push(err) });
      expect((await cache.getVersion(KEY))?.kind).toBe("found");
      await cache.writeVersions([
        { key: versionKeyBySha256("cd".repeat(32)), notFound: {} },
        { key: versionKeyBySha256("ef".repeat(32)), notFound: {} },
      ]);
      expect(cache.stats).toMatchObject({ writes: 0, writeErrors: 2 });
      expect(errors).toHaveLength(1); // one report per batch; the CLI warns once per run
      expect(String((errors[0] as NodeJS.ErrnoException).code)).toBe("EROFS");
    } finally {
      Bun.spawnSync(["mount", "-o", "remount,rw", roDir]);
    }
  });
});

test("model keys map to their own shard file", async () => {
  const dir = tmp.make();
  const cache = createMetaCache({ origins: ORIGINS, dir });
  await cache.setModel(300, leanModel({ id: 300 }));
  expect(modelKey(300)).toBe("model:2c:300");
  expect(existsSync(scoped(dir, "model", "2c", "300.json"))).toBe(true);
});

describe("T2: one cache per pair of API origins", () => {
  test("T2: answers stored for one origin are misses for every other origin, and for another fallback", async () => {
    const dir = tmp.make();
    await createMetaCache({ origins: ["http://127.0.0.1:4000"], dir }).setVersion(KEY, answer(666));
    for (const origins of [ORIGINS, ["https://civitai.com"], ["http://127.0.0.1:4001"], ["http://127.0.0.1:4000", "https://civitai.red"]]) {
      expect(await createMetaCache({ origins, dir }).getVersion(KEY)).toBeNull();
    }
    const same = await createMetaCache({ origins: ["http://127.0.0.1:4000/"], dir }).getVersion(KEY);
    expect(same?.kind === "found" && same.versions[0]?.id).toBe(666);
    expect(existsSync(join(dir, "v3", "http-127.0.0.1-4000", "none", "version", "sha256", "ab", `${SHA}.json`))).toBe(true);
  });

  test("T2: entries of formats 1 and 2, at their old places, are never read, and prune removes them", async () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "version", "sha256"), { recursive: true });
    const old = { v: 1, storedAt: 0, expiresAt: 9e15, kind: "found", data: [apiVersion(1)], host: "https://civitai.com" };
    writeFileSync(join(dir, "version", "sha256", `${SHA}.json`), JSON.stringify(old));
    const v2dir = join(dir, "v2", "https-civitai.com-443", "https-civitai.red-443", "version", "sha256");
    mkdirSync(v2dir, { recursive: true });
    writeFileSync(join(v2dir, `${SHA}.json`), JSON.stringify({ ...old, v: 2, scope: SCOPE }));
    const cache = createMetaCache({ origins: ORIGINS, dir });
    expect(await cache.getVersion(KEY)).toBeNull();
    await cache.setVersion(KEY, answer(1));
    expect(pruneMetaCache(dir)).toEqual({ checked: 3, removed: 2 });
    expect((await createMetaCache({ origins: ORIGINS, dir }).getVersion(KEY))?.kind).toBe("found");
  });

  test("prune keeps expired entries while they still tell history, and removes misplaced ones", async () => {
    const c = clock();
    const dir = tmp.make();
    const cache = createMetaCache({ origins: ORIGINS, dir, now: c.now });
    const nf = versionKeyBySha256("cd".repeat(32));
    await cache.setVersion(nf, null); // 3 days, kept 3 more for its repeat count
    await cache.setVersion(KEY, answer(1)); // 7 days, kept 7 more as a possible lastFound
    // A valid entry copied to another key's place is never read there: prune removes it.
    mkdirSync(scoped(dir, "version", "sha256", "ef"), { recursive: true });
    writeFileSync(scoped(dir, "version", "sha256", "ef", `${"ef".repeat(32)}.json`), readFileSync(shaFile(dir)));
    expect(pruneMetaCache(dir, c.now())).toEqual({ checked: 3, removed: 1 });
    expect(pruneMetaCache(dir, c.now() + 6 * DAY - 1)).toEqual({ checked: 2, removed: 0 });
    expect(pruneMetaCache(dir, c.now() + 6 * DAY)).toEqual({ checked: 2, removed: 1 });
    expect(pruneMetaCache(dir, c.now() + 14 * DAY)).toEqual({ checked: 1, removed: 1 });
  });

  test("T11: pruning removes a killed writer's old temp files under both names the driver has used, and leaves fresh ones", async () => {
    const dir = tmp.make();
    const cache = createMetaCache({ origins: ORIGINS, dir });
    await cache.setVersion(KEY, answer(1));
    const folder = scoped(dir, "version", "sha256", SHA.slice(0, 2));
    const current = join(folder, `${TEMP_PREFIX}123-0123456789ab`);
    const legacy = join(folder, `.tmp-${SHA}.json-123-0123abcd`);
    const fresh = join(folder, `${TEMP_PREFIX}456-0123456789ab`);
    const userFile = join(folder, ".tmp-notes");
    for (const f of [current, legacy, fresh, userFile]) writeFileSync(f, "{ torn");
    const hourAgo = new Date(Date.now() - 2 * 3_600_000);
    for (const f of [current, legacy, userFile]) utimesSync(f, hourAgo, hourAgo);
    expect(pruneMetaCache(dir)).toEqual({ checked: 4, removed: 2 });
    expect([current, legacy, fresh, userFile].map((f) => existsSync(f))).toEqual([false, false, true, true]);
    expect((await cache.getVersion(KEY))?.kind).toBe("found");
  });

  test("T2: a cache needs its origins", () => {
    expect(() => createMetaCache({ origins: [], dir: false })).toThrow(TypeError);
    expect(() => createMetaCache({ origins: ["file:///etc"], dir: false })).toThrow(TypeError);
  });
});
