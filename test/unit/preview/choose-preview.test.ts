import { describe, expect, test } from "bun:test";
import { chooseImage, previewCandidates, toCivitaiImages } from "../../../src/preview/choose-preview.ts";
import { nsfwMask } from "../../../src/preview/nsfw.ts";
import { loadFixture } from "../../helpers/fake-civitai.ts";
import type { ApiModel } from "../../../src/civitai/civitai-types.ts";

const img = (n: number, nsfwLevel: number | null, type = "image") => ({
  url: `https://image.civitai.com/a/k${n}/original=true/${n}.jpeg`,
  nsfwLevel,
  width: 832,
  height: 1216,
  type,
});

describe("toCivitaiImages", () => {
  test("the 2025 fixture's images keep url, rating, size and type, at most 10", () => {
    const model = loadFixture<ApiModel>("model-detail-lora-2025-example.json");
    const all = (model.modelVersions ?? []).flatMap((v) => v.images ?? []);
    expect(all.length).toBeGreaterThan(10);
    const images = toCivitaiImages(all);
    expect(images).toHaveLength(10);
    expect(images[0]).toEqual({ url: all[0]!.url!, nsfwLevel: 1, width: 832, height: 1216, type: "image" });
    expect(images.map((i) => i.nsfwLevel)).toEqual(all.slice(0, 10).map((i) => i.nsfwLevel ?? null));
  });

  test("junk entries are dropped; odd fields become null", () => {
    const images = toCivitaiImages([
      null,
      "x",
      { url: "javascript:alert(1)", nsfwLevel: 1 },
      { url: "https://image.civitai.com/a b.jpeg" },
      { url: "https://image.civitai.com/ok.jpeg", nsfwLevel: "1", width: -3, height: 1.5, type: "<b>" },
    ]);
    expect(images).toEqual([{ url: "https://image.civitai.com/ok.jpeg", nsfwLevel: null, width: null, height: null, type: null }]);
    expect(toCivitaiImages("nope")).toEqual([]);
  });
});

describe("chooseImage: the first still within the limit", () => {
  test("skips higher ratings and videos, in Civitai's order", () => {
    const images = [img(1, 4), img(2, 1, "video"), img(3, 2), img(4, 1)];
    expect(chooseImage(images, nsfwMask("pg13")).image?.url).toBe(images[2]!.url);
    expect(chooseImage(images, nsfwMask("pg")).image?.url).toBe(images[3]!.url);
    expect(chooseImage(images, nsfwMask("r")).image?.url).toBe(images[0]!.url);
  });

  test("when there is none, the reason says why", () => {
    const pg13 = nsfwMask("pg13");
    expect(chooseImage([img(1, 4), img(2, 8)], pg13)).toEqual({
      image: null,
      reason: "no image is rated PG-13 or lower (--nsfw-level allows more)",
    });
    expect(chooseImage([img(1, 32)], nsfwMask("xxx"))).toEqual({ image: null, reason: "no image is rated XXX or lower" });
    expect(chooseImage([img(1, null), img(2, null)], nsfwMask("xxx")).image).toBeNull();
    expect(chooseImage([img(1, null)], pg13)).toEqual({ image: null, reason: "its image is unrated (never shown)" });
    expect(chooseImage([img(1, 1, "video")], pg13)).toEqual({ image: null, reason: "Civitai lists only videos for this version" });
    expect(chooseImage([], pg13)).toEqual({ image: null, reason: "Civitai lists no rated still image for this version" });
    expect(chooseImage(undefined, pg13)).toEqual({ image: null, reason: expect.stringContaining("scan again") });
  });
});

describe("previewCandidates: what a record keeps", () => {
  test("the first still, rated image of each rating, in order; videos and unrated images dropped", () => {
    const images = [img(1, 4), img(2, 1, "video"), img(3, 2), img(4, 4), img(5, null), img(6, 1), img(7, 2), img(8, 16)];
    expect(previewCandidates(images).map((i) => i.url)).toEqual([images[0]!.url, images[2]!.url, images[5]!.url, images[7]!.url]);
  });

  test("for every limit, the kept images choose the same preview as all ten", () => {
    const model = loadFixture<ApiModel>("model-detail-lora-2025-example.json");
    for (const version of model.modelVersions ?? []) {
      const all = toCivitaiImages(version.images);
      const kept = previewCandidates(all);
      expect(kept.length).toBeLessThanOrEqual(5);
      for (const limit of ["pg", "pg13", "r", "x", "xxx"] as const) {
        expect(chooseImage(kept, nsfwMask(limit))).toEqual(chooseImage(all, nsfwMask(limit)));
      }
    }
  });
});
