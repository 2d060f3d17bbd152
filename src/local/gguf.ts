/**
 * GGUF header reader on a bounded prefix of the file (ggml docs/gguf.md): magic, version, tensor
 * and key/value counts, the key/value metadata, then as much of the tensor list as the prefix
 * holds (names and shapes feed the model guess). Every count and length is checked against what
 * is left in the buffer before anything is allocated; a prefix that ends early gives
 * `truncated: true`, not an error. Big-endian files (version bytes swapped) are refused.
 */
import { cutText, isDangerousKey, LOCAL_VALUE_MAX_CHARS } from "../shared/json-guard.ts";
import { METADATA_MAX_KEYS } from "./kohya-meta.ts";
import { FewNames } from "./safetensors-header.ts";
import type { GgufScalar, GgufSummary, GgufValue } from "./local-types.ts";

/** Metadata pairs at most: real files have tens; llama.cpp's own reader has no lower cap. */
const GGUF_MAX_KV = 100_000;
const GGUF_MAX_TENSORS = 1_000_000;
/** Spec: keys are at most 65535 bytes. */
const GGUF_MAX_KEY_BYTES = 65_535;
/**
 * Keys are kept in the record cut to this, and at most METADATA_MAX_KEYS of them (as safetensors'
 * `__metadata__`, docs/cases.md T13): the 100,000 pairs the parser accepts in an 8 MiB prefix made an
 * inventory record of 8 MB per file, and one warning per duplicate key 100,000 warning lines.
 */
const KEPT_KEY_MAX_CHARS = 200;
/** Read by the summary: kept wherever they appear. */
const SUMMARY_KEYS: ReadonlySet<string> = new Set(["general.architecture", "general.name", "general.file_type"]);
export const GGUF_ARRAY_HEAD_ITEMS = 8;
const MAX_ARRAY_NESTING = 4;
const MAX_DIMS = 8;

const GGUF_TYPE_NAMES = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "bool",
  "string",
  "array",
  "uint64",
  "int64",
  "float64",
] as const;

const FIXED_SIZES: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

interface GgufTensorInfo {
  name: string;
  shape: number[];
  /** ggml type number (0 F32, 1 F16, 8 Q8_0, …). */
  type: number;
}

export interface GgufParseResult {
  summary: GgufSummary | null;
  /** Tensor infos read from the prefix (may be fewer than `tensorCount` when truncated). */
  tensors: GgufTensorInfo[];
  /** The file is not (valid) GGUF. */
  errors: string[];
  /** Readable, with something odd (newer version, duplicate keys). */
  warnings: string[];
}

/** Thrown inside the parser when the buffer ends; caught and turned into `truncated`. */
class EndOfBuffer extends Error {}
/** Thrown inside the parser for a structural violation; caught and turned into an error line. */
class Invalid extends Error {}

const LENIENT_UTF8 = new TextDecoder("utf-8");

class Reader {
  pos = 0;
  private readonly view: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    readonly version: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get remaining(): number {
    return this.bytes.length - this.pos;
  }
  need(n: number | bigint): void {
    if (BigInt(n) > BigInt(this.remaining)) throw new EndOfBuffer();
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** Counts and lengths are u32 in version 1, u64 after. */
  count(): bigint {
    return this.version === 1 ? BigInt(this.u32()) : this.u64();
  }
  /** The next count without consuming it, or null when the buffer ends first. */
  peekCount(): bigint | null {
    const size = this.version === 1 ? 4 : 8;
    if (this.remaining < size) return null;
    return this.version === 1 ? BigInt(this.view.getUint32(this.pos, true)) : this.view.getBigUint64(this.pos, true);
  }
  /** Display data: decoded leniently (U+FFFD), and only the first `maxKeep` characters are kept. */
  string(maxKeep: number): string {
    const len = this.count();
    this.need(len);
    const n = Number(len);
    const slice = this.bytes.subarray(this.pos, this.pos + Math.min(n, maxKeep * 4));
    this.pos += n;
    const text = LENIENT_UTF8.decode(slice);
    return n > slice.length ? `${text.slice(0, maxKeep)}…[truncated ${n - slice.length} bytes]` : cutText(text, maxKeep);
  }
  skip(n: bigint): void {
    this.need(n);
    this.pos += Number(n);
  }
  scalar(type: number): GgufScalar {
    const size = FIXED_SIZES[type];
    if (size !== undefined) this.need(size);
    const p = this.pos;
    let value: GgufScalar;
    switch (type) {
      case 0:
        value = this.view.getUint8(p);
        break;
      case 1:
        value = this.view.getInt8(p);
        break;
      case 2:
        value = this.view.getUint16(p, true);
        break;
      case 3:
        value = this.view.getInt16(p, true);
        break;
      case 4:
        value = this.view.getUint32(p, true);
        break;
      case 5:
        value = this.view.getInt32(p, true);
        break;
      case 6:
        value = this.view.getFloat32(p, true);
        break;
      case 7: {
        const b = this.view.getUint8(p);
        if (b > 1) throw new Invalid(`bool value ${b}`);
        value = b === 1;
        break;
      }
      case 10:
        value = safeNumber(this.view.getBigUint64(p, true));
        break;
      case 11:
        value = safeNumber(this.view.getBigInt64(p, true));
        break;
      case 12:
        value = this.view.getFloat64(p, true);
        break;
      case 8:
        return this.string(LOCAL_VALUE_MAX_CHARS);
      default:
        throw new Invalid(`unknown value type ${type}`);
    }
    this.pos += size!;
    // JSON has no NaN/Infinity: keep them readable instead of turning into null.
    return typeof value === "number" && !Number.isFinite(value) ? String(value) : value;
  }
  value(type: number, nesting: number): GgufValue {
    if (type !== 9) return this.scalar(type);
    if (nesting >= MAX_ARRAY_NESTING) throw new Invalid("arrays nested too deep");
    const itemType = this.u32();
    const length = this.count();
    const itemName = GGUF_TYPE_NAMES[itemType];
    if (itemName === undefined) throw new Invalid(`unknown array item type ${itemType}`);
    // Every item takes at least one byte (a string at least its length field): a count larger
    // than the rest of the buffer cannot be real, and is refused before any loop or allocation.
    const minItem = BigInt(FIXED_SIZES[itemType] ?? (this.version === 1 ? 4 : 8));
    if (length * minItem > BigInt(this.remaining)) throw new EndOfBuffer();
    const n = Number(length);
    const head: GgufScalar[] = [];
    const fixed = FIXED_SIZES[itemType];
    if (fixed !== undefined) {
      for (let i = 0; i < Math.min(n, GGUF_ARRAY_HEAD_ITEMS); i++) head.push(this.scalar(itemType));
      this.skip(BigInt(Math.max(0, n - GGUF_ARRAY_HEAD_ITEMS)) * BigInt(fixed));
    } else {
      for (let i = 0; i < n; i++) {
        const item = this.value(itemType, nesting + 1);
        if (i < GGUF_ARRAY_HEAD_ITEMS && typeof item !== "object") head.push(item);
      }
    }
    return { array: true, itemType: itemName, length: n, head };
  }
}

/** The key/value pairs a record keeps: at most METADATA_MAX_KEYS keys (and SUMMARY_KEYS), cut; prototype names dropped. */
class KeptMetadata {
  readonly values: Record<string, GgufValue> = Object.create(null);
  readonly duplicates = new FewNames();
  dropped = 0;
  private kept = 0;

  add(key: string, value: GgufValue): void {
    if (isDangerousKey(key)) return;
    const name = cutText(key, KEPT_KEY_MAX_CHARS);
    if (Object.hasOwn(this.values, name)) this.duplicates.add(name);
    else if (this.kept >= METADATA_MAX_KEYS && !SUMMARY_KEYS.has(name)) {
      this.dropped++;
      return;
    } else this.kept++;
    this.values[name] = value;
  }
}

function safeNumber(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
}

function isGguf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;
}

/** Parses what `bytes` (a prefix of the file, or all of it) holds. Never throws. */
export function parseGguf(bytes: Uint8Array): GgufParseResult {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!isGguf(bytes)) return { summary: null, tensors: [], errors: ["invalid GGUF: bad magic"], warnings };
  if (bytes.length < 8) return { summary: null, tensors: [], errors: ["invalid GGUF: header too small"], warnings };
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (version === 0 || version > 0xffff) {
    return {
      summary: null,
      tensors: [],
      errors: [version > 0xffff ? "invalid GGUF: big-endian files are not supported" : `invalid GGUF: version ${version}`],
      warnings,
    };
  }
  if (version > 3) warnings.push(`GGUF version ${version} is newer than 3; read as version 3`);
  const r = new Reader(bytes, version);
  r.pos = 8;
  const kept = new KeptMetadata();
  const metadata = kept.values;
  const tensors: GgufTensorInfo[] = [];
  let tensorCount = 0;
  let kvCount = 0;
  let truncated = false;
  try {
    const tc = r.count();
    const kc = r.count();
    if (tc > BigInt(GGUF_MAX_TENSORS)) throw new Invalid(`tensor count ${tc} over the limit ${GGUF_MAX_TENSORS}`);
    if (kc > BigInt(GGUF_MAX_KV)) throw new Invalid(`metadata count ${kc} over the limit ${GGUF_MAX_KV}`);
    tensorCount = Number(tc);
    kvCount = Number(kc);
    for (let i = 0; i < kvCount; i++) {
      const keyLength = r.peekCount();
      if (keyLength !== null && keyLength > BigInt(GGUF_MAX_KEY_BYTES))
        throw new Invalid(`metadata key longer than ${GGUF_MAX_KEY_BYTES} bytes`);
      const key = r.string(GGUF_MAX_KEY_BYTES);
      const type = r.u32();
      if (GGUF_TYPE_NAMES[type] === undefined) throw new Invalid(`unknown value type ${type} for key "${cutText(key, 100)}"`);
      kept.add(key, r.value(type, 0));
    }
    for (let i = 0; i < tensorCount; i++) {
      const name = r.string(LOCAL_VALUE_MAX_CHARS);
      const dims = r.u32();
      if (dims > MAX_DIMS) throw new Invalid(`tensor with ${dims} dimensions`);
      const shape: number[] = [];
      for (let d = 0; d < dims; d++) {
        // u32 in version 1, like every size there (llama.cpp #2821 made them u64 in version 2).
        const v = r.count();
        shape.push(v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : Number.MAX_SAFE_INTEGER);
      }
      const type = r.u32();
      r.u64(); // offset within the data section
      tensors.push({ name, shape, type });
    }
  } catch (err) {
    if (err instanceof EndOfBuffer) truncated = true;
    else if (err instanceof Invalid) errors.push(`invalid GGUF: ${err.message}`);
    else throw err;
  }
  if (kept.duplicates.count > 0) warnings.push(`duplicate metadata keys (the last one counts): ${kept.duplicates.text()}`);
  if (kept.dropped > 0) warnings.push(`GGUF metadata has ${kvCount} keys; the first ${METADATA_MAX_KEYS} are kept`);
  const str = (k: string) => (typeof metadata[k] === "string" ? (metadata[k] as string) : null);
  const fileType = metadata["general.file_type"];
  return {
    summary: {
      version,
      tensorCount,
      kvCount,
      architecture: str("general.architecture"),
      name: str("general.name"),
      fileType: typeof fileType === "number" ? fileType : null,
      metadata,
      truncated,
    },
    tensors,
    errors,
    warnings,
  };
}

/** ggml tensor type numbers (ggml.h `enum ggml_type`) → names, for the dtype histogram. */
const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  // 31–33 were written for a while before support was removed (ggml.h keeps the numbers).
  31: "Q4_0_4_4",
  32: "Q4_0_4_8",
  33: "Q4_0_8_8",
  34: "TQ1_0",
  35: "TQ2_0",
  39: "MXFP4",
  40: "NVFP4",
  41: "Q1_0",
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPE_NAMES[type] ?? `type${type}`;
}
