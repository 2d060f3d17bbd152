import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { versionKeyByAutov3, versionKeyBySha256 } from "../../../src/civitai/cache-keys.ts";
import type { ApiModel, ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import { leanModel, leanReplacer, leanVersion, parseLeanModel, parseLeanVersion } from "../../../src/civitai/lean.ts";
import { parseMetaEntry } from "../../../src/civitai/meta-cache-entry.ts";
import { versionObject } from "../../../src/civitai/version-object.ts";

const fixture = <T>(name: string): T => JSON.parse(readFileSync(join(import.meta.dir, "../../fixtures/civitai", name), "utf8")) as T;
const m2025 = fixture<ApiModel>("model-detail-lora-2025-example.json");
const v1318 = fixture<ApiModelVersion>("model-version-1318-wiki-2023-example.json");
/** Stored and read back, as the cache does. */
const stored = <T>(value: unknown, parse: (v: unknown) => T) => parse(JSON.parse(JSON.stringify(value, leanReplacer)));

describe("lean versions", () => {
  test("keep what records and the next reports need, descriptions as text, and round-trip through storage", () => {
    const v = leanVersion({ ...m2025.modelVersions![0]!, modelId: m2025.id });
    expect(v).toMatchObject({ id: 1967584, modelId: 1580878, name: "v1.5", baseModel: "Illustrious", baseModelType: "Standard" });
    expect(v.description).toBe("Better rendering"); // HTML turned into text once, here
    expect(v.files[0]).toEqual({
      id: 1865079,
      name: "Semi_realistic.safetensors",
      sizeKB: 223107.16015625,
      type: "Model",
      primary: true,
      format: "SafeTensor",
      fp: null,
      size: null,
      hashes: {
        AutoV1: "c8ec7566",
        AutoV2: "7c0b4b21da",
        SHA256: "7c0b4b21dad60ce4e5a3f78d33261f4e556f94042e7fd19fbc8c734a80ec5a81",
        CRC32: "34bed093",
        BLAKE3: "9cf9f55aa6591f0993a471a0e4e2932e34f797ae213bf2847059a544f146e843",
        AutoV3: "6f5f908a07f3",
      },
    });
    // Preview candidates only: the first still image of each rating (four images, two ratings).
    expect(v.images.map((i) => i.nsfwLevel)).toEqual([1, 4]);
    expect(JSON.stringify(v)).not.toContain("remixOfId");
    expect(stored(v, parseLeanVersion)).toEqual(v);
    expect(stored(leanVersion(v1318), parseLeanVersion)).toEqual(leanVersion(v1318));
  });

  test("availability facts are kept: mode, early access (both names), paid access, usage control", () => {
    const v = leanVersion({
      id: 1,
      availability: "EarlyAccess",
      earlyAccessDeadline: "2026-12-01T00:00:00Z",
      earlyAccessEndsAt: "2026-11-01T00:00:00Z",
      paidAccess: { permanent: true, endsAt: null },
      usageControl: "Generation",
      model: { name: "M", type: "LORA", nsfw: false, poi: false, mode: "TakenDown" },
    });
    expect(v).toMatchObject({
      availability: "EarlyAccess",
      earlyAccessDeadline: "2026-12-01T00:00:00Z",
      earlyAccessEndsAt: "2026-11-01T00:00:00Z",
      paidAccess: { permanent: true, endsAt: null },
      usageControl: "Generation",
      model: { mode: "TakenDown" },
    });
    expect(stored(v, parseLeanVersion)).toEqual(v);
  });

  test("a stored version with any field of the wrong type is rejected whole", () => {
    const good = JSON.parse(JSON.stringify(leanVersion(v1318)));
    expect(parseLeanVersion(good)).not.toBeNull();
    const bad: [string, unknown][] = [
      ["id", "1318"],
      ["modelId", -1],
      ["name", 5],
      ["trainedWords", "ttdddd"],
      ["nsfwLevel", "1"],
      ["air", "javascript:x"],
      ["paidAccess", true],
      ["model", null],
      ["files", {}],
      ["images", [{ url: "file:///etc/passwd", nsfwLevel: 1 }]],
    ];
    for (const [key, value] of bad) expect({ key, parsed: parseLeanVersion({ ...good, [key]: value }) }).toEqual({ key, parsed: null });
    const file = good.files[0];
    for (const f of [
      { ...file, primary: "yes" },
      { ...file, hashes: { SHA256: "XYZ" } },
      { ...file, hashes: { __proto__x: "ab" } },
      { ...file, id: 1.5 },
    ]) {
      expect(parseLeanVersion({ ...good, files: [f] })).toBeNull();
    }
  });
});

describe("lean models", () => {
  test("licence flags normalised, creator and tags, description as text, versions summarised in Civitai's order", () => {
    const m = leanModel(m2025);
    expect(m).toMatchObject({
      id: 1580878,
      name: "Semi-realistic illustrious",
      type: "LORA",
      creator: "alericiviai",
      tags: ["assets"],
      description: "Style to use less steps for good images",
      license: {
        allowNoCredit: true,
        allowCommercialUse: ["Sell", "Image", "RentCivit", "Rent"],
        allowDerivatives: true,
        allowDifferentLicense: true,
      },
    });
    expect(m.versions.map((v) => [v.id, v.index, v.baseModel, v.hasFiles])).toEqual([
      [1967584, 0, "Illustrious", true],
      [1788945, 3, "Illustrious", true],
    ]);
    expect(m.versions[0]).toMatchObject({ publishedAt: "2025-07-02T19:13:58.758Z", status: "Published", availability: "Public" });
    expect(stored(m, parseLeanModel)).toEqual(m);
    expect(leanModel({ id: 1, allowCommercialUse: "{Image,RentCivit}" }).license.allowCommercialUse).toEqual(["Image", "RentCivit"]);
    expect(parseLeanModel({ ...JSON.parse(JSON.stringify(m)), tags: [1] })).toBeNull();
    expect(parseLeanModel({ ...JSON.parse(JSON.stringify(m)), license: { allowCommercialUse: "Sell" } })).toBeNull();
  });
});

describe("parseMetaEntry takes any JSON (a file, or a value from a shared store)", () => {
  const sha = v1318.files![0]!.hashes!.SHA256!.toLowerCase();
  const key = versionKeyBySha256(sha);
  const base = { v: 3, scope: "https-civitai.com-443:none", key, storedAt: 1_000, expiresAt: 2_000 };
  const found = { ...base, kind: "found", versions: [leanVersion(v1318)], matchedBy: "sha256", host: "https://civitai.com" };

  test("text, bytes and parsed objects give the same typed entry; its freshness is the caller's call", () => {
    const text = JSON.stringify(found, leanReplacer);
    const parsed = parseMetaEntry(text);
    expect(parsed).toMatchObject({ kind: "found", key, matchedBy: "sha256" });
    expect(parseMetaEntry(new TextEncoder().encode(text))).toEqual(parsed);
    expect(parseMetaEntry(JSON.parse(text))).toEqual(parsed);
    expect(parseMetaEntry(found, { key, scope: base.scope })).toEqual(parsed);
    expect(parseMetaEntry(found, { key: versionKeyBySha256("0".repeat(64)) })).toBeNull();
    expect(parseMetaEntry(found, { scope: "http-127.0.0.1-80:none" })).toBeNull();
  });

  test("an answer must agree with its key", () => {
    // Keyed by an AutoV3 the version's files do not have, or by AutoV3 without matching by it.
    expect(parseMetaEntry({ ...found, key: versionKeyByAutov3("0123456789ab"), matchedBy: "autov3" })).toBeNull();
    const v = leanVersion({ ...v1318, files: [{ id: 9, hashes: { AutoV3: "0123456789AB" } }] });
    const byAutov3 = { ...base, kind: "found", key: versionKeyByAutov3("0123456789ab"), versions: [v], matchedBy: "autov3" };
    expect(parseMetaEntry(byAutov3)).not.toBeNull();
    expect(parseMetaEntry({ ...byAutov3, matchedBy: "sha256" })).toBeNull();
    // A SHA-256 entry matched by AutoV3 names the AutoV3, and the version holds it.
    expect(parseMetaEntry({ ...found, versions: [v], matchedBy: "autov3", autov3: "0123456789ab" })).not.toBeNull();
    expect(parseMetaEntry({ ...found, versions: [v], matchedBy: "autov3" })).toBeNull();
    // `unlisted`: one version whose list lacks the file (an archived model), never one that lists it.
    const archived = leanVersion({ ...v1318, files: [], model: { mode: "Archived" } });
    expect(parseMetaEntry({ ...found, versions: [archived], unlisted: true })).not.toBeNull();
    expect(parseMetaEntry({ ...found, versions: [archived] })).toBeNull();
    expect(parseMetaEntry({ ...found, unlisted: true })).toBeNull();
  });
});

test("the .civitai.info object keeps by-hash's names and order, upper-case hashes, our download URLs", () => {
  const model = leanModel(m2025);
  const obj = versionObject(leanVersion({ ...m2025.modelVersions![1]!, modelId: m2025.id }), model);
  expect(Object.keys(obj).slice(0, 4)).toEqual(["id", "modelId", "name", "nsfwLevel"]);
  const files = obj.files as { hashes: Record<string, string>; downloadUrl: string }[];
  expect(files[0]?.hashes.SHA256).toBe("EA0BC1A9F29A95F0EE53AE93B1920E77D7BCAA17FA8BDC36EDB05635138689C0");
  expect(files[0]?.downloadUrl).toBe("https://civitai.com/api/download/models/1788945?fileId=1690558");
  expect(obj.model).toMatchObject({
    name: "Semi-realistic illustrious",
    tags: ["assets"],
    allowCommercialUse: ["Sell", "Image", "RentCivit", "Rent"],
  });
  expect(obj.creator).toEqual({ username: "alericiviai" });
});

describe("B13: oversized text in an answer", () => {
  test("a 5 MB name is cut to 1,000 characters, and a million trigger words are de-duplicated in one bounded pass", () => {
    const words = Array.from({ length: 1_000_000 }, (_, i) => `w${i % 600_000}`);
    const huge = "N".repeat(5_000_000);
    const started = performance.now();
    const v = leanVersion({
      id: 1,
      modelId: 2,
      name: huge,
      trainedWords: [` ${"x".repeat(3000)} `, ...words],
      model: { name: huge },
    } as never);
    // The old per-word scan of the list took ~2 s for 40,000 words; this is one pass.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(v.name!.length).toBe(1000);
    expect(v.name!.endsWith("…")).toBe(true);
    expect(v.model.name!.length).toBe(1000);
    expect(v.trainedWords).toHaveLength(1000);
    expect(v.trainedWords[0]!.length).toBe(1000);
    expect(v.trainedWords.slice(1, 4)).toEqual(["w0", "w1", "w2"]);
    const m = leanModel({ id: 2, name: huge, tags: words, allowCommercialUse: words, creator: { username: huge } } as never);
    expect(m.name!.length).toBe(1000);
    expect(m.creator!.length).toBe(1000);
    expect(m.tags).toHaveLength(1000);
    expect(m.license.allowCommercialUse).toHaveLength(1000);
    // What was cut is stored and read back as it is.
    expect(stored(v, parseLeanVersion)).toEqual(v);
    expect(stored(m, parseLeanModel)).toEqual(m);
  });

  test("a stored entry with a string or a list longer than we ever write is not ours: refused", () => {
    const v = leanVersion({ ...m2025.modelVersions![0]!, modelId: m2025.id });
    const asStored = JSON.parse(JSON.stringify(v, leanReplacer));
    expect(parseLeanVersion(asStored)).not.toBeNull();
    expect(parseLeanVersion({ ...asStored, name: "n".repeat(4097) })).toBeNull();
    expect(parseLeanVersion({ ...asStored, trainedWords: Array.from({ length: 1001 }, (_, i) => `w${i}`) })).toBeNull();
    const m = JSON.parse(JSON.stringify(leanModel(m2025), leanReplacer));
    expect(parseLeanModel(m)).not.toBeNull();
    expect(parseLeanModel({ ...m, creator: "c".repeat(5000) })).toBeNull();
    expect(parseLeanModel({ ...m, tags: Array.from({ length: 1001 }, (_, i) => `t${i}`) })).toBeNull();
  });
});
