/**
 * The request policy of issue 11 over real HTTP: the Civitai client against two fake Civitai
 * servers (primary and fallback), counts read from the fakes' own request logs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createCivitaiClient } from "../../../src/civitai/civitai-client.ts";
import { versionKeyBySha256 } from "../../../src/civitai/cache-keys.ts";
import { leanVersion } from "../../../src/civitai/lean.ts";
import { lookupFiles, type LookupItem } from "../../../src/civitai/lookup.ts";
import { createMetaCache } from "../../../src/civitai/meta-cache.ts";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../../helpers/fake-civitai.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs("civitai-meta-requests-");
const DAY = 24 * 60 * 60 * 1000;
const sha = (label: string, i: number) => createHash("sha256").update(`${label} ${i}`).digest("hex");
const v3 = (label: string, i: number) => sha(`${label} v3`, i).slice(0, 12);

let primary: FakeCivitai;
let fallback: FakeCivitai;
beforeAll(async () => {
  primary = await startFakeCivitai({ fixtures: false });
  fallback = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await Promise.all([primary.stop(), fallback.stop()]);
  tmp.cleanup();
});

describe("requests by route, counted by the fake servers", () => {
  test("300 files: known, archived, non-public, only on the fallback, known by AutoV3 only, unknown; then 0 the next day", async () => {
    const items: LookupItem[] = [];
    // 200 known on the primary, 4 models.
    for (let i = 0; i < 200; i++) {
      primary.addVersion(makeVersion({ versionId: 1000 + i, modelId: 1 + (i % 4), sha256: sha("known", i) }));
      items.push({ sha256: sha("known", i) });
    }
    for (let m = 1; m <= 4; m++) primary.addModel(makeModel({ modelId: m }));
    // 5 of an archived model: matched, listed with no file.
    for (let i = 0; i < 5; i++) {
      primary.addVersion(
        makeVersion({
          versionId: 2000 + i,
          modelId: 5,
          sha256: sha("archived", i),
          extra: { model: { name: "Old", type: "LORA", nsfw: false, poi: false, mode: "Archived" } },
        }),
      );
      items.push({ sha256: sha("archived", i) });
    }
    // 5 whose file is a second, non-public file of a version.
    for (let i = 0; i < 5; i++) {
      const version = makeVersion({ versionId: 3000 + i, modelId: 6, sha256: sha("public", i), files: [{ sha256: sha("private", i) }] });
      (version.files![1] as Record<string, unknown>).visibility = "Private";
      primary.addVersion(version);
      items.push({ sha256: sha("private", i) });
    }
    // 20 only on the fallback host.
    for (let i = 0; i < 20; i++) {
      fallback.addVersion(makeVersion({ versionId: 4000 + i, modelId: 7, sha256: sha("red", i) }));
      items.push({ sha256: sha("red", i) });
    }
    fallback.addModel(makeModel({ modelId: 7 }));
    // 10 edited safetensors: only their AutoV3 is known (on the primary).
    for (let i = 0; i < 10; i++) {
      primary.addVersion(makeVersion({ versionId: 5000 + i, modelId: 8, sha256: sha("original", i), autov3: v3("edited", i) }));
      items.push({ sha256: sha("edited", i), autov3: v3("edited", i) });
    }
    // 60 unknown: 40 safetensors (with an AutoV3), 20 other files.
    for (let i = 0; i < 40; i++) items.push({ sha256: sha("unknown st", i), autov3: v3("unknown st", i) });
    for (let i = 0; i < 20; i++) items.push({ sha256: sha("unknown other", i) });
    expect(items).toHaveLength(300);

    let now = Date.parse("2026-03-01T00:00:00Z");
    const dir = tmp.make();
    const run = async () => {
      primary.reset();
      fallback.reset();
      const client = createCivitaiClient({ userAgent: "civitai-meta/test", civitaiHosts: [primary.url, fallback.url], concurrency: 4 });
      const cache = createMetaCache({ dir, origins: [primary.url, fallback.url], now: () => now });
      return lookupFiles(
        items,
        { api: client, cache, hosts: { primary: primary.url, fallback: fallback.url } },
        { details: true, offline: false, refresh: false },
      );
    };

    const first = await run();
    const entries = [...first.entries.values()];
    expect(entries.filter((e) => e.status === "found")).toHaveLength(240);
    expect(entries.filter((e) => e.status === "not_found")).toHaveLength(60);
    expect(first.entries.get(sha("archived", 0))).toMatchObject({ status: "found", unlisted: true, host: primary.url });
    expect(first.entries.get(sha("private", 0))).toMatchObject({ status: "found", unlisted: true });
    expect(first.entries.get(sha("red", 0))).toMatchObject({ status: "found", host: fallback.url });
    expect(first.entries.get(sha("edited", 0))).toMatchObject({ status: "found", matchedBy: "autov3" });

    // Primary: one by-hash/ids for all 300 (known: 210), 3 bulk POSTs for them; no GET by SHA-256.
    // Fallback: 90 misses fit one bulk POST (no ids first), which finds the 20.
    // AutoV3: 10 found on the primary; 40 unknown asked on both hosts. Models: one request per host.
    expect(primary.counts).toMatchObject({ versionIdsByHashes: 1, versionsByHashes: 3, versionByHash: 50, modelsByIds: 1 });
    expect(fallback.counts).toMatchObject({ versionIdsByHashes: 0, versionsByHashes: 1, versionByHash: 40, modelsByIds: 1 });
    const gets = [...primary.requests, ...fallback.requests].filter((r) => r.route === "versionByHash");
    expect(gets.every((r) => /\/by-hash\/[0-9A-F]{12}$/.test(r.path))).toBe(true);
    expect(first.counters.requests).toEqual({ ids: 1, bulk: 4, autov3: 90, models: 2 });

    now += DAY;
    const nextDay = await run();
    expect(primary.requests.length + fallback.requests.length).toBe(0);
    for (const item of items) expect(nextDay.entries.get(item.sha256)?.status).toBe(first.entries.get(item.sha256)?.status);

    // Three days later the not-found answers are asked again (and then kept 7 days): in bulk, and the AutoV3s.
    now += 2 * DAY;
    await run();
    expect(primary.counts).toMatchObject({ versionIdsByHashes: 0, versionsByHashes: 1, versionByHash: 40 });
    expect(fallback.counts).toMatchObject({ versionsByHashes: 1, versionByHash: 40 });
    primary.reset();
    now += 3 * DAY;
    await run();
    expect(primary.requests.length + fallback.requests.length).toBe(0);
  });
});

describe("the SHA-256 of empty input", () => {
  // An empty file (a failed download, a placeholder) hashes to e3b0c442…b855; Civitai may hold a
  // broken upload with that hash, which is no model of ours (the same value cut to 12 hex is the
  // AutoV3 placeholder, docs/civitai-api.md §5). It must never be reported as that upload.
  const EMPTY = createHash("sha256").update("").digest("hex");
  test("is not asked on any host, not found, and a cached answer for it is not served", async () => {
    primary.reset();
    fallback.reset();
    primary.addVersion(makeVersion({ versionId: 9100, modelId: 91, sha256: EMPTY }));
    fallback.addVersion(makeVersion({ versionId: 9200, modelId: 92, sha256: EMPTY }));
    primary.addVersion(makeVersion({ versionId: 9101, modelId: 91, sha256: sha("beside empty", 0) }));
    const dir = tmp.make();
    const client = createCivitaiClient({ userAgent: "civitai-meta/test", civitaiHosts: [primary.url, fallback.url], concurrency: 4 });
    const cache = createMetaCache({ dir, origins: [primary.url, fallback.url] });
    // An answer an older version cached for it.
    await cache.writeVersions([
      {
        key: versionKeyBySha256(EMPTY),
        answer: {
          versions: [leanVersion(makeVersion({ versionId: 9100, modelId: 91, sha256: EMPTY }))],
          matchedBy: "sha256",
          host: primary.url,
        },
      },
    ]);
    const deps = { api: client, cache, hosts: { primary: primary.url, fallback: fallback.url } };
    const result = await lookupFiles([{ sha256: EMPTY.toUpperCase() }, { sha256: sha("beside empty", 0) }], deps, {
      details: false,
      offline: false,
      refresh: true,
    });
    expect(result.entries.get(EMPTY)).toMatchObject({ status: "not_found", versions: [] });
    expect(result.entries.get(sha("beside empty", 0))).toMatchObject({ status: "found" });
    const asked = [...primary.requests, ...fallback.requests].map((r) => `${r.path} ${r.body}`).join(" ");
    expect(asked.toUpperCase()).not.toContain(EMPTY.toUpperCase());
    expect(fallback.counts.versionsByHashes + fallback.counts.versionByHash).toBe(0);
    const cached = await lookupFiles([{ sha256: EMPTY }], deps, { details: false, offline: true, refresh: false });
    expect(cached.entries.get(EMPTY)).toMatchObject({ status: "not_found", versions: [] });
  });
});
