/**
 * The metadata cache over a shared store (issue 14): the layering rules (local first, the shared
 * store for what the local cache cannot serve, copies kept locally, writes to both), the Redis
 * expiry of each entry, and the store itself on a real redis-server: bounded when the server is
 * silent, read-only when it is full, one warning whatever happens.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { modelKey, versionKeyBySha256 } from "../../../src/civitai/cache-keys.ts";
import type { ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import { leanModel, leanVersion } from "../../../src/civitai/lean.ts";
import { createMetaCache, sharedTtlMs, type VersionAnswer } from "../../../src/civitai/meta-cache.ts";
import { openSharedStore, SHARED_KEY_BASE, type SharedStore } from "../../../src/civitai/meta-cache-redis.ts";
import { parseMetaEntry } from "../../../src/civitai/meta-cache-entry.ts";
import { parseCacheUrl } from "../../../src/config/cache-url.ts";
import { redisAvailable, startRedis, type RedisServer } from "../../helpers/redis-server.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

/** A script for a child process that imports openSharedStore and parseCacheUrl, then runs `body`. */
async function storeScript(name: string, body: string): Promise<string> {
  const script = join(tmp.make(), `${name}.ts`);
  const module = join(import.meta.dir, "../../../src/civitai/meta-cache-redis.ts");
  const urlModule = join(import.meta.dir, "../../../src/config/cache-url.ts");
  await Bun.write(
    script,
    `import { openSharedStore } from ${JSON.stringify(module)};\nimport { parseCacheUrl } from ${JSON.stringify(urlModule)};\n${body}`,
  );
  return script;
}

const tmp = tmpDirs("civitai-meta-shared-");
const HAVE_REDIS = redisAvailable();
if (!HAVE_REDIS) console.log("skipping the Redis store tests: redis-server is not installed (apt-get install redis-server)");
const withRedis = HAVE_REDIS ? test : test.skip;

let redis: RedisServer;
beforeAll(async () => {
  if (HAVE_REDIS) redis = await startRedis();
});
afterAll(async () => {
  if (HAVE_REDIS) await redis.stop();
  tmp.cleanup();
});

const ORIGINS = ["https://civitai.com"];
const SCOPE = "https-civitai.com-443:none";
const DAY = 86_400_000;
const sha = (n: number) => n.toString(16).padStart(64, "a");

function apiVersion(id: number, hex: string): ApiModelVersion {
  return { id, modelId: id, name: `v${id}`, files: [{ id, hashes: { SHA256: hex.toUpperCase() } }] };
}
const answer = (id: number, hex: string): VersionAnswer => ({
  versions: [leanVersion(apiVersion(id, hex))],
  matchedBy: "sha256",
  host: ORIGINS[0],
});

/** An in-memory shared store that records what it was asked: the layering rules without a server. */
function memoryStore(): SharedStore & { map: Map<string, string>; ttls: Map<string, number>; asked: string[][] } {
  const map = new Map<string, string>();
  const ttls = new Map<string, number>();
  const asked: string[][] = [];
  return {
    map,
    ttls,
    asked,
    label: "redis://mem:6379/0",
    stats: { reads: 0, writes: 0 },
    async read(keys) {
      asked.push([...keys]);
      return keys.map((k) => map.get(k) ?? null);
    },
    async write(items) {
      for (const item of items) {
        map.set(item.key, item.value);
        ttls.set(item.key, item.ttlSeconds);
      }
    },
    count: async () => map.size,
    clear: async () => map.size,
    close: async () => {},
  };
}

describe("layering over the local cache", () => {
  test("local first; the shared store only for what the local cache cannot serve; hits copied locally", async () => {
    const store = memoryStore();
    const writer = createMetaCache({ dir: tmp.make(), origins: ORIGINS, shared: store });
    await writer.writeVersions([{ key: versionKeyBySha256(sha(1)), answer: answer(1, sha(1)) }]);
    await writer.writeModels([{ id: 1, model: leanModel({ id: 1, name: "M" }) }]);
    expect([...store.map.keys()].sort()).toEqual([`v3:${SCOPE}:${modelKey(1)}`, `v3:${SCOPE}:${versionKeyBySha256(sha(1))}`].sort());

    const dir = tmp.make();
    const reader = createMetaCache({ dir, origins: ORIGINS, shared: store });
    const got = await reader.readVersions([versionKeyBySha256(sha(1)), versionKeyBySha256(sha(2))]);
    expect(got[0]).toEqual({ kind: "found", ...answer(1, sha(1)) });
    expect(got[1]).toBeNull();
    expect(reader.stats).toMatchObject({ hits: 1, misses: 1, sharedHits: 1, sharedIgnored: 0 });
    // One read for the batch, both keys in it.
    expect(store.asked).toEqual([[`v3:${SCOPE}:${versionKeyBySha256(sha(1))}`, `v3:${SCOPE}:${versionKeyBySha256(sha(2))}`]]);
    expect(existsSync(join(dir, "v3", "https-civitai.com-443", "none", "version", "sha256", "aa", `${sha(1)}.json`))).toBe(true);

    // The next run serves it from the local copy: the shared store is not asked for it.
    store.asked.length = 0;
    const local = createMetaCache({ dir, origins: ORIGINS, shared: store });
    expect((await local.readVersions([versionKeyBySha256(sha(1))]))[0]?.kind).toBe("found");
    expect(store.asked).toEqual([]);
    expect(local.stats.sharedHits).toBe(0);
  });

  test("--refresh asks the shared store nothing and writes to both", async () => {
    const store = memoryStore();
    const cache = createMetaCache({ dir: tmp.make(), origins: ORIGINS, shared: store, refresh: true });
    expect(await cache.readVersions([versionKeyBySha256(sha(3))])).toEqual([null]);
    expect(store.asked).toEqual([]);
    await cache.writeVersions([{ key: versionKeyBySha256(sha(3)), notFound: {} }]);
    expect(store.map.size).toBe(1);
  });

  test("what the shared store holds is checked: another origin, scope or key, an oversized value are ignored and counted", async () => {
    const store = memoryStore();
    const writer = createMetaCache({ dir: false, origins: ORIGINS, shared: store });
    await writer.writeVersions([1, 2, 3, 4].map((n) => ({ key: versionKeyBySha256(sha(n)), answer: answer(n, sha(n)) })));
    const at = (n: number) => `v3:${SCOPE}:${versionKeyBySha256(sha(n))}`;
    const entry = (n: number) => JSON.parse(store.map.get(at(n))!);
    store.map.set(at(1), JSON.stringify({ ...entry(1), host: "https://civitai.evil" }));
    store.map.set(at(2), JSON.stringify({ ...entry(2), scope: "https-civitai.com-443:https-civitai.red-443" }));
    store.map.set(at(3), store.map.get(at(4))!);
    store.map.set(at(4), "x".repeat(2_000_001));
    const debug: string[] = [];
    const reader = createMetaCache({ dir: false, origins: ORIGINS, shared: store, onDebug: (m) => debug.push(m) });
    expect(await reader.readVersions([1, 2, 3, 4].map((n) => versionKeyBySha256(sha(n))))).toEqual([null, null, null, null]);
    expect(reader.stats).toMatchObject({ sharedHits: 0, sharedIgnored: 4 });
    await reader.close();
    expect(debug).toEqual([expect.stringContaining("redis://mem:6379/0: 4 value(s) ignored")]);
    // The same entries pass where they belong: the checks are about the key, not the store.
    expect(parseMetaEntry(entry(1), { key: versionKeyBySha256(sha(1)), scope: SCOPE })).not.toBeNull();
  });

  test("an expired shared entry is not served but tells the next answer its history", async () => {
    let now = Date.parse("2026-03-01T00:00:00Z");
    const store = memoryStore();
    const key = versionKeyBySha256(sha(5));
    const a = createMetaCache({ dir: false, origins: ORIGINS, shared: store, now: () => now });
    await a.writeVersions([{ key, notFound: {} }]);
    expect(store.ttls.get(`v3:${SCOPE}:${key}`)).toBe(6 * 86400); // 3 d, kept as long again
    now += 4 * DAY;
    const b = createMetaCache({ dir: false, origins: ORIGINS, shared: store, now: () => now });
    expect(await b.readVersions([key])).toEqual([null]);
    await b.writeVersions([{ key, notFound: {} }]);
    const second = JSON.parse(store.map.get(`v3:${SCOPE}:${key}`)!);
    expect(second.misses).toBe(2);
    expect(second.expiresAt - second.storedAt).toBe(7 * DAY);
  });

  test("sharedTtlMs: found answers until they expire, not-found ones as long again", () => {
    const base = { v: 3 as const, scope: SCOPE, key: versionKeyBySha256(sha(6)), storedAt: 1000, expiresAt: 1000 + DAY };
    expect(sharedTtlMs({ ...base, kind: "found", ...answer(6, sha(6)) }, 1000)).toBe(DAY);
    expect(sharedTtlMs({ ...base, kind: "not_found", misses: 1 }, 1000)).toBe(2 * DAY);
    expect(sharedTtlMs({ ...base, kind: "not_found", misses: 1 }, 1000 + 3 * DAY)).toBeLessThan(0);
  });
});

describe("the Redis store", () => {
  withRedis("reads and writes with an expiry per key, under civitai-meta:, and counts and clears only its own keys", async () => {
    const warnings: string[] = [];
    const store = openSharedStore({ url: parseCacheUrl(redis.url(3), "test"), onWarning: (m) => warnings.push(m) });
    await store.write([
      { key: "v3:s:a", value: '{"x":1}', ttlSeconds: 100 },
      { key: "v3:s:b", value: '{"y":2}', ttlSeconds: 0 },
    ]);
    expect(await store.read(["v3:s:a", "v3:s:b", "v3:s:c"])).toEqual(['{"x":1}', '{"y":2}', null]);
    expect(Number(redis.cli(["TTL", `${SHARED_KEY_BASE}:v3:s:a`], 3))).toBeGreaterThan(90);
    // A second at most, never "forever" (-1); on a loaded machine it may have run out already (-2).
    const pttl = Number(redis.cli(["PTTL", `${SHARED_KEY_BASE}:v3:s:b`], 3));
    expect(pttl === -2 || (pttl > 0 && pttl <= 1000)).toBe(true);
    redis.cli(["DEL", `${SHARED_KEY_BASE}:v3:s:b`], 3);
    redis.cli(["SET", "other", "1"], 3);
    redis.cli(["HSET", `${SHARED_KEY_BASE}:v3:s:h`, "f", "v"], 3); // not a string: read as nothing
    expect(await store.read(["v3:s:h"])).toEqual([null]);
    expect(await store.count("v3")).toBe(2);
    expect(await store.clear("")).toBe(2);
    expect(redis.cli(["EXISTS", "other"], 3)).toBe("1");
    expect(warnings).toEqual([]);
    await store.close();
  });

  withRedis("a server that never answers: the first call gives up within the timeouts, one warning, the rest answer at once", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const warnings: string[] = [];
      const store = openSharedStore({
        url: parseCacheUrl(`redis://:pw@127.0.0.1:${silent.port}/0`, "test"),
        onWarning: (m) => warnings.push(m),
        connectTimeoutMs: 300,
        commandTimeoutMs: 300,
      });
      const started = performance.now();
      const reads = await Promise.all([store.read(["a"]), store.read(["b"]), store.write([{ key: "c", value: "1", ttlSeconds: 5 }])]);
      expect(reads.slice(0, 2)).toEqual([null, null]);
      expect(performance.now() - started).toBeLessThan(2000);
      const again = performance.now();
      expect(await store.read(["d"])).toBeNull();
      expect(performance.now() - again).toBeLessThan(50);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /^shared metadata cache redis:\/\/\*\*\*@127\.0\.0\.1:\d+\/0 unavailable \(.+\); this run uses the local cache only$/,
      );
      expect(warnings[0]).not.toContain("pw@");
      await store.close();
    } finally {
      silent.stop(true);
    }
  });

  withRedis("a full server: writes stop with one warning, reads go on; nothing is half-written", async () => {
    const own = await startRedis({ args: ["--maxmemory-policy", "noeviction"] });
    try {
      own.cli(["SET", `${SHARED_KEY_BASE}:v3:s:kept`, "old"]);
      own.cli(["CONFIG", "SET", "maxmemory", "1"]);
      const warnings: string[] = [];
      const store = openSharedStore({ url: parseCacheUrl(own.url(), "test"), onWarning: (m) => warnings.push(m) });
      await store.write([{ key: "v3:s:new", value: "x".repeat(1000), ttlSeconds: 60 }]);
      await store.write([{ key: "v3:s:new2", value: "y", ttlSeconds: 60 }]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("refuses writes (OOM");
      expect(await store.read(["v3:s:kept", "v3:s:new"])).toEqual(["old", null]);
      expect(store.stats.writes).toBe(0);
      await store.close();
    } finally {
      await own.stop();
    }
  });

  withRedis("nothing connects until the first call, and an idle store does not keep a process alive", async () => {
    // A child that opens a store, reads once and never closes it: it must still exit on its own.
    const script = await storeScript(
      "idle",
      `const store = openSharedStore({ url: parseCacheUrl(${JSON.stringify(redis.url(4))}, "t"), onWarning: (m) => console.log(m) });
console.log(JSON.stringify(await store.read(["k"])));`,
    );
    const clients = () => Number(/connected_clients:(\d+)/.exec(redis.cli(["INFO", "clients"]))?.[1]);
    const before = clients();
    const proc = Bun.spawn([process.execPath, script], { stdout: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    const code = await proc.exited;
    clearTimeout(timer);
    expect(code).toBe(0);
    expect((await new Response(proc.stdout).text()).trim()).toBe("[null]");
    expect(clients()).toBe(before);
  });

  withRedis("a closed store lets the process exit at once: close() leaves no timer behind once QUIT is answered", async () => {
    // The wait for QUIT made 60 s here: a timer left running would keep the child past the 10 s kill.
    const script = await storeScript(
      "closed",
      `const store = openSharedStore({ url: parseCacheUrl(${JSON.stringify(redis.url(4))}, "t"), onWarning: (m) => console.log(m), quitWaitMs: 60_000 });
await store.write([{ key: "v3:s:k", value: "v", ttlSeconds: 60 }]);
console.log(JSON.stringify(await store.read(["v3:s:k"])));
await store.close();`,
    );
    const proc = Bun.spawn([process.execPath, script], { stdout: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    const code = await proc.exited;
    clearTimeout(timer);
    expect({ code, out: (await new Response(proc.stdout).text()).trim() }).toEqual({ code: 0, out: '["v"]' });
  });

  test("a store whose server refused or never answered lets the process exit at once after close()", async () => {
    // ioredis's disconnect() waits up to its disconnectTimeout (2 s by default) for a socket that had
    // already failed: every run whose shared cache was down ended 2 s late. An unref'd timer that
    // fires only if something else keeps the child alive tells.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const script = await storeScript(
        "failed",
        `for (const url of ["redis://:x@127.0.0.1:1/0", "redis://:x@127.0.0.1:${silent.port}/0"]) {
  const store = openSharedStore({ url: parseCacheUrl(url, "t"), onWarning: () => {}, commandTimeoutMs: 200, quitWaitMs: 100 });
  console.log(JSON.stringify(await store.read(["v3:s:k"])));
  await store.close();
}
setTimeout(() => { console.log("still alive"); process.exit(9); }, 1500).unref();`,
      );
      const proc = Bun.spawn([process.execPath, script], { stdout: "pipe" });
      const code = await proc.exited;
      expect({ code, out: (await new Response(proc.stdout).text()).trim() }).toEqual({ code: 0, out: "null\nnull" });
    } finally {
      silent.stop(true);
    }
  });
});
