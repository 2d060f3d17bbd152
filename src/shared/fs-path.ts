/**
 * File names that are not valid UTF-8, held losslessly in JS strings.
 *
 * Linux file names are bytes. Decoding them as UTF-8 turns bad bytes into U+FFFD, and the file can
 * then never be opened again by that name. Like Python's "surrogateescape" (PEP 383), each byte of
 * an invalid sequence becomes the lone surrogate U+DC80–U+DCFF; valid UTF-8 can never contain one,
 * so encoding back yields the exact original bytes. JSON.stringify writes such a character as the
 * escape `\udcXX`, so inventories keep the name and `report` and `download` can use it again.
 */

import nodePath from "node:path";

const ESCAPE_BASE = 0xdc00;
// `u`: a low surrogate that is half of a pair (an emoji such as U+1F4BB) is one code point, not a match.
const RAW_BYTE_RE = /[\udc80-\udcff]/u;
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/** True when the string carries escaped raw bytes (from a name that was not valid UTF-8). */
export function hasRawBytes(text: string): boolean {
  return RAW_BYTE_RE.test(text);
}

/** Length of the valid UTF-8 sequence at `i`, or 0 (the Unicode well-formed byte table). */
function sequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const in_ = (j: number, lo: number, hi: number) => i + j < b.length && b[i + j]! >= lo && b[i + j]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return in_(1, 0x80, 0xbf) ? 2 : 0;
  if (c === 0xe0) return in_(1, 0xa0, 0xbf) && in_(2, 0x80, 0xbf) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return in_(1, 0x80, 0xbf) && in_(2, 0x80, 0xbf) ? 3 : 0;
  if (c === 0xed) return in_(1, 0x80, 0x9f) && in_(2, 0x80, 0xbf) ? 3 : 0;
  if (c === 0xf0) return in_(1, 0x90, 0xbf) && in_(2, 0x80, 0xbf) && in_(3, 0x80, 0xbf) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return in_(1, 0x80, 0xbf) && in_(2, 0x80, 0xbf) && in_(3, 0x80, 0xbf) ? 4 : 0;
  if (c === 0xf4) return in_(1, 0x80, 0x8f) && in_(2, 0x80, 0xbf) && in_(3, 0x80, 0xbf) ? 4 : 0;
  return 0;
}

/** A name's bytes as a string: UTF-8, with each byte of an invalid sequence escaped as U+DC80+. */
export function decodeFsName(bytes: Uint8Array): string {
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    // Rare path: decode sequence by sequence.
  }
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const n = sequenceLength(bytes, i);
    if (n === 0) {
      out += String.fromCharCode(ESCAPE_BASE + bytes[i]!);
      i += 1;
    } else {
      out += fatalDecoder.decode(bytes.subarray(i, i + n));
      i += n;
    }
  }
  return out;
}

/** The bytes a string names on disk: UTF-8, with escaped raw bytes turned back into themselves. */
export function encodeFsName(text: string): Buffer {
  if (!hasRawBytes(text)) return Buffer.from(text, "utf8");
  const parts: Buffer[] = [];
  let run = "";
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xdc80 && code <= 0xdcff && !(i > 0 && isHighSurrogate(text.charCodeAt(i - 1)))) {
      if (run) parts.push(Buffer.from(run, "utf8"));
      run = "";
      parts.push(Buffer.from([code - ESCAPE_BASE]));
    } else {
      run += text[i];
    }
  }
  if (run) parts.push(Buffer.from(run, "utf8"));
  return Buffer.concat(parts);
}

const utf8 = new TextEncoder();

/**
 * encodeFsName's bytes as a plain Uint8Array, for callers that need bytes and no Buffer (the hash
 * store's keys): TextEncoder took half of Buffer.from's time per name, and a cold hash of 100,000
 * files stores as many.
 */
export function fsNameBytes(text: string): Uint8Array {
  return hasRawBytes(text) ? encodeFsName(text) : utf8.encode(text);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * What to hand to node:fs for a path: the string itself when it is plain UTF-8 (the common case),
 * else its exact bytes.
 */
export function fsPath(path: string): string | Buffer {
  return hasRawBytes(path) ? encodeFsName(path) : path;
}

/** Escaped raw bytes shown as `\xNN`, the form reports and the terminal use for such names. */
export function showRawBytes(text: string): string {
  if (!hasRawBytes(text)) return text;
  return text.replace(/[\udc80-\udcff]/gu, (ch) => `\\x${(ch.charCodeAt(0) - ESCAPE_BASE).toString(16).padStart(2, "0")}`);
}

// ---------------------------------------------------------------------------------------------
// Path arithmetic that keeps raw bytes. Bun's node:path is native and turns every lone surrogate
// into U+FFFD (measured on 1.4.5: `join("/t", "a\udcff")` gives "/t/a\ufffd"), which would send the
// bytes of such a name to another file. One approach for every node:path function: `rawSafe`.

/**
 * Runs a node:path function (dirname, join, resolve, relative…) on paths that may hold escaped raw
 * bytes. The raw bytes are swapped for private-use characters that none of the paths (nor the
 * working directory, which resolve may add) contains, `fn` runs on those, and the result (or an
 * error's message) gets the raw bytes back. Paths without raw bytes go straight to `fn`.
 */
export function rawSafe(fn: (...paths: string[]) => string, ...paths: string[]): string {
  if (!paths.some(hasRawBytes)) return fn(...paths);
  const all = paths.join("") + process.cwd();
  let base = 0xe000;
  // A window of 128 private-use characters (U+E000–U+F8FF) the paths do not use.
  while ([...all].some((ch) => ch.charCodeAt(0) >= base && ch.charCodeAt(0) < base + 0x80)) {
    base += 0x80;
    if (base + 0x80 > 0xf900) throw new Error("cannot handle this path: it uses every private-use character");
  }
  const swapIn = (s: string) => s.replace(/[\udc80-\udcff]/g, (ch) => String.fromCharCode(base + ch.charCodeAt(0) - 0xdc80));
  const swapOut = (s: string) =>
    s.replace(/[\ue000-\uf8ff]/g, (ch) => {
      const k = ch.charCodeAt(0) - base;
      return k >= 0 && k < 0x80 ? String.fromCharCode(0xdc80 + k) : ch;
    });
  try {
    return swapOut(fn(...paths.map(swapIn)));
  } catch (err) {
    if (err instanceof Error) err.message = swapOut(err.message);
    throw err;
  }
}

/** `path.join`, keeping raw bytes. */
export function joinPath(...parts: string[]): string {
  return rawSafe(nodePath.join, ...parts);
}

/** `path.resolve`, keeping raw bytes. */
export function resolvePath(...parts: string[]): string {
  return rawSafe(nodePath.resolve, ...parts);
}

/** `path.dirname`, keeping raw bytes. */
export function dirnamePath(path: string): string {
  return rawSafe(nodePath.dirname, path);
}

/** `path.basename`, keeping raw bytes. */
export function basenamePath(path: string): string {
  return rawSafe(nodePath.basename, path);
}
