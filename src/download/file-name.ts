import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { encodeFsName, rawSafe } from "../shared/fs-path.ts";
import { TEMP_PREFIX } from "../shared/temp-name.ts";

/**
 * File names from Civitai (`files[].name`) or an inventory's paths are untrusted input that
 * becomes a path (docs/reliability.md §4.2, ostris/ai-toolkit#852, pip #6418); a storage server's
 * Content-Disposition is never used. Pure string work; the caller resolves `realpath(dir)` before
 * calling {@link joinWithin}.
 */

/** Most filesystems (ext4, APFS, NTFS in UTF-16 units) cap one name at 255; bytes is the strict reading. */
export const MAX_NAME_BYTES = 255;

// C0, DEL and C1 controls (NUL included): invisible, and terminal escapes when printed (CWE-150).
// Then the bidi controls (U+202E shows `invoice\u202Egnp.exe` as "invoiceexe.png", CVE-2021-42574),
// and the invisible characters that only hide what a name says: zero-width space, word joiner,
// BOM, line and paragraph separators. Zero-width joiners stay: emoji and several scripts need them.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u202a-\u202e\u2028\u2029\u2060\u2066-\u2069\ufeff]/g;
/** The bidi and invisible characters of CONTROL_RE alone (printers escape them; C0/C1 are escapeControl's). */
export const INVISIBLE_RE = /[\u061c\u200b\u200e\u200f\u202a-\u202e\u2028\u2029\u2060\u2066-\u2069\ufeff]/g;
// Reserved on Windows (`a:b` is an alternate data stream, curl CVE-2016-0754); `/` and `\` are already split off.
// `$` and the backtick are legal everywhere, but a shell or envsubst acts on them: a name from the API
// such as `lora_${CIVITAI_API_KEY}.safetensors` would receive the key when an emitted list is run
// through envsubst. Replacing them here keeps `download` and `--emit` naming the same file.
const RESERVED_CHARS_RE = /[<>:"/\\|?*$`]/g;
// Lone surrogates: U+DC80–U+DCFF stand for raw name bytes (shared/fs-path.ts) and are kept when the
// name is a path from our own inventory; any other lone surrogate has no bytes at all.
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const RAW_BYTE_RE = /^[\udc80-\udcff]$/;
// Device names are reserved with any extension ("CON.safetensors" opens the console on Windows),
// and with spaces before it ("CON .safetensors" too: Windows drops them; Python's ntpath.isreserved).
// (CONIN$ and CONOUT$ need no entry: `$` is replaced above.)
const RESERVED_NAME_RE = /^(con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³]) *(\.|$)/i;
// Our own transfer files beside a target (resume-state.ts: `<name>.<versionId>.part`, `.part.json`,
// `.part.lock`). A file given such a name would be taken for another file's `.part`: truncated,
// refilled and renamed away (docs/cases.md F3). `part` gets a `_`, as a device name does.
const TRANSFER_NAME_RE = /(\.\d+\.part)((?:\.json|\.lock)?)$/i;

export interface SanitizeOptions {
  /** Byte cap for the result (default 255); callers that append `.part` suffixes pass less. */
  maxBytes?: number;
  /** Keep escaped raw bytes (U+DC80–U+DCFF from decodeFsName): a path from our inventory, not an API name. */
  rawBytes?: boolean;
}

/** Bytes on disk: UTF-8, an escaped raw byte counting as the one byte it stands for. */
const byteLength = (text: string): number => encodeFsName(text).length;

/** Cuts `text` to at most `max` UTF-8 bytes without splitting a code point. */
function cutToBytes(text: string, max: number): string {
  if (max <= 0) return "";
  if (byteLength(text) <= max) return text;
  let out = "";
  let used = 0;
  for (const ch of text) {
    const n = byteLength(ch);
    if (used + n > max) break;
    out += ch;
    used += n;
  }
  return out;
}

/**
 * One safe path component from an untrusted name, or null when nothing usable is left (empty,
 * `.`, `..`). Takes the basename after `\` → `/`, drops controls and bidi/invisible format
 * characters, replaces `<>:"/\|?*` and `$` and backticks with `_`,
 * suffixes Windows device names and the `.<id>.part` of names like our transfer files with `_`,
 * prefixes names in our temp files' shape (`.civitai-meta-tmp-…`) with `_`,
 * trims trailing dots and spaces, NFC, ≤ maxBytes UTF-8 keeping the extension.
 */
export function sanitizeFileName(name: string, options: SanitizeOptions = {}): string | null {
  const max = options.maxBytes ?? MAX_NAME_BYTES;
  if (typeof name !== "string") return null;
  const base = name.replace(/\\/g, "/").split("/").pop() ?? "";
  const keepRaw = options.rawBytes === true;
  const wellFormed = base.replace(LONE_SURROGATE_RE, (ch) => (keepRaw && RAW_BYTE_RE.test(ch) ? ch : "\ufffd"));
  let out = wellFormed.normalize("NFC").replace(CONTROL_RE, "").replace(RESERVED_CHARS_RE, "_");
  // "spam. . ." is "spam" on Windows (cpython#95486); leading spaces are legal but invisible.
  out = out.replace(/[. ]+$/, "").replace(/^ +/, "");
  if (out === "" || out === "." || out === "..") return null;
  if (RESERVED_NAME_RE.test(out)) {
    const dot = out.indexOf(".");
    out = dot === -1 ? `${out}_` : `${out.slice(0, dot)}_${out.slice(dot)}`;
  }
  if (byteLength(out) > max) out = capKeepingExtension(out, max);
  out = out.replace(/[. ]+$/, "");
  // Our atomic writes' temp names: walkers skip them unseen, so a file under one would be missing
  // from every later inventory of the folder (and taken for a killed writer's leftover).
  if (out.startsWith(TEMP_PREFIX)) out = `_${byteLength(out) + 1 > max ? capKeepingExtension(out, max - 1) : out}`;
  if (TRANSFER_NAME_RE.test(out)) {
    // Room for the `_` first; a cut that ends the match leaves nothing to rename.
    if (byteLength(out) + 1 > max) out = capKeepingExtension(out, max - 1).replace(/[. ]+$/, "");
    out = out.replace(TRANSFER_NAME_RE, "$1_$2");
  }
  return out === "" || out === "." || out === ".." ? null : out;
}

function capKeepingExtension(name: string, max: number): string {
  const dot = name.lastIndexOf(".");
  // An "extension" longer than 32 bytes is just part of a long name.
  const ext = dot > 0 && byteLength(name.slice(dot)) <= 32 ? name.slice(dot) : "";
  const stem = ext ? name.slice(0, dot) : name;
  return cutToBytes(stem, max - byteLength(ext)) + ext;
}

/**
 * A relative path (from an inventory) made of sanitised components, joined with `/`; null when a
 * component is `..` or nothing is left. Empty and `.` components are dropped.
 */
export function sanitizeRelativePath(path: string, options: SanitizeOptions = {}): string | null {
  const parts = path
    .replace(/\\/g, "/")
    .split("/")
    .filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) return null;
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    const clean = sanitizeFileName(parts[i]!, last ? options : { rawBytes: options.rawBytes });
    if (clean === null) return null;
    out.push(clean);
  }
  return out.join("/");
}

/** The folder of `path`, raw bytes kept (node:path's dirname loses them in Bun). */
export function parentOf(path: string): string {
  return rawSafe(dirname, path);
}

export class PathEscapeError extends Error {
  override name = "PathEscapeError";
}

/**
 * `dir` joined with the relative `name`, guaranteed to stay strictly inside `dir` (pass
 * `realpath(dir)` so a symlinked DIR is compared by its real location). Throws otherwise.
 */
export function joinWithin(dir: string, name: string): string {
  return rawSafe(joinWithinPlain, dir, name);
}

function joinWithinPlain(dir: string, name: string): string {
  if (name === "" || isAbsolute(name) || /^[a-zA-Z]:/.test(name)) throw new PathEscapeError(`not a relative name: ${JSON.stringify(name)}`);
  const root = resolve(dir);
  const target = resolve(root, name);
  const rel = relative(root, target);
  if (
    rel === "" ||
    rel === ".." ||
    rel.startsWith(`..${sep}`) ||
    isAbsolute(rel) ||
    !target.startsWith(root.endsWith(sep) ? root : root + sep)
  ) {
    throw new PathEscapeError(`${JSON.stringify(name)} would be outside ${root}`);
  }
  return target;
}
