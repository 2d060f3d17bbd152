/**
 * The orders in which reports list records: by path (JSON, CSV, JUnit: byte order, so output is
 * stable), or by section (Markdown: found and gone files by type, then base model, then model
 * name; then the files not found, in error, skipped). Pure; a key is a string so that a streamed
 * inventory keeps one per record, not the record.
 */
import type { FileRecord, RecordStatus } from "./record-types.ts";
import { typeAndBase, UNKNOWN_BASE, UNKNOWN_TYPE } from "./library-facts.ts";
import { compareByteOrder } from "../scan/path-filter.ts";

export type RecordOrder = "path" | "sections";

/** Sections after the typed ones, in this order. */
const OTHER_SECTIONS: readonly RecordStatus[] = ["not_found", "error", "skipped"];

/** Known names before the catch-all "Unknown …" section. */
export function ranked(name: string, unknown: string): string {
  return `${name === unknown ? "1" : "0"}${name}`;
}

/**
 * The Markdown section of `record`, as a key that sorts sections in the report's order: found and
 * gone files by type then base model (the "Unknown …" ones last), then not found, errors,
 * skipped. Within a section records go by path (folders together), so a streamed inventory keeps
 * one small number per record, not a long key.
 */
export function sectionOf(record: FileRecord): string {
  const tb = typeAndBase(record);
  if (tb) return `0${ranked(tb.type, UNKNOWN_TYPE)}\u0000${ranked(tb.base, UNKNOWN_BASE)}`;
  const rank = OTHER_SECTIONS.indexOf(record.status);
  return `${1 + (rank < 0 ? OTHER_SECTIONS.length : rank)}`;
}

export { compareByteOrder as compareKeys };

/** Records in `order`: by path, or by section then path (a sorted copy; the input is not touched). */
export function sortedRecords<T extends FileRecord>(records: readonly T[], order: RecordOrder): T[] {
  const keyed = records.map((r) => ({ r, s: order === "path" ? "" : sectionOf(r) }));
  keyed.sort((a, b) => compareByteOrder(a.s, b.s) || compareByteOrder(a.r.path, b.r.path));
  return keyed.map((x) => x.r);
}
