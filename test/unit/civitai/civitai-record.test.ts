import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ApiModel, ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import * as record from "../../../src/civitai/civitai-record.ts";
import { compareCandidates, mapBulkAnswer, type CivitaiInfoOptions } from "../../../src/civitai/civitai-record.ts";
import { leanModel, leanVersion, normalizeCommercialUse } from "../../../src/civitai/lean.ts";

// Records are built from the lean form (lean.ts); these tests feed API-shaped answers through it,
// which is exactly the path an answer takes from Civitai to a record.
const lean = (v: ApiModelVersion) => leanVersion(v);
const toCivitaiInfo = (v: ApiModelVersion, m: ApiModel | null, sha: string | null, opts?: CivitaiInfoOptions) =>
  record.toCivitaiInfo(lean(v), m === null ? null : leanModel(m), sha, opts);
const findMatchedFile = (v: ApiModelVersion, sha: string | null, autov3?: string | null) => record.findMatchedFile(lean(v), sha, autov3);
const availabilityOf = (v: ApiModelVersion, m: ApiModel | null, now: number) =>
  record.availabilityOf(lean(v), m === null ? null : leanModel(m), now);
const toCivitaiFields = (vs: ApiModelVersion[], models: Map<number, ApiModel>, sha: string | null) =>
  record.toCivitaiFields(vs.map(lean), new Map([...models].map(([id, m]) => [id, leanModel(m)])), sha);
import { DESCRIPTION_MAX_CHARS, htmlToPlainText } from "../../../src/civitai/html-text.ts";

// The recorded Civitai payloads (docs/civitai-api.md §7); the repo copy wins when present.
const FIXTURE_DIRS = [join(import.meta.dir, "../../fixtures/civitai")];
function fixture<T>(name: string): T {
  const dir = FIXTURE_DIRS.find((d) => existsSync(join(d, name)));
  if (!dir) throw new Error(`fixture ${name} not found`);
  return JSON.parse(readFileSync(join(dir, name), "utf8")) as T;
}

const NOW = Date.parse("2026-09-01T00:00:00Z");
const hex = (n: number, len = 64) => n.toString(16).padStart(len, "0");

function version(id: number, over: Partial<ApiModelVersion> = {}): ApiModelVersion {
  return {
    id,
    modelId: 1000 + id,
    name: `v${id}`,
    files: [{ id: id * 10, primary: true, hashes: { SHA256: hex(id).toUpperCase() } }],
    ...over,
  };
}

describe("toCivitaiInfo on recorded payloads", () => {
  test("2023 wiki /model-versions/1318 without model details", () => {
    const v = fixture<ApiModelVersion>("model-version-1318-wiki-2023-example.json");
    const info = toCivitaiInfo(v, null, "0DF040C8CD48125174B54C251A87822E8ED61D529A92C42C1FA1BEF483B10B0D", { now: NOW });
    expect(info.versionId).toBe(1318);
    expect(info.modelId).toBe(1244);
    expect(info.modelName).toBe("froggy style");
    expect(info.modelType).toBe("Checkpoint");
    expect(info.nsfw).toBe(false);
    expect(info.trainedWords).toEqual(["ttdddd"]);
    expect(info.matchedFile?.id).toBe(289);
    expect(info.matchedFile?.format).toBe("PickleTensor");
    expect(info.matchedFile?.hashes.SHA256).toBe("0df040c8cd48125174b54c251a87822e8ed61d529a92c42c1fa1bef483b10b0d");
    expect(info.downloadUrl).toBe("https://civitai.com/api/download/models/1318?fileId=289");
    expect(info.primaryDownloadUrl).toBe("https://civitai.com/api/download/models/1318");
    expect(info.pageUrl).toBe("https://civitai.com/models/1244?modelVersionId=1318");
    expect(info.air).toBeNull(); // no `air` in 2023, and we do not invent one
    expect(info.license).toBeNull();
    expect(info.creator).toBeNull();
    expect(info.tags).toEqual([]);
    expect(info.description).toBeNull();
    expect(info.previewImageUrl).toStartWith("https://imagecache.civitai.com/");
    expect(info.availability).toEqual({ archived: false, takenDown: false, earlyAccess: false, paidAccess: false });
  });

  test("2023 wiki /models/1102: every version converts; string license; links' hrefs not dumped", () => {
    const model = fixture<ApiModel>("model-detail-1102-wiki-2023-example.json");
    expect(model.modelVersions?.length).toBeGreaterThan(0);
    for (const v of model.modelVersions ?? []) {
      const sha = v.files?.[0]?.hashes?.SHA256 ?? null;
      const info = toCivitaiInfo(v, model, sha, { now: NOW });
      expect(info.modelId).toBe(1102);
      expect(info.versionId).toBe(v.id);
      expect(info.license?.allowCommercialUse).toEqual(["Sell"]);
      expect(info.creator).toBeString();
      expect(info.description).toStartWith("This is a 50/50 Merge of Synthwave and InkPunk");
      expect(info.description).not.toContain("href");
      expect(info.description).not.toContain("https://civitai.com/models/1061");
      expect(info.description).not.toContain("<");
      if (sha) expect(info.matchedFile).not.toBeNull();
    }
  });

  test("2025 /models/1580878: array license, trained words, model-level details", () => {
    const model = fixture<ApiModel>("model-detail-lora-2025-example.json");
    const v = model.modelVersions?.[1];
    if (!v) throw new Error("fixture changed");
    const info = toCivitaiInfo(v, model, "EA0BC1A9F29A95F0EE53AE93B1920E77D7BCAA17FA8BDC36EDB05635138689C0", { now: NOW });
    expect(info.modelId).toBe(1580878);
    expect(info.versionId).toBe(1788945);
    expect(info.pageUrl).toBe("https://civitai.com/models/1580878?modelVersionId=1788945");
    expect(info.license).toEqual({
      allowNoCredit: true,
      allowCommercialUse: ["Sell", "Image", "RentCivit", "Rent"],
      allowDerivatives: true,
      allowDifferentLicense: true,
    });
    expect(info.trainedWords).toEqual(["Thigh clothes, semi-realistic, shiny skin"]);
    expect(info.creator).toBe("alericiviai");
    expect(info.tags).toEqual(["assets"]);
    expect(info.modelType).toBe("LORA");
    expect(info.baseModel).toBe("Illustrious");
    expect(info.nsfwLevel).toBe(6); // the version's level, not the model's 7
    expect(info.description).toBe("Style to use less steps for good images");
    expect(info.matchedFile?.id).toBe(1690558);
    expect(info.downloadUrl).toBe("https://civitai.com/api/download/models/1788945?fileId=1690558");
  });

  test("2026 /models/2833924: empty license array, AutoV3 match", () => {
    const model = fixture<ApiModel>("model-detail-lora-2026-example.json");
    const v = model.modelVersions?.[0];
    if (!v) throw new Error("fixture changed");
    const bySha = toCivitaiInfo(v, model, "5b4cd3d7db3e13e2e8bd8418921efd8e11c1f5559b43dc0be78522fee3f5fc5b", { now: NOW });
    expect(bySha.license?.allowCommercialUse).toEqual([]);
    expect(bySha.license?.allowDifferentLicense).toBe(false);
    expect(bySha.creator).toBe("kestinek");
    expect(bySha.tags).toContain("star wars");
    expect(bySha.description).toBe("OC lora, all training images sfw");
    expect(bySha.nsfw).toBe(false);
    expect(bySha.nsfwLevel).toBe(0);
    expect(bySha.baseModelType).toBe("Standard");
    // Its only image is rated R: no preview under the default PG-13 limit, one when R is allowed.
    expect(bySha.images).toEqual([
      { url: expect.stringContaining("original=true"), nsfwLevel: 4, width: 768, height: 1152, type: "image" },
    ]);
    expect(bySha.previewImageUrl).toBeNull();
    const allowR = toCivitaiInfo(v, model, "5b4cd3d7db3e13e2e8bd8418921efd8e11c1f5559b43dc0be78522fee3f5fc5b", { now: NOW, nsfwMask: 7 });
    expect(allowR.previewImageUrl).toContain("original=true");
    expect(bySha.matchedFile).toMatchObject({
      id: 3094942,
      name: "Mihaila Krea V1.safetensors",
      primary: true,
      format: "SafeTensor",
      fp: null,
    });
    const byV3 = toCivitaiInfo(v, model, hex(7), { autov3: "C26973DE6B79", now: NOW });
    expect(byV3.matchedFile?.id).toBe(3094942);
    expect(byV3.matchedFile?.hashes.AutoV3).toBe("c26973de6b79");
  });
});

describe("matched file and URLs", () => {
  const ours = hex(0xbeef);
  const twoFiles = version(7, {
    downloadUrl: "https://undefined/api/download/models/7",
    files: [
      {
        id: 70,
        primary: true,
        type: "Model",
        hashes: { SHA256: hex(0xaaaa).toUpperCase() },
        downloadUrl: "https://civitai.red/api/download/models/7?token=SECRET",
      },
      {
        id: 71,
        type: "VAE",
        hashes: { SHA256: ours.toUpperCase(), AutoV3: "ABCDEF012345" },
        downloadUrl: "https://civitai.com/api/download/models/7?type=VAE",
      },
    ],
  });

  test("the file whose SHA-256 is ours, not the primary one", () => {
    const info = toCivitaiInfo(twoFiles, null, ours);
    expect(info.matchedFile?.id).toBe(71);
    expect(info.matchedFile?.primary).toBe(false);
    expect(info.downloadUrl).toBe("https://civitai.com/api/download/models/7?fileId=71");
  });

  test("URLs are ours: never the API's host, never a token", () => {
    for (const sha of [ours, hex(0xaaaa), hex(1)]) {
      const info = toCivitaiInfo(twoFiles, null, sha);
      const urls = [info.downloadUrl, info.primaryDownloadUrl, info.pageUrl].filter(Boolean).join(" ");
      expect(urls).not.toContain("undefined");
      expect(urls).not.toContain("token");
      expect(urls).not.toContain("civitai.red");
      expect(info.primaryDownloadUrl).toBe("https://civitai.com/api/download/models/7");
    }
  });

  test("no file of ours (non-public) → matchedFile and downloadUrl null", () => {
    const info = toCivitaiInfo(twoFiles, null, hex(1));
    expect(info.matchedFile).toBeNull();
    expect(info.downloadUrl).toBeNull();
  });

  test("AutoV3 only when the SHA-256 matched nothing", () => {
    expect(findMatchedFile(twoFiles, hex(0xaaaa), "abcdef012345")?.file.id).toBe(70);
    expect(findMatchedFile(twoFiles, hex(1), "abcdef012345")).toMatchObject({ by: "autov3", file: { id: 71 } });
    expect(findMatchedFile(twoFiles, hex(1), "e3b0c44298fc")).toBeNull(); // the empty-input placeholder
  });

  test("AIR: given when valid, else null", () => {
    expect(toCivitaiInfo(version(3, { air: "urn:air:sdxl:lora:civitai:1003@3" }), null, null).air).toBe("urn:air:sdxl:lora:civitai:1003@3");
    expect(toCivitaiInfo(version(3, { air: "javascript:alert(1)" }), null, null).air).toBeNull();
    expect(toCivitaiInfo(version(3, { air: "urn:air:x y" }), null, null).air).toBeNull();
  });

  test("page URL without a model id uses the redirecting version page", () => {
    expect(toCivitaiInfo({ id: 5 }, null, null).pageUrl).toBe("https://civitai.com/model-versions/5");
  });

  test("details of another model are ignored", () => {
    const info = toCivitaiInfo(version(3), { id: 999, name: "Other", creator: { username: "mallory" } }, null);
    expect(info.modelName).toBeNull();
    expect(info.creator).toBeNull();
    expect(info.license).toBeNull();
  });
});

describe("tolerates missing and wrong-typed fields", () => {
  test("a bare version", () => {
    const info = toCivitaiInfo({ id: 5 }, null, null);
    expect(info).toMatchObject({
      versionId: 5,
      modelId: null,
      trainedWords: [],
      tags: [],
      matchedFile: null,
      previewImageUrl: null,
      description: null,
    });
  });

  test("nulls and wrong types everywhere", () => {
    const hostile = {
      id: 6,
      modelId: "6",
      name: 12,
      trainedWords: [" a ", "a", "", null, 3, "b"],
      files: "nope",
      images: [
        null,
        { url: 5 },
        { url: "javascript:alert(1)" },
        { url: "data:image/png;base64,AAAA" },
        { url: "https://image.civitai.com/unrated.jpeg" },
        { url: "https://image.civitai.com/x.jpeg", nsfwLevel: 1 },
      ],
      model: null,
      paidAccess: null,
      earlyAccessDeadline: "not a date",
      description: "<p>version text</p>",
    } as unknown as ApiModelVersion;
    const model = { id: 6, description: null, tags: "x", creator: null, allowCommercialUse: 42 } as unknown as ApiModel;
    const info = toCivitaiInfo(hostile, model, "zz");
    expect(info.modelId).toBe(6); // from the model: the version's is not a number
    expect(info.versionName).toBeNull();
    expect(info.trainedWords).toEqual(["a", "b"]);
    expect(info.previewImageUrl).toBe("https://image.civitai.com/x.jpeg");
    expect(info.description).toBe("version text");
    expect(info.tags).toEqual([]);
    expect(info.creator).toBeNull();
    expect(info.license?.allowCommercialUse).toEqual([]);
    expect(info.availability.earlyAccess).toBe(false);
  });

  test("files whose hashes are null or junk", () => {
    const v = {
      id: 8,
      files: [null, { id: 1, hashes: null }, { id: 2, hashes: { SHA256: 5 } }, { id: 3, hashes: { sha256: hex(9) } }],
    } as unknown as ApiModelVersion;
    expect(toCivitaiInfo(v, null, hex(9)).matchedFile?.id).toBe(3);
  });
});

describe("availability", () => {
  const now = Date.parse("2026-08-01T00:00:00Z");
  const cases: [string, ApiModelVersion, ApiModel | null, Partial<Record<string, boolean>>][] = [
    ["archived (model detail)", version(1), { id: 1001, mode: "Archived" }, { archived: true }],
    ["taken down (version.model)", version(1, { model: { mode: "TakenDown" } }), null, { takenDown: true }],
    ["early access in the future", version(1, { earlyAccessEndsAt: "2026-08-02T00:00:00Z" }), null, { earlyAccess: true }],
    ["early access deadline past", version(1, { earlyAccessDeadline: "2026-07-01T00:00:00Z" }), null, { earlyAccess: false }],
    ["early access deadline future", version(1, { earlyAccessDeadline: "2026-09-01T00:00:00Z" }), null, { earlyAccess: true }],
    ["availability EarlyAccess", version(1, { availability: "EarlyAccess" }), null, { earlyAccess: true }],
    ["paid access", version(1, { paidAccess: { permanent: true, endsAt: null } }), null, { paidAccess: true }],
    [
      "healthy",
      version(1, { availability: "Public" }),
      { id: 1001 },
      { archived: false, takenDown: false, earlyAccess: false, paidAccess: false },
    ],
  ];
  for (const [name, v, model, expected] of cases) {
    test(name, () => expect(availabilityOf(v, model, now)).toMatchObject(expected));
  }
  test("`now` is injectable through toCivitaiInfo", () => {
    const v = version(1, { earlyAccessEndsAt: "2026-08-02T00:00:00Z" });
    expect(toCivitaiInfo(v, null, null, { now: new Date("2026-08-01T00:00:00Z") }).availability.earlyAccess).toBe(true);
    expect(toCivitaiInfo(v, null, null, { now: Date.parse("2026-08-03T00:00:00Z") }).availability.earlyAccess).toBe(false);
  });
});

describe("normalizeCommercialUse", () => {
  const cases: [unknown, string[]][] = [
    ["{Image,RentCivit}", ["Image", "RentCivit"]],
    ["{Image, RentCivit, Image}", ["Image", "RentCivit"]],
    ["Sell", ["Sell"]],
    ["None", []],
    ["{}", []],
    [
      ["Image", "RentCivit"],
      ["Image", "RentCivit"],
    ],
    [["Sell", 3, "", "Sell"], ["Sell"]],
    [null, []],
    [undefined, []],
    [42, []],
  ];
  for (const [input, expected] of cases) {
    test(JSON.stringify(input) ?? "undefined", () => expect(normalizeCommercialUse(input)).toEqual(expected));
  }
});

describe("description text", () => {
  test("model description wins over the version's", () => {
    const info = toCivitaiInfo(version(1, { description: "<p>version</p>" }), { id: 1001, description: "<p>model</p>" }, null);
    expect(info.description).toBe("model");
    expect(toCivitaiInfo(version(1, { description: "<p>version</p>" }), { id: 1001, description: "  " }, null).description).toBe("version");
  });

  test("no images, no hrefs, whitespace collapsed, no control characters", () => {
    const text = htmlToPlainText(
      '<h1>Big   Title</h1><p>See <a href="https://evil.example/x">this</a>\t\tnow &#27;[31m</p><p></p><p></p><img src="https://x/y.png" alt="ALT"><ul><li>one</li><li>two</li></ul>',
    );
    expect(text).toBe("Big Title\n\nSee this now [31m\n\n* one\n* two");
  });

  test("cut at 2,000 characters with a mark", () => {
    const text = htmlToPlainText(`<p>${"word ".repeat(1000)}</p>`) ?? "";
    expect(text.length).toBeLessThanOrEqual(DESCRIPTION_MAX_CHARS);
    expect(text.length).toBeGreaterThan(DESCRIPTION_MAX_CHARS - 10);
    expect(text.endsWith("…")).toBe(true);
  });

  test("never leaves half a surrogate pair", () => {
    const text = htmlToPlainText("😀".repeat(1500)) ?? "";
    expect(text.endsWith("…")).toBe(true);
    expect(() => encodeURIComponent(text)).not.toThrow();
  });

  test("empty and tag-only input → null", () => {
    expect(htmlToPlainText(null)).toBeNull();
    expect(htmlToPlainText("")).toBeNull();
    expect(htmlToPlainText("<p> </p><img src=x>")).toBeNull();
  });
});

describe("mapBulkAnswer", () => {
  const a = hex(0xa);
  const b = hex(0xb);
  const c = hex(0xc);

  test("maps unordered answers back through files[].hashes.SHA256, ignoring nulls and repeats", () => {
    const va = version(1, { files: [{ id: 1, hashes: { SHA256: a.toUpperCase() } }] });
    const vb = version(2, { files: [{ id: 2, hashes: { SHA256: b.toUpperCase() } }] });
    const map = mapBulkAnswer([vb, null, va, vb, null, va], [a.toUpperCase(), b, c]);
    expect([...map.keys()].sort()).toEqual([a, b]);
    expect(map.get(a)?.map((v) => v.id)).toEqual([1]);
    expect(map.get(b)?.map((v) => v.id)).toEqual([2]);
    expect(map.has(c)).toBe(false);
  });

  test("a hash claimed by several versions gives every candidate in Civitai's order", () => {
    const files = [{ id: 9, hashes: { SHA256: a } }];
    const newer = version(5, { publishedAt: "2024-01-02T00:00:00Z", files });
    const older = version(9, { publishedAt: "2023-01-01T00:00:00Z", files });
    const sameTimeLowerId = version(3, { publishedAt: "2024-01-02T00:00:00Z", files });
    const unpublished = version(1, { publishedAt: null, files });
    const map = mapBulkAnswer([newer, unpublished, older, sameTimeLowerId, newer], [a]);
    expect(map.get(a)?.map((v) => v.id)).toEqual([9, 3, 5, 1]);
  });

  test("one version holding two of the asked files is attributed to both", () => {
    const v = version(4, {
      files: [
        { id: 1, hashes: { SHA256: a } },
        { id: 2, hashes: { SHA256: b } },
      ],
    });
    const map = mapBulkAnswer([v], [a, b]);
    expect(map.get(a)?.[0]?.id).toBe(4);
    expect(map.get(b)?.[0]?.id).toBe(4);
  });

  test("ignores junk elements and hashes nobody asked for", () => {
    const stray = version(6, { files: [{ id: 1, hashes: { SHA256: c } }] });
    const map = mapBulkAnswer(
      [42, "x", [], { files: [{ hashes: { SHA256: a } }] }, stray, { id: -1, files: [{ hashes: { SHA256: a } }] }],
      [a],
    );
    expect(map.size).toBe(0);
    expect(mapBulkAnswer("not an array" as unknown as unknown[], [a]).size).toBe(0);
  });

  test("compareCandidates is a total order", () => {
    expect(
      compareCandidates(version(2, { publishedAt: "2020-01-01T00:00:00Z" }), version(1, { publishedAt: "2021-01-01T00:00:00Z" })),
    ).toBeLessThan(0);
    expect(compareCandidates(version(2), version(1))).toBeGreaterThan(0);
  });
});

describe("toCivitaiFields", () => {
  const sha = hex(0xa);
  const files = [{ id: 1, hashes: { SHA256: sha } }];
  test("one candidate: no `ambiguous`", () => {
    const fields = toCivitaiFields([version(1, { files })], new Map(), sha);
    expect(fields?.civitai.versionId).toBe(1);
    expect(fields?.ambiguous).toBeUndefined();
  });
  test("several: `civitai` is the first, `ambiguous` all, each with its own model", () => {
    const models = new Map<number, ApiModel>([[1002, { id: 1002, name: "Two" }]]);
    const fields = toCivitaiFields([version(2, { files }), version(1, { files })], models, sha);
    expect(fields?.civitai.versionId).toBe(2);
    expect(fields?.civitai.modelName).toBe("Two");
    expect(fields?.ambiguous?.map((i) => i.versionId)).toEqual([2, 1]);
    expect(fields?.ambiguous?.[1]?.modelName).toBeNull();
  });
  test("none → null", () => expect(toCivitaiFields([], new Map(), sha)).toBeNull());
});
