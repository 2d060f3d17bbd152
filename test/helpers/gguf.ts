/**
 * Writes GGUF files for tests (ggml docs/gguf.md): header, typed key/values (arrays included),
 * tensor infos, alignment padding and F32/F16 tensor data. `countOverride` fields build the
 * bounds attacks.
 */

type GgufType =
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "uint32"
  | "int32"
  | "float32"
  | "bool"
  | "string"
  | "array"
  | "uint64"
  | "int64"
  | "float64";

const TYPE_IDS: Record<GgufType, number> = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
};

export type GgufKv =
  | { key: string; type: Exclude<GgufType, "array">; value: string | number | bigint | boolean }
  | {
      key: string;
      type: "array";
      itemType: Exclude<GgufType, "array">;
      items: (string | number | bigint | boolean)[];
      countOverride?: bigint;
    };

interface GgufTensorSpec {
  name: string;
  /** ggml order: innermost dimension first. */
  dims: number[];
  /** ggml type: 0 F32, 1 F16. */
  type?: number;
}

export interface BuildGgufOptions {
  version?: 1 | 2 | 3;
  kv: GgufKv[];
  tensors?: GgufTensorSpec[];
  /** Lie about the counts in the header. */
  tensorCountOverride?: bigint;
  kvCountOverride?: bigint;
  alignment?: number;
}

const UTF8 = new TextEncoder();

/**
 * Little-endian bytes into a buffer that doubles as it fills: a byte array pushed one number at a
 * time, a buffer and a DataView per scalar and an encoder per string took ~0.45 s for the 100,000
 * pairs of the hostile GGUF in test/e2e/scan-local.test.ts.
 */
class Writer {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  private at = 0;
  constructor(private readonly version: number) {}
  private room(size: number): number {
    if (this.at + size > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.at + size));
      grown.set(this.buf.subarray(0, this.at));
      this.buf = grown;
      this.dv = new DataView(grown.buffer);
    }
    const at = this.at;
    this.at += size;
    return at;
  }
  /** Writes `size` bytes at the end (the buffer grown first, so `dv` is the new one). */
  private put(size: number, set: (dv: DataView, at: number) => void): void {
    const at = this.room(size);
    set(this.dv, at);
  }
  bytes(b: ArrayLike<number>) {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  u8(v: number) {
    const at = this.room(1);
    this.buf[at] = v & 0xff;
  }
  u32(v: number) {
    this.put(4, (dv, at) => dv.setUint32(at, v, true));
  }
  u64(v: bigint) {
    this.put(8, (dv, at) => dv.setBigUint64(at, v, true));
  }
  count(v: bigint) {
    if (this.version === 1) this.u32(Number(v));
    else this.u64(v);
  }
  string(s: string) {
    const b = UTF8.encode(s);
    this.count(BigInt(b.length));
    this.bytes(b);
  }
  scalar(type: Exclude<GgufType, "array">, v: string | number | bigint | boolean) {
    switch (type) {
      case "uint8":
        return this.put(1, (dv, at) => dv.setUint8(at, Number(v)));
      case "int8":
        return this.put(1, (dv, at) => dv.setInt8(at, Number(v)));
      case "uint16":
        return this.put(2, (dv, at) => dv.setUint16(at, Number(v), true));
      case "int16":
        return this.put(2, (dv, at) => dv.setInt16(at, Number(v), true));
      case "uint32":
        return this.put(4, (dv, at) => dv.setUint32(at, Number(v), true));
      case "int32":
        return this.put(4, (dv, at) => dv.setInt32(at, Number(v), true));
      case "float32":
        return this.put(4, (dv, at) => dv.setFloat32(at, Number(v), true));
      case "bool":
        return this.u8(v ? 1 : 0);
      case "string":
        return this.string(String(v));
      case "uint64":
        return this.put(8, (dv, at) => dv.setBigUint64(at, BigInt(v), true));
      case "int64":
        return this.put(8, (dv, at) => dv.setBigInt64(at, BigInt(v), true));
      case "float64":
        return this.put(8, (dv, at) => dv.setFloat64(at, Number(v), true));
    }
  }
  get length() {
    return this.at;
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.at);
  }
}

export function buildGguf(options: BuildGgufOptions): Uint8Array {
  const version = options.version ?? 3;
  const tensors = options.tensors ?? [];
  const w = new Writer(version);
  w.bytes([0x47, 0x47, 0x55, 0x46]);
  w.u32(version);
  w.count(options.tensorCountOverride ?? BigInt(tensors.length));
  w.count(options.kvCountOverride ?? BigInt(options.kv.length));
  for (const kv of options.kv) {
    w.string(kv.key);
    w.u32(TYPE_IDS[kv.type]);
    if (kv.type === "array") {
      w.u32(TYPE_IDS[kv.itemType]);
      w.count(kv.countOverride ?? BigInt(kv.items.length));
      for (const item of kv.items) w.scalar(kv.itemType, item);
    } else w.scalar(kv.type, kv.value);
  }
  const alignment = options.alignment ?? 32;
  let offset = 0n;
  const sizes: number[] = [];
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.count(BigInt(d));
    w.u32(t.type ?? 0);
    w.u64(offset);
    const size = t.dims.reduce((a, b) => a * b, 1) * ((t.type ?? 0) === 1 ? 2 : 4);
    sizes.push(size);
    offset += BigInt(Math.ceil(size / alignment) * alignment);
  }
  while (w.length % alignment !== 0) w.u8(0);
  for (const size of sizes) {
    for (let i = 0; i < Math.ceil(size / alignment) * alignment; i++) w.u8(i & 0xff);
  }
  return w.done();
}
