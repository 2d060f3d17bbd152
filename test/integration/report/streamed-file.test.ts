/**
 * The streamed reader and writer on real files (issue 11, target 2): the reader reads a file
 * through two reused buffers (1 MiB windows for the structure, one for each record's text), the
 * writer encodes through one reused buffer, a piece at a time. Records bigger than a window,
 * records crossing windows, and characters outside the BMP at a piece boundary must come through
 * exactly.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openInventory } from "../../../src/report/inventory-file.ts";
import { renderJson } from "../../../src/report/render-json.ts";
import { prepareOutput, writeReport, writeReportChunks } from "../../../src/report/report-output.ts";
import { reportChunks } from "../../../src/report/render.ts";
import { makeCivitai, makeInventory, makeRecord } from "../../helpers/sample-inventory.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

/** 300 records of ~12 KB (3.6 MB: several 1 MiB windows), one of 1.5 MB (bigger than a window), emoji and CJK in names. */
function bigInventory() {
  const records = [];
  for (let i = 0; i < 300; i++) {
    const description = `${i} 🎨 絵 `.repeat(i === 150 ? 150_000 : 1200);
    records.push(
      makeRecord({
        path: `/lib/${String(i).padStart(4, "0")}-モデル-🦊.safetensors`,
        civitai: makeCivitai({ modelId: 1000 + i, versionId: 5000 + i, modelName: `Model 🦊 ${i}`, description }),
      }),
    );
  }
  return makeInventory(records);
}

describe("an inventory read from a file and written record by record", () => {
  test("every record reads back exactly, and `report` writes the bytes a whole render gives", async () => {
    const dir = tmp.make();
    const inventory = bigInventory();
    const expected = renderJson(inventory);
    const path = join(dir, "inventory.json");
    writeFileSync(path, expected);
    expect(Buffer.byteLength(expected)).toBeGreaterThan(4 * 1024 * 1024);

    const opened = openInventory(path);
    try {
      const read = [...opened.source.records("path")];
      expect(read.map((r) => r.path)).toEqual(inventory.records.map((r) => r.path));
      expect(read[150]!.civitai!.description).toBe(inventory.records[150]!.civitai!.description);
      expect(read.map((r) => r.civitai!.modelName)).toEqual(inventory.records.map((r) => r.civitai!.modelName));
      const out = join(dir, "again.json");
      await writeReportChunks(reportChunks(opened.source, "json", {}), prepareOutput(out));
      expect(readFileSync(out, "utf8")).toBe(expected);
    } finally {
      opened.close();
    }
  });

  test("a character outside the BMP across a write piece (256 Ki code units) is written whole", () => {
    const dir = tmp.make();
    for (const offset of [-2, -1, 0, 1]) {
      // The fox's surrogate pair straddles (or just touches) the boundary at 262,144 code units.
      const text = `${"a".repeat(256 * 1024 + offset)}🦊${"b".repeat(1000)}\n${"日本".repeat(200_000)}`;
      const out = join(dir, `piece${offset}.txt`);
      writeReport(text, prepareOutput(out));
      expect({ offset, same: readFileSync(out).equals(Buffer.from(text, "utf8")) }).toEqual({ offset, same: true });
    }
  });

  test("text and bytes given in pieces are written as one UTF-8 text, whatever falls on the 256 KiB buffer's edge", async () => {
    const dir = tmp.make();
    for (const offset of [-3, -2, -1, 0, 1]) {
      // A 4-byte character, a 3-byte one, and a bytes piece larger than the buffer, each across the edge.
      const pieces: (string | Uint8Array)[] = [
        "a".repeat(256 * 1024 + offset),
        "🦊日",
        Buffer.from("é".repeat(10)),
        "x".repeat(256 * 1024 - 7 + offset),
        Buffer.from(`${"z".repeat(300 * 1024)}🦊`),
        "",
        new Uint8Array(0),
        "end\n",
      ];
      const expected = Buffer.concat(pieces.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
      const out = join(dir, `mixed${offset}.txt`);
      await writeReportChunks(pieces, prepareOutput(out));
      expect({ offset, same: readFileSync(out).equals(expected) }).toEqual({ offset, same: true });
    }
  });

  test("a report of ~100 MB, synced to the disk while it is written, replaces the old one whole and leaves no temp file", async () => {
    const dir = tmp.make();
    const out = join(dir, "big.json");
    writeFileSync(out, "the old report\n");
    // 1 MiB pieces, each different, so a piece written twice or left out shows; syncs start every 32 MiB.
    const pieces = Array.from({ length: 100 }, (_, i) => Buffer.alloc(1024 * 1024, i % 251));
    let oldSeen = 0;
    await writeReportChunks(
      (function* () {
        for (const p of pieces) {
          // The old report stays whole under its name until the new one is complete.
          if (readFileSync(out, "utf8") === "the old report\n") oldSeen++;
          yield p;
        }
      })(),
      prepareOutput(out),
    );
    expect(oldSeen).toBe(100);
    const written = readFileSync(out);
    expect(written.length).toBe(100 * 1024 * 1024);
    expect(written.equals(Buffer.concat(pieces))).toBe(true);
    expect(readdirSync(dir)).toEqual(["big.json"]);
  });
});
