/**
 * Parses and validates a safetensors JSON header the way huggingface/safetensors `read_metadata`
 * and `validate()` do (docs/reliability.md §4.7, docs/cases.md E5–E8), on bytes the caller already read. The length
 * rule (docs/cases.md E1–E4) is `checkSafetensorsHeader` in hash-algos.ts and runs before any allocation.
 * Never throws: every problem is a message in `errors` (the file is bad) or `warnings`.
 */
import { isPlainObject, own, parseJsonGuarded } from "../shared/json-guard.ts";

/** Bits per element for every dtype the reference implementation knows. */
export const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
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
  /** `__metadata__` string values, null-prototype, uncut; null when absent. */
  metadata: Record<string, string> | null;
  errors: string[];
  warnings: string[];
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function shortName(name: string): string {
  return name.length > NAME_MAX_CHARS ? `${name.slice(0, NAME_MAX_CHARS)}…` : name;
}

/** "a, b, c and 4 more": error lines stay short however many tensors are bad. */
function listSome(items: string[]): string {
  const shown = items
    .slice(0, MAX_LISTED)
    .map((s) => `"${shortName(s)}"`)
    .join(", ");
  return items.length > MAX_LISTED ? `${shown} and ${items.length - MAX_LISTED} more` : shown;
}

/**
 * `headerBytes` are the n bytes after the 8-byte length; `dataLength` is file size − 8 − n.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number | bigint): SafetensorsHeaderResult {
  const result: SafetensorsHeaderResult = { tensors: [], metadata: null, errors: [], warnings: [] };
  let text: string;
  try {
    text = UTF8.decode(headerBytes);
  } catch {
    result.errors.push("invalid header: not valid UTF-8");
    return result;
  }
  if (text.charCodeAt(0) === 0xfeff) {
    result.errors.push("invalid header: starts with a byte-order mark");
    return result;
  }
  if (!/^[ \t\r\n]*\{/.test(text)) {
    result.errors.push("invalid header: not a JSON object");
    return result;
  }
  const parsed = parseJsonGuarded(text);
  if (!parsed.ok) {
    result.errors.push(`invalid header: ${parsed.reason}`);
    return result;
  }
  if (!isPlainObject(parsed.value)) {
    result.errors.push("invalid header: not a JSON object");
    return result;
  }
  if (parsed.duplicateKeys.length > 0) {
    result.warnings.push(`duplicate keys in the header (only the last one counts): ${listSome(parsed.duplicateKeys)}`);
  }
  if (parsed.droppedKeys.length > 0) {
    result.warnings.push(`header keys ignored (prototype names): ${listSome(parsed.droppedKeys)}`);
  }

  const header = parsed.value;
  const invalid: string[] = [];
  for (const name of Object.keys(header)) {
    const entry = header[name];
    if (name === "__metadata__") {
      result.metadata = readMetadata(entry, result.warnings);
      continue;
    }
    const tensor = readTensorInfo(name, entry);
    if (tensor) result.tensors.push(tensor);
    else invalid.push(name);
  }
  if (invalid.length > 0) result.errors.push(`invalid tensor info (dtype, shape or data_offsets) for ${listSome(invalid)}`);
  result.errors.push(...validateTensors(result.tensors, BigInt(dataLength)));
  return result;
}

function readMetadata(entry: unknown, warnings: string[]): Record<string, string> | null {
  if (!isPlainObject(entry)) {
    warnings.push("__metadata__ is not an object; ignored");
    return null;
  }
  const out: Record<string, string> = Object.create(null);
  const nonString: string[] = [];
  for (const key of Object.keys(entry)) {
    const value = entry[key];
    if (typeof value === "string") out[key] = value;
    else nonString.push(key);
  }
  // The format says map<string,string>; nested values are the docs/cases.md E6 vector, so they are not kept.
  if (nonString.length > 0) warnings.push(`__metadata__ values that are not strings ignored: ${listSome(nonString)}`);
  return out;
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
