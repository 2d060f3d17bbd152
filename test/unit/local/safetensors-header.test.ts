import { describe, expect, test } from "bun:test";
import { checkSafetensorsHeader } from "../../../src/hash/hash-algos.ts";
import { cutText, parseJsonGuarded, scanJson } from "../../../src/shared/json-guard.ts";
import {
  extractEmbeddedHashes,
  extractModelSpec,
  extractTraining,
  parseClassTokens,
  parseTagFrequency,
} from "../../../src/local/kohya-meta.ts";
import { parseSafetensorsHeader, summariseTensors, validateTensors } from "../../../src/local/safetensors-header.ts";
import { buildSafetensors, kohyaMetadata, modelspecMetadata, rawSafetensors, sdxlLoraTensors } from "../../helpers/safetensors.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** The pure parser on a built file: header bytes and the data length that follows them. */
function parseBuilt(bytes: Uint8Array) {
  const check = checkSafetensorsHeader(bytes.subarray(0, 16), bytes.length);
  if (!check.ok) throw new Error(check.reason);
  return parseSafetensorsHeader(bytes.subarray(8, check.dataOffset), bytes.length - check.dataOffset);
}

describe("parseSafetensorsHeader on a real file", () => {
  test("tensors, dtypes, offsets and metadata come back exactly", () => {
    const built = buildSafetensors(
      [
        { name: "b", shape: [2, 3], dtype: "F16" },
        { name: "a", shape: [4], dtype: "F32" },
        { name: "scalar", shape: [], dtype: "BF16" },
      ],
      { hello: "world" },
    );
    const r = parseBuilt(built.bytes);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.metadata).toEqual(Object.assign(Object.create(null), { hello: "world" }));
    const byName = Object.fromEntries(r.tensors.map((t) => [t.name, t]));
    expect(byName.a).toEqual({ name: "a", dtype: "F32", shape: [4], begin: 0, end: 16 });
    expect(byName.b).toEqual({ name: "b", dtype: "F16", shape: [2, 3], begin: 16, end: 28 });
    expect(byName.scalar).toEqual({ name: "scalar", dtype: "BF16", shape: [], begin: 28, end: 30 });
    expect(summariseTensors(r.tensors)).toEqual({ count: 3, dtypes: { F32: 1, F16: 1, BF16: 1 }, parameters: 4 + 6 + 1 });
  });

  test("leading and trailing whitespace padding is accepted (reference test_whitespace_*_padded_header)", () => {
    const r = parseSafetensorsHeader(enc('  {"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   '), 2);
    expect(r.errors).toEqual([]);
    expect(r.tensors).toHaveLength(1);
  });

  test("a header with only __metadata__ and no tensors is valid", () => {
    const r = parseSafetensorsHeader(enc('{"__metadata__":{"k":"v"}}'), 0);
    expect(r.errors).toEqual([]);
    expect(r.tensors).toEqual([]);
  });
});

describe("E5: invalid header bytes", () => {
  test("not UTF-8 (0xff)", () => {
    const r = parseSafetensorsHeader(Uint8Array.from([0x7b, 0xff, 0x7d]), 0);
    expect(r.errors).toEqual(["invalid header: not valid UTF-8"]);
  });
  test("`{` only is not valid JSON", () => {
    const r = parseSafetensorsHeader(enc("{"), 0);
    expect(r.errors[0]).toStartWith("invalid header: not valid JSON");
  });
  test("`[` is not an object", () => {
    expect(parseSafetensorsHeader(enc("[]"), 0).errors).toEqual(["invalid header: not a JSON object"]);
    expect(parseSafetensorsHeader(enc('"x"'), 0).errors).toEqual(["invalid header: not a JSON object"]);
  });
  test("duplicate tensor keys give a warning naming the key", () => {
    const r = parseSafetensorsHeader(
      enc('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'),
      1,
    );
    expect(r.warnings.join("\n")).toContain('duplicate keys in the header (only the last one counts): "w"');
  });
  test("duplicate keys inside __metadata__ are found too, escaped keys decoded", () => {
    const r = parseSafetensorsHeader(enc('{"__metadata__":{"a\\u0062":"1","ab":"2"}}'), 0);
    expect(r.warnings.join("\n")).toContain('"ab"');
    expect(r.metadata?.ab).toBe("2");
  });
  test("a byte-order mark is refused like the reference parser", () => {
    expect(parseSafetensorsHeader(Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), 0).errors).toEqual([
      "invalid header: starts with a byte-order mark",
    ]);
  });
});

describe("E6: nesting depth is checked on the raw text before JSON.parse", () => {
  test("[ × 100,000 is refused without a stack overflow", () => {
    const deep = `{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    const r = parseSafetensorsHeader(enc(deep), 0);
    expect(r.errors).toEqual(["invalid header: JSON nested deeper than 128 levels"]);
    // Nothing was kept, so nothing can crash a later JSON.stringify.
    expect(() => JSON.stringify(r)).not.toThrow();
  });
  test("deeply nested __metadata__ values are refused the same way", () => {
    let v = '"x"';
    for (let i = 0; i < 200; i++) v = `{"k":${v}}`;
    const r = parseSafetensorsHeader(enc(`{"__metadata__":{"deep":${v}}}`), 0);
    expect(r.errors[0]).toContain("nested deeper than 128");
  });
  test("depth exactly 128 passes, 129 fails; brackets inside strings do not count", () => {
    expect(scanJson("[".repeat(128) + "]".repeat(128)).tooDeep).toBe(false);
    expect(scanJson("[".repeat(129) + "]".repeat(129)).tooDeep).toBe(true);
    expect(scanJson(`{"a":"${"[".repeat(500)}\\"{{"}`).depth).toBe(1);
  });
  test("a nested non-string metadata value is dropped with a warning, strings kept", () => {
    const r = parseSafetensorsHeader(enc('{"__metadata__":{"ok":"1","obj":{"a":[1,2]}}}'), 0);
    expect(r.metadata).toEqual(Object.assign(Object.create(null), { ok: "1" }));
    expect(r.warnings.join("\n")).toContain('not strings ignored: "obj"');
  });
});

describe("E7: tensor offsets", () => {
  const t = (name: string, dtype: string, shape: number[], begin: number, end: number) => ({ name, dtype, shape, begin, end });
  test("overlap (test_json_attack: 10 tensors all at 0..16) is InvalidOffset", () => {
    const tensors = Array.from({ length: 10 }, (_, i) => t(`w${i}`, "F32", [2, 2], 0, 16));
    const errors = validateTensors(tensors, 16n);
    expect(errors.some((e) => e.startsWith("InvalidOffset: tensor data overlaps"))).toBe(true);
  });
  test("a gap between tensors is InvalidOffset", () => {
    const errors = validateTensors([t("a", "U8", [4], 0, 4), t("b", "U8", [4], 8, 12)], 12n);
    expect(errors).toEqual(['InvalidOffset: gap in tensor data before "b"']);
  });
  test("shape [2, 2^63] overflows (ValidationOverflow), decided in BigInt", () => {
    const r = parseSafetensorsHeader(enc('{"w":{"dtype":"F32","shape":[2,9223372036854775808],"data_offsets":[0,8]}}'), 8);
    expect(r.errors.some((e) => e.startsWith("ValidationOverflow") && e.includes('"w"'))).toBe(true);
  });
  test("data_offsets that disagree with dtype × shape are TensorInvalidInfo", () => {
    expect(validateTensors([t("w", "F32", [3], 0, 8)], 8n)).toEqual(['TensorInvalidInfo: data_offsets do not match dtype × shape for "w"']);
  });
  test("F4 with an odd element count is MisalignedSlice", () => {
    expect(validateTensors([t("w", "F4", [3], 0, 2)], 2n)[0]).toStartWith("MisalignedSlice");
  });
  test("data shorter than declared and trailing bytes are MetadataIncompleteBuffer", () => {
    expect(validateTensors([t("w", "U8", [10], 0, 10)], 8n)[0]).toStartWith("MetadataIncompleteBuffer: tensor data ends at byte 10");
    expect(validateTensors([t("w", "U8", [10], 0, 10)], 14n)[0]).toBe(
      "MetadataIncompleteBuffer: 4 bytes after the last tensor (trailing data; possibly a polyglot file)",
    );
  });
  test("unknown dtype, negative or float offsets, end before begin are invalid tensor info", () => {
    const r = parseSafetensorsHeader(
      enc(
        '{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]},"c":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}',
      ),
      1,
    );
    expect(r.errors[0]).toBe('invalid tensor info (dtype, shape or data_offsets) for "a", "b", "c"');
    expect(r.tensors).toEqual([]);
  });
  test("error lines list at most 5 names", () => {
    const tensors = Array.from({ length: 12 }, (_, i) => t(`w${i}`, "U8", [1], 0, 1));
    const e = validateTensors(tensors, 1n).find((x) => x.includes("overlaps"))!;
    expect(e).toContain("and 6 more");
  });
});

describe("E8: prototype pollution and long values", () => {
  test("__proto__, constructor and prototype keys are dropped with a warning and nothing is polluted", () => {
    const r = parseSafetensorsHeader(
      enc('{"__proto__":{"polluted":"yes"},"__metadata__":{"__proto__":"x","constructor":"y","polluted":"no","ok":"1"}}'),
      0,
    );
    expect(r.errors).toEqual([]);
    expect(r.warnings.join("\n")).toContain("prototype names");
    expect(Object.keys(r.metadata!).sort()).toEqual(["ok", "polluted"]);
    // Merging what we keep into plain objects must not change any prototype.
    const merged = Object.assign({}, r.metadata, { ...r.metadata });
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(r.metadata)).toBeNull();
  });
  test("parseJsonGuarded returns null-prototype copies", () => {
    const p = parseJsonGuarded('{"a":{"__proto__":{"polluted":1},"b":[{"constructor":{"prototype":{"polluted":1}}}]}}');
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.droppedKeys.sort()).toEqual(["__proto__", "constructor"]);
    Object.assign({}, p.value);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  test("cutText marks what it dropped and never splits a surrogate pair", () => {
    expect(cutText("x".repeat(1_000_000), 1000)).toBe(`${"x".repeat(1000)}…[truncated 999000 chars]`);
    expect(cutText("short", 1000)).toBe("short");
    const cut = cutText(`${"a".repeat(999)}😀tail`, 1000);
    expect(cut.startsWith(`${"a".repeat(999)}…`)).toBe(true);
  });
});

describe("kohya and modelspec metadata", () => {
  const meta = { ...kohyaMetadata(), ...modelspecMetadata() };

  test("training keys users look at", () => {
    const t = extractTraining(meta)!;
    expect(t.outputName).toBe("my_style");
    expect(t.baseModelVersion).toBe("sdxl_base_v1-0");
    expect(t.sourceModelName).toBe("sd_xl_base_1.0.safetensors");
    expect(t.networkModule).toBe("networks.lora");
    expect(t.networkDim).toBe(32);
    expect(t.networkAlpha).toBe(16);
    expect(t.resolution).toBe("(1024, 1024)");
    expect([t.epoch, t.numEpochs, t.steps, t.maxTrainSteps, t.clipSkip, t.numTrainImages]).toEqual([10, 10, 2500, 2500, 2, 250]);
    expect(t.optimizer).toBe("bitsandbytes.optim.adamw.AdamW8bit");
    expect(t.comment).toBeNull(); // "None" is Python's missing value
  });

  test("top tags are summed over datasets, most frequent first", () => {
    expect(extractTraining(meta)!.topTags).toEqual([
      { tag: "1girl", count: 60 },
      { tag: "my style", count: 51 },
      { tag: "solo", count: 30 },
      { tag: "landscape", count: 12 },
      { tag: "outdoors", count: 5 },
    ]);
    expect(parseTagFrequency("not json")).toEqual([]);
    expect(parseTagFrequency(`{"a":${"[".repeat(300)}${"]".repeat(300)}}`)).toEqual([]);
  });

  test("class tokens from ss_datasets, falling back to the folder names of ss_dataset_dirs", () => {
    expect(extractTraining(meta)!.classTokens).toEqual(["mystyle woman"]);
    expect(parseClassTokens(null, JSON.stringify({ "10_sks dog": {}, "3_ohwx man": {}, other: {} }))).toEqual(["sks dog", "ohwx man"]);
  });

  test("modelspec keys", () => {
    const m = extractModelSpec(meta)!;
    expect(m.architecture).toBe("stable-diffusion-xl-v1-base/lora");
    expect(m.title).toBe("My Style");
    expect(m.author).toBe("someone");
    expect(m.triggerPhrase).toBe("mystyle");
    expect(m.license).toBe("openrail++");
    expect(m.date).toBe("2024-01-01T00:00:00");
    expect(m.resolution).toBe("1024x1024");
    expect(m.specVersion).toBe("1.0.0");
  });

  test("no ss_* / modelspec.* keys → null", () => {
    expect(extractTraining({ other: "1" })).toBeNull();
    expect(extractModelSpec({ other: "1" })).toBeNull();
  });

  test("long training values are cut with a marker", () => {
    const t = extractTraining({ ss_output_name: "n".repeat(5000) })!;
    expect(t.outputName).toBe(`${"n".repeat(1000)}…[truncated 4000 chars]`);
  });

  test("embedded hashes: valid ones kept (0x removed, lower-case), AutoV3 candidate from the full hash", () => {
    const r = extractEmbeddedHashes({
      sshs_model_hash: "4B0F45C2A1D85E6A8C1E0A9F0D5B3F2E1C7A9B8D6E5F4A3B2C1D0E9F8A7B6C5D",
      sshs_legacy_hash: "1a2b3c4d",
      "modelspec.hash_sha256": "0x" + "ab".repeat(32),
    });
    expect(r.warnings).toEqual([]);
    expect(r.hashes).toEqual([
      { key: "sshs_model_hash", value: "4b0f45c2a1d85e6a8c1e0a9f0d5b3f2e1c7a9b8d6e5f4a3b2c1d0e9f8a7b6c5d", autov3: "4b0f45c2a1d8" },
      { key: "sshs_legacy_hash", value: "1a2b3c4d", autov3: null },
      { key: "modelspec.hash_sha256", value: "ab".repeat(32), autov3: "abababababab" },
    ]);
  });

  test("embedded hashes: the empty-input placeholder, wrong length and markup are refused without quoting them", () => {
    const r = extractEmbeddedHashes({
      sshs_model_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "modelspec.hash_sha256": '<img src=x onerror="alert(1)">',
      sshs_legacy_hash: "123",
    });
    expect(r.hashes).toEqual([]);
    expect(r.warnings).toEqual([
      "sshs_model_hash ignored: it is the SHA-256 of empty input, a placeholder some tools write",
      "sshs_legacy_hash ignored: not 8 hexadecimal digits",
      "modelspec.hash_sha256 ignored: not 64 hexadecimal digits",
    ]);
    expect(r.warnings.join("")).not.toContain("<img");
  });
});

describe("helpers write what the reference layout says", () => {
  test("header padded to 8 bytes with spaces; data offset = 8 + n", () => {
    const built = buildSafetensors(sdxlLoraTensors(), kohyaMetadata());
    expect(built.headerLength % 8).toBe(0);
    expect(built.dataOffset).toBe(8 + built.headerLength);
    expect(parseBuilt(built.bytes).errors).toEqual([]);
  });
  test("rawSafetensors can lie about the length", () => {
    const b = rawSafetensors("{}", new Uint8Array(0), 0xffff_ffff_ffff_ffffn);
    expect(checkSafetensorsHeader(b.bytes.subarray(0, 16), b.bytes.length)).toEqual({ ok: false, reason: "header too large" });
  });
});
