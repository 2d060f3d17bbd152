import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ApiModel, ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import { toCivitaiInfo } from "../../../src/civitai/civitai-record.ts";
import {
  leanModel,
  leanReplacer,
  leanVersion,
  parseLeanModel,
  parseLeanVersion,
  type LeanModel,
  type LeanVersion,
} from "../../../src/civitai/lean.ts";
import { isMarkedInOrder } from "../../../src/report/in-order.ts";
import { civitaiOutOfOrder, recordText } from "../../../src/report/render-json.ts";

// A record's `civitai` part is marked as laid out in the report's key order, so the JSON renderer
// takes it without walking it (report/in-order.ts). These tests hold the builder to that promise
// for every shape the real answers give: fresh from the API and read back from the cache, with
// and without model details, each preview rating, early access running or over.
const fixture = <T>(name: string): T => JSON.parse(readFileSync(join(import.meta.dir, "../../fixtures/civitai", name), "utf8")) as T;
const models = [
  "model-detail-lora-2025-example.json",
  "model-detail-lora-2026-example.json",
  "model-detail-1102-wiki-2023-example.json",
].map((name) => fixture<ApiModel>(name));
const v1318 = fixture<ApiModelVersion>("model-version-1318-wiki-2023-example.json");
/** Stored and read back, as the metadata cache does. */
const stored = <T>(value: unknown, parse: (v: unknown) => T | null): T => parse(JSON.parse(JSON.stringify(value, leanReplacer)))!;

function cases(): { name: string; version: LeanVersion; model: LeanModel | null; sha256: string | null }[] {
  const out: { name: string; version: LeanVersion; model: LeanModel | null; sha256: string | null }[] = [];
  const versions: [string, ApiModelVersion, ApiModel | null][] = [["1318", v1318, null]];
  for (const m of models) for (const v of m.modelVersions ?? []) versions.push([`${m.id}/${v.id}`, { ...v, modelId: m.id }, m]);
  for (const [name, api, apiModel] of versions) {
    const sha256 = (api.files?.[0]?.hashes?.SHA256 as string | undefined)?.toLowerCase() ?? null;
    const fresh = leanVersion(api);
    const freshModel = apiModel ? leanModel(apiModel) : null;
    out.push({ name: `${name} fresh`, version: fresh, model: freshModel, sha256 });
    out.push({
      name: `${name} from the cache`,
      version: stored(fresh, parseLeanVersion),
      model: freshModel && stored(freshModel, parseLeanModel),
      sha256,
    });
    out.push({ name: `${name} without details`, version: fresh, model: null, sha256 });
    out.push({ name: `${name} matching no file`, version: fresh, model: freshModel, sha256: null });
  }
  return out;
}

describe("a record's civitai part is built in the report's key order", () => {
  const all = cases();
  test("the fixtures give several shapes", () => {
    expect(all.length).toBeGreaterThanOrEqual(12);
  });

  for (const c of all) {
    test(`${c.name}: marked, and in order at every level`, () => {
      for (const now of [0, Date.parse("2100-01-01")]) {
        for (const nsfwMask of [1, 0xff]) {
          const info = toCivitaiInfo(c.version, c.model, c.sha256, { now, nsfwMask });
          expect(isMarkedInOrder(info)).toBe(true);
          expect(civitaiOutOfOrder(info)).toBe(false);
        }
      }
    });
  }

  test("the check finds a part out of order (so the tests above can fail)", () => {
    const info = toCivitaiInfo(all[0]!.version, all[0]!.model, all[0]!.sha256);
    const { modelId, ...rest } = info;
    expect(civitaiOutOfOrder({ ...rest, modelId })).toBe(true);
    const file = info.matchedFile!;
    expect(civitaiOutOfOrder({ ...info, matchedFile: { ...file, hashes: { AutoV2: "ab", SHA256: "cd" } } })).toBe(true);
  });

  test("a marked part renders exactly as an unmarked copy of it", () => {
    const info = toCivitaiInfo(all[0]!.version, all[0]!.model, all[0]!.sha256);
    const record = { path: "/m/a.safetensors", aliases: [], size: 1, mtime: null, hashes: {}, status: "found", civitai: info };
    const copy = JSON.parse(JSON.stringify(record));
    expect(isMarkedInOrder(copy.civitai)).toBe(false);
    expect(recordText(record)).toBe(recordText(copy));
  });
});

describe("a Civitai file's hashes", () => {
  test("are kept SHA256, AutoV1, AutoV2, AutoV3, CRC32, BLAKE3, then others by name, fresh or from an older cache entry", () => {
    const fresh = leanVersion(v1318);
    expect(Object.keys(fresh.files[0]!.hashes)).toEqual(["SHA256", "AutoV1", "AutoV2", "CRC32", "BLAKE3"]);
    // An entry written before this order was kept holds Civitai's order (AutoV1 first).
    const old = JSON.parse(JSON.stringify(fresh, leanReplacer));
    old.files[0].hashes = { Zeta: "01", AutoV1: "5f06aa6f", AutoV2: "0df040c8cd", SHA256: fresh.files[0]!.hashes.SHA256, Alpha: "02" };
    expect(Object.keys(parseLeanVersion(old)!.files[0]!.hashes)).toEqual(["SHA256", "AutoV1", "AutoV2", "Alpha", "Zeta"]);
  });
});
