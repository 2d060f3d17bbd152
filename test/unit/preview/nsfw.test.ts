import { describe, expect, test } from "bun:test";
import {
  DEFAULT_NSFW_MASK,
  imageNsfwLevel,
  isVideo,
  limitOfMask,
  nsfwMask,
  parseNsfwLimit,
  withinNsfwMask,
} from "../../../src/preview/nsfw.ts";

describe("--nsfw-level", () => {
  test("names parse in any case and common spellings; others are refused", () => {
    expect(parseNsfwLimit("pg")).toBe("pg");
    expect(parseNsfwLimit("PG-13")).toBe("pg13");
    expect(parseNsfwLimit(" pg_13 ")).toBe("pg13");
    expect(parseNsfwLimit("R")).toBe("r");
    expect(parseNsfwLimit("xxx")).toBe("xxx");
    for (const bad of ["", "nsfw", "13", "all", "blocked", "pg14"]) expect(parseNsfwLimit(bad)).toBeNull();
  });

  test("a limit allows every rating up to it", () => {
    expect(nsfwMask("pg")).toBe(1);
    expect(nsfwMask("pg13")).toBe(3);
    expect(nsfwMask("r")).toBe(7);
    expect(nsfwMask("x")).toBe(15);
    expect(nsfwMask("xxx")).toBe(31);
    expect(DEFAULT_NSFW_MASK).toBe(3);
    expect(limitOfMask(7)).toBe("r");
    expect(limitOfMask(5)).toBeNull();
  });
});

describe("an image's rating", () => {
  test("nsfwLevel is taken as its highest bit; 0, negatives and junk are unrated", () => {
    expect(imageNsfwLevel({ nsfwLevel: 1 })).toBe(1);
    expect(imageNsfwLevel({ nsfwLevel: 2 })).toBe(2);
    expect(imageNsfwLevel({ nsfwLevel: 6 })).toBe(4); // a combined value counts as its worst
    expect(imageNsfwLevel({ nsfwLevel: 32 })).toBe(32);
    for (const v of [0, -1, 1.5, "1", null, undefined, Number.NaN]) expect(imageNsfwLevel({ nsfwLevel: v })).toBeNull();
  });

  test("the older nsfw field (boolean or enum string) is read when nsfwLevel is absent", () => {
    expect(imageNsfwLevel({ nsfw: false })).toBe(1);
    expect(imageNsfwLevel({ nsfw: true })).toBe(8); // degree unknown: treated as X
    expect(imageNsfwLevel({ nsfw: "None" })).toBe(1);
    expect(imageNsfwLevel({ nsfw: "Soft" })).toBe(2);
    expect(imageNsfwLevel({ nsfw: "Mature" })).toBe(4);
    expect(imageNsfwLevel({ nsfw: "X" })).toBe(8);
    expect(imageNsfwLevel({ nsfw: "weird" })).toBeNull();
    expect(imageNsfwLevel({ nsfwLevel: 4, nsfw: false })).toBe(4); // the newer field wins
  });

  test("within a mask: only rated images at or below the limit; blocked never", () => {
    expect(withinNsfwMask(1, 3)).toBe(true);
    expect(withinNsfwMask(2, 3)).toBe(true);
    expect(withinNsfwMask(4, 3)).toBe(false);
    expect(withinNsfwMask(16, 31)).toBe(true);
    expect(withinNsfwMask(32, 31)).toBe(false);
    expect(withinNsfwMask(32, 63)).toBe(false);
    expect(withinNsfwMask(null, 31)).toBe(false);
  });

  test("videos are recognised by type or by extension", () => {
    expect(isVideo({ type: "video", url: "https://image.civitai.com/a/b/c/d.jpeg" })).toBe(true);
    expect(isVideo({ type: "image", url: "https://image.civitai.com/a/b/c/d.mp4" })).toBe(true);
    expect(isVideo({ type: "image", url: "https://image.civitai.com/a/b/c/d.webm?x=1" })).toBe(true);
    expect(isVideo({ type: "image", url: "https://image.civitai.com/a/b/c/d.jpeg" })).toBe(false);
  });
});
