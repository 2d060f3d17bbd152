import { describe, expect, test } from "bun:test";
import { GGUF_ARRAY_HEAD_ITEMS, ggmlTypeName, parseGguf } from "../../../src/local/gguf.ts";
import { buildGguf, type GgufKv } from "../../helpers/gguf.ts";

const KV: GgufKv[] = [
  { key: "general.architecture", type: "string", value: "flux" },
  { key: "general.name", type: "string", value: "FLUX.1 dev Q8" },
  { key: "general.file_type", type: "uint32", value: 7 },
  { key: "general.quantization_version", type: "uint32", value: 2 },
  { key: "u8", type: "uint8", value: 255 },
  { key: "i8", type: "int8", value: -5 },
  { key: "u16", type: "uint16", value: 65535 },
  { key: "i16", type: "int16", value: -300 },
  { key: "i32", type: "int32", value: -70000 },
  { key: "f32", type: "float32", value: 0.5 },
  { key: "yes", type: "bool", value: true },
  { key: "u64", type: "uint64", value: 1n << 40n },
  { key: "huge", type: "uint64", value: 0xffff_ffff_ffff_ffffn },
  { key: "i64", type: "int64", value: -(1n << 40n) },
  { key: "f64", type: "float64", value: 1.25 },
  { key: "tokens", type: "array", itemType: "string", items: ["<s>", "</s>", "a", "b", "c", "d", "e", "f", "g", "h"] },
  { key: "scores", type: "array", itemType: "float32", items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] },
];

describe("parseGguf", () => {
  test("v3: every value type, arrays summarised, tensor infos read", () => {
    const bytes = buildGguf({
      kv: KV,
      tensors: [
        { name: "double_blocks.0.img_attn.qkv.weight", dims: [8, 24], type: 1 },
        { name: "single_blocks.0.linear1.weight", dims: [8, 4] },
      ],
    });
    const r = parseGguf(bytes);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    const s = r.summary!;
    expect(s).toMatchObject({
      version: 3,
      tensorCount: 2,
      kvCount: KV.length,
      architecture: "flux",
      name: "FLUX.1 dev Q8",
      fileType: 7,
      truncated: false,
    });
    expect(s.metadata.u8).toBe(255);
    expect(s.metadata.i8).toBe(-5);
    expect(s.metadata.u16).toBe(65535);
    expect(s.metadata.i16).toBe(-300);
    expect(s.metadata.i32).toBe(-70000);
    expect(s.metadata.f32).toBe(0.5);
    expect(s.metadata.yes).toBe(true);
    expect(s.metadata.u64).toBe(2 ** 40);
    expect(s.metadata.huge).toBe("18446744073709551615"); // beyond 2^53: kept exact as text
    expect(s.metadata.i64).toBe(-(2 ** 40));
    expect(s.metadata.f64).toBe(1.25);
    expect(s.metadata.tokens).toEqual({ array: true, itemType: "string", length: 10, head: ["<s>", "</s>", "a", "b", "c", "d", "e", "f"] });
    expect(s.metadata.scores).toEqual({
      array: true,
      itemType: "float32",
      length: 12,
      head: [0, 1, 2, 3, 4, 5, 6, 7].slice(0, GGUF_ARRAY_HEAD_ITEMS),
    });
    expect(r.tensors).toEqual([
      { name: "double_blocks.0.img_attn.qkv.weight", shape: [8, 24], type: 1 },
      { name: "single_blocks.0.linear1.weight", shape: [8, 4], type: 0 },
    ]);
    expect(() => JSON.stringify(s)).not.toThrow();
  });

  test("v1 (u32 counts and lengths) and v2 parse too", () => {
    for (const version of [1, 2] as const) {
      const r = parseGguf(buildGguf({ version, kv: KV.slice(0, 3) }));
      expect(r.errors).toEqual([]);
      expect(r.summary?.version).toBe(version);
      expect(r.summary?.architecture).toBe("flux");
    }
  });

  test("v1 tensor dimensions are u32, like its other sizes (llama.cpp #2821 widened them in v2)", () => {
    // Written by hand, not by the builder: magic, version 1, 2 tensors, 0 pairs, then per tensor
    // name (u32 length), n_dims u32, dims u32 each, type u32, offset u64.
    const parts: number[] = [0x47, 0x47, 0x55, 0x46];
    const u32 = (v: number) => parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
    const u64 = (v: number) => {
      u32(v);
      u32(0);
    };
    const str = (s: string) => {
      u32(s.length);
      parts.push(...[...s].map((c) => c.charCodeAt(0)));
    };
    /** name, n_dims, dims (u32 each in v1), ggml type, offset (u64). */
    const tensor = (name: string, dims: number[], type: number, offset: number) => {
      str(name);
      u32(dims.length);
      for (const d of dims) u32(d);
      u32(type);
      u64(offset);
    };
    u32(1);
    u32(2);
    u32(0);
    tensor("double_blocks.0.img_attn.qkv.weight", [3072, 9216], 1, 0);
    tensor("single_blocks.0.linear1.weight", [3072], 0, 9216 * 3072 * 2);
    const r = parseGguf(Uint8Array.from(parts));
    expect(r.errors).toEqual([]);
    expect(r.summary).toMatchObject({ version: 1, tensorCount: 2, truncated: false });
    expect(r.tensors).toEqual([
      { name: "double_blocks.0.img_attn.qkv.weight", shape: [3072, 9216], type: 1 },
      { name: "single_blocks.0.linear1.weight", shape: [3072], type: 0 },
    ]);
    // The builder writes the same layout.
    const built = parseGguf(buildGguf({ version: 1, kv: KV.slice(0, 1), tensors: [{ name: "img_in.weight", dims: [64, 3072] }] }));
    expect(built.tensors).toEqual([{ name: "img_in.weight", shape: [64, 3072], type: 0 }]);
  });

  test("a prefix that ends mid-metadata is truncated, keeping what came before", () => {
    const bytes = buildGguf({ kv: KV });
    const r = parseGguf(bytes.subarray(0, 120));
    expect(r.errors).toEqual([]);
    expect(r.summary?.truncated).toBe(true);
    expect(r.summary?.architecture).toBe("flux");
  });

  test("a string length beyond the buffer is truncation, not an allocation", () => {
    const bytes = buildGguf({ kv: [{ key: "k", type: "string", value: "abc" }] });
    // Overwrite the value's u64 length (after magic, version, 2 counts, key len+key, type) with 2^62.
    new DataView(bytes.buffer).setBigUint64(4 + 4 + 8 + 8 + 8 + 1 + 4, 1n << 62n, true);
    const r = parseGguf(bytes);
    expect(r.summary?.truncated).toBe(true);
    expect(r.summary?.metadata.k).toBeUndefined();
  });

  test("an array count of 2^60 is refused before any loop", () => {
    const bytes = buildGguf({ kv: [{ key: "a", type: "array", itemType: "uint32", items: [1, 2], countOverride: 1n << 60n }] });
    const r = parseGguf(bytes);
    expect(r.summary?.truncated).toBe(true);
    expect(r.summary?.metadata.a).toBeUndefined();
  });

  test("absurd kv / tensor counts are invalid", () => {
    expect(parseGguf(buildGguf({ kv: [], kvCountOverride: 1n << 40n })).errors[0]).toContain("metadata count");
    expect(parseGguf(buildGguf({ kv: [], tensorCountOverride: 1n << 40n })).errors[0]).toContain("tensor count");
  });

  test("a key longer than 65535 bytes is invalid", () => {
    const r = parseGguf(buildGguf({ kv: [{ key: "k".repeat(70_000), type: "uint8", value: 1 }] }));
    expect(r.errors[0]).toContain("metadata key longer than 65535");
  });

  test("unknown value type and bad bool are invalid", () => {
    const bytes = buildGguf({ kv: [{ key: "k", type: "uint8", value: 1 }] });
    new DataView(bytes.buffer).setUint32(4 + 4 + 8 + 8 + 8 + 1, 99, true);
    expect(parseGguf(bytes).errors[0]).toContain("unknown value type 99");
    const b2 = buildGguf({ kv: [{ key: "b", type: "bool", value: true }] });
    b2[4 + 4 + 8 + 8 + 8 + 1 + 4] = 7;
    expect(parseGguf(b2).errors[0]).toContain("bool value 7");
  });

  test("bad magic, big-endian and version 0 are refused", () => {
    expect(parseGguf(new TextEncoder().encode("GGML....")).errors).toEqual(["invalid GGUF: bad magic"]);
    const be = buildGguf({ kv: [] });
    new DataView(be.buffer).setUint32(4, 3, false);
    expect(parseGguf(be).errors).toEqual(["invalid GGUF: big-endian files are not supported"]);
    const v0 = buildGguf({ kv: [] });
    new DataView(v0.buffer).setUint32(4, 0, true);
    expect(parseGguf(v0).errors).toEqual(["invalid GGUF: version 0"]);
  });

  test("__proto__ keys are dropped and duplicates warned", () => {
    const r = parseGguf(
      buildGguf({
        kv: [
          { key: "__proto__", type: "string", value: "x" },
          { key: "general.name", type: "string", value: "a" },
          { key: "general.name", type: "string", value: "b" },
        ],
      }),
    );
    expect(Object.keys(r.summary!.metadata)).toEqual(["general.name"]);
    expect(r.summary!.name).toBe("b");
    expect(r.warnings[0]).toContain("duplicate metadata key");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("a long string value is cut with a marker", () => {
    const r = parseGguf(buildGguf({ kv: [{ key: "general.description", type: "string", value: "d".repeat(50_000) }] }));
    expect(r.summary!.metadata["general.description"]).toStartWith(`${"d".repeat(1000)}…[truncated`);
  });
});

describe("ggmlTypeName", () => {
  test("names ggml.h's tensor types, the newer ones (MXFP4 of gpt-oss, NVFP4) too; unknown numbers stay numbers", () => {
    expect([0, 1, 8, 12, 30, 35].map(ggmlTypeName)).toEqual(["F32", "F16", "Q8_0", "Q4_K", "BF16", "TQ2_0"]);
    expect([31, 39, 40, 41].map(ggmlTypeName)).toEqual(["Q4_0_4_4", "MXFP4", "NVFP4", "Q1_0"]);
    expect(ggmlTypeName(4)).toBe("type4");
    expect(ggmlTypeName(99)).toBe("type99");
  });
});
