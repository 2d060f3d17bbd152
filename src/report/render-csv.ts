import { stringify } from "csv-stringify/sync";
import type { Inventory } from "./inventory-types.ts";
import { guessLabel, knownFromOf, localTriggerWords, trainingBaseModel } from "../local/local-summary.ts";
import type { FileRecord } from "./record-types.ts";
import { escapeControlKeepBreaks } from "../shared/format.ts";
import { memorySource, type InventorySource } from "./inventory-read.ts";
import { accessText, daysLeft } from "./access-text.ts";

/**
 * The CSV inventory: RFC 4180 (every text cell quoted, `"` doubled, CRLF line ends), UTF-8, one
 * header row and one row per file. Spreadsheet formula injection (docs/reliability.md §4.3, OWASP,
 * CWE-1236): a text cell that starts with `=`, `+`, `-`, `@`, tab, CR, LF or NUL gets a leading `'`,
 * which Excel, LibreOffice and Google Sheets show as text. Control characters (ESC, BEL, CR, C1,
 * bidi controls) and the raw bytes of a name that is not UTF-8 are shown as `\xNN` / `\uNNNN`, so
 * `cat inv.csv` runs no terminal escape (TAB and LF stay: data in a quoted cell). The numeric columns (size, model_id,
 * version_id) are written as bare numbers and never prefixed, so they still sort as numbers.
 * Lists (trained words, tags) are joined with "; ". Columns added later go at the end, so a
 * spreadsheet or script that reads columns by position keeps working.
 */

export interface CsvOptions {
  /** Prepend a UTF-8 byte order mark so Excel opens the file as UTF-8 (not the ANSI code page). */
  excel?: boolean;
}

export const CSV_COLUMNS = [
  "path",
  "file_name",
  "size",
  "sha256",
  "autov2",
  "status",
  "model_id",
  "model_name",
  "model_type",
  "version_id",
  "version_name",
  "base_model",
  "trained_words",
  "nsfw",
  "creator",
  "tags",
  "page_url",
  "download_url",
  "matched_by",
  "error_or_reason",
  // Local layer (issue #5): from the file's header and other tools' sidecars.
  "format",
  "architecture_guess",
  "local_trigger_words",
  "training_base_model",
  "known_from",
  "sidecar_model_id",
  "sidecar_model_name",
  "sidecar_version_id",
  "sidecar_version_name",
  // Issue 9 (docs/cases.md T17): the file's other names (hard or soft links), "; "-joined; JSON's `aliases`.
  "aliases",
  // Issue 12: what to act on. Copies (same SHA-256, other inodes) and other versions held.
  "copies",
  "duplicate_of",
  "other_versions_in_library",
  // A newer version for the file's base model (and whether the library holds it), and the newest overall.
  "update_version_id",
  "update_version_name",
  "update_published_at",
  "update_access",
  "update_in_library",
  "newest_version_id",
  "newest_version_name",
  "newest_base_model",
  // Gone from Civitai: why, and when it was last seen.
  "gone_reason",
  "last_seen_at",
  // Early or paid access of the file's own version, days left counted from the inventory's date.
  "access",
  "access_ends_at",
  "access_days_left",
  // The licence as declared by the uploader on Civitai (not checked by anyone).
  "declared_commercial_use",
  "declared_no_credit_needed",
  "declared_derivatives_allowed",
  "declared_different_license_allowed",
] as const;

type CsvColumn = (typeof CSV_COLUMNS)[number];

const CSV_LIST_SEPARATOR = "; ";

// OWASP's set plus NUL (ASVS 1.2.10): characters that make a spreadsheet read a cell as a formula.
const FORMULA_START_RE = /^[=+\-@\t\r\n\0]/;

/** A text cell made inert for spreadsheets: a leading `'` when it could start a formula. */
export function neutralizeFormula(value: string): string {
  return FORMULA_START_RE.test(value) ? `'${value}` : value;
}

/** The last component of a path, whether it was written on POSIX or Windows. */
export function fileNameOf(path: string): string {
  // A Linux file name may contain `\`: split on it only for paths that look like Windows ones.
  const windows = /^[A-Za-z]:[\\/]/.test(path) || path.startsWith("\\\\");
  const parts = path.split(windows ? /[\\/]/ : "/");
  for (let i = parts.length - 1; i >= 0; i--) {
    const part = parts[i];
    if (part) return part;
  }
  return path;
}

type Cell = string | number | null;

function text(value: string | null | undefined): string | null {
  return value === null || value === undefined || value === "" ? null : neutralizeFormula(escapeControlKeepBreaks(value));
}

function list(values: readonly string[] | undefined): string | null {
  return values && values.length > 0 ? text(values.join(CSV_LIST_SEPARATOR)) : null;
}

function integer(value: number | null | undefined): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function bool(value: boolean | null | undefined): string | null {
  return typeof value === "boolean" ? String(value) : null;
}

/** One CSV row (in {@link CSV_COLUMNS} order), cells already neutralised; `now` is the inventory's date. */
function csvRow(record: FileRecord, now: number): Cell[] {
  const c = record.civitai;
  const same = record.update?.sameBaseModel ?? null;
  const newest = record.update?.newest ?? null;
  const license = c?.license ?? null;
  const cells: Record<CsvColumn, Cell> = {
    path: text(record.path),
    file_name: text(fileNameOf(record.path)),
    size: integer(record.size),
    sha256: text(record.hashes.sha256),
    autov2: text(record.hashes.autov2),
    status: text(record.status),
    model_id: integer(c?.modelId),
    model_name: text(c?.modelName),
    model_type: text(c?.modelType),
    version_id: integer(c?.versionId),
    version_name: text(c?.versionName),
    base_model: text(c?.baseModel),
    trained_words: list(c?.trainedWords),
    nsfw: bool(c?.nsfw),
    creator: text(c?.creator),
    tags: list(c?.tags),
    page_url: text(c?.pageUrl),
    download_url: text(c?.downloadUrl),
    matched_by: text(record.matchedBy),
    error_or_reason: text(record.error ?? record.reason),
    format: text(record.local?.format),
    architecture_guess: text(guessLabel(record.local?.guess)),
    local_trigger_words: list(localTriggerWords(record.local)),
    training_base_model: text(trainingBaseModel(record.local)),
    known_from: text(knownFromOf(record)),
    sidecar_model_id: integer(record.sidecar?.modelId),
    sidecar_model_name: text(record.sidecar?.modelName),
    sidecar_version_id: integer(record.sidecar?.versionId),
    sidecar_version_name: text(record.sidecar?.versionName),
    aliases: list(record.aliases),
    copies: integer(record.duplicate?.copies),
    duplicate_of: list(record.duplicate?.others),
    other_versions_in_library: list(record.otherVersions?.map((v) => `${v.versionName ?? "version"} (${v.versionId})`)),
    update_version_id: integer(same?.versionId),
    update_version_name: text(same?.name),
    update_published_at: text(same?.publishedAt),
    update_access: text(same ? accessText(same.access, now) : null),
    update_in_library: list(same?.inLibrary),
    newest_version_id: integer(newest?.versionId),
    newest_version_name: text(newest?.name),
    newest_base_model: text(newest?.baseModel),
    gone_reason: text(record.gone?.reason),
    last_seen_at: text(record.gone?.lastSeenAt),
    access: text(c?.access?.kind),
    access_ends_at: text(c?.access?.endsAt),
    access_days_left: integer(c?.access ? daysLeft(c.access.endsAt, now) : null),
    declared_commercial_use: license ? (list(license.allowCommercialUse) ?? "none") : null,
    declared_no_credit_needed: bool(license?.allowNoCredit),
    declared_derivatives_allowed: bool(license?.allowDerivatives),
    declared_different_license_allowed: bool(license?.allowDifferentLicense),
  };
  return CSV_COLUMNS.map((column) => cells[column]);
}

const STRINGIFY_OPTIONS = {
  record_delimiter: "\r\n",
  // Quote every text cell (OWASP's advice) so `,` `;` `"` CR LF never depend on detection;
  // numbers stay bare; an empty cell (null) stays empty.
  quoted_string: true,
  quoted_empty: false,
} as const;

/** The CSV in pieces: the header row, then one row per record in path order (issue 11, target 2). */
export function* csvChunks(src: InventorySource, options: CsvOptions = {}): Generator<string> {
  yield stringify([[...CSV_COLUMNS]], { ...STRINGIFY_OPTIONS, bom: options.excel === true });
  const now = Date.parse(src.head.generatedAt);
  for (const record of src.records("path")) yield stringify([csvRow(record, now)], STRINGIFY_OPTIONS);
}

/** The whole CSV; same inventory, same bytes. */
export function renderCsv(inventory: Inventory, options: CsvOptions = {}): string {
  return [...csvChunks(memorySource(inventory), options)].join("");
}
