import { encodeFsName, hasRawBytes } from "./fs-path.ts";

/*
 * Text from outside (file names, API answers, file headers, arguments) is neutralised per sink:
 * - terminal (stderr logs, stdout of hash/inspect/cache on a terminal): `escapeControl`;
 * - CSV cells and HTML text: `escapeControlKeepBreaks` (TAB and LF stay: they are data there);
 * - Markdown: report/md-escape.ts, which builds on `escapeControl`;
 * - JSON: JSON escaping, plus `escapeJsonControls` for what JSON.stringify leaves raw.
 * Every control character becomes a visible escape rather than vanishing, so a hostile name is
 * noticed (CWE-150; docs/cases.md D6).
 */

/** C0 controls, DEL, C1 controls, and the bidi controls that reorder what a reader sees (Trojan Source). */
// `u` flag: U+DC80–U+DCFF only when lone (an escaped raw byte), never the second half of an emoji.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]/gu;
/** The same, less TAB and LF: kept where they are harmless data (CSV cells). */
const CONTROL_BUT_TAB_LF_RE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]/gu;

/** `\xNN` for a byte-sized control or an escaped raw byte (U+DC80–U+DCFF), `\uNNNN` for a bidi control. */
function visible(ch: string): string {
  const code = ch.charCodeAt(0);
  if (code >= 0xdc80 && code <= 0xdcff) return `\\x${(code - 0xdc00).toString(16).padStart(2, "0")}`;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * Makes untrusted text safe to print on a terminal: control characters, bidi controls and the raw
 * bytes of names that are not UTF-8 become visible `\xNN` / `\uNNNN` escapes. Idempotent.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL_RE, visible);
}

/** escapeControl for CSV cells and HTML text: TAB and LF stay, as the data they are there. */
export function escapeControlKeepBreaks(text: string): string {
  return text.replace(CONTROL_BUT_TAB_LF_RE, visible);
}

/**
 * The controls JSON.stringify writes raw (DEL, C1, bidi, and U+2028/U+2029, which editors and
 * JavaScript take for line breaks) as `\u` escapes: the same JSON value, safe to `cat`, and a
 * record written on one line stays one line for every reader.
 */
export function escapeJsonControls(json: string): string {
  return json.replace(
    /[\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * One checksum line as GNU coreutils writes it, as bytes: a name holding `\`, LF or CR gets a
 * leading `\` on the line and those three escaped (`\\`, `\n`, `\r`); any other byte, raw bytes
 * of a name that is not UTF-8 included, is written as is. `sha256sum -c` reads it back.
 */
export function checksumLine(hashes: string, name: string): Buffer {
  const special = /[\\\n\r]/.test(name);
  const shown = special ? name.replace(/[\\\n\r]/g, (ch) => (ch === "\\" ? "\\\\" : ch === "\n" ? "\\n" : "\\r")) : name;
  const line = `${special ? "\\" : ""}${hashes}  ${shown}\n`;
  return hasRawBytes(line) ? encodeFsName(line) : Buffer.from(line);
}

/** "1 file", "2 files", "0 files"; `many` for irregular plurals. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s % 60);
  if (m < 60) return `${m}m${String(rest).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * Words of `text` in lines of at most `width` columns. Existing line breaks are kept. A word longer
 * than a line (a path, an extension list) is broken after a `/` or `,`, and only when it has none
 * cut at the width.
 */
export function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    const words = paragraph.split(/ +/).filter((w) => w !== "");
    for (const word of words.flatMap((w) => (w.length > width ? breakLongWord(w, width) : [w]))) {
      if (line === "") line = word;
      else if (line.length + 1 + word.length <= width) line += ` ${word}`;
      else {
        out.push(line);
        line = word;
      }
    }
    out.push(line);
  }
  return out;
}

/** Pieces of `word`, each at most `width` long, cut after `/` or `,` where possible. */
function breakLongWord(word: string, width: number): string[] {
  const pieces: string[] = [];
  let rest = word;
  while (rest.length > width) {
    const window = rest.slice(0, width);
    const at = Math.max(window.lastIndexOf("/"), window.lastIndexOf(","));
    const cut = at > 0 ? at + 1 : width;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest !== "") pieces.push(rest);
  return pieces;
}

/** What a cut text ends with: one character, so a cut to `max` is exactly `max` long. */
export const TRUNCATION_MARK = "…";

/** The largest end ≤ `max` at which `text` can be cut without leaving half of a surrogate pair. */
export function codePointEnd(text: string, max: number): number {
  if (max <= 0) return 0;
  const last = text.charCodeAt(max - 1);
  return last >= 0xd800 && last <= 0xdbff ? max - 1 : max;
}

/**
 * `text` cut to at most `maxChars` characters with an ellipsis (server messages, descriptions): on a
 * code-point boundary, so no half surrogate pair (invalid in UTF-8) is left before the mark.
 */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const room = Math.max(0, maxChars - TRUNCATION_MARK.length);
  return text.slice(0, codePointEnd(text, room)).trimEnd() + TRUNCATION_MARK;
}
