import { AppError, EXIT } from "../shared/errors.ts";
import { SCHEMA_VERSION, type Inventory } from "./inventory-types.ts";
import { JSON_MAX_DEPTH, scanJson, isPlainObject } from "../shared/json-guard.ts";
import { escapeControl } from "../shared/format.ts";

/**
 * Reads back a JSON inventory for `report`: parse, check it is ours, migrate an older format,
 * then check the shape the renderers rely on. The file may be hand-edited, truncated, another
 * tool's JSON or written by another version of civitai-meta, so each failure says which.
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

/**
 * One step per old version: `MIGRATIONS[n]` turns a version-n document into version n+1.
 * Steps are small and chained, so a v0 file reaches the current version through every step.
 *
 * v1 is the first released format; v0 is the pre-release shape (kept as the worked example of the
 * mechanism and tested): the list was called `files` instead of `records`, and the status of a
 * file Civitai does not know was spelled `"notfound"`.
 */
export const MIGRATIONS: Readonly<Record<number, (doc: Doc) => Doc>> = {
  0: (doc) => {
    const { files, ...rest } = doc;
    const records = Array.isArray(files)
      ? files.map((record: unknown) =>
          isPlainObject(record) && record.status === "notfound" ? { ...record, status: "not_found" } : record,
        )
      : files;
    return { ...rest, schemaVersion: 1, records };
  },
};

/** `doc` (of `doc.schemaVersion` ≤ SCHEMA_VERSION) brought to SCHEMA_VERSION; the input is not modified. */
export function migrate(doc: Doc): Doc {
  let current = doc;
  let version = current.schemaVersion as number;
  while (version < SCHEMA_VERSION) {
    const step = MIGRATIONS[version];
    if (!step) throw new Error(`no migration from inventory schema version ${version}`);
    current = step(current);
    version++;
    current.schemaVersion = version;
  }
  return current;
}

const STATUSES = new Set(["found", "not_found", "error", "skipped"]);

/** Problems with the fields the renderers read, as "where: what" lines. */
function shapeProblems(doc: Doc): string[] {
  const problems: string[] = [];
  const expect = (ok: boolean, where: string, what: string) => {
    if (!ok) problems.push(`${where}: ${what}`);
  };
  const isStr = (v: unknown) => typeof v === "string";
  const isStrOrNull = (v: unknown) => v === null || typeof v === "string";
  const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  const isNumOrNull = (v: unknown) => v === null || isNum(v);
  const isStrList = (v: unknown) => Array.isArray(v) && v.every(isStr);

  expect(isStr(doc.generatedAt), "generatedAt", "expected a string");
  expect(isStrList(doc.roots), "roots", "expected a list of paths");
  expect(isPlainObject(doc.options), "options", "expected an object");
  const summary = doc.summary;
  expect(
    isPlainObject(summary) && isNum(summary.files) && isNum(summary.bytes) && isPlainObject(summary.byStatus),
    "summary",
    "expected an object with files, bytes and byStatus",
  );

  const records = doc.records as unknown[];
  records.forEach((record, i) => {
    const at = `records[${i}]`;
    if (!isPlainObject(record)) {
      problems.push(`${at}: expected an object`);
      return;
    }
    expect(isStr(record.path) && record.path !== "", `${at}.path`, "expected a non-empty string");
    expect(isStrList(record.aliases), `${at}.aliases`, "expected a list of paths");
    expect(isNumOrNull(record.size), `${at}.size`, "expected a number or null");
    expect(isPlainObject(record.hashes) && Object.values(record.hashes).every(isStr), `${at}.hashes`, "expected an object of strings");
    expect(
      typeof record.status === "string" && STATUSES.has(record.status),
      `${at}.status`,
      `expected one of ${[...STATUSES].join(", ")}, got ${preview(record.status)}`,
    );
    expect(record.error === undefined || isStr(record.error), `${at}.error`, "expected a string");
    expect(record.reason === undefined || isStr(record.reason), `${at}.reason`, "expected a string");
    if (record.status === "found") expect(isPlainObject(record.civitai), `${at}.civitai`, "expected an object for a found file");
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
  });
  return problems;
}

/** A value quoted in a message: short, one line (the file may be hostile). */
function preview(value: unknown): string {
  const text = escapeControl(JSON.stringify(value) ?? String(value));
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

function parseJson(text: string, source: string): unknown {
  // A BOM is what editors on Windows add when saving; it is not part of the JSON.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // The renderers walk the document recursively: a 200,000-deep value would overflow the stack
  // (docs/cases.md T21). Ours are about eight levels deep; depth is measured on the text, before parsing.
  if (scanJson(body, JSON_MAX_DEPTH, false).tooDeep) {
    throw new InventoryReadError(
      `${source} is nested deeper than ${JSON_MAX_DEPTH} levels, which no civitai-meta inventory is; it was not read`,
    );
  }
  try {
    return JSON.parse(body);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InventoryReadError(`${source} is not valid JSON: ${why}`, { cause: err });
  }
}

/**
 * The inventory in `text` (the contents of `source`, a path or "stdin", used in messages).
 * Throws {@link InventoryReadError} when it is not JSON, not a civitai-meta inventory, written by a
 * newer civitai-meta, or damaged.
 */
export function readInventory(text: string, source: string): Inventory {
  const doc = parseJson(text, source);
  const notOurs = `${source} is not a civitai-meta inventory (expected a JSON file written by "civitai-meta scan")`;
  if (!isPlainObject(doc) || !isPlainObject(doc.tool) || doc.tool.name !== TOOL_NAME) throw new InventoryReadError(notOurs);
  const version = doc.schemaVersion;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 0) {
    throw new InventoryReadError(`${notOurs}: schemaVersion is ${preview(version)}, expected a whole number`);
  }
  if (version > SCHEMA_VERSION) {
    const by = typeof doc.tool.version === "string" ? ` (civitai-meta ${escapeControl(doc.tool.version.slice(0, 40))})` : "";
    throw new InventoryReadError(
      `${source} was written by a newer civitai-meta${by}: inventory schema version ${version}, this version reads up to ${SCHEMA_VERSION}. Update civitai-meta to read it.`,
    );
  }
  const migrated = migrate(doc);
  if (!Array.isArray(migrated.records)) throw new InventoryReadError(`${notOurs}: it has no "records" list`);
  const problems = shapeProblems(migrated);
  if (problems.length > 0) {
    const listed = problems.slice(0, MAX_LISTED_PROBLEMS).join("; ");
    const more = problems.length > MAX_LISTED_PROBLEMS ? ` (and ${problems.length - MAX_LISTED_PROBLEMS} more)` : "";
    throw new InventoryReadError(`${source} is a damaged civitai-meta inventory: ${listed}${more}`);
  }
  return migrated as unknown as Inventory;
}
