import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  classifyHtml,
  errorBodyText,
  isCivitaiId,
  isHexHash,
  isSha256Hex,
  looksLikeHtml,
  parseErrorBody,
  validateModel,
  validateModelPage,
  validateVersion,
  validateVersionList,
} from "../../../src/civitai/api-validate.ts";

const FIXTURES = join(import.meta.dir, "../../fixtures/civitai");
const fixtureText = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const fixture = (name: string): unknown => JSON.parse(fixtureText(name));

describe("validateVersion", () => {
  test("accepts the real version shape", () => {
    const r = validateVersion(fixture("model-version-1318-wiki-2023-example.json"));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.id).toBe(1318);
  });
  test("rejects an {items} page, with a reason that names the keys", () => {
    const r = validateVersion({ items: [], metadata: {} });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain('"items"');
  });
  test("rejects strings, arrays, non-numeric ids and broken lists", () => {
    for (const bad of ['{"id":1', [], null, { id: "1" }, { id: 1, files: "x" }, { id: 1, files: [1] }, { id: 1, model: "x" }]) {
      expect(validateVersion(bad).ok).toBe(false);
    }
  });
});

describe("validateVersionList", () => {
  const v = fixture("model-version-1318-wiki-2023-example.json");
  test("accepts an array of versions and nulls, and the empty array", () => {
    expect(validateVersionList([v, null, v]).ok).toBe(true);
    expect(validateVersionList([]).ok).toBe(true);
  });
  test("rejects objects and bad elements", () => {
    expect(validateVersionList({ items: [v] }).ok).toBe(false);
    const r = validateVersionList([v, { name: "x" }]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain("element 1");
  });
});

describe("validateModel / validateModelPage", () => {
  test("accepts the real /models/{id} payloads of 2023, 2025 and 2026", () => {
    for (const name of [
      "model-detail-1102-wiki-2023-example.json",
      "model-detail-lora-2025-example.json",
      "model-detail-lora-2026-example.json",
    ]) {
      expect(validateModel(fixture(name)).ok).toBe(true);
    }
  });
  test("a page returns its items", () => {
    const m = fixture("model-detail-lora-2026-example.json");
    const r = validateModelPage({ items: [m], metadata: {} });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.map((x) => x.id)).toEqual([2833924]);
  });
  test("rejects a bare array, a version where a model is expected, a bad modelVersions", () => {
    expect(validateModelPage([]).ok).toBe(false);
    expect(validateModelPage({ items: [{ name: "no id" }] }).ok).toBe(false);
    expect(validateModel({ id: 1, modelVersions: {} }).ok).toBe(false);
    expect(validateModel({ id: 1, modelVersions: [{ name: "x" }] }).ok).toBe(false);
  });
});

describe("error bodies", () => {
  test("reads Civitai's error shapes", () => {
    expect(errorBodyText(parseErrorBody(fixtureText("error-404-by-hash.json")))).toBe("Model not found");
    expect(errorBodyText(parseErrorBody(fixtureText("error-451-region-blocked.json")))).toContain("not available in your region");
    expect(parseErrorBody(fixtureText("error-451-region-blocked.json"))?.code).toBe("REGION_BLOCKED");
    expect(errorBodyText(parseErrorBody(fixtureText("error-500-unexpected.json")))).toBe("An unexpected error occurred");
    expect(errorBodyText(parseErrorBody(fixtureText("error-401-download-disabled.json")))).toBe(
      "Unauthorized: The creator of this asset has disabled downloads on this file",
    );
  });
  test("non-JSON and non-object bodies give undefined", () => {
    for (const t of [undefined, "", "<html>", '"text"', "[1]", '{"error":'] as const) expect(parseErrorBody(t)).toBeUndefined();
  });
});

describe("HTML detection", () => {
  test("by Content-Type or by the body's start", () => {
    expect(looksLikeHtml("text/html; charset=UTF-8", "{}")).toBe(true);
    expect(looksLikeHtml("application/json", "  <!DOCTYPE html><html>")).toBe(true);
    expect(looksLikeHtml(null, "<html><body>")).toBe(true);
    expect(looksLikeHtml("application/json", '{"a":"<html>"}')).toBe(false);
  });
  test("recognises a Cloudflare challenge and a maintenance page", () => {
    expect(classifyHtml("<title>Just a moment...</title><script src=/cdn-cgi/challenge-platform/x>")).toBe("cloudflare-challenge");
    expect(classifyHtml("<h1>We're adjusting a few things, be back in a few minutes...</h1>")).toBe("maintenance");
    expect(classifyHtml("<h1>Hello</h1>")).toBe("html");
  });
});

describe("input checks", () => {
  test("hex hashes", () => {
    expect(isHexHash("5B4CD3D7DB")).toBe(true);
    expect(isHexHash("7ff63543")).toBe(true);
    for (const bad of ["", "abc", "../../etc", "5B4CD3D7DB?x=1", "g".repeat(10), "a".repeat(129)]) expect(isHexHash(bad)).toBe(false);
    expect(isSha256Hex("a".repeat(64))).toBe(true);
    expect(isSha256Hex("a".repeat(63))).toBe(false);
  });
  test("Civitai ids", () => {
    expect(isCivitaiId(1)).toBe(true);
    expect(isCivitaiId(2_147_483_647)).toBe(true);
    for (const bad of [0, -1, 1.5, 2_147_483_648, Number.NaN]) expect(isCivitaiId(bad)).toBe(false);
  });
});
