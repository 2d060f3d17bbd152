import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { modelKey, versionKeyByAutov3, versionKeyBySha256 } from "../../../src/civitai/cache-keys.ts";
import type { ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import { createMetaCache, DEFAULT_TTL_FOUND_MS, DEFAULT_TTL_NOT_FOUND_MS } from "../../../src/civitai/meta-cache.ts";
import { pruneMetaCache } from "../../../src/civitai/meta-cache-prune.ts";
import { TEMP_PREFIX } from "../../../src/shared/temp-name.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs("civitai-meta-metacache-");
afterAll(() => tmp.cleanup());

const SHA = "ab".repeat(32);
const KEY = versionKeyBySha256(SHA);
const MODULE = resolve(import.meta.dir, "../../../src/civitai/meta-cache.ts");
const ORIGINS = ["https://civitai.com", "https://civitai.red"];
/** Where this scope's entries live under a cache dir (format 2, keyed by both API origins). */
const scoped = (dir: string, ...parts: string[]) => join(dir, "v2", "https-civitai.com-443", "https-civitai.red-443", ...parts);

function version(id: number, over: Partial<ApiModelVersion> = {}): ApiModelVersion {
  return { id, modelId: 1, name: `v${id}`, files: [{ id: 1, hashes: { SHA256: SHA.toUpperCase() } }], ...over };
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
  test("found versions, with host and match kind, on disk under the dir", async () => {
    const dir = tmp.make();
    const cache = createMetaCache({ origins: ORIGINS, dir });
    await cache.setVersion(KEY, [version(2), version(1)], { host: "https://civitai.com", matchedBy: "sha256" });
    expect(existsSync(scoped(dir, "version", "sha256", `${SHA}.json`))).toBe(true);
    const again = createMetaCache({ origins: ORIGINS, dir });
    const got = await again.getVersion(KEY);
    expect(got).toEqual({ kind: "found", versions: [version(2), version(1)], host: "https://civitai.com", matchedBy: "sha256" });
    expect(again.stats).toMatchObject({ hits: 1, misses: 0 });
    expect(cache.stats.writes).toBe(1);
  });

  test("found expires after 7 days, not-found after 1 day", async () => {
    const c = clock();
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make(), now: c.now });
    const notFoundKey = versionKeyByAutov3("0123456789ab");
    await cache.setVersion(KEY, version(1));
    await cache.setVersion(notFoundKey, null);
    c.advance(DEFAULT_TTL_NOT_FOUND_MS - 1);
    expect(await cache.getVersion(notFoundKey)).toEqual({ kind: "not_found" });
    c.advance(1);
    expect(await cache.getVersion(notFoundKey)).toBeNull();
    expect((await cache.getVersion(KEY))?.kind).toBe("found");
    c.advance(DEFAULT_TTL_FOUND_MS - DEFAULT_TTL_NOT_FOUND_MS);
    expect(await cache.getVersion(KEY)).toBeNull();
    expect(cache.stats).toMatchObject({ hits: 2, misses: 2, writes: 2 });
  });

  test("custom TTLs; models and not-found models", async () => {
    const c = clock();
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make(), now: c.now, ttlFoundMs: 100, ttlNotFoundMs: 10 });
    await cache.setModel(1102, { id: 1102, name: "SynthwavePunk" });
    await cache.setModel(7, null);
    expect(await cache.getModel(1102)).toEqual({ kind: "found", model: { id: 1102, name: "SynthwavePunk" } });
    expect(await cache.getModel(7)).toEqual({ kind: "not_found" });
    c.advance(10);
    expect(await cache.getModel(7)).toBeNull();
    expect(await cache.getModel(1102)).not.toBeNull();
    c.advance(90);
    expect(await cache.getModel(1102)).toBeNull();
    await expect(cache.setModel(5, { id: 6 })).rejects.toThrow(TypeError);
  });

  test("values that destr would coerce come back unchanged (docs/cases.md C2)", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    await cache.setVersion(KEY, version(1, { name: "1234567890", description: "12345e7890", baseModel: "true" }));
    const got = await cache.getVersion(KEY);
    expect(got?.kind === "found" && got.versions[0]).toMatchObject({ name: "1234567890", description: "12345e7890", baseModel: "true" });
  });

  test("memory mode (dir: false) writes nothing to disk", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: false });
    await cache.setVersion(KEY, version(1));
    expect((await cache.getVersion(KEY))?.kind).toBe("found");
    expect(await cache.storage.getKeys()).toEqual([KEY]);
  });

  test("refresh mode ignores reads but still writes", async () => {
    const dir = tmp.make();
    await createMetaCache({ origins: ORIGINS, dir }).setVersion(KEY, version(1));
    const refreshing = createMetaCache({ origins: ORIGINS, dir, refresh: true });
    expect(await refreshing.getVersion(KEY)).toBeNull();
    expect(await refreshing.getModel(1)).toBeNull();
    await refreshing.setVersion(KEY, version(2));
    const got = await createMetaCache({ origins: ORIGINS, dir }).getVersion(KEY);
    expect(got?.kind === "found" && got.versions[0]?.id).toBe(2);
  });

  test("a failed write is reported, not thrown", async () => {
    const dir = tmp.make();
    const notADir = join(dir, "file");
    writeFileSync(notADir, "x");
    const errors: unknown[] = [];
    const cache = createMetaCache({ origins: ORIGINS, dir: notADir, onWriteError: (err) => errors.push(err) });
    await cache.setVersion(KEY, version(1));
    expect(cache.stats).toMatchObject({ writes: 0, writeErrors: 1 });
    expect(errors).toHaveLength(1);
    expect(await cache.getVersion(KEY)).toBeNull();
  });
});

describe("corrupt entries are misses (docs/cases.md C1)", () => {
  const good = {
    v: 2,
    storedAt: 0,
    expiresAt: 9e15,
    kind: "found",
    scope: "https-civitai.com-443:https-civitai.red-443",
    data: [{ id: 1 }],
  };
  const cases: [string, string][] = [
    ["empty file", ""],
    ["truncated JSON", '{"v":1,"storedAt":0,"expiresAt'],
    ["numeric-looking", "1234567890"],
    ["a JSON string", '"found"'],
    ["null", "null"],
    ["an array", "[1,2]"],
    ["binary garbage", "\u0000\u0001\uFFFD{"],
    ["wrong version", JSON.stringify({ ...good, v: 1 })],
    ["no scope", JSON.stringify({ ...good, scope: undefined })],
    ["another scope's entry", JSON.stringify({ ...good, scope: "http-127.0.0.1-8080:none" })],
    ["unknown kind", JSON.stringify({ ...good, kind: "maybe" })],
    ["found without data", JSON.stringify({ ...good, data: null })],
    ["found with one object (not a list)", JSON.stringify({ ...good, data: { id: 1 } })],
    ["found with an empty list", JSON.stringify({ ...good, data: [] })],
    ["version with a string id", JSON.stringify({ ...good, data: [{ id: "1" }] })],
    ["not_found carrying data", JSON.stringify({ ...good, kind: "not_found", data: [{ id: 1 }] })],
    ["expiresAt a string", JSON.stringify({ ...good, expiresAt: "9e15" })],
    ["hostile host", JSON.stringify({ ...good, host: "javascript:alert(1)" })],
    ["bad matchedBy", JSON.stringify({ ...good, matchedBy: "name" })],
  ];
  for (const [name, content] of cases) {
    test(name, async () => {
      const dir = tmp.make();
      const file = scoped(dir, "version", "sha256", `${SHA}.json`);
      mkdirSync(scoped(dir, "version", "sha256"), { recursive: true });
      writeFileSync(file, content);
      const cache = createMetaCache({ origins: ORIGINS, dir });
      expect(await cache.getVersion(KEY)).toBeNull();
      expect(cache.stats).toMatchObject({ hits: 0, misses: 1 });
      // …and the next answer replaces it.
      await cache.setVersion(KEY, version(3));
      const got = await cache.getVersion(KEY);
      expect(got?.kind === "found" && got.versions[0]?.id).toBe(3);
    });
  }

  test("the reference entry itself is a hit (the cases above fail for their one defect)", async () => {
    const dir = tmp.make();
    mkdirSync(scoped(dir, "version", "sha256"), { recursive: true });
    writeFileSync(scoped(dir, "version", "sha256", `${SHA}.json`), JSON.stringify(good));
    expect((await createMetaCache({ origins: ORIGINS, dir }).getVersion(KEY))?.kind).toBe("found");
  });

  test("a model entry holding another model's id is a miss", async () => {
    const dir = tmp.make();
    mkdirSync(scoped(dir, "model"), { recursive: true });
    writeFileSync(scoped(dir, "model", "5.json"), JSON.stringify({ ...good, data: { id: 6 } }));
    expect(await createMetaCache({ origins: ORIGINS, dir }).getModel(5)).toBeNull();
  });
});

describe("hostile keys never leave the dir (docs/cases.md C10)", () => {
  test("the cache API accepts only well-formed keys", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    for (const key of [
      "../x",
      `version:sha256:../../${SHA.slice(6)}`,
      `version:sha256:${SHA.toUpperCase()}`,
      `version:sha256:${SHA}?x`,
      "version/sha256/x",
      "a:b",
      "",
    ]) {
      await expect(cache.getVersion(key)).rejects.toThrow(TypeError);
      await expect(cache.setVersion(key, version(1))).rejects.toThrow(TypeError);
    }
    await expect(cache.getModel(-1)).rejects.toThrow(TypeError);
    await expect(cache.setModel(1.5, null)).rejects.toThrow(TypeError);
  });

  test("the driver refuses traversal; other odd keys stay inside", async () => {
    const parent = tmp.make();
    const dir = join(parent, "cache");
    const { storage } = createMetaCache({ origins: ORIGINS, dir });
    for (const key of ["../../evil", "..:..:evil", "a/../../evil", "x:..", ".hidden", "a\u0000b", "a b"]) {
      await expect(storage.setItemRaw(key, "x")).rejects.toThrow();
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
    expect(readdirSync(dir)).toEqual(["v2"]);
  });
});

describe("atomic writes across processes (docs/cases.md C3, C4)", () => {
  // A writer in another process alternates a ~2 MB and a small value on one key: in-place writes
  // (unstorage 1.17's fs drivers) showed torn reads in most iterations of exactly this loop.
  const writerScript = (dir: string) => {
    const path = join(dir, "writer.ts");
    writeFileSync(
      path,
      `import { createMetaCache } from ${JSON.stringify(MODULE)};
const [dir, rounds, keys] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const cache = createMetaCache({ origins: ${JSON.stringify(ORIGINS)}, dir });
const big = "x".repeat(2_000_000);
const sha = (k) => (k + 1).toString(16).padStart(64, "0");
for (let i = 0; rounds === 0 || i < rounds; i++) {
  const k = i % keys;
  const v = { id: i + 1, name: "v" + i, description: i % 2 ? big : "small", files: [{ id: 1, hashes: { SHA256: sha(k) } }] };
  await cache.setVersion("version:sha256:" + sha(k), v);
  if (i === 3) console.log("ready");
}
`,
    );
    return path;
  };

  test("a reader in another process never sees a torn or invalid value", async () => {
    const dir = tmp.make();
    const cacheDir = join(dir, "cache");
    const key1 = "1".padStart(64, "0");
    const file = scoped(cacheDir, "version", "sha256", `${key1}.json`);
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
          if (entry.kind === "found" && Array.isArray(entry.data)) parsed++;
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

  test("SIGKILL mid-loop: every entry file still parses", async () => {
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
      expect(entry).toMatchObject({ v: 2, kind: "found" });
      const sha = f.slice(f.lastIndexOf("/") + 1, -".json".length);
      expect((await cache.getVersion(versionKeyBySha256(sha)))?.kind).toBe("found");
    }
    // Leftover temp files from the killed writer are never listed as entries.
    expect((await cache.storage.getKeys()).every((k) => /^version:sha256:[0-9a-f]{64}$/.test(k))).toBe(true);
  });

  test("many concurrent writes in one process end with one valid entry", async () => {
    const cache = createMetaCache({ origins: ORIGINS, dir: tmp.make() });
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => cache.setVersion(KEY, version(i + 1, { description: "y".repeat(1000 * (i % 7)) }))),
    );
    const got = await cache.getVersion(KEY);
    expect(got?.kind).toBe("found");
    expect(cache.stats.writes).toBe(30);
  });
});

test("model keys map to their own file", async () => {
  const dir = tmp.make();
  const cache = createMetaCache({ origins: ORIGINS, dir });
  await cache.setModel(42, { id: 42 });
  expect(modelKey(42)).toBe("model:42");
  expect(existsSync(scoped(dir, "model", "42.json"))).toBe(true);
});

describe("T2: one cache per pair of API origins", () => {
  test("T2: answers stored for one origin are misses for every other origin, and for another fallback", async () => {
    const dir = tmp.make();
    await createMetaCache({ origins: ["http://127.0.0.1:4000"], dir }).setVersion(KEY, version(666));
    for (const origins of [ORIGINS, ["https://civitai.com"], ["http://127.0.0.1:4001"], ["http://127.0.0.1:4000", "https://civitai.red"]]) {
      expect(await createMetaCache({ origins, dir }).getVersion(KEY)).toBeNull();
    }
    const same = await createMetaCache({ origins: ["http://127.0.0.1:4000/"], dir }).getVersion(KEY);
    expect(same?.kind === "found" && same.versions[0]?.id).toBe(666);
    expect(existsSync(join(dir, "v2", "http-127.0.0.1-4000", "none", "version", "sha256", `${SHA}.json`))).toBe(true);
  });

  test("T2: an entry of the previous format, at its old place, is never read", async () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "version", "sha256"), { recursive: true });
    const old = { v: 1, storedAt: 0, expiresAt: 9e15, kind: "found", data: [version(1)], host: "https://civitai.com" };
    writeFileSync(join(dir, "version", "sha256", `${SHA}.json`), JSON.stringify(old));
    const cache = createMetaCache({ origins: ORIGINS, dir });
    expect(await cache.getVersion(KEY)).toBeNull();
    // …and pruning removes it as an entry nothing can use.
    expect(pruneMetaCache(dir)).toEqual({ checked: 1, removed: 1 });
  });

  test("T11: pruning removes a killed writer's old temp files under both names the driver has used, and leaves fresh ones", async () => {
    const dir = tmp.make();
    const cache = createMetaCache({ origins: ORIGINS, dir });
    await cache.setVersion(KEY, version(1));
    const folder = scoped(dir, "version", "sha256");
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
