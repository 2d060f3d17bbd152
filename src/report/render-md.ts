import { collected } from "../shared/memory-pressure.ts";
import type { InventorySource } from "./inventory-read.ts";
import { memorySource } from "./inventory-read.ts";
import type { Inventory, InventoryHead } from "./inventory-types.ts";
import type { FileRecord, RecordStatus } from "./record-types.ts";
import { MD_EMPTY, mdAnchor, mdCode, mdLink, mdRow, mdTable, mdTableHead, mdText, Slugger, toSingleLine } from "./md-escape.ts";
import { formatBytes } from "../shared/format.ts";
import { typeAndBase, UNKNOWN_BASE, UNKNOWN_TYPE, type Count, type LibraryFacts, type NoteRow } from "./library-facts.ts";
import { ranked } from "./record-order.ts";
import {
  fileCell,
  licenseCell,
  localCell,
  modelCell,
  modelTitle,
  newerCell,
  notesCell,
  shownPath,
  sizeCell,
  triggerCell,
} from "./md-cells.ts";
import { dateOnly } from "./access-text.ts";
import { compareByteOrder } from "../scan/path-filter.ts";

/**
 * The Markdown inventory, for a person (issue 12, point 7): what to act on first (counts by status,
 * type and base model; updates, copies, files gone from Civitai, changes since the last scan), a
 * table of contents, then one table per type and base model (size and trigger words in the rows),
 * then the files not found, in error or skipped, then the lists behind the summary. Long tables
 * are folded in `<details>` elements that we write ourselves, around our own words only; every
 * untrusted string goes through md-escape.ts, the only links are civitai.com URLs we built and
 * anchors of our own headings, and nothing from a stranger becomes HTML. Written a table row at a
 * time (records in section order, record-order.ts), so a 100,000-file report is never one string.
 */

/** A table with more rows than this is folded (a reader opens the ones they need). */
export const FOLD_ROWS = 25;

const STATUS_LABEL: Readonly<Record<RecordStatus, string>> = {
  found: "Found on Civitai",
  gone: "Gone from Civitai",
  not_found: "Not found on Civitai",
  error: "Errors",
  skipped: "Skipped",
};

const STATUS_ORDER: readonly RecordStatus[] = ["found", "gone", "not_found", "error", "skipped"];

/** Sections after the typed ones, and their table columns. */
const OTHER_SECTIONS: readonly { status: RecordStatus; title: string; header: string[]; right: number[] }[] = [
  { status: "not_found", title: "Not found on Civitai", header: ["File", "Size", "SHA-256", "What the file says"], right: [1] },
  { status: "error", title: "Errors", header: ["File", "Error"], right: [] },
  { status: "skipped", title: "Skipped", header: ["File", "Reason"], right: [] },
];

const TYPED_HEADER = ["File", "Model · version", "Size", "Trigger words", "Licence (declared)", "Notes"];

function n(value: number): string {
  return value.toLocaleString("en-US");
}

/** "1 file", "2,000 files". */
function count(value: number, one: string): string {
  return `${n(value)} ${value === 1 ? one : `${one}s`}`;
}

/** "2025-01-02 03:04:05 UTC" from our ISO time; anything else (a hand-edited file) escaped as text. */
function whenText(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : mdText(iso);
}

function filesAndSize(c: Count): string {
  return `${count(c.files, "file")}, ${formatBytes(c.bytes)}`;
}

/** Every heading of the document in order, with GitHub's anchors (they must be numbered in document order). */
class Headings {
  private readonly slugger = new Slugger();
  readonly slugs = new Map<string, string>();

  add(key: string, text: string): void {
    this.slugs.set(key, this.slugger.slug(text));
  }

  link(key: string, text: string): string {
    return mdAnchor(text, this.slugs.get(key) ?? "");
  }
}

const typedKey = (type: string, base?: string) => (base === undefined ? `t\u0000${type}` : `b\u0000${type}\u0000${base}`);

function sortedEntries(map: ReadonlyMap<string, Count>): [string, Count][] {
  return [...map.entries()].sort((a, b) => b[1].files - a[1].files || compareByteOrder(a[0], b[0]));
}

/** Types and, per type, base models, in the order record-order.ts puts their records. */
function typeOrder(facts: LibraryFacts): { type: string; count: Count; bases: [string, Count][] }[] {
  const byRank = (unknown: string) => (a: [string, unknown], b: [string, unknown]) =>
    compareByteOrder(ranked(a[0], unknown), ranked(b[0], unknown));
  return [...facts.byTypeAndBase.entries()].sort(byRank(UNKNOWN_TYPE)).map(([type, bases]) => ({
    type,
    count: facts.byType.get(type)!,
    bases: [...bases.entries()].sort(byRank(UNKNOWN_BASE)),
  }));
}

/** The headings of this inventory's document, in document order. */
function planHeadings(facts: LibraryFacts): Headings {
  const h = new Headings();
  h.add("title", "Civitai model inventory");
  h.add("contents", "Contents");
  for (const t of typeOrder(facts)) {
    h.add(typedKey(t.type), t.type);
    for (const [base] of t.bases) h.add(typedKey(t.type, base), `${toSingleLine(t.type).trim()} · ${toSingleLine(base).trim()}`);
  }
  for (const s of OTHER_SECTIONS) if (facts.byStatus[s.status] > 0) h.add(s.status, s.title);
  if (facts.updates.length > 0) h.add("updates", "Updates");
  if (facts.gone.length > 0) h.add("gone", "Gone from Civitai");
  if (facts.duplicateSets.length > 0 || facts.severalVersions.length > 0) {
    h.add("duplicates", "Duplicates");
    if (facts.duplicateSets.length > 0) h.add("copies", "Copies of the same file");
    if (facts.severalVersions.length > 0) h.add("versions", "Several versions of one model");
  }
  if (facts.warnings.length > 0) h.add("warnings", "Warnings from file headers");
  return h;
}

function introLine(head: InventoryHead, facts: LibraryFacts): string {
  const roots = head.roots.length > 0 ? head.roots.map((r) => mdCode(r)).join(", ") : MD_EMPTY;
  const when = whenText(head.generatedAt);
  const o = head.options;
  const mode = o?.offline ? "offline (metadata cache only)" : o?.apiUrl ? `online (${o.apiUrl})` : "online";
  const tool = `${head.tool?.name ?? "?"} ${head.tool?.version ?? "?"}`;
  return `**${count(facts.files, "file")}**, ${formatBytes(facts.bytes)}, in ${roots}. Scanned ${when} by ${mdText(tool)}, ${mdText(mode)}.`;
}

function statusTable(facts: LibraryFacts, h: Headings): string {
  const rows = STATUS_ORDER.map((s) => {
    const key = s === "gone" ? "gone" : s;
    const label = h.slugs.has(key) && s !== "found" ? h.link(key, STATUS_LABEL[s]) : mdText(STATUS_LABEL[s]);
    return [label, n(facts.byStatus[s])];
  });
  return mdTable(["Status", "Files"], rows, [1]);
}

/** The "what to act on" list: updates, copies, gone, not found and errors, changes since last time. */
function actionLines(head: InventoryHead, facts: LibraryFacts, h: Headings): string[] {
  const lines: string[] = [];
  const fetch = facts.updatesToFetch;
  const otherBase = facts.updates.length - facts.updates.filter((r) => r.update?.sameBaseModel).length;
  if (facts.updates.length > 0) {
    const held = facts.updates.filter((r) => r.update?.sameBaseModel && r.update.sameBaseModel.inLibrary.length > 0).length;
    const parts = [`${count(fetch, "file")} with a newer version for the same base model`];
    if (held > 0) parts.push(`${held} more whose newer version the library already holds`);
    if (otherBase > 0) parts.push(`${otherBase} with a newer version only for another base model`);
    lines.push(`- **Updates:** ${parts.join("; ")}. See ${h.link("updates", "Updates")}.`);
  }
  const d = facts.duplicates;
  if (d.sets > 0 || d.modelsWithSeveralVersions > 0) {
    const parts: string[] = [];
    if (d.sets > 0)
      parts.push(`${count(d.sets, "set")} of identical files (${n(d.files)} files); ${formatBytes(d.reclaimableBytes)} could be freed`);
    if (d.modelsWithSeveralVersions > 0) parts.push(`${count(d.modelsWithSeveralVersions, "model")} with several versions in the library`);
    lines.push(`- **Duplicates:** ${parts.join("; ")}. See ${h.link("duplicates", "Duplicates")}.`);
  }
  if (facts.gone.length > 0)
    lines.push(`- **Gone from Civitai:** ${count(facts.gone.length, "file")}. See ${h.link("gone", "Gone from Civitai")}.`);
  for (const s of ["not_found", "error"] as const) {
    if (facts.byStatus[s] > 0)
      lines.push(`- **${STATUS_LABEL[s]}:** ${count(facts.byStatus[s], "file")}. See ${h.link(s, STATUS_LABEL[s])}.`);
  }
  if (facts.warnings.length > 0) {
    lines.push(`- **Header warnings:** ${count(facts.warnings.length, "file")}. See ${h.link("warnings", "Warnings from file headers")}.`);
  }
  const ch = head.summary.changes;
  if (ch) {
    const parts = [`${n(ch.added)} added`, `${n(ch.removed)} removed`, `${n(ch.moved)} moved`, `${n(ch.changed)} changed`];
    parts.push(
      `${count(ch.statusChanged, "status change")} (${n(ch.gone)} gone, ${n(ch.found)} found)`,
      `${count(ch.updates, "new update")}`,
    );
    lines.push(`- **Since the inventory of ${mdText(dateOnly(ch.previous.generatedAt))}:** ${parts.join(", ")}.`);
  }
  if (lines.length === 0) lines.push("- Nothing to act on: no updates, copies, files gone from Civitai, unknown files or errors.");
  return lines;
}

function countTable(label: string, map: ReadonlyMap<string, Count>): string {
  return mdTable(
    [label, "Files", "Size"],
    sortedEntries(map).map(([k, c]) => [mdText(k), n(c.files), formatBytes(c.bytes)]),
    [1, 2],
  );
}

function contents(facts: LibraryFacts, h: Headings): string {
  const lines: string[] = [];
  for (const t of typeOrder(facts)) {
    lines.push(`- ${h.link(typedKey(t.type), t.type)} (${filesAndSize(t.count)})`);
    for (const [base, c] of t.bases) lines.push(`  - ${h.link(typedKey(t.type, base), base)} (${n(c.files)})`);
  }
  for (const s of OTHER_SECTIONS)
    if (facts.byStatus[s.status] > 0) lines.push(`- ${h.link(s.status, s.title)} (${n(facts.byStatus[s.status])})`);
  if (facts.updates.length > 0) lines.push(`- ${h.link("updates", "Updates")} (${n(facts.updates.length)})`);
  if (facts.gone.length > 0) lines.push(`- ${h.link("gone", "Gone from Civitai")} (${n(facts.gone.length)})`);
  if (h.slugs.has("duplicates")) lines.push(`- ${h.link("duplicates", "Duplicates")}`);
  if (facts.warnings.length > 0) lines.push(`- ${h.link("warnings", "Warnings from file headers")} (${n(facts.warnings.length)})`);
  return lines.length > 0 ? lines.join("\n") : "No files.";
}

/** The document's first screen: title, one line on the scan, counts, what to act on, contents. */
function opening(head: InventoryHead, facts: LibraryFacts, h: Headings): string {
  const parts = [
    "# Civitai model inventory",
    "",
    introLine(head, facts),
    "",
    statusTable(facts, h),
    "",
    "**To act on**",
    "",
    ...actionLines(head, facts, h),
  ];
  if (facts.byType.size > 0) parts.push("", countTable("Type", facts.byType), "", countTable("Base model", facts.byBase));
  parts.push("", "Licences are as declared by the uploader on Civitai; nobody checked them.", "", "## Contents", "", contents(facts, h));
  return `${parts.join("\n")}\n`;
}

/** A table's opening: folded in our own `<details>` when long (a blank line lets Markdown resume inside). */
function openTable(rows: number, what: string, header: readonly string[], right: readonly number[]): string {
  const head = mdTableHead(header, right);
  return rows > FOLD_ROWS ? `\n<details>\n<summary>${what}</summary>\n\n${head}\n` : `\n${what}.\n\n${head}\n`;
}

function closeTable(rows: number): string {
  return rows > FOLD_ROWS ? "\n</details>\n" : "";
}

function typedRow(record: FileRecord, roots: readonly string[], now: number): string {
  const c = record.civitai!;
  return mdRow([fileCell(record, roots), modelCell(c), sizeCell(record.size), triggerCell(record), licenseCell(c), notesCell(record, now)]);
}

function otherRow(record: FileRecord, roots: readonly string[]): string {
  const file = fileCell(record, roots);
  if (record.status === "not_found") {
    return mdRow([file, sizeCell(record.size), record.hashes.sha256 ? mdText(record.hashes.sha256) : MD_EMPTY, localCell(record)]);
  }
  return mdRow([file, mdText(record.status === "error" ? (record.error ?? "unknown error") : (record.reason ?? "no reason given"))]);
}

/**
 * The sections of records, in section order: for each type a heading, for each base model a
 * heading and a table; then one table per other status. Rows are written as records arrive.
 */
function* recordSections(src: InventorySource): Generator<string> {
  const facts = src.facts.facts;
  const roots = src.head.roots;
  const now = Date.parse(src.head.generatedAt);
  let group: string | null = null;
  let groupRows = 0;
  let type: string | null = null;
  for (const record of src.records("sections")) {
    const tb = typeAndBase(record);
    const key = tb ? typedKey(tb.type, tb.base) : record.status;
    if (key !== group) {
      if (group !== null) yield closeTable(groupRows);
      group = key;
      if (tb) {
        if (tb.type !== type) yield `\n## ${mdText(tb.type)}\n`;
        type = tb.type;
        const c = facts.byTypeAndBase.get(tb.type)?.get(tb.base) ?? { files: 0, bytes: 0 };
        groupRows = c.files;
        yield `\n### ${mdText(tb.type)} · ${mdText(tb.base)}\n${openTable(c.files, filesAndSize(c), TYPED_HEADER, [2])}`;
      } else {
        const section = OTHER_SECTIONS.find((s) => s.status === record.status);
        groupRows = facts.byStatus[record.status];
        yield `\n## ${mdText(section?.title ?? record.status)}\n${openTable(groupRows, count(groupRows, "file"), section?.header ?? ["File", "Reason"], section?.right ?? [])}`;
      }
    }
    yield `${tb ? typedRow(record, roots, now) : otherRow(record, roots)}\n`;
  }
  if (group !== null) yield closeTable(groupRows);
}

function noteTitle(row: NoteRow): string {
  return row.versionId === null ? mdText(row.modelName) : modelCell({ ...row, versionId: row.versionId, pageUrl: row.pageUrl ?? "" });
}

/** The lists behind the summary: updates, gone, copies and versions, header warnings. */
function* noteSections(src: InventorySource, h: Headings): Generator<string> {
  const facts = src.facts.facts;
  const roots = src.head.roots;
  const now = Date.parse(src.head.generatedAt);
  if (facts.updates.length > 0) {
    yield "\n## Updates\n\nThe newest version for the file's own base model, and the newest of all when it is for another base model. A version the library already holds is not one to fetch.\n";
    yield openTable(
      facts.updates.length,
      count(facts.updates.length, "file"),
      ["File", "Has", "Newer, same base model", "In the library", "Newest overall"],
      [],
    );
    for (const row of collected(facts.updates)) {
      const u = row.update!;
      const held = u.sameBaseModel?.inLibrary ?? [];
      const newest = u.newest.versionId === u.sameBaseModel?.versionId ? "the same" : newerCell(u.newest, now, true);
      yield `${mdRow([fileCell(row, roots), noteTitle(row), newerCell(u.sameBaseModel, now), held.length > 0 ? held.map((p) => mdText(shownPath(p, roots))).join(", ") : "no", newest])}\n`;
    }
    yield closeTable(facts.updates.length);
  }
  if (facts.gone.length > 0) {
    yield "\n## Gone from Civitai\n\nCivitai knew these files and no longer serves them; what it said then is kept in the inventory.\n";
    yield openTable(facts.gone.length, count(facts.gone.length, "file"), ["File", "Was", "Why", "Last seen"], []);
    for (const row of collected(facts.gone)) {
      const why = row.gone?.reason === "archived" ? "archived, no file to download" : "no longer found";
      yield `${mdRow([fileCell(row, roots), noteTitle(row), why, row.gone?.lastSeenAt ? mdText(dateOnly(row.gone.lastSeenAt)) : MD_EMPTY])}\n`;
    }
    yield closeTable(facts.gone.length);
  }
  yield* duplicateSections(src, h);
  if (facts.warnings.length > 0) {
    yield "\n## Warnings from file headers\n";
    yield openTable(facts.warnings.length, count(facts.warnings.length, "file"), ["File", "Warning"], []);
    for (const row of collected(facts.warnings)) yield `${mdRow([fileCell(row, roots), row.warnings.map((w) => mdText(w)).join("; ")])}\n`;
    yield closeTable(facts.warnings.length);
  }
}

function* duplicateSections(src: InventorySource, h: Headings): Generator<string> {
  const facts = src.facts.facts;
  const roots = src.head.roots;
  if (!h.slugs.has("duplicates")) return;
  yield "\n## Duplicates\n";
  const sets = facts.duplicateSets;
  if (sets.length > 0) {
    yield `\n### Copies of the same file\n\nThe same bytes in several files (links to one file are not copies). Keeping one of each would free ${formatBytes(facts.duplicates.reclaimableBytes)}; a file with other names frees its space only when all its names are deleted.\n`;
    yield openTable(sets.length, count(sets.length, "set"), ["Files", "Size each", "Could free"], [1, 2]);
    for (const set of collected(sets)) {
      const more = set.copies > set.paths.length ? ` and ${n(set.copies - set.paths.length)} more` : "";
      yield `${mdRow([set.paths.map((path, i) => fileCell({ path, aliases: set.aliases[i] ?? [] }, roots)).join(", ") + more, sizeCell(set.size), formatBytes(set.reclaimableBytes)])}\n`;
    }
    yield closeTable(sets.length);
  }
  const models = facts.severalVersions;
  if (models.length > 0) {
    yield "\n### Several versions of one model\n";
    yield openTable(models.length, count(models.length, "model"), ["Model", "Versions in the library"], []);
    for (const m of collected(models)) {
      const title = mdLink(modelTitle({ ...m, versionId: m.versions[0]?.versionId ?? 0 }), `https://civitai.com/models/${m.modelId}`);
      const versions = m.versions.map(
        (v) =>
          `${mdText(v.versionName ?? `version ${v.versionId}`)} (${mdText(shownPath(v.path, roots))}${v.files > 1 ? ` and ${v.files - 1} more` : ""})`,
      );
      yield `${mdRow([title, versions.join(", ")])}\n`;
    }
    yield closeTable(models.length);
  }
}

/** The Markdown report in pieces (a table row at a time). */
export function* markdownChunks(src: InventorySource): Generator<string> {
  const facts = src.facts.facts;
  const h = planHeadings(facts);
  yield opening(src.head, facts, h);
  yield* recordSections(src);
  yield* noteSections(src, h);
}

/** The Markdown report of an inventory in memory; same inventory, same text. */
export function renderMarkdown(inventory: Inventory): string {
  return [...markdownChunks(memorySource(inventory))].join("");
}
