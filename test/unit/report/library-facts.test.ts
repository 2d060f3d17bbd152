import { describe, expect, test } from "bun:test";
import { FactsBuilder, factsOf } from "../../../src/report/library-facts.ts";
import { makeCivitai, makeRecord } from "../../helpers/sample-inventory.ts";
import type { FileRecord } from "../../../src/report/record-types.ts";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

function file(path: string, sha: string, size: number, over: Partial<FileRecord> = {}): FileRecord {
  return makeRecord({ path, size, hashes: { sha256: sha }, ...over });
}

describe("library facts", () => {
  test("copies: the same SHA-256 in several records (links are aliases of one record, not copies); bytes to free", () => {
    const records = [
      // One file with two other names (hard or soft links): one record, no copy.
      file("/m/a.safetensors", SHA_A, 1000, { aliases: ["/m/link-to-a.safetensors", "/m/hard-a.safetensors"] }),
      file("/m/backup/a.safetensors", SHA_A, 1000),
      file("/m/old/a.safetensors", SHA_A, 1000),
      file("/m/b.safetensors", SHA_B, 50),
      makeRecord({ path: "/m/skipped.safetensors", status: "skipped" }),
    ];
    const facts = factsOf(records);
    expect(facts.facts.duplicates).toEqual({ sets: 1, files: 3, reclaimableBytes: 2000, modelsWithSeveralVersions: 0 });
    expect(facts.facts.duplicateSets).toEqual([
      {
        sha256: SHA_A,
        size: 1000,
        copies: 3,
        paths: ["/m/a.safetensors", "/m/backup/a.safetensors", "/m/old/a.safetensors"],
        // Deleting /m/a.safetensors alone frees nothing while its other names hold the bytes.
        aliases: [["/m/link-to-a.safetensors", "/m/hard-a.safetensors"], [], []],
        reclaimableBytes: 2000,
      },
    ]);
    const a = facts.decorate(records[0]!);
    expect(a.duplicate).toEqual({ copies: 3, others: ["/m/backup/a.safetensors", "/m/old/a.safetensors"] });
    expect(facts.decorate(records[3]!).duplicate).toBeUndefined();
    // A record that came with a stale `duplicate` gets this library's answer.
    expect(facts.decorate({ ...records[3]!, duplicate: { copies: 9, others: ["/x"] } }).duplicate).toBeUndefined();
  });

  test("copies are copies whatever Civitai said: not found, offline (skipped with a hash) and found alike", () => {
    const records = [
      file("/m/x.safetensors", SHA_B, 300, { status: "not_found", civitai: undefined }),
      file("/m/y.safetensors", SHA_B, 300, { status: "skipped", civitai: undefined }),
      makeRecord({ path: "/m/z.safetensors", status: "skipped", hashes: {} }),
    ];
    const facts = factsOf(records);
    expect(facts.facts.duplicates).toEqual({ sets: 1, files: 2, reclaimableBytes: 300, modelsWithSeveralVersions: 0 });
    expect(facts.decorate(records[1]!).duplicate).toEqual({ copies: 2, others: ["/m/x.safetensors"] });
    expect(facts.decorate(records[2]!).duplicate).toBeUndefined();
  });

  test("one model held in 1,000 versions, and one file in 1,000 copies: the facts and every record's decoration", () => {
    // A hostile inventory or server can say so. The growth with n (it was quadratic) is judged by
    // `bun run bench hostile-scale`.
    const n = 1_000;
    const records = Array.from({ length: n }, (_, i) =>
      makeRecord({ path: `/m/v${String(i).padStart(6, "0")}.safetensors`, civitai: makeCivitai({ versionId: 100_000 + n - i }) }),
    );
    const copies = Array.from({ length: n }, (_, i) => makeRecord({ path: `/c/${i}.safetensors`, hashes: { sha256: "c".repeat(64) } }));
    const facts = factsOf([...records, ...copies]);
    const decorated = records.map((r) => facts.decorate(r));
    const copy = facts.decorate(copies[5]!);
    // The copies are files of one more version of the same model (makeRecord's: 200).
    expect(facts.facts.severalVersions[0]!.versions).toHaveLength(n + 1);
    expect(facts.facts.severalVersions[0]!.versions.slice(0, 2)).toEqual([
      { versionId: 200, versionName: "v1.0", path: "/c/0.safetensors", files: n },
      { versionId: 100_001, versionName: "v1.0", path: `/m/v${String(n - 1).padStart(6, "0")}.safetensors`, files: 1 },
    ]);
    // The 20 lowest other version ids, ascending, as before.
    const ids = (r: FileRecord) => r.otherVersions!.map((v) => v.versionId);
    expect(ids(decorated[n - 1]!)).toEqual([200, ...Array.from({ length: 19 }, (_, k) => 100_002 + k)]);
    expect(ids(decorated[0]!)).toEqual([200, ...Array.from({ length: 19 }, (_, k) => 100_001 + k)]);
    expect(ids(copy)).toEqual(Array.from({ length: 20 }, (_, k) => 100_001 + k));
    expect(decorated[0]!.otherVersions![0]).toEqual({ versionId: 200, versionName: "v1.0", path: "/c/0.safetensors" });
    expect(copy.duplicate!.copies).toBe(n);
  });

  test("several versions of one model held; each record names the others", () => {
    const v1 = makeRecord({ path: "/m/v1.safetensors", civitai: makeCivitai({ versionId: 200, versionName: "v1.0" }) });
    const v2 = makeRecord({
      path: "/m/v2.safetensors",
      civitai: makeCivitai({ versionId: 201, versionName: "v2.0", baseModel: "SDXL 1.0" }),
    });
    const v2b = makeRecord({ path: "/m/z/v2-again.safetensors", civitai: makeCivitai({ versionId: 201, versionName: "v2.0" }) });
    const other = makeRecord({ path: "/m/other.safetensors", civitai: makeCivitai({ modelId: 300, versionId: 301 }) });
    const facts = factsOf([v2b, other, v2, v1]);
    expect(facts.facts.duplicates.modelsWithSeveralVersions).toBe(1);
    expect(facts.facts.severalVersions).toEqual([
      {
        modelId: 100,
        modelName: "Detail Tweaker",
        modelType: "LORA",
        versions: [
          { versionId: 200, versionName: "v1.0", path: "/m/v1.safetensors", files: 1 },
          { versionId: 201, versionName: "v2.0", path: "/m/v2.safetensors", files: 2 },
        ],
      },
    ]);
    expect(facts.decorate(v1).otherVersions).toEqual([{ versionId: 201, versionName: "v2.0", path: "/m/v2.safetensors" }]);
    expect(facts.decorate(other).otherVersions).toBeUndefined();
    // Counts by type and base model (found and gone files).
    expect([...facts.facts.byBase.entries()]).toEqual([
      ["SD 1.5", { files: 3, bytes: 3 * 147_568_134 }],
      ["SDXL 1.0", { files: 1, bytes: 147_568_134 }],
    ]);
  });

  test("an update the library holds: inLibrary names the files, and it is not one to fetch", () => {
    const newer = {
      versionId: 201,
      name: "v2.0",
      baseModel: "SD 1.5",
      publishedAt: null,
      access: null,
      inLibrary: [],
      pageUrl: "https://civitai.com/models/100?modelVersionId=201",
    };
    const v1 = makeRecord({ path: "/m/v1.safetensors", update: { sameBaseModel: newer, newest: newer } });
    const v2 = makeRecord({ path: "/m/v2.safetensors", civitai: makeCivitai({ versionId: 201, versionName: "v2.0" }) });
    expect(factsOf([v1]).facts.updatesToFetch).toBe(1);
    const facts = factsOf([v1, v2]);
    expect(facts.facts.updatesToFetch).toBe(0);
    expect(facts.decorate(v1).update!.sameBaseModel!.inLibrary).toEqual(["/m/v2.safetensors"]);
    expect(facts.facts.updates[0]!.update!.newest.inLibrary).toEqual(["/m/v2.safetensors"]);
  });

  test("a path listed twice is noticed (inventory-read.ts refuses such a file)", () => {
    const r = makeRecord({ path: "/m/x.safetensors" });
    expect(factsOf([r, { ...r }]).facts.repeatedPaths).toEqual(["/m/x.safetensors"]);
  });

  test("records given out of path order (scan adds them as their lookups finish) give the facts of path order", () => {
    const update = {
      sameBaseModel: null,
      newest: {
        versionId: 999,
        name: "v9",
        baseModel: "SD 1.5",
        publishedAt: null,
        access: null,
        inLibrary: [],
        pageUrl: "https://civitai.com/models/100?modelVersionId=999",
      },
    };
    const records = [
      file("/m/a.safetensors", SHA_A, 10, { update }),
      makeRecord({
        path: "/m/b.safetensors",
        civitai: makeCivitai({ versionId: 200 }),
        update,
        local: { format: "safetensors", formatMismatch: "named .safetensors, is a pickle", errors: [], warnings: [] } as never,
      }),
      file("/m/c.safetensors", SHA_B, 20, { status: "gone", gone: { reason: "not_found", lastSeenAt: null } }),
      file("/m/d.safetensors", SHA_A, 10, { update }),
      makeRecord({
        path: "/m/e.safetensors",
        civitai: makeCivitai({ versionId: 201 }),
        local: { format: "safetensors", formatMismatch: "named .safetensors, is a GGUF", errors: [], warnings: [] } as never,
      }),
      file("/m/f.safetensors", SHA_B, 20, { status: "gone", gone: { reason: "not_found", lastSeenAt: null } }),
      file("/m/g.safetensors", SHA_A, 10),
    ];
    const inOrder = factsOf(records);
    const builder = new FactsBuilder();
    for (const i of [6, 3, 5, 0, 4, 1, 2]) builder.add(records[i]!, i);
    const shuffled = builder.finish((i) => records[i]!.path);
    expect(shuffled.facts).toEqual(inOrder.facts);
    expect(shuffled.facts.updates.map((r) => r.path)).toEqual(["/m/a.safetensors", "/m/b.safetensors", "/m/d.safetensors"]);
    expect(shuffled.facts.gone.map((r) => r.path)).toEqual(["/m/c.safetensors", "/m/f.safetensors"]);
    expect(shuffled.facts.warnings.map((r) => r.path)).toEqual(["/m/b.safetensors", "/m/e.safetensors"]);
    for (const r of records) expect(shuffled.decorate(r)).toEqual(inOrder.decorate(r));
    // decorates() says, without the record, whether decorate changes it (the spill's fast path relies on it).
    for (const r of records) {
      const modelId = (r.status === "found" || r.status === "gone") && typeof r.civitai?.modelId === "number" ? r.civitai.modelId : null;
      expect(shuffled.decorates(r.hashes.sha256, modelId, r.update !== undefined)).toBe(shuffled.decorate(r) !== r);
    }
    expect(shuffled.decorate(records[6]!).duplicate).toEqual({ copies: 3, others: ["/m/a.safetensors", "/m/d.safetensors"] });
  });
});
