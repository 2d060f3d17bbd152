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

/** The key that orders `record` in the Markdown report (compare with {@link compareKeys}). */
export function sectionKey(record: FileRecord): string {
  const tb = typeAndBase(record);
  if (tb) {
    const name = (record.civitai?.modelName ?? "").toLowerCase();
    return `0${ranked(tb.type, UNKNOWN_TYPE)}\u0000${ranked(tb.base, UNKNOWN_BASE)}\u0000${name}\u0000${record.path}`;
  }
  const rank = OTHER_SECTIONS.indexOf(record.status);
  return `${1 + (rank < 0 ? OTHER_SECTIONS.length : rank)}\u0000${record.path}`;
}

export const compareKeys = compareByteOrder;

/** The key of `record` in `order`. */
export function orderKey(record: FileRecord, order: RecordOrder): string {
  return order === "path" ? record.path : sectionKey(record);
}
