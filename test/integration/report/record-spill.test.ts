/**
 * The scan's records file (report/record-spill.ts) on its own: records added in any order come
 * back in path order (and in Markdown's section order), decorated by the library's facts, and the
 * JSON inventory written from it is the one the records themselves give.
 */
import { describe, expect, test } from "bun:test";
import { RecordSpill } from "../../../src/report/record-spill.ts";
import { memorySource } from "../../../src/report/inventory-read.ts";
import { chunksText, reportChunks } from "../../../src/report/render.ts";
import type { InventoryHead } from "../../../src/report/inventory-types.ts";
import type { FileRecord } from "../../../src/report/record-types.ts";
import { makeCivitai, makeInventory, makeRecord } from "../../helpers/sample-inventory.ts";

const SHA = "c".repeat(64);

function records(): FileRecord[] {
  return [
    makeRecord({ path: "/m/a.safetensors", hashes: { sha256: SHA } }),
    makeRecord({ path: "/m/b 🦊 é.safetensors", civitai: makeCivitai({ modelId: 7, versionId: 70, modelType: "Checkpoint" }) }),
    makeRecord({ path: "/m/c.safetensors", status: "skipped" }),
    makeRecord({ path: "/m/d.safetensors", hashes: { sha256: SHA } }),
    makeRecord({ path: "/m/e.safetensors", status: "not_found", civitai: undefined, hashes: { sha256: "d".repeat(64) } }),
  ];
}

function head(): InventoryHead {
  const { records: _r, ...rest } = makeInventory([]);
  return rest;
}

describe("the records file", () => {
  test("records added out of order come back in path order and section order, decorated; JSON as the records give it", () => {
    const list = records();
    const spill = new RecordSpill(list.length, (rank) => list[rank]!.path);
    try {
      for (const i of [3, 0, 4, 2, 1]) spill.add(list[i]!, i);
      const src = spill.source(head());
      const mem = memorySource({ ...head(), records: list });
      expect([...src.records("path")]).toEqual([...mem.records("path")]);
      expect([...src.records("sections")].map((r) => r.path)).toEqual([...mem.records("sections")].map((r) => r.path));
      // a.safetensors and d.safetensors are copies: decorated on the way out.
      expect([...src.records("path")][0]!.duplicate).toEqual({ copies: 2, others: ["/m/d.safetensors"] });
      expect(src.head.summary).toEqual(mem.head.summary);
      expect(chunksText(reportChunks(src, "json"))).toBe(chunksText(reportChunks(mem, "json")));
      expect(chunksText(reportChunks(src, "csv"))).toBe(chunksText(reportChunks(mem, "csv")));
    } finally {
      spill.close();
    }
  });

  test("a rank is taken once; the source wants every rank; close twice is harmless", () => {
    const list = records();
    const spill = new RecordSpill(list.length, (rank) => list[rank]!.path);
    spill.add(list[0]!, 0);
    expect(spill.taken(0)).toBe(true);
    expect(spill.taken(1)).toBe(false);
    expect(() => spill.add(list[1]!, 0)).toThrow("rank 0 added twice");
    expect(() => spill.source(head())).toThrow("1 of 5 records added");
    spill.close();
    spill.close();
  });
});
