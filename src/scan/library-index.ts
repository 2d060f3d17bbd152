/**
 * The library index (issue 14, docs/library-index.md): the hashes of every file under one scan
 * root, keyed by the path relative to that root with its size and mtime, so that machines mounting
 * the same NAS skip hashing what another machine already hashed. Pure: the format, its check, and
 * the rule for using an entry; scan/library-index-io.ts reads and writes the file.
 *
 * One JSON document with a header (format name, version) and the entries, not JSON lines: the file
 * is rewritten whole and renamed into place anyway, so appending buys nothing, while a document
 * that was cut short does not parse at all and is never half used (a JSON-lines file cut after
 * line 5,000 would read as a smaller, valid index). Names that are not valid UTF-8 travel as their
 * escaped form (shared/fs-path.ts), which JSON keeps exactly.
 *
 * What the index holds is what may be shared: relative paths, sizes, mtimes and hashes. Never an
 * absolute path (each machine mounts the NAS elsewhere, and a mount point names a user), the key or
 * anything from Civitai.
 */
import { HASH_ALGOS, type FileHashes, type HashAlgo } from "./types.ts";
import { isValidHashValue } from "../hash/hash-algos.ts";
import { isPlainObject } from "../shared/json-guard.ts";
import { compareByteOrder } from "./path-filter.ts";

export const INDEX_FORMAT = "civitai-meta library index";
const INDEX_VERSION = 1;

export interface IndexEntry {
  /** Relative to the scan root, `/`-separated; raw bytes escaped (fs-path.ts). */
  path: string;
  size: number;
  /** Nanoseconds since the epoch, as a decimal string (a Number would round it). */
  mtimeNs: string;
  hashes: FileHashes;
}

export interface LibraryIndex {
  format: typeof INDEX_FORMAT;
  version: typeof INDEX_VERSION;
  tool: { name: string; version: string };
  generatedAt: string;
  /** Sorted by path (byte order). */
  files: IndexEntry[];
}

export type IndexParse = { ok: true; entries: Map<string, IndexEntry> } | { ok: false; why: string };

const NS_RE = /^-?\d{1,30}$/;

/** The index as text: deterministic (entries sorted by path, keys in one order), one entry per line for diffs. */
export function renderLibraryIndex(entries: readonly IndexEntry[], tool: LibraryIndex["tool"], generatedAt: string): string {
  const sorted = [...entries].sort((a, b) => compareByteOrder(a.path, b.path));
  const head = JSON.stringify({ format: INDEX_FORMAT, version: INDEX_VERSION, tool, generatedAt });
  const lines = sorted.map((e) => JSON.stringify({ path: e.path, size: e.size, mtimeNs: e.mtimeNs, hashes: orderedHashes(e.hashes) }));
  // The header's fields, then "files": one JSON document, each entry on a line of its own.
  return `${head.slice(0, -1)},"files":[${lines.length > 0 ? `\n${lines.join(",\n")}\n` : ""}]}\n`;
}

function orderedHashes(hashes: FileHashes): FileHashes {
  const out: FileHashes = {};
  for (const algo of HASH_ALGOS) if (hashes[algo] !== undefined) out[algo] = hashes[algo];
  return out;
}

/**
 * The entries of an index file's text, or why it cannot be used: not JSON (corrupt or cut short),
 * another format (another tool's file), a newer version, or any entry that fails its check (then
 * none is trusted: a file that is wrong in one place may be wrong in others).
 */
export function parseLibraryIndex(text: string): IndexParse {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, why: "not valid JSON (damaged, or cut short while it was copied)" };
  }
  if (!isPlainObject(raw) || raw.format !== INDEX_FORMAT) return { ok: false, why: "not a civitai-meta library index" };
  if (typeof raw.version !== "number" || !Number.isInteger(raw.version)) return { ok: false, why: "its format version is unreadable" };
  if (raw.version > INDEX_VERSION) {
    return { ok: false, why: `written in index format ${raw.version} by a newer civitai-meta (this one reads format ${INDEX_VERSION})` };
  }
  if (raw.version !== INDEX_VERSION || !Array.isArray(raw.files)) return { ok: false, why: `not index format ${INDEX_VERSION}` };
  const entries = new Map<string, IndexEntry>();
  for (const [i, item] of raw.files.entries()) {
    const entry = parseEntry(item);
    if (entry === null) return { ok: false, why: `entry ${i + 1} is not valid` };
    if (entries.has(entry.path)) return { ok: false, why: `entry ${i + 1} repeats a path` };
    entries.set(entry.path, entry);
  }
  return { ok: true, entries };
}

function parseEntry(item: unknown): IndexEntry | null {
  if (!isPlainObject(item)) return null;
  const { path, size, mtimeNs, hashes } = item;
  if (typeof path !== "string" || !isRelativePath(path)) return null;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) return null;
  if (typeof mtimeNs !== "string" || !NS_RE.test(mtimeNs)) return null;
  if (!isPlainObject(hashes)) return null;
  const out: FileHashes = {};
  for (const [algo, value] of Object.entries(hashes)) {
    if (!(HASH_ALGOS as readonly string[]).includes(algo) || !isValidHashValue(algo as HashAlgo, value)) return null;
    out[algo as HashAlgo] = value;
  }
  // AutoV2 is the SHA-256's first ten digits: an entry where they disagree was not written by us.
  if (out.autov2 !== undefined && (out.sha256 === undefined || !out.sha256.startsWith(out.autov2))) return null;
  if (out.sha256 === undefined) return null;
  return { path, size, mtimeNs, hashes: out };
}

/** `a/b/c.safetensors`: no leading `/`, no empty, `.` or `..` part, no NUL. */
function isRelativePath(path: string): boolean {
  if (path === "" || path.length > 4096 || path.includes("\0")) return false;
  return path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/**
 * The hashes an entry gives a file, when it may: the same size and the same mtime to the
 * nanosecond, and every hash the scan needs for it. Anything less and the file is hashed.
 */
export function indexedHashes(entry: IndexEntry | undefined, size: number, mtimeNs: string, algos: readonly HashAlgo[]): FileHashes | null {
  if (entry === undefined || entry.size !== size || entry.mtimeNs !== mtimeNs) return null;
  if (!algos.every((algo) => entry.hashes[algo] !== undefined)) return null;
  const out: FileHashes = {};
  for (const algo of algos) out[algo] = entry.hashes[algo];
  return out;
}

/** `path` relative to `root` with `/` between parts, or null when it is not under it (a file given as the root: its name). */
export function relativeToRoot(path: string, root: string): string | null {
  if (path === root) {
    const name = root.slice(root.lastIndexOf("/") + 1);
    return name === "" ? null : name;
  }
  const prefix = root.endsWith("/") ? root : `${root}/`;
  if (!path.startsWith(prefix)) return null;
  const rel = path.slice(prefix.length);
  return isRelativePath(rel) ? rel : null;
}
