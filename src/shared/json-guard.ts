/**
 * Checks untrusted JSON before anything keeps it (docs/reliability.md §4.7, docs/cases.md E5/E6/E8). JSON.parse
 * accepts 10^6-deep arrays, but JSON.stringify or any recursive walk of the result then throws
 * RangeError, so depth is measured on the raw text, iteratively, BEFORE parsing. Parsed values are
 * then copied into null-prototype objects without `__proto__`-like keys so spreading or
 * Object.assign-ing them cannot change a prototype.
 */
import { codePointEnd } from "./format.ts";

/** serde_json's recursion limit, which the reference safetensors parser inherits. */
export const JSON_MAX_DEPTH = 128;
/** What a kept string may be at most; longer ones are cut with a marker. */
export const LOCAL_VALUE_MAX_CHARS = 1000;

const DANGEROUS_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export function isDangerousKey(key: string): boolean {
  return DANGEROUS_KEYS.has(key);
}

export interface JsonScanResult {
  /** Deepest nesting seen (1 for `{}`); when over the limit, the scan stops at limit + 1. */
  depth: number;
  tooDeep: boolean;
  /** Keys that appear twice in the same object (JSON.parse silently keeps the last). */
  duplicateKeys: string[];
}

const MAX_DUPLICATES_LISTED = 10;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

interface Frame {
  object: boolean;
  keys: Set<string> | null;
  /** In an object: the next string is a key. */
  expectKey: boolean;
}

/**
 * One pass over the text with an explicit stack: nesting depth and duplicate keys at every level.
 * Strings are skipped with their escapes; keys are decoded (JSON.parse of the short key token)
 * only to compare them. Malformed text is not judged here: JSON.parse does that afterwards.
 */
export function scanJson(text: string, maxDepth: number = JSON_MAX_DEPTH, findDuplicates = true): JsonScanResult {
  const stack: Frame[] = [];
  const duplicates: string[] = [];
  let depth = 0;
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      i++;
      while (i < len) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i += 2;
        else if (d === QUOTE) break;
        else i++;
      }
      const top = stack[stack.length - 1];
      if (top?.object && top.expectKey) {
        top.expectKey = false;
        if (top.keys) {
          const raw = text.slice(start + 1, i);
          let key = raw;
          if (raw.includes("\\")) {
            try {
              key = JSON.parse(`"${raw}"`) as string;
            } catch {
              continue;
            }
          }
          if (top.keys.has(key)) {
            if (duplicates.length < MAX_DUPLICATES_LISTED && !duplicates.includes(key)) duplicates.push(key);
          } else top.keys.add(key);
        }
      }
      continue;
    }
    switch (c) {
      case 0x7b: // {
      case 0x5b: // [
        stack.push({ object: c === 0x7b, keys: c === 0x7b && findDuplicates ? new Set() : null, expectKey: c === 0x7b });
        if (stack.length > depth) depth = stack.length;
        if (depth > maxDepth) return { depth, tooDeep: true, duplicateKeys: duplicates };
        break;
      case 0x7d: // }
      case 0x5d: // ]
        stack.pop();
        break;
      case 0x2c: {
        // ,
        const top = stack[stack.length - 1];
        if (top?.object) top.expectKey = true;
        break;
      }
    }
  }
  return { depth, tooDeep: false, duplicateKeys: duplicates };
}

export type GuardedJson = { ok: true; value: unknown; duplicateKeys: string[]; droppedKeys: string[] } | { ok: false; reason: string };

export interface ParseJsonOptions {
  maxDepth?: number;
  /** Longest text accepted, in UTF-16 code units. */
  maxChars?: number;
  findDuplicates?: boolean;
}

/**
 * JSON.parse behind the depth and size checks, with the result made prototype-safe. Never throws:
 * a reason string says why the text was refused.
 */
export function parseJsonGuarded(text: string, options: ParseJsonOptions = {}): GuardedJson {
  const maxDepth = options.maxDepth ?? JSON_MAX_DEPTH;
  if (options.maxChars !== undefined && text.length > options.maxChars) {
    return { ok: false, reason: `JSON too large (${text.length} characters, limit ${options.maxChars})` };
  }
  const scan = scanJson(text, maxDepth, options.findDuplicates ?? true);
  if (scan.tooDeep) return { ok: false, reason: `JSON nested deeper than ${maxDepth} levels` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not valid JSON (${err instanceof Error ? err.message.slice(0, 120) : "parse error"})` };
  }
  const dropped: string[] = [];
  return { ok: true, value: safeCopy(parsed, dropped), duplicateKeys: scan.duplicateKeys, droppedKeys: dropped };
}

/**
 * Deep copy into null-prototype objects, dropping `__proto__`, `constructor` and `prototype`
 * (their names are added to `dropped` once each).
 * Only call on values whose depth was checked (parseJsonGuarded does): the recursion is bounded
 * by that check.
 */
function safeCopy(value: unknown, dropped?: string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => safeCopy(v, dropped));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(value)) {
      if (DANGEROUS_KEYS.has(key)) {
        if (dropped && !dropped.includes(key)) dropped.push(key);
        continue;
      }
      out[key] = safeCopy((value as Record<string, unknown>)[key], dropped);
    }
    return out;
  }
  return value;
}

/** An object that is not null and not an array: the one test for "a JSON object" in src/. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** `text` parsed as JSON when it is an object, else null (bad JSON, an array, a scalar). */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return isPlainObject(value) ? value : null;
}

/** Own property or undefined: never reaches Object.prototype for names like `constructor`. */
export function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

const CUT_MARK_RE = /…\[truncated \d+ chars\]$/;

/**
 * Cuts `text` to `max` characters and says how much was dropped: "…[truncated N chars]". A text
 * already cut this way within `max` (the header parser cuts huge values as it reads them) is
 * returned as is, so the count stays the one of the original value.
 */
export function cutText(text: string, max: number = LOCAL_VALUE_MAX_CHARS): string {
  if (text.length <= max) return text;
  const mark = CUT_MARK_RE.exec(text);
  if (mark && mark.index <= max) return text;
  return cutPrefix(text, text.length, max);
}

/**
 * cutText for a value of which only a prefix was decoded: `prefix` holds at least its first
 * `max` characters, `totalLength` is the whole value's length.
 */
export function cutPrefix(prefix: string, totalLength: number, max: number = LOCAL_VALUE_MAX_CHARS): string {
  if (totalLength <= max) return prefix;
  // Do not split a surrogate pair: a lone surrogate is not valid UTF-8 when written out.
  const end = codePointEnd(prefix, max);
  return `${prefix.slice(0, end)}…[truncated ${totalLength - end} chars]`;
}
