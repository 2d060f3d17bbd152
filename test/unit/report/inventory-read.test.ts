import { describe, expect, test } from "bun:test";
import { InventoryReadError, MIGRATIONS, migrate, readInventory } from "../../../src/report/inventory-read.ts";
import { SCHEMA_VERSION } from "../../../src/report/inventory-types.ts";
import { AppError } from "../../../src/shared/errors.ts";
import { renderJson } from "../../../src/report/render-json.ts";
import { renderMarkdown } from "../../../src/report/render-md.ts";
import { hostileInventory, makeRecord, makeInventory, sampleInventory } from "../../helpers/sample-inventory.ts";
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
