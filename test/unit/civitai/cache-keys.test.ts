import { describe, expect, test } from "bun:test";
import { normalizeKey } from "unstorage";
import {
  cacheScope,
  isCivitaiId,
  originSegment,
  modelKey,
  normalizeAutov3,
  normalizeSha256,
  parseKey,
  versionKeyByAutov3,
  versionKeyBySha256,
} from "../../../src/civitai/cache-keys.ts";

const SHA = "0df040c8cd48125174b54c251a87822e8ed61d529a92c42c1fa1bef483b10b0d";

describe("versionKeyBySha256", () => {
  test("lower-case hex → key, sharded by its first two digits", () => expect(versionKeyBySha256(SHA)).toBe(`version:sha256:0d:${SHA}`));
  test("upper and lower case give the SAME key (case-insensitive filesystems)", () => {
    expect(versionKeyBySha256(SHA.toUpperCase())).toBe(versionKeyBySha256(SHA));
  });
  test("the key survives unstorage's normalisation unchanged", () => {
    const key = versionKeyBySha256(SHA);
    expect(normalizeKey(key)).toBe(key);
  });

  const hostile: [string, string][] = [
    ["traversal", "../x"],
    ["traversal padded to 64", `../${SHA.slice(3)}`],
    ["slash (a/b ≡ a:b in unstorage)", `${SHA.slice(0, 32)}/${SHA.slice(33)}`],
    ["colon", `${SHA.slice(0, 32)}:${SHA.slice(33)}`],
    ["query (dropped by unstorage)", `${SHA.slice(0, 63)}?`],
    ["query suffix", `${SHA}?x=1`],
    ["empty", ""],
    ["63 chars", SHA.slice(0, 63)],
    ["65 chars", `${SHA}0`],
    ["non-hex letter", `${SHA.slice(0, 63)}g`],
    ["surrounding space", ` ${SHA}`],
    ["newline", `${SHA}\n`],
    ["backslash", `${SHA.slice(0, 63)}\\`],
  ];
  for (const [name, input] of hostile) {
    test(`throws on ${name}`, () => expect(() => versionKeyBySha256(input)).toThrow(TypeError));
  }
  test("throws on non-strings", () => {
    expect(() => versionKeyBySha256(undefined as unknown as string)).toThrow(TypeError);
    expect(() => versionKeyBySha256(42 as unknown as string)).toThrow(TypeError);
  });
});

describe("versionKeyByAutov3", () => {
  test("12 hex, case folded", () => {
    expect(versionKeyByAutov3("C26973DE6B79")).toBe("version:autov3:c2:c26973de6b79");
    expect(versionKeyByAutov3("c26973de6b79")).toBe("version:autov3:c2:c26973de6b79");
  });
  test("AutoV3 and SHA-256 keys never collide", () => {
    expect(versionKeyByAutov3(SHA.slice(0, 12))).not.toBe(versionKeyBySha256(SHA));
  });
  for (const bad of ["", "c26973de6b7", "c26973de6b790", "../../etc/pa", "a/b:c?d=e.fg", SHA, "C26973DE6B7Z"]) {
    test(`throws on ${JSON.stringify(bad)}`, () => expect(() => versionKeyByAutov3(bad)).toThrow(TypeError));
  }
});

describe("modelKey", () => {
  test("positive integer, sharded by its low byte", () => {
    expect(modelKey(1102)).toBe("model:4e:1102");
    expect(modelKey(256)).toBe("model:00:256");
  });
  test("parseKey reads back exactly the keys these build, nothing else", () => {
    expect(parseKey(versionKeyBySha256(SHA))).toEqual({ kind: "sha256", hex: SHA });
    expect(parseKey(versionKeyByAutov3("C26973DE6B79"))).toEqual({ kind: "autov3", hex: "c26973de6b79" });
    expect(parseKey(modelKey(1102))).toEqual({ kind: "model", id: 1102 });
    for (const bad of [
      `version:sha256:${SHA}`,
      `version:sha256:ff:${SHA}`,
      `version:sha256:0d:${SHA.toUpperCase()}`,
      "model:4f:1102",
      "model:00:0",
      "model:ff:2147483648",
      "model:4e:01102",
      5,
      null,
    ]) {
      expect(parseKey(bad)).toBeNull();
    }
  });
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, "12", "../1", null]) {
    test(`throws on ${String(bad)}`, () => expect(() => modelKey(bad as number)).toThrow(TypeError));
  }
});

describe("validators", () => {
  test("normalizeSha256 / normalizeAutov3 return null on bad input", () => {
    expect(normalizeSha256(SHA.toUpperCase())).toBe(SHA);
    expect(normalizeSha256("abc")).toBeNull();
    expect(normalizeSha256({})).toBeNull();
    expect(normalizeAutov3("ABCDEF012345")).toBe("abcdef012345");
    expect(normalizeAutov3("abcdef01234")).toBeNull();
  });
  test("isCivitaiId", () => {
    expect(isCivitaiId(1)).toBe(true);
    expect(isCivitaiId(2_147_483_647)).toBe(true);
    expect(isCivitaiId(0)).toBe(false);
    expect(isCivitaiId("1")).toBe(false);
  });
});

describe("T2: cache scopes", () => {
  test("T2: one readable segment per origin, default ports made explicit", () => {
    expect(originSegment("https://civitai.com")).toBe("https-civitai.com-443");
    expect(originSegment("https://CIVITAI.com:443/")).toBe("https-civitai.com-443");
    expect(originSegment("http://127.0.0.1:8080")).toBe("http-127.0.0.1-8080");
    expect(cacheScope(["https://civitai.com", "https://civitai.red"])).toBe("https-civitai.com-443:https-civitai.red-443");
    expect(cacheScope(["http://127.0.0.1:8080"])).toBe("http-127.0.0.1-8080:none");
  });

  test("T2: different bases never share a segment, and every segment is a safe key segment", () => {
    const bases = [
      "http://a-1",
      "http://a:1",
      "http://a_1",
      "http://a-1:80",
      "https://a-1",
      "http://[::1]:8080",
      "http://xn--bcher-kva.example",
      "https://civitai.com/mirror",
      "https://civitai.com/mirror/",
      "https://civitai.com/other",
      `https://${"a".repeat(200)}.example`,
    ];
    const segments = bases.map(originSegment);
    // http://a-1 and http://a-1:80 are one origin; every other pair differs.
    expect(new Set(segments).size).toBe(bases.length - 2);
    expect(segments[0]).toBe(segments[3]!);
    expect(segments[7]).toBe(segments[8]!);
    for (const s of segments) {
      expect(s).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/);
      expect(normalizeKey(s)).toBe(s);
    }
  });
});
