import { describe, expect, test } from "bun:test";
import { CacheUrlError, cacheUrlSecrets, parseCacheUrl, redactCacheUrlText, resolveCacheUrl } from "../../../src/config/cache-url.ts";
import { parseConfig } from "../../../src/config/config.ts";

describe("shared cache URL (issue 14)", () => {
  test("redis:// and rediss:// with or without credentials, port and database", () => {
    expect(parseCacheUrl("redis://:s3cret@cache.lan:6380/2", "--cache-url")).toEqual({
      tls: false,
      host: "cache.lan",
      port: 6380,
      db: 2,
      password: "s3cret",
      redacted: "redis://***@cache.lan:6380/2",
      secrets: ["s3cret"],
    });
    expect(parseCacheUrl("rediss://team:p%40ss@cache.lan", "x")).toMatchObject({
      tls: true,
      port: 6379,
      db: 0,
      username: "team",
      password: "p@ss",
      redacted: "rediss://***@cache.lan:6379/0",
      secrets: ["p@ss", "p%40ss"],
    });
    expect(parseCacheUrl("redis://[::1]:7000/", "x")).toMatchObject({
      host: "::1",
      port: 7000,
      db: 0,
      redacted: "redis://[::1]:7000/0",
      secrets: [],
    });
    expect(parseCacheUrl(" REDIS://Cache.Lan/15 ", "x")).toMatchObject({ db: 15, tls: false });
  });

  test("anything else is one error naming the source and the format, never the password", () => {
    const cases: [string, string][] = [
      ["http://u:hunter2@cache.lan/0", "only redis:// and rediss://"],
      ["redis://:hunter2@cache.lan/x", "database number"],
      ["redis://:hunter2@cache.lan:6379/0?tls=1", "options after ? or #"],
      ["redis://hunter2@cache.lan/0", "a user name alone is not taken"],
      ["redis:///var/run/redis.sock", "a host is needed"],
      ["redis://:hunter2@cache.lan:99999/0", "not a URL"],
      ["redis://:%zz-hunter2@cache.lan/0", "%-escape"],
      ["cache.lan:6379", "only redis://"],
    ];
    for (const [value, why] of cases) {
      let error: unknown;
      try {
        parseCacheUrl(value, "--cache-url");
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CacheUrlError);
      const message = (error as Error).message;
      expect(message).toStartWith("--cache-url must be redis://host[:port][/db]");
      expect(message).toContain(why);
      expect(message).not.toContain("hunter2");
    }
  });

  test("flag, then CIVITAI_META_CACHE_URL, then the config; none turns it off", () => {
    const env = { CIVITAI_META_CACHE_URL: "redis://env.lan" };
    expect(resolveCacheUrl("redis://flag.lan", env, "redis://config.lan")?.host).toBe("flag.lan");
    expect(resolveCacheUrl(undefined, env, "redis://config.lan")?.host).toBe("env.lan");
    expect(resolveCacheUrl(undefined, {}, "redis://config.lan")?.host).toBe("config.lan");
    expect(resolveCacheUrl(undefined, { CIVITAI_META_CACHE_URL: " " }, "redis://config.lan")?.host).toBe("config.lan");
    expect(resolveCacheUrl("none", env, "redis://config.lan")).toBeNull();
    expect(resolveCacheUrl(undefined, { CIVITAI_META_CACHE_URL: "none" }, "redis://config.lan")).toBeNull();
    expect(resolveCacheUrl(undefined, {}, undefined)).toBeNull();
    expect(() => resolveCacheUrl(undefined, { CIVITAI_META_CACHE_URL: "nope" }, undefined)).toThrow("CIVITAI_META_CACHE_URL must be");
  });

  test("the secrets of a URL for the redactor, even of one that does not parse", () => {
    expect(cacheUrlSecrets("redis://:a%2Fb@h/0")).toEqual(["a/b", "a%2Fb"]);
    expect(cacheUrlSecrets("redis://:pw@h/notadb")).toEqual(["pw"]);
    expect(cacheUrlSecrets("redis://h/0")).toEqual([]);
    expect(cacheUrlSecrets(undefined)).toEqual([]);
    expect(redactCacheUrlText("redis://u:p@ss@h:1/0")).toBe("redis://***@h:1/0");
  });

  test("config cache.url is checked where the file is read, and the error names the key, not the password", () => {
    expect(parseConfig({ cache: { url: "redis://:pw@cache.lan/1" } }, "c.json").config.cache).toEqual({ url: "redis://:pw@cache.lan/1" });
    expect(parseConfig({ cache: { url: "none" } }, "c.json").config.cache).toEqual({ url: "none" });
    expect(() => parseConfig({ cache: { url: "http://:hunter2@x/0" } }, "c.json")).toThrow(
      /^Config c\.json: "cache\.url" must be redis:\/\/.*http:\/\/\*\*\*@x\/0/,
    );
    expect(() => parseConfig({ cache: { url: 6379 } }, "c.json")).toThrow('"cache.url" must be a URL');
  });
});
