/**
 * Parses and validates a safetensors JSON header the way huggingface/safetensors `read_metadata`
 * and `validate()` do (docs/reliability.md §4.7, docs/cases.md E5–E8), on bytes the caller already read. The length
 * rule (docs/cases.md E1–E4) is `checkSafetensorsHeader` in hash-algos.ts and runs before any allocation.
 * Never throws: every problem is a message in `errors` (the file is bad) or `warnings`.
 */
import { cutPrefix, isDangerousKey, isPlainObject, JSON_MAX_DEPTH, LOCAL_VALUE_MAX_CHARS, own } from "../shared/json-guard.ts";
import { isUtf8 } from "node:buffer";
import { walkJsonObject, type JsonValueKind } from "./json-walk.ts";

/** Bits per element for every dtype the reference implementation knows. */
const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const MAX_RANK = 64;
const MAX_LISTED = 5;
const NAME_MAX_CHARS = 200;
const U64_LIMIT = 1n << 64n;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeaderResult {
  /** Valid tensor entries (invalid ones are reported in `errors` and left out). */
  tensors: SafetensorsTensorInfo[];
  /**
   * `__metadata__` string values, null-prototype; null when absent. Bounded (docs/cases.md T13): the first
   * METADATA_KEEP_KEYS keys plus the ones the extractors read (`ss_*`, `sshs_*`, `modelspec.*`, at
   * most METADATA_KEEP_KNOWN more), each value cut to METADATA_VALUE_MAX_BYTES (the nested-JSON
   * keys: NESTED_VALUE_MAX_BYTES).
   */
  metadata: Record<string, string> | null;
  /** How many string entries `__metadata__` holds, kept or not. */
  metadataCount: number;
  errors: string[];
  warnings: string[];
}

/** Metadata keys kept in order of appearance; real files have tens, a hostile one millions. */
export const METADATA_KEEP_KEYS = 1000;
/** Keys the extractors read, kept wherever they appear, up to this many. */
const METADATA_KEEP_KNOWN = 10_000;
const KNOWN_KEY_RE = /^(ss_|sshs_|modelspec\.)/;
const KNOWN_PREFIXES: readonly Uint8Array[] = ["ss_", "sshs_", "modelspec."].map((p) => new TextEncoder().encode(p));
/**
 * A kept value whose token is longer than this (in bytes) is cut to the 1,000 characters reports
 * and extractors use anyway (cutText), so 11,000 kept keys stay under 50 MB.
 */
const METADATA_VALUE_MAX_BYTES = 4 * 1024;
/** Values holding JSON that kohya-meta parses (tag lists can be a few MB). */
const NESTED_JSON_KEYS = new Set(["ss_tag_frequency", "ss_datasets", "ss_dataset_dirs"]);
const NESTED_VALUE_MAX_BYTES = 16 * 1024 * 1024;
/** One tensor entry is a dtype, a shape of at most 64 numbers and two offsets: far below this. */
const TENSOR_ENTRY_MAX_BYTES = 16 * 1024;
/** Real models have at most tens of thousands of tensors. */
const TENSORS_MAX = 500_000;

const UTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

function shortName(name: string): string {
  return name.length > NAME_MAX_CHARS ? `${name.slice(0, NAME_MAX_CHARS)}…` : name;
}

/** "a, b, c and 4 more": error lines stay short however many tensors are bad. */
function listSome(items: readonly string[], total = items.length): string {
  const shown = items
    .slice(0, MAX_LISTED)
    .map((s) => `"${shortName(s)}"`)
    .join(", ");
  const listed = Math.min(items.length, MAX_LISTED);
  return total > listed ? `${shown} and ${total - listed} more` : shown;
}

/** A few names and a count, for warnings about what may be millions of entries (GGUF keys too). */
export class FewNames {
  readonly names: string[] = [];
  count = 0;
  add(name: string): void {
    this.count++;
    if (this.names.length < MAX_LISTED && !this.names.includes(name)) this.names.push(name);
  }
  text(): string {
    return listSome(this.names, Math.max(this.count, this.names.length));
  }
}

function hasEscape(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start + 1; i < end - 1; i++) if (bytes[i] === 0x5c) return true;
  return false;
}

/** A JSON string token's value (`start`..`end` includes the quotes). */
function decodeString(bytes: Uint8Array, start: number, end: number): string {
  const inner = UTF8.decode(bytes.subarray(start + 1, end - 1));
  return hasEscape(bytes, start, end) ? (JSON.parse(`"${inner}"`) as string) : inner;
}

/** The length in UTF-16 units (a JS string's length) of the string token's value, without decoding it. */
function jsonStringLength(bytes: Uint8Array, start: number, end: number): number {
  let length = 0;
  for (let i = start + 1; i < end - 1; i++) {
    const c = bytes[i]!;
    if (c === 0x5c) {
      i += bytes[i + 1] === 0x75 ? 5 : 1; // \uXXXX or \n: one unit
      length++;
    } else if (c < 0x80 || c >= 0xc0) length += c >= 0xf0 ? 2 : 1; // a 4-byte sequence is a surrogate pair
  }
  return length;
}

/**
 * The value of a string token, whole when its token is at most `maxBytes` long; else cut at
 * LOCAL_VALUE_MAX_CHARS characters with cutText's marker and the exact count, from a decoded
 * prefix only, never inside an escape or a UTF-8 sequence.
 */
function decodeStringCut(bytes: Uint8Array, start: number, end: number, maxBytes: number): string {
  if (end - start - 2 <= maxBytes) return decodeString(bytes, start, end);
  // 8 bytes per character covers \uXXXX escapes and 4-byte sequences.
  const prefixBytes = Math.min(end - start - 2, LOCAL_VALUE_MAX_CHARS * 8);
  let text = UTF8.decode(bytes.subarray(start + 1, start + 1 + prefixBytes)).replace(/\ufffd+$/, "");
  // Drop an escape the prefix cut through: an odd run of backslashes within the last 6 characters.
  const tail = text.lastIndexOf("\\");
  if (tail >= 0 && tail >= text.length - 6) {
    let run = 0;
    while (tail - run >= 0 && text[tail - run] === "\\") run++;
    const needed = text[tail + 1] === "u" ? 6 : 2;
    if (run % 2 === 1 && tail + needed > text.length) text = text.slice(0, tail);
  }
  return cutPrefix(JSON.parse(`"${text}"`) as string, jsonStringLength(bytes, start, end));
}

/** Whether a key token starts with a prefix the extractors read, judged on the raw bytes (hot: no closures). */
function startsWithKnownPrefix(bytes: Uint8Array, start: number, end: number): boolean {
  const first = bytes[start + 1];
  if (first !== 0x73 && first !== 0x6d) return false; // "s" or "m"
  for (const p of KNOWN_PREFIXES) {
    if (end - start - 2 < p.length) continue;
    let k = 0;
    while (k < p.length && bytes[start + 1 + k] === p[k]) k++;
    if (k === p.length) return true;
  }
  return false;
}

/** What one pass over a header collects; names of odd entries are counted, a few kept for messages. */
class HeaderCollector {
  readonly tensors = new Map<string, SafetensorsTensorInfo>();
  readonly invalid = new FewNames();
  readonly duplicates = new FewNames();
  readonly dropped = new FewNames();
  readonly nonString = new FewNames();
  readonly warnings: string[] = [];
  metadata: Record<string, string> | null = null;
  metadataCount = 0;
  tooManyTensors = false;
  private metadataSeen = false;
  private knownKept = 0;

  constructor(private readonly bytes: Uint8Array) {}

  wantMembers(keyStart: number, keyEnd: number): boolean {
    return decodeString(this.bytes, keyStart, keyEnd) === "__metadata__";
  }

  topMember(keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, kind: JsonValueKind): void {
    const name = decodeString(this.bytes, keyStart, keyEnd);
    if (name === "__metadata__") {
      if (this.metadataSeen) this.duplicates.add(name);
      this.metadataSeen = true;
      if (kind !== "object") this.warnings.push("__metadata__ is not an object; ignored");
      else this.metadata ??= Object.create(null);
      return;
    }
    if (isDangerousKey(name)) {
      this.dropped.add(name);
      return;
    }
    if (this.tensors.has(name)) {
      this.duplicates.add(name);
      this.tensors.delete(name); // the last one counts
    }
    if (this.tensors.size >= TENSORS_MAX) {
      this.tooManyTensors = true;
      return;
    }
    let tensor: SafetensorsTensorInfo | null = null;
    if (kind === "object" && valueEnd - valueStart <= TENSOR_ENTRY_MAX_BYTES) {
      tensor = readTensorInfo(name, JSON.parse(UTF8.decode(this.bytes.subarray(valueStart, valueEnd))));
    }
    if (tensor) this.tensors.set(name, tensor);
    else this.invalid.add(name);
  }

  innerMember(keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, kind: JsonValueKind): void {
    this.metadata ??= Object.create(null);
    const meta = this.metadata as Record<string, string>;
    const b = this.bytes;
    // A key is decoded only when it may be kept: the first ones, or one the extractors read.
    const byOrder = this.metadataCount < METADATA_KEEP_KEYS;
    // Length 9 or 11: possibly __proto__, prototype or constructor, which are dropped and not counted.
    const length = keyEnd - keyStart - 2;
    const mayKeep =
      byOrder || length === 9 || length === 11 || startsWithKnownPrefix(b, keyStart, keyEnd) || hasEscape(b, keyStart, keyEnd);
    const key = mayKeep ? decodeStringCut(b, keyStart, keyEnd, 1024) : null;
    if (key !== null && isDangerousKey(key)) {
      this.dropped.add(key);
      return;
    }
    if (kind !== "string") {
      this.nonString.add(key ?? decodeStringCut(b, keyStart, keyEnd, 256));
      return;
    }
    if (key !== null && Object.hasOwn(meta, key)) {
      this.duplicates.add(key);
      meta[key] = this.keptValue(key, valueStart, valueEnd);
      return;
    }
    this.metadataCount++;
    if (key === null) return;
    if (!byOrder) {
      if (!KNOWN_KEY_RE.test(key) || this.knownKept >= METADATA_KEEP_KNOWN) return;
      this.knownKept++;
    }
    meta[key] = this.keptValue(key, valueStart, valueEnd);
  }

  private keptValue(key: string, start: number, end: number): string {
    return decodeStringCut(this.bytes, start, end, NESTED_JSON_KEYS.has(key) ? NESTED_VALUE_MAX_BYTES : METADATA_VALUE_MAX_BYTES);
  }
}

/**
 * `headerBytes` are the n bytes after the 8-byte length; `dataLength` is file size − 8 − n.
 * One pass over the bytes (json-walk.ts, depth ≤ 128): memory stays near the header's own size
 * whatever it holds, and only what is kept is decoded (docs/cases.md T13).
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number | bigint): SafetensorsHeaderResult {
  const result: SafetensorsHeaderResult = { tensors: [], metadata: null, metadataCount: 0, errors: [], warnings: [] };
  if (headerBytes[0] === 0xef && headerBytes[1] === 0xbb && headerBytes[2] === 0xbf) {
    result.errors.push("invalid header: starts with a byte-order mark");
    return result;
  }
  // Native and allocation-free: a 100 MB header must not become a 100-million-character string to be checked.
  if (!isUtf8(headerBytes)) {
    result.errors.push("invalid header: not valid UTF-8");
    return result;
  }
  const c = new HeaderCollector(headerBytes);
  const walk = walkJsonObject(headerBytes, c, JSON_MAX_DEPTH);
  if (!walk.ok) {
    // Nothing is kept from a header that is not valid JSON, as JSON.parse would have kept nothing.
    result.errors.push(`invalid header: ${walk.reason}`);
    return result;
  }
  result.metadata = c.metadata;
  result.metadataCount = c.metadataCount;
  result.tensors = [...c.tensors.values()];
  result.warnings.push(...c.warnings);
  if (c.duplicates.count > 0) result.warnings.push(`duplicate keys in the header (only the last one counts): ${c.duplicates.text()}`);
  if (c.dropped.count > 0) result.warnings.push(`header keys ignored (prototype names): ${c.dropped.text()}`);
  // The format says map<string,string>; nested values are the E6 vector, so they are not kept.
  if (c.nonString.count > 0) result.warnings.push(`__metadata__ values that are not strings ignored: ${c.nonString.text()}`);
  if (c.invalid.count > 0) result.errors.push(`invalid tensor info (dtype, shape or data_offsets) for ${c.invalid.text()}`);
  if (c.tooManyTensors) result.errors.push(`more than ${TENSORS_MAX} tensors: the rest were not read`);
  result.errors.push(...validateTensors(result.tensors, BigInt(dataLength)));
  return result;
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

function readTensorInfo(name: string, entry: unknown): SafetensorsTensorInfo | null {
  if (!isPlainObject(entry)) return null;
  const dtype = own(entry, "dtype");
  const shape = own(entry, "shape");
  const offsets = own(entry, "data_offsets");
  if (typeof dtype !== "string" || !Object.hasOwn(SAFETENSORS_DTYPE_BITS, dtype)) return null;
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(isNonNegativeInteger)) return null;
  if (!Array.isArray(offsets) || offsets.length !== 2) return null;
  const [begin, end] = offsets as unknown[];
  // Offsets must be exact: a float that only looks like a huge integer cannot be checked.
  if (!isNonNegativeInteger(begin) || !isNonNegativeInteger(end) || !Number.isSafeInteger(begin) || !Number.isSafeInteger(end)) return null;
  return { name, dtype, shape: shape as number[], begin, end };
}

/**
 * The reference `validate()`: offsets contiguous from 0 and increasing (InvalidOffset), size =
 * product(shape) × bits / 8 without overflow (ValidationOverflow, MisalignedSlice,
 * TensorInvalidInfo), and the data exactly filling the file (MetadataIncompleteBuffer: short data
 * or trailing bytes, the polyglot case). BigInt throughout, so no rounding.
 */
export function validateTensors(tensors: readonly SafetensorsTensorInfo[], dataLength: bigint): string[] {
  const errors: string[] = [];
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  const overlap: string[] = [];
  const gap: string[] = [];
  const overflow: string[] = [];
  const misaligned: string[] = [];
  const wrongSize: string[] = [];
  let expected = 0n;
  for (const t of sorted) {
    const begin = BigInt(t.begin);
    const end = BigInt(t.end);
    if (begin < expected || end < begin) overlap.push(t.name);
    else if (begin > expected) gap.push(t.name);
    if (end > expected) expected = end;

    let elements = 1n;
    for (const d of t.shape) elements *= BigInt(d);
    const bits = elements * BigInt(SAFETENSORS_DTYPE_BITS[t.dtype] ?? 0);
    if (bits >= U64_LIMIT) overflow.push(t.name);
    else if (bits % 8n !== 0n) misaligned.push(t.name);
    else if (bits / 8n !== end - begin) wrongSize.push(t.name);
  }
  if (overlap.length > 0) errors.push(`InvalidOffset: tensor data overlaps or runs backwards for ${listSome(overlap)}`);
  if (gap.length > 0) errors.push(`InvalidOffset: gap in tensor data before ${listSome(gap)}`);
  if (overflow.length > 0) errors.push(`ValidationOverflow: shape too large for ${listSome(overflow)}`);
  if (misaligned.length > 0) errors.push(`MisalignedSlice: size is not a whole number of bytes for ${listSome(misaligned)}`);
  if (wrongSize.length > 0) errors.push(`TensorInvalidInfo: data_offsets do not match dtype × shape for ${listSome(wrongSize)}`);
  if (expected > dataLength) {
    errors.push(
      `MetadataIncompleteBuffer: tensor data ends at byte ${expected} of the data section but the file holds ${dataLength} (truncated file)`,
    );
  } else if (expected < dataLength) {
    errors.push(`MetadataIncompleteBuffer: ${dataLength - expected} bytes after the last tensor (trailing data; possibly a polyglot file)`);
  }
  return errors;
}

/** Tensor count, dtype histogram and parameter count (as a Number, exact below 2^53). */
export function summariseTensors(tensors: readonly { dtype: string; shape: readonly number[] }[]): {
  count: number;
  dtypes: Record<string, number>;
  parameters: number;
} {
  const dtypes: Record<string, number> = Object.create(null);
  let parameters = 0n;
  for (const t of tensors) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    let n = 1n;
    for (const d of t.shape) n *= BigInt(d);
    parameters += n;
  }
  return { count: tensors.length, dtypes: { ...dtypes }, parameters: Number(parameters) };
}
