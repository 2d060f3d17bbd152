import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { apiKeyProblem } from "../../../src/config/api-key.ts";
import { MAX_DURATION_MS, parseConfig, parseDuration } from "../../../src/config/config.ts";
import { loadConfig } from "../../../src/config/config-file.ts";
import { locateJsonError } from "../../../src/config/json-error.ts";
import { resolveCacheDir } from "../../../src/config/paths.ts";
import { plainHttpKeyOrigins, resolveApiSettings } from "../../../src/config/settings.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs("civitai-meta-config-");
afterAll(() => tmp.cleanup());

describe("T1: which config decides what", () => {
  test("T1: a folder config keeps what to scan, loses hosts and the cache folder, with one warning", () => {
    const cwd = tmp.make();
    writeFileSync(
      join(cwd, "civitai-meta.json"),
      JSON.stringify({
        api_url: "http://evil.example",
        fallbackUrl: "http://evil.example",
        modelDirectories: ["/m"],
        cache: { dir: "/x", url: "redis://:stolen@evil.example:6379/0", ttl: "2d" },
      }),
    );
    const loaded = loadConfig(undefined, cwd);
    expect(loaded.config.apiUrl).toBeUndefined();
    expect(loaded.config.fallbackUrl).toBeUndefined();
    expect(loaded.config.cache).toEqual({ ttlMs: 2 * 86_400_000 });
    expect(loaded.config.modelDirectories).toEqual(["/m"]);
    expect(loaded.warnings).toHaveLength(1);
    expect(loaded.warnings[0]).toContain('"api_url", "fallbackUrl", "cache.dir", "cache.url" ignored');
    // Nor may it name a Redis that would collect every hash scanned (issue 14).
    expect(loaded.config.cache?.url).toBeUndefined();
    // The hosts are the official ones: the key can only go there.
    const settings = resolveApiSettings({}, {}, loaded.config);
    expect([settings.primary, settings.fallback]).toEqual(["https://civitai.com", "https://civitai.red"]);
  });

  test("T1: a denied key with a bad value is ignored too, not an error", () => {
    const cwd = tmp.make();
    writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ apiUrl: 42 }));
    expect(loadConfig(undefined, cwd).warnings[0]).toContain('"apiUrl" ignored');
  });

  test("T1: the user's XDG config is trusted, and the folder config layers on top of it", () => {
    const cwd = tmp.make();
    const xdg = join(process.env.XDG_CONFIG_HOME!, "civitai-meta");
    mkdirSync(xdg, { recursive: true });
    const user = join(xdg, "config.json");
    writeFileSync(user, JSON.stringify({ apiUrl: "https://mirror.example", outputFormat: "csv", cache: { dir: "/c", ttl: "1d" } }));
    try {
      writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ outputFormat: "md", cache: { ttl: "3d" } }));
      const loaded = loadConfig(undefined, cwd);
      expect(loaded.files).toEqual([user, join(cwd, "civitai-meta.json")]);
      expect(loaded.config).toEqual({ apiUrl: "https://mirror.example", outputFormat: "md", cache: { dir: "/c", ttlMs: 3 * 86_400_000 } });
      expect(loaded.warnings).toEqual([]);
    } finally {
      rmSync(user);
    }
  });

  test("T1: --config is trusted whole", () => {
    const cwd = tmp.make();
    writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ apiUrl: "https://mirror.example", cache: { dir: "/c" } }));
    const loaded = loadConfig("civitai-meta.json", cwd);
    expect(loaded.config).toEqual({ apiUrl: "https://mirror.example", cache: { dir: "/c" } });
    expect(loaded.warnings).toEqual([]);
  });

  test("T1: cache folder precedence: --cache-dir, CIVITAI_META_CACHE_DIR, the config, XDG", () => {
    const env = { CIVITAI_META_CACHE_DIR: "/env", XDG_CACHE_HOME: "/xdg" };
    expect(resolveCacheDir("/flag", "/config", env)).toBe("/flag");
    expect(resolveCacheDir(undefined, "/config", env)).toBe("/env");
    expect(resolveCacheDir(undefined, "/config", { XDG_CACHE_HOME: "/xdg" })).toBe("/config");
    expect(resolveCacheDir(undefined, undefined, { XDG_CACHE_HOME: "/xdg" })).toBe("/xdg/civitai-meta");
  });
});

describe("T7: durations", () => {
  test("T7: readable, finite, never negative", () => {
    expect(parseDuration("30d")).toBe(30 * 86_400_000);
    expect(parseDuration(7)).toBe(7000);
    expect(parseDuration("9".repeat(400))).toBeNull();
    expect(parseDuration(-1)).toBeNull();
    expect(parseDuration("1e9")).toBeNull();
  });

  test("T7: a config duration over a year is refused, naming the key", () => {
    expect(() => parseConfig({ cache: { ttl: "400d" } }, "c.json")).toThrow('"cache.ttl" must be at most 365d');
    expect(parseConfig({ cache: { ttl: "365d" } }, "c.json").config.cache?.ttlMs).toBe(MAX_DURATION_MS);
  });
});

describe("T21: config messages", () => {
  test.each([
    ['{\n  "a": 1,,\n}', 2, 10, 'unexpected ","'],
    ['{"a": tru}', 1, 7, 'unexpected "t"'],
    ['{"a": 1', 1, 8, "unexpected end of file"],
    ['{"a": "b\nc"}', 1, 9, 'unexpected "\\n"'],
    ["[1, 2] x", 1, 8, 'unexpected "x"'],
    ['{"a": 01}', 1, 8, 'unexpected "1"'],
    ['{"a" 1}', 1, 6, 'unexpected "1"'],
    ["{'a': 1}", 1, 2, 'unexpected "\'"'],
    ['["\\x"]', 1, 4, 'unexpected "x"'],
  ])("T21: JSON error position in %j", (text, line, column, what) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(locateJsonError(text)).toEqual({ line, column, what });
  });

  test("T21: valid JSON has no error position, however deep", () => {
    for (const text of [
      '{"a": [1, -2.5e3, true, false, null, "\\u00e9\\n"], "b": {}}',
      " [] ",
      "[".repeat(200_000) + "]".repeat(200_000),
    ]) {
      expect(locateJsonError(text)).toBeNull();
    }
  });

  test("T21: a key HTTP cannot carry is named by problem and position, never quoted", () => {
    expect(apiKeyProblem("abc12345")).toBeNull();
    expect(apiKeyProblem("abc\n123")).toBe("contains a line break (character 4 of 7), so it cannot be sent in an HTTP header");
    expect(apiKeyProblem("abc€123")).toBe("contains a character that cannot be sent in an HTTP header (character 4 of 7)");
    expect(apiKeyProblem("a\u0007b")).toBe("contains a control character (character 2 of 3), so it cannot be sent in an HTTP header");
    expect(() => resolveApiSettings({}, { CIVITAI_TOKEN: "SECRET\r\nX" }, {})).toThrow(
      /^The API key from CIVITAI_TOKEN contains a line break/,
    );
    expect(() => parseConfig({ apiKey: "SECRET\u2028X" }, "c.json")).toThrow('"apiKey" in c.json contains a character');
    try {
      resolveApiSettings({ apiKey: "SECRET\nX" }, {}, {});
    } catch (err) {
      expect((err as Error).message).toContain("--api-key");
      expect((err as Error).message).not.toContain("SECRET");
    }
  });
});

describe("T1: the key over plain HTTP", () => {
  const origins = (env: Record<string, string>, apiKey: string | null = "key-0123456789") =>
    plainHttpKeyOrigins(resolveApiSettings({ apiKey: apiKey ?? undefined }, env, {}));
  test("T1: an http:// host across the network is named (without its user part); loopback, https and no key are not", () => {
    expect(origins({ CIVITAI_API_URL: "http://u:pw@mirror.lan:8080/base/" })).toEqual(["http://mirror.lan:8080"]);
    expect(origins({ CIVITAI_API_URL: "http://192.0.2.7" })).toEqual(["http://192.0.2.7"]);
    expect(origins({ CIVITAI_API_URL: "http://[fd00::7]:81" })).toEqual(["http://[fd00::7]:81"]);
    for (const local of ["http://127.0.0.1:9", "http://127.8.9.10", "http://localhost:3000", "http://api.localhost", "http://[::1]:9"])
      expect(origins({ CIVITAI_API_URL: local })).toEqual([]);
    expect(origins({ CIVITAI_API_URL: "https://mirror.lan" })).toEqual([]);
    expect(origins({ CIVITAI_API_URL: "http://mirror.lan" }, null)).toEqual([]);
    expect(origins({})).toEqual([]);
  });
});
