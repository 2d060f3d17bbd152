/**
 * `civitai-meta diff` output (issue 12, point 5): JSON for scripts, Markdown fit for a pull-request
 * comment or a CI step summary, CSV for a spreadsheet. Deterministic: the same two inventories
 * give the same bytes (no time of its own). Every text from the inventories is escaped per format
 * (md-escape.ts; CSV as render-csv.ts does it). Pure.
 */
import { stringify } from "csv-stringify/sync";
import type { ChangeSummary, DiffPair, DiffRecord, InventoryDiff } from "./diff.ts";
import { MD_EMPTY, mdRow, mdTableHead, mdText } from "./md-escape.ts";
import { shownPath, sizeCell } from "./md-cells.ts";
import { neutralizeFormula } from "./render-csv.ts";
import { escapeControlKeepBreaks, escapeJsonControls, plural, truncateText } from "../shared/format.ts";
import { dateOnly } from "./access-text.ts";

/** One side of a diff, as its header says it. */
export interface DiffSide {
  /** The path given on the command line (shown as given). */
  path: string;
  generatedAt: string;
  /** The schema version the file was written in (it was migrated when older). */
  schemaVersion: number;
  files: number;
  roots: string[];
}

export interface DiffDocument {
  old: DiffSide;
  new: DiffSide;
  summary: Omit<ChangeSummary, "previous">;
  diff: InventoryDiff;
}

/** The diff's version: bumped when a field changes meaning or is removed (docs/report-format.md). */
const DIFF_VERSION = 1;

const RECORD_KEYS = ["path", "sha256", "size", "status", "modelId", "modelName", "versionId", "versionName", "update"] as const;

function orderedRecord(r: DiffRecord): Record<string, unknown> {
  return Object.fromEntries(RECORD_KEYS.map((k) => [k, r[k]]));
}

const pair = (p: DiffPair) => ({ old: orderedRecord(p.old), new: orderedRecord(p.new) });

/** The diff as 2-space-indented JSON with a trailing newline. */
export function renderDiffJson(doc: DiffDocument, tool: { name: string; version: string }): string {
  const d = doc.diff;
  const side = (s: DiffSide) => ({
    path: s.path,
    generatedAt: s.generatedAt,
    schemaVersion: s.schemaVersion,
    files: s.files,
    roots: s.roots,
  });
  const out = {
    diffVersion: DIFF_VERSION,
    tool: { name: tool.name, version: tool.version },
    old: side(doc.old),
    new: side(doc.new),
    summary: doc.summary,
    added: d.added.map(orderedRecord),
    removed: d.removed.map(orderedRecord),
    moved: d.moved.map(pair),
    changed: d.changed.map(pair),
    statusChanged: d.statusChanged.map(pair),
    updates: d.updates.map(orderedRecord),
  };
  return `${escapeJsonControls(JSON.stringify(out, null, 2))}\n`;
}

const DIFF_CSV_COLUMNS = [
  "change",
  "path",
  "old_path",
  "status",
  "old_status",
  "sha256",
  "old_sha256",
  "size",
  "old_size",
  "model_id",
  "model_name",
  "version_id",
  "version_name",
  "update_version_id",
  "update_version_name",
  // What the old side said, where it differs (a file replaced by another version).
  "old_model_id",
  "old_model_name",
  "old_version_id",
  "old_version_name",
] as const;

type Cell = string | number | null;

function text(value: string | null | undefined): string | null {
  return value === null || value === undefined || value === "" ? null : neutralizeFormula(escapeControlKeepBreaks(value));
}

function csvRow(change: string, now: DiffRecord, old: DiffRecord | null): Cell[] {
  return [
    change,
    text(now.path),
    text(old && old.path !== now.path ? old.path : null),
    now.status,
    old?.status ?? null,
    text(now.sha256),
    text(old && old.sha256 !== now.sha256 ? old.sha256 : null),
    now.size,
    old && old.size !== now.size ? old.size : null,
    now.modelId,
    text(now.modelName),
    now.versionId,
    text(now.versionName),
    now.update?.versionId ?? null,
    text(now.update?.name),
    old && old.modelId !== now.modelId ? old.modelId : null,
    text(old && old.modelName !== now.modelName ? old.modelName : null),
    old && old.versionId !== now.versionId ? old.versionId : null,
    text(old && old.versionName !== now.versionName ? old.versionName : null),
  ];
}

/** One row per change (RFC 4180, CRLF, every text cell quoted and made inert as render-csv.ts does). */
export function renderDiffCsv(doc: DiffDocument, options: { excel?: boolean } = {}): string {
  const d = doc.diff;
  const rows: Cell[][] = [[...DIFF_CSV_COLUMNS]];
  for (const r of d.added) rows.push(csvRow("added", r, null));
  for (const r of d.removed) rows.push(csvRow("removed", r, null));
  for (const p of d.moved) rows.push(csvRow("moved", p.new, p.old));
  for (const p of d.changed) rows.push(csvRow("changed", p.new, p.old));
  for (const p of d.statusChanged) rows.push(csvRow("status", p.new, p.old));
  for (const r of d.updates) rows.push(csvRow("update", r, null));
  return stringify(rows, { bom: options.excel === true, record_delimiter: "\r\n", quoted_string: true, quoted_empty: false });
}

/** GitHub refuses a comment over 65,536 characters; the Markdown stays well under it. */
export const DIFF_MD_MAX_CHARS = 60_000;
/** Rows per section at most; the JSON has them all. */
const MAX_ROWS = 50;
/** Sections longer than this are folded. */
const FOLD = 10;
/** A path longer than this is cut in the Markdown (the JSON keeps it whole). */
const PATH_MAX = 160;

const STATUS_WORD: Readonly<Record<string, string>> = {
  found: "found",
  gone: "gone",
  not_found: "not found",
  error: "error",
  skipped: "skipped",
};

function modelText(r: DiffRecord): string {
  if (r.modelName === null && r.versionName === null) return MD_EMPTY;
  return mdText(truncateText([r.modelName ?? `model ${r.modelId}`, r.versionName].filter((x) => x !== null).join(" · "), PATH_MAX));
}

interface Section {
  title: string;
  header: string[];
  rows: string[][];
  right: number[];
}

function sections(doc: DiffDocument): Section[] {
  const d = doc.diff;
  const roots = doc.old.roots.length === 1 && doc.old.roots[0] === doc.new.roots[0] ? doc.new.roots : [];
  const file = (p: string) => mdText(truncateText(shownPath(p, roots), PATH_MAX));
  const status = (s: string) => mdText(STATUS_WORD[s] ?? s);
  const sha = (s: string | null) => (s === null ? MD_EMPTY : mdText(s.slice(0, 12)));
  return [
    {
      title: "Added",
      header: ["File", "Size", "Status", "Model · version"],
      right: [1],
      rows: d.added.map((r) => [file(r.path), sizeCell(r.size), status(r.status), modelText(r)]),
    },
    {
      title: "Removed",
      header: ["File", "Size", "Was", "Model · version"],
      right: [1],
      rows: d.removed.map((r) => [file(r.path), sizeCell(r.size), status(r.status), modelText(r)]),
    },
    {
      title: "Moved",
      header: ["From", "To", "Size"],
      right: [2],
      rows: d.moved.map((p) => [file(p.old.path), file(p.new.path), sizeCell(p.new.size)]),
    },
    {
      title: "Changed (same path, other bytes)",
      header: ["File", "Was", "Now"],
      right: [],
      rows: d.changed.map((p) => [
        file(p.new.path),
        `${sha(p.old.sha256)} ${modelText(p.old)}`,
        `${sha(p.new.sha256)} ${modelText(p.new)}`,
      ]),
    },
    {
      title: "Status changes",
      header: ["File", "Was", "Now", "Model · version"],
      right: [],
      rows: d.statusChanged.map((p) => [
        file(p.new.path),
        status(p.old.status),
        status(p.new.status),
        modelText(p.old.modelName !== null ? p.old : p.new),
      ]),
    },
    {
      title: "New updates",
      header: ["File", "Has", "Update"],
      right: [],
      rows: d.updates.map((r) => [
        file(r.path),
        modelText(r),
        mdText(truncateText(r.update?.name ?? `version ${r.update?.versionId}`, PATH_MAX)),
      ]),
    },
  ];
}

/** The one-line summary: counts of each kind of change. */
export function diffHeadline(s: Omit<ChangeSummary, "previous">): string {
  const parts = [`${s.added} added`, `${s.removed} removed`, `${s.moved} moved`, `${s.changed} changed`];
  parts.push(`${plural(s.statusChanged, "status change")} (${s.gone} gone, ${s.found} found)`, plural(s.updates, "new update"));
  return parts.join(", ");
}

/**
 * The diff as Markdown for a pull-request comment or a step summary: a headline, then one table
 * per kind of change (at most 50 rows each, folded past 10), never more than
 * {@link DIFF_MD_MAX_CHARS} characters.
 */
export function renderDiffMarkdown(doc: DiffDocument): string {
  const when = (s: DiffSide) => `${mdText(dateOnly(s.generatedAt))} (${plural(s.files, "file")})`;
  const out = [
    `### civitai-meta diff`,
    "",
    `From the inventory of ${when(doc.old)} to that of ${when(doc.new)}: **${diffHeadline(doc.summary)}**; ${doc.summary.unchanged} unchanged.`,
  ];
  let used = out.join("\n").length;
  for (const s of sections(doc)) {
    if (s.rows.length === 0) continue;
    const lines = [`#### ${s.title} (${s.rows.length})`, ""];
    const folded = s.rows.length > FOLD;
    if (folded) lines.push("<details>", `<summary>${s.rows.length} files</summary>`, "");
    lines.push(mdTableHead(s.header, s.right));
    let shown = 0;
    let size = lines.join("\n").length;
    for (const row of s.rows) {
      const line = mdRow(row);
      // Room kept for the closing lines of this section and the ones after it.
      if (shown >= MAX_ROWS || used + size + line.length + 1000 > DIFF_MD_MAX_CHARS) break;
      lines.push(line);
      size += line.length + 1;
      shown++;
    }
    if (shown < s.rows.length) lines.push("", `…and ${s.rows.length - shown} more (the JSON output lists them all).`);
    if (folded) lines.push("", "</details>");
    const block = lines.join("\n");
    used += block.length;
    out.push("", block);
  }
  if (
    doc.summary.added + doc.summary.removed + doc.summary.moved + doc.summary.changed + doc.summary.statusChanged + doc.summary.updates ===
    0
  ) {
    out.push("", "No change.");
  }
  return `${out.join("\n")}\n`;
}
