import { AppError, EXIT } from "../shared/errors.ts";
import { SCHEMA_VERSION, type Inventory, type InventoryHead } from "./inventory-types.ts";
import { JSON_MAX_DEPTH, isPlainObject } from "../shared/json-guard.ts";
import { escapeControl } from "../shared/format.ts";
import { RECORD_STATUSES, type FileRecord } from "./record-types.ts";
import { bufferSource, JsonStreamError, scanJsonObject, textOf, type ByteSource } from "./json-stream.ts";
import { FactsBuilder, factsOf, type Facts } from "./library-facts.ts";
import { compareKeys, sectionOf, sortedRecords, type RecordOrder } from "./record-order.ts";
import { compareByteOrder } from "../scan/path-filter.ts";
import { memoryPressure } from "../shared/memory-pressure.ts";

/**
 * Reads back a JSON inventory for `report` and `diff`: check it is ours, migrate an older format,
 * check the shape the renderers rely on, then hand the records out one at a time. The file may be
 * hand-edited, truncated, another tool's JSON or written by another version of civitai-meta, so
 * each failure says which.
 *
 * Memory stays flat (issue 11, target 2): json-stream.ts finds each record's byte range without
 * holding the text; one pass parses each record once to check it, index it (path, section key,
 * range) and gather the library's facts (library-facts.ts); the renderers then read the records
 * again by their ranges, in the order they need, one at a time.
 */

/** Must match src/version.ts NAME; core cannot import it (it reads package.json). */
const TOOL_NAME = "civitai-meta";

/** Every failure to read an inventory; the message names the source and the cause. */
export class InventoryReadError extends AppError {
  override name = "InventoryReadError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { exitCode: EXIT.failure, ...options });
  }
}

/** At most this many shape problems are listed; the rest are counted. */
const MAX_LISTED_PROBLEMS = 5;

type Doc = Record<string, unknown>;

/** One migration step: the top-level fields, and each record, of a version-n inventory made version n+1. */
interface Migration {
  head: (head: Doc) => Doc;
  record: (record: unknown) => unknown;
}

/**
 * One step per old version: `MIGRATIONS[n]` turns a version-n document into version n+1, in two
 * parts (the top-level fields, and one record) so that a streamed inventory migrates record by
 * record. Steps are small and chained, so a v0 file reaches the current version through every step.
 *
 * - v0 is the pre-release shape (kept as the worked example of the mechanism and tested): the
 *   list was called `files` instead of `records` (the reader takes either), and the status of a
 *   file Civitai does not know was spelled `"notfound"`.
 * - v1 → v2: the status `gone` exists, so `summary.byStatus` counts it; the library-wide fields
 *   (`summary.duplicates`, records' `duplicate` and `otherVersions`) are computed by the reader
 *   for every inventory, old or new.
 */
export const MIGRATIONS: Readonly<Record<number, Migration>> = {
  0: {
    head: (head) => head,
    record: (record) => (isPlainObject(record) && record.status === "notfound" ? { ...record, status: "not_found" } : record),
  },
  1: {
    head: (head) => {
      const summary = head.summary;
      if (!isPlainObject(summary) || !isPlainObject(summary.byStatus) || "gone" in summary.byStatus) return head;
      return { ...head, summary: { ...summary, byStatus: { ...summary.byStatus, gone: 0 } } };
    },
    record: (record) => record,
  },
};

function steps(from: number): Migration[] {
  const out: Migration[] = [];
  for (let version = from; version < SCHEMA_VERSION; version++) {
    const step = MIGRATIONS[version];
    if (!step) throw new Error(`no migration from inventory schema version ${version}`);
    out.push(step);
  }
  return out;
}

/** `doc` (a whole document of `doc.schemaVersion` ≤ SCHEMA_VERSION) brought to SCHEMA_VERSION; the input is not modified. */
export function migrate(doc: Doc): Doc {
  const from = doc.schemaVersion as number;
  const chain = steps(from);
  const { files, records, ...head } = doc;
  let list = from === 0 && records === undefined ? files : records;
  let out: Doc = from === 0 && records === undefined ? head : { ...head, ...(files === undefined ? {} : { files }) };
  for (const step of chain) {
    out = step.head(out);
    if (Array.isArray(list)) list = list.map(step.record);
  }
  return { ...out, schemaVersion: SCHEMA_VERSION, ...(list === undefined ? {} : { records: list }) };
}

const isStr = (v: unknown) => typeof v === "string";
const isStrOrNull = (v: unknown) => v === null || typeof v === "string";
const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isNumOrNull = (v: unknown) => v === null || isNum(v);
const isStrList = (v: unknown) => Array.isArray(v) && v.every(isStr);
const STATUSES = new Set<string>(RECORD_STATUSES);

/** Problems with the top-level fields the renderers read, as "where: what" lines. */
function headProblems(doc: Doc): string[] {
  const problems: string[] = [];
  const expect = (ok: boolean, where: string, what: string) => {
    if (!ok) problems.push(`${where}: ${what}`);
  };
  expect(isStr(doc.generatedAt), "generatedAt", "expected a string");
  expect(isStrList(doc.roots), "roots", "expected a list of paths");
  expect(isPlainObject(doc.options), "options", "expected an object");
  const summary = doc.summary;
  expect(
    isPlainObject(summary) && isNum(summary.files) && isNum(summary.bytes) && isPlainObject(summary.byStatus),
    "summary",
    "expected an object with files, bytes and byStatus",
  );
  return problems;
}

/** Problems with one record (at index `i`) the renderers would trip on, as "where: what" lines. */
function recordProblems(record: unknown, i: number): string[] {
  const at = `records[${i}]`;
  if (!isPlainObject(record)) return [`${at}: expected an object`];
  const problems: string[] = [];
  const expect = (ok: boolean, where: string, what: string) => {
    if (!ok) problems.push(`${where}: ${what}`);
  };
  expect(isStr(record.path) && record.path !== "", `${at}.path`, "expected a non-empty string");
  expect(isStrList(record.aliases), `${at}.aliases`, "expected a list of paths");
  expect(isNumOrNull(record.size), `${at}.size`, "expected a number or null");
  expect(isPlainObject(record.hashes) && Object.values(record.hashes).every(isStr), `${at}.hashes`, "expected an object of strings");
  expect(
    typeof record.status === "string" && STATUSES.has(record.status),
    `${at}.status`,
    `expected one of ${RECORD_STATUSES.join(", ")}, got ${preview(record.status)}`,
  );
  expect(record.error === undefined || isStr(record.error), `${at}.error`, "expected a string");
  expect(record.reason === undefined || isStr(record.reason), `${at}.reason`, "expected a string");
  if (record.status === "found" || record.status === "gone") {
    expect(isPlainObject(record.civitai), `${at}.civitai`, `expected an object for a ${record.status} file`);
  }
  const infos = [record.civitai, ...(Array.isArray(record.ambiguous) ? record.ambiguous : [])];
  if (record.ambiguous !== undefined) expect(Array.isArray(record.ambiguous), `${at}.ambiguous`, "expected a list");
  infos.forEach((info, j) => {
    if (info === undefined) return;
    const where = j === 0 ? `${at}.civitai` : `${at}.ambiguous[${j - 1}]`;
    if (!isPlainObject(info)) {
      problems.push(`${where}: expected an object`);
      return;
    }
    expect(isNum(info.versionId), `${where}.versionId`, "expected a number");
    expect(isNumOrNull(info.modelId), `${where}.modelId`, "expected a number or null");
    for (const key of ["modelName", "modelType", "versionName", "baseModel", "creator", "description", "downloadUrl"]) {
      expect(isStrOrNull(info[key]), `${where}.${key}`, "expected a string or null");
    }
    expect(isStrList(info.trainedWords), `${where}.trainedWords`, "expected a list of strings");
    expect(isStrList(info.tags), `${where}.tags`, "expected a list of strings");
    expect(isStr(info.pageUrl), `${where}.pageUrl`, "expected a string");
    expect(isStr(info.primaryDownloadUrl), `${where}.primaryDownloadUrl`, "expected a string");
    expect(info.matchedFile === null || isPlainObject(info.matchedFile), `${where}.matchedFile`, "expected an object or null");
    expect(isPlainObject(info.availability), `${where}.availability`, "expected an object");
  });
  // Library-wide fields are recomputed, but one of the wrong shape says the file was tampered with.
  for (const key of ["duplicate", "update", "gone"] as const) {
    expect(record[key] === undefined || isPlainObject(record[key]), `${at}.${key}`, "expected an object");
  }
  expect(record.otherVersions === undefined || Array.isArray(record.otherVersions), `${at}.otherVersions`, "expected a list");
  return problems;
}

/** A value quoted in a message: short, one line (the file may be hostile). */
function preview(value: unknown): string {
  const text = escapeControl(JSON.stringify(value) ?? String(value));
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** An inventory read for rendering: its top-level fields, its facts, and its records on demand. */
export interface InventorySource {
  /** Migrated; `summary` counts (files, byStatus, bytes, duplicates) recomputed from the records. */
  head: InventoryHead;
  facts: Facts;
  /** How many records there are. */
  count: number;
  /** The schema version it was written in (it has been migrated to SCHEMA_VERSION). */
  writtenAs: number;
  /**
   * Every record once, in `order`, with its library-wide fields (library-facts.ts `decorate`).
   * Each call reads them afresh; a record is dropped once the caller moves on.
   */
  records(order?: RecordOrder): Iterable<FileRecord>;
  /**
   * Optional: every record in path order as the JSON inventory writes it (render-json.ts
   * `recordText`, as text or its UTF-8 bytes), decorated; a source that keeps its records rendered
   * (record-spill.ts) gives them without parsing, rendering or even decoding them again. Bytes
   * are valid until the next record is taken (the source reuses its buffer).
   */
  recordTexts?(): Iterable<string | Uint8Array>;
}

/** The head with the counts of the records, as every writer puts them. */
function withFacts(head: InventoryHead, facts: Facts): InventoryHead {
  const f = facts.facts;
  return {
    ...head,
    schemaVersion: SCHEMA_VERSION,
    summary: { ...head.summary, files: f.files, byStatus: { ...f.byStatus }, bytes: f.bytes, duplicates: f.duplicates },
  };
}

function splitInventory(inventory: Inventory): { head: InventoryHead; records: FileRecord[] } {
  const { records, ...head } = inventory;
  return { head, records: records ?? [] };
}

/** An inventory already in memory (scan, tests) as a source; its records are not copied until asked. */
export function memorySource(inventory: Inventory, facts: Facts = factsOf(inventory.records ?? [])): InventorySource {
  const { head, records } = splitInventory(inventory);
  const sorted = new Map<RecordOrder, FileRecord[]>();
  return {
    head: withFacts(head, facts),
    facts,
    count: records.length,
    writtenAs: inventory.schemaVersion,
    *records(order: RecordOrder = "path") {
      let list = sorted.get(order);
      if (!list) sorted.set(order, (list = sortedRecords(records, order)));
      // No forced collections here (unlike the file sources): these records are live anyway, so a
      // full collection every 5,000 records walks the whole scan's heap each time, quadratic in
      // the records. A warm 100k `scan -o inventory.json` (bun run bench scale-hash --breakdown):
      // render + write 29.2 s with them, 9.7 s without; peak RSS 988 → 1,074 MiB. The engine
      // collects the renderer's short-lived garbage on its own.
      for (const r of list) yield facts.decorate(r);
    },
  };
}

/** Where each record is in the file, its path and its Markdown section; records themselves are not kept. */
interface RecordIndex {
  start: number[];
  end: number[];
  path: string[];
  /** An index into `sections` (a few distinct keys for thousands of records). */
  section: number[];
  sections: string[];
}

/** The record at index `i` of the file, parsed and migrated. */
function parseRecord(src: ByteSource, index: RecordIndex, i: number, chain: readonly Migration[]): FileRecord {
  let record: unknown = JSON.parse(textOf(src, index.start[i]!, index.end[i]!));
  for (const step of chain) record = step.record(record);
  return record as FileRecord;
}

function notOurs(source: string): string {
  return `${source} is not a civitai-meta inventory (expected a JSON file written by "civitai-meta scan")`;
}

/** The structure pass: top-level members parsed, the records' byte ranges found (not parsed). */
function scanStructure(src: ByteSource, source: string): { doc: Doc; lists: Map<string, number[]> } {
  const doc: Doc = Object.create(null);
  const lists = new Map<string, number[]>();
  try {
    scanJsonObject(
      src,
      {
        isArrayKey: (key) => key === "records" || key === "files",
        member: (key, start, end) => {
          doc[key] = JSON.parse(textOf(src, start, end));
        },
        array: (key) => {
          // A second list under the same key: JSON.parse would keep the last one, so do we.
          lists.set(key, []);
        },
        element: (key, start, end) => {
          lists.get(key)!.push(start, end);
        },
      },
      JSON_MAX_DEPTH,
    );
  } catch (err) {
    if (err instanceof JsonStreamError && err.kind === "notObject") throw new InventoryReadError(notOurs(source));
    if (err instanceof JsonStreamError && err.kind === "tooDeep") {
      // The renderers walk records recursively (docs/cases.md T21); ours are about eight levels deep.
      throw new InventoryReadError(
        `${source} is nested deeper than ${JSON_MAX_DEPTH} levels, which no civitai-meta inventory is; it was not read`,
      );
    }
    const why = err instanceof Error ? err.message : String(err);
    throw new InventoryReadError(`${source} is not valid JSON: ${why}`, { cause: err });
  }
  return { doc, lists };
}

/** The version check: ours, a whole number, not newer than this build reads. */
function checkVersion(doc: Doc, source: string): number {
  if (!isPlainObject(doc.tool) || doc.tool.name !== TOOL_NAME) throw new InventoryReadError(notOurs(source));
  const version = doc.schemaVersion;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 0) {
    throw new InventoryReadError(`${notOurs(source)}: schemaVersion is ${preview(version)}, expected a whole number`);
  }
  if (version > SCHEMA_VERSION) {
    const by = typeof doc.tool.version === "string" ? ` (civitai-meta ${escapeControl(doc.tool.version.slice(0, 40))})` : "";
    throw new InventoryReadError(
      `${source} was written by a newer civitai-meta${by}: inventory schema version ${version}, this version reads up to ${SCHEMA_VERSION}. Update civitai-meta to read it.`,
    );
  }
  return version;
}

function damaged(source: string, problems: readonly string[], total: number): InventoryReadError {
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS).join("; ");
  const more = total > MAX_LISTED_PROBLEMS ? ` (and ${total - MAX_LISTED_PROBLEMS} more)` : "";
  return new InventoryReadError(`${source} is a damaged civitai-meta inventory: ${listed}${more}`);
}

/** Record indices by Markdown section, in the report's order, then by path (`byPath` is in path order, the sort stable). */
function sectionOrder(index: RecordIndex, byPath: readonly number[]): number[] {
  const ids = [...index.sections.keys()].sort((a, b) => compareKeys(index.sections[a]!, index.sections[b]!));
  const rank = new Map(ids.map((id, r) => [id, r]));
  return [...byPath].sort((a, b) => rank.get(index.section[a]!)! - rank.get(index.section[b]!)!);
}

/**
 * The inventory in `src` (the bytes of `source`, a path or "stdin", used in messages), checked
 * whole before anything is rendered. Throws {@link InventoryReadError} when it is not JSON, not a
 * civitai-meta inventory, written by a newer civitai-meta, damaged, or lists a path twice.
 */
export function readInventorySource(src: ByteSource, source: string): InventorySource {
  const { doc, lists } = scanStructure(src, source);
  const version = checkVersion(doc, source);
  const chain = steps(version);
  const ranges = lists.get("records") ?? (version === 0 ? lists.get("files") : undefined);
  if (!ranges) throw new InventoryReadError(`${notOurs(source)}: it has no "records" list`);
  let head: Doc = { ...doc };
  delete head.records;
  if (version === 0) delete head.files;
  for (const step of chain) head = step.head(head);
  const problems = headProblems(head);
  let total = problems.length;

  // One parse of every record: check it, index it, and (when the file is in path order, as scan
  // writes it) gather the facts on the way.
  const index: RecordIndex = { start: [], end: [], path: [], section: [], sections: [] };
  const sectionIds = new Map<string, number>();
  const pressure = memoryPressure();
  let builder: FactsBuilder | null = new FactsBuilder();
  for (let i = 0; i * 2 < ranges.length; i++) {
    index.start.push(ranges[i * 2]!);
    index.end.push(ranges[i * 2 + 1]!);
    let record: FileRecord;
    try {
      record = parseRecord(src, index, i, chain);
    } catch (err) {
      throw new InventoryReadError(`${source} is not valid JSON: records[${i}]: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
    const found = recordProblems(record, i);
    total += found.length;
    if (problems.length < MAX_LISTED_PROBLEMS) problems.push(...found);
    const path = typeof record?.path === "string" ? record.path : "";
    if (builder && i > 0 && compareByteOrder(index.path[i - 1]!, path) > 0) builder = null;
    index.path.push(path);
    const section = found.length === 0 ? sectionOf(record) : "";
    let id = sectionIds.get(section);
    if (id === undefined) sectionIds.set(section, (id = index.sections.push(section) - 1));
    index.section.push(id);
    if (builder && found.length === 0) builder.add(record, i);
    pressure();
  }
  if (total > 0) throw damaged(source, problems, total);
  const count = index.path.length;
  const byPath = [...Array(count).keys()].sort((a, b) => compareByteOrder(index.path[a]!, index.path[b]!) || a - b);
  for (let k = 1; k < count; k++) {
    if (index.path[byPath[k]!] === index.path[byPath[k - 1]!]) {
      const [a, b] = [byPath[k - 1]!, byPath[k]!];
      throw new InventoryReadError(
        `${source} lists ${escapeControl(index.path[a]!)} twice (records[${a}] and records[${b}]): an inventory lists each file once. It was edited or merged by hand; remove one of the two, or scan again.`,
      );
    }
  }
  if (!builder) {
    // Not in path order (hand-edited): the facts want path order, so one more pass in that order.
    builder = new FactsBuilder();
    for (const i of byPath) builder.add(parseRecord(src, index, i, chain), i);
  }
  const facts = builder.finish((i) => index.path[i]!);
  const sections = new Map<RecordOrder, number[]>([["path", byPath]]);
  return {
    head: withFacts(head as unknown as InventoryHead, facts),
    facts,
    count,
    writtenAs: version,
    *records(order: RecordOrder = "path") {
      let list = sections.get(order);
      if (!list) {
        list = sectionOrder(index, byPath);
        sections.set(order, list);
      }
      const collect = memoryPressure();
      for (const i of list) {
        yield facts.decorate(parseRecord(src, index, i, chain));
        collect();
      }
    },
  };
}

/** A whole inventory from its text (tests, the HTML gallery): read, checked and decorated as {@link readInventorySource} does. */
export function readInventory(text: string, source: string): Inventory {
  const src = readInventorySource(bufferSource(Buffer.from(text)), source);
  return { ...src.head, records: [...src.records("path")] };
}
