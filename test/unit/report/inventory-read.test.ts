import { describe, expect, test } from "bun:test";
import { InventoryReadError, MIGRATIONS, migrate, readInventory, readInventorySource } from "../../../src/report/inventory-read.ts";
import { bufferSource } from "../../../src/report/json-stream.ts";
import { SCHEMA_VERSION } from "../../../src/report/inventory-types.ts";
import { AppError } from "../../../src/shared/errors.ts";
import { renderJson } from "../../../src/report/render-json.ts";
import { renderMarkdown } from "../../../src/report/render-md.ts";
import { hostileInventory, makeCivitai, makeRecord, makeInventory, sampleInventory } from "../../helpers/sample-inventory.ts";
import { validateInventory } from "../../helpers/schema.ts";

const SOURCE = "/tmp/reports/inv.json";

function readError(text: string): InventoryReadError {
  try {
    readInventory(text, SOURCE);
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryReadError);
    return err as InventoryReadError;
  }
  throw new Error("readInventory did not throw");
}

const NOT_OURS = `${SOURCE} is not a civitai-meta inventory (expected a JSON file written by "civitai-meta scan")`;

/** A v0 inventory: the hypothetical pre-release shape the migration exists for. */
function v0Text(): string {
  const v1 = JSON.parse(renderJson(sampleInventory())) as Record<string, unknown>;
  const { records, ...rest } = v1 as { records: Record<string, unknown>[] };
  const files = records.map((r) => (r.status === "not_found" ? { ...r, status: "notfound" } : r));
  return JSON.stringify({ ...rest, schemaVersion: 0, files });
}

describe("readInventory", () => {
  test("reads back what renderJson wrote, equal and schema-valid", () => {
    for (const inv of [sampleInventory(), hostileInventory(), makeInventory([])]) {
      const text = renderJson(inv);
      const back = readInventory(text, SOURCE);
      expect(renderJson(back)).toBe(text);
      expect(validateInventory(back)).toEqual([]);
    }
  });

  test("accepts a UTF-8 BOM and CRLF line ends (a file saved by a Windows editor)", () => {
    const text = `\uFEFF${renderJson(sampleInventory()).replace(/\n/g, "\r\n")}`;
    expect(readInventory(text, SOURCE).records.length).toBe(sampleInventory().records.length);
  });

  test("not JSON: names the source and the parser's reason", () => {
    for (const text of ["", "not json", '{"schemaVersion": 1,', "path,size\r\n/a,1\r\n"]) {
      const err = readError(text);
      expect(err.message.startsWith(`${SOURCE} is not valid JSON: `)).toBe(true);
      expect(err.message.length).toBeGreaterThan(`${SOURCE} is not valid JSON: `.length);
    }
  });

  test("JSON that is not an inventory", () => {
    const packageJson = JSON.stringify({ name: "civitai-meta", version: "0.1.0", type: "module", dependencies: {} });
    for (const text of [
      "[]",
      "{}",
      "null",
      "42",
      '"x"',
      packageJson,
      JSON.stringify({ schemaVersion: 1, tool: { name: "other-tool" }, records: [] }),
    ]) {
      expect(readError(text).message).toBe(NOT_OURS);
    }
    expect(readError(JSON.stringify({ schemaVersion: "1", tool: { name: "civitai-meta" }, records: [] })).message).toBe(
      `${NOT_OURS}: schemaVersion is "1", expected a whole number`,
    );
    expect(readError(JSON.stringify({ schemaVersion: 1, tool: { name: "civitai-meta" } })).message).toBe(
      `${NOT_OURS}: it has no "records" list`,
    );
  });

  test("written by a newer civitai-meta: says so and what to do", () => {
    const doc = JSON.parse(renderJson(sampleInventory()));
    doc.schemaVersion = SCHEMA_VERSION + 1;
    doc.tool.version = "9.0.0";
    const message = readError(JSON.stringify(doc)).message;
    expect(message).toContain(`${SOURCE} was written by a newer civitai-meta (civitai-meta 9.0.0)`);
    expect(message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(message).toContain("Update civitai-meta");
  });

  test("an older (v0) inventory is migrated: files → records, notfound → not_found", () => {
    const text = v0Text();
    expect(text).toContain('"notfound"');
    const inv = readInventory(text, SOURCE);
    expect(inv.schemaVersion).toBe(SCHEMA_VERSION);
    expect("files" in inv).toBe(false);
    expect(inv.records.filter((r) => r.status === "not_found").length).toBe(2);
    expect(renderJson(inv)).toBe(renderJson(sampleInventory()));
    expect(validateInventory(inv)).toEqual([]);
    // And the renderers take it.
    expect(renderMarkdown(inv)).toContain("## Not found on Civitai\n\n2 files.");
  });

  test("migrate: chained steps, input untouched, a missing step is an error", () => {
    const v0 = JSON.parse(v0Text()) as Record<string, unknown>;
    const before = JSON.stringify(v0);
    const v2 = migrate(v0);
    expect(JSON.stringify(v0)).toBe(before);
    expect(v2.schemaVersion).toBe(SCHEMA_VERSION);
    expect((v2.summary as { byStatus: Record<string, number> }).byStatus.gone).toBe(0);
    expect((v2.records as { status: string }[]).filter((r) => r.status === "not_found").length).toBe(2);
    expect(Object.keys(MIGRATIONS).map(Number)).toEqual([...Array(SCHEMA_VERSION).keys()]);
    expect(() => migrate({ schemaVersion: -1 })).toThrow("no migration from inventory schema version -1");
    expect(readError(JSON.stringify({ schemaVersion: -1, tool: { name: "civitai-meta" }, records: [] })).message).toContain(
      "expected a whole number",
    );
  });

  test("a damaged inventory: lists where, at most 5 problems, then a count", () => {
    const doc = JSON.parse(renderJson(sampleInventory()));
    const found = (doc.records as { status: string }[]).flatMap((r, i) => (r.status === "found" ? [i] : []));
    expect(found.length).toBeGreaterThanOrEqual(3);
    doc.records[0].status = "weird";
    doc.records[1].path = 42;
    doc.records[found[1]!].civitai.trainedWords = "a, b";
    doc.records[found[2]!].civitai = { versionId: 1 };
    delete doc.records[3].hashes;
    doc.records[doc.records.length - 1] = "not a record";
    doc.summary = null;
    const message = readError(JSON.stringify(doc)).message;
    expect(message.startsWith(`${SOURCE} is a damaged civitai-meta inventory: `)).toBe(true);
    expect(message).toContain("summary: expected an object with files, bytes and byStatus");
    expect(message).toContain('records[0].status: expected one of found, gone, not_found, error, skipped, got "weird"');
    expect(message).toContain("records[1].path: expected a non-empty string");
    expect(message).toMatch(/\(and \d+ more\)$/);
  });

  test("a found record without civitai data is damaged", () => {
    const inv = makeInventory([makeRecord()]);
    delete inv.records[0]!.civitai;
    expect(readError(JSON.stringify(inv)).message).toContain("records[0].civitai: expected an object for a found file");
  });

  test("a hostile value quoted in a message is cut short", () => {
    const doc = JSON.parse(renderJson(sampleInventory()));
    doc.records[0].status = "x".repeat(10_000);
    const message = readError(JSON.stringify(doc)).message;
    expect(message.length).toBeLessThan(400);
  });

  test("InventoryReadError is an AppError with the failure exit code", () => {
    const err = readError("[]");
    expect(err).toBeInstanceOf(AppError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("InventoryReadError");
    expect(err.exitCode).toBe(1);
    expect(readError("{").cause).toBeInstanceOf(SyntaxError);
  });
});

describe("reading a record at a time (json-stream.ts, readInventorySource)", () => {
  const sourceOf = (text: string) => readInventorySource(bufferSource(Buffer.from(text)), SOURCE);

  test("pretty-printed with other indents and keys in another order (records first): the same inventory", () => {
    const inv = sampleInventory();
    const canonical = renderJson(inv);
    const doc = JSON.parse(canonical) as Record<string, unknown>;
    const { records, ...head } = doc;
    for (const text of [
      JSON.stringify({ records, ...head }, null, 4),
      JSON.stringify({ ...head, records }),
      JSON.stringify({ records, ...head }, null, "\t").replace(/\n/g, "\r\n"),
    ]) {
      expect(renderJson(readInventory(text, SOURCE))).toBe(canonical);
    }
  });

  test("records out of path order (a hand-edited file) come out sorted, with the same facts", () => {
    const inv = hostileInventory();
    const shuffled = { ...JSON.parse(renderJson(inv)), records: [...JSON.parse(renderJson(inv)).records].reverse() };
    const src = sourceOf(JSON.stringify(shuffled));
    expect([...src.records("path")].map((r) => r.path)).toEqual(readInventory(renderJson(inv), SOURCE).records.map((r) => r.path));
    expect(src.facts.facts.byStatus).toEqual(readInventorySource(bufferSource(Buffer.from(renderJson(inv))), SOURCE).facts.facts.byStatus);
  });

  test("strings with quotes and backslashes across the 1 MiB read window read back exactly", () => {
    const records = Array.from({ length: 800 }, (_, i) =>
      makeRecord({
        path: `/models/q/${i}-${'\\"'.repeat(i % 7)}.safetensors`,
        civitai: makeCivitai({ modelId: 1000 + i, versionId: 5000 + i, description: `${'"\\'.repeat(300 + i)} \\" end` }),
      }),
    );
    const text = renderJson(makeInventory(records));
    expect(text.length).toBeGreaterThan(3 * 1024 * 1024);
    expect(renderJson(readInventory(text, SOURCE))).toBe(text);
  });

  test("a truncated file: one clear error at every cut, never a crash or a partial read", () => {
    const text = renderJson(sampleInventory());
    for (let cut = 0; cut < text.length; cut += 97) {
      const message = readError(text.slice(0, cut)).message;
      expect({ cut, ok: /is not valid JSON: |is not a civitai-meta inventory|is a damaged civitai-meta inventory/.test(message) }).toEqual({
        cut,
        ok: true,
      });
    }
    expect(readError(text.slice(0, text.length - 3)).message).toContain("cut short");
  });

  test("the same path twice is refused, naming it and both records", () => {
    const doc = JSON.parse(renderJson(sampleInventory()));
    doc.records.push({ ...doc.records[2], size: 1 });
    const message = readError(JSON.stringify(doc)).message;
    expect(message).toContain(`lists ${doc.records[2].path} twice (records[2] and records[${doc.records.length - 1}])`);
    expect(message).toContain("remove one of the two");
  });

  test("a depth bomb inside a record is refused before it is parsed", () => {
    const doc = JSON.parse(renderJson(makeInventory([makeRecord()])));
    const text = JSON.stringify(doc).replace('"aliases":[]', `"aliases":${"[".repeat(300)}${"]".repeat(300)}`);
    expect(readError(text).message).toContain("nested deeper than 128 levels");
  });

  test("text after the object, a bad separator, a second records list (the last wins, as JSON.parse)", () => {
    const text = renderJson(makeInventory([makeRecord()]));
    expect(readError(`${text}{}`).message).toContain("Unexpected data after the end");
    expect(readError(text.replace('"aliases":[]', '"aliases":[] "x"')).message).toContain("is not valid JSON: records[0]");
    const two = `${text.slice(0, text.lastIndexOf("}"))}, "records": []}`;
    expect(readInventory(two, SOURCE).records).toEqual([]);
  });

  test("records are read again for each pass, not kept: two passes give equal records", () => {
    const src = sourceOf(renderJson(sampleInventory()));
    expect([...src.records("path")]).toEqual([...src.records("path")]);
    expect(src.count).toBe(sampleInventory().records.length);
    expect(src.writtenAs).toBe(SCHEMA_VERSION);
    const sections = [...src.records("sections")].map((r) => r.status);
    expect(sections.indexOf("not_found")).toBeGreaterThan(sections.lastIndexOf("found"));
  });
});
