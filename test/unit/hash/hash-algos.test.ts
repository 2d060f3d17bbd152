import { describe, expect, test } from "bun:test";
import { UsageError } from "../../../src/shared/errors.ts";
import {
  AUTOV1_CIVITAI_MIN_SIZE,
  AUTOV1_END,
  AUTOV1_LENGTH,
  AUTOV1_OFFSET,
  buildFileHashes,
  checkSafetensorsHeader,
  DEFAULT_ALGOS,
  isSafetensorsPath,
  formatCrc32Civitai,
  isValidHashValue,
  parseAlgos,
  safetensorsDataOffset,
} from "../../../src/hash/hash-algos.ts";

/** 8-byte little-endian length followed by `rest`. */
function header(n: bigint, rest: string | Uint8Array = ""): Uint8Array {
  const tail = typeof rest === "string" ? new TextEncoder().encode(rest) : rest;
  const out = new Uint8Array(8 + tail.length);
  new DataView(out.buffer).setBigUint64(0, n, true);
  out.set(tail, 8);
  return out;
}

describe("parseAlgos", () => {
  test.each([
    ["sha256", ["sha256"]],
    ["sha256,autov2", ["sha256", "autov2"]],
    ["autov2, SHA256 ,autov2", ["sha256", "autov2"]],
    ["crc32,autov3,autov1", ["autov1", "autov3", "crc32"]],
    ["sha256,,", ["sha256"]],
  ])("%p → %p", (spec, expected) => {
    expect(parseAlgos(spec)).toEqual(expected as never);
  });

  test("accepts repeated flags", () => {
    expect(parseAlgos(["autov3", "sha256,crc32"])).toEqual(["sha256", "autov3", "crc32"]);
  });

  test.each([["md5"], ["sha256,blake4"], ["sha-256"]])("rejects %p naming it and the valid ones", (spec) => {
    let caught: unknown;
    try {
      parseAlgos(spec);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    const message = (caught as Error).message;
    expect(message).toContain(`"${spec.split(",").at(-1)}"`);
    expect(message).toContain("sha256, autov1, autov2, autov3, crc32");
    expect((caught as UsageError).exitCode).toBe(2);
  });

  test.each([[""], [" , "], [[] as string[]]])("rejects empty %p", (spec) => {
    expect(() => parseAlgos(spec)).toThrow(UsageError);
  });
});

describe("crc32 in Civitai byte order", () => {
  test.each([
    ["123456789", "2639f4cb"],
    ["hello world", "85114a0d"],
    ["", "00000000"],
  ])("%p → %p", (text, expected) => {
    expect(formatCrc32Civitai(Bun.hash.crc32(text))).toBe(expected);
  });

  test("pads and reverses the raw number", () => {
    expect(formatCrc32Civitai(0xcbf43926)).toBe("2639f4cb");
    expect(formatCrc32Civitai(0x000000ff)).toBe("ff000000");
    expect(formatCrc32Civitai(0x12000000)).toBe("00000012");
  });
});

describe("safetensors header-length rule", () => {
  const json = '{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}';
  const valid = header(BigInt(json.length), json);

  test("a valid header gives the data offset", () => {
    const size = valid.length + 16;
    expect(checkSafetensorsHeader(valid.subarray(0, 16), size)).toEqual({
      ok: true,
      headerLength: json.length,
      dataOffset: 8 + json.length,
    });
    expect(safetensorsDataOffset(valid.subarray(0, 16), size)).toBe(8 + json.length);
  });

  test.each<[string, Uint8Array, number | bigint, string]>([
    ["E1: 0xFFFFFFFFFFFFFFFF", header(0xffff_ffff_ffff_ffffn, "{}"), 10_000, "header too large"],
    ["E1: bytes 5-7 = 0xff (safetensors test_header_too_large)", header(0xffffff0000000000n, "{}"), 10_000, "header too large"],
    ["E2: 3.9 GB on a 10 KB file", header(3_900_000_000n, "{}"), 10_000, "header too large"],
    ["just over the 100 MB cap on a huge file", header(100_000_001n, "{}"), 2n ** 40n, "header too large"],
    ["E4: empty file", new Uint8Array(0), 0, "header too small"],
    ["E4: 7 bytes", new Uint8Array(7), 7, "header too small"],
    ["E4: n=60 with fewer bytes (test_invalid_header_length)", header(60n, "{"), 9, "incomplete header"],
    ["n = size - 7", header(3n, "{}"), 10, "incomplete header"],
    ["first byte not {", header(2n, "[]"), 10, "not a JSON object"],
    [
      "D5: raw pickle disguised",
      new Uint8Array([0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x05, 0x00, 0x00, 0x00]),
      4096,
      "header too large",
    ],
    ["n = 0", header(0n, "{}"), 10, "not a JSON object"],
    ["whitespace only up to the header end", header(2n, "  {"), 11, "not a JSON object"],
  ])("%s", (_name, head, size, reason) => {
    const check = checkSafetensorsHeader(head.subarray(0, 16), size);
    expect(check).toEqual({ ok: false, reason } as never);
    expect(safetensorsDataOffset(head.subarray(0, 16), size)).toBeNull();
  });

  test("leading whitespace before { is accepted", () => {
    expect(safetensorsDataOffset(header(4n, " \n{}"), 12)).toBe(12);
  });

  test("n = 100_000_000 exactly is allowed when the file holds it", () => {
    expect(safetensorsDataOffset(header(100_000_000n, "{"), 100_000_008)).toBe(100_000_008);
  });
});

describe("defaults and AutoV3 candidates", () => {
  test("the default is SHA-256 and AutoV2 for every file: AutoV3 only when asked or needed", () => {
    expect(DEFAULT_ALGOS).toEqual(["sha256", "autov2"]);
  });

  test.each([
    ["/m/a.safetensors", true],
    ["/m/a.SafeTensors", true],
    ["/m/a.sft", true],
    ["/m/a.ckpt", false],
    ["/m/a.pt", false],
    ["/m/safetensors", false],
    ["/m/a.safetensors.part", false],
  ])("%p may have an AutoV3: %p", (path, expected) => {
    expect(isSafetensorsPath(path)).toBe(expected);
  });
});

describe("constants and derived hashes", () => {
  test("AutoV1 reads 64 KiB at 1 MiB; Civitai stores none below 2 MiB", () => {
    expect(AUTOV1_OFFSET).toBe(1024 * 1024);
    expect(AUTOV1_LENGTH).toBe(64 * 1024);
    expect(AUTOV1_END).toBe(AUTOV1_OFFSET + AUTOV1_LENGTH);
    expect(AUTOV1_CIVITAI_MIN_SIZE).toBe(2 * 1024 * 1024);
  });

  test("buildFileHashes keeps only requested algos and cuts prefixes", () => {
    const sha = "a".repeat(10) + "b".repeat(54);
    const full = "0123456789abcdef".repeat(4);
    expect(
      buildFileHashes(["autov2", "autov1", "autov3", "crc32"], { sha256: sha, autov1Full: full, autov3Full: full, crc32: 0xcbf43926 }),
    ).toEqual({
      autov2: "aaaaaaaaaa",
      autov1: "01234567",
      autov3: "0123456789ab",
      crc32: "2639f4cb",
    });
    expect(buildFileHashes(["autov3"], { sha256: sha })).toEqual({});
  });

  test.each<[Parameters<typeof isValidHashValue>[0], unknown, boolean]>([
    ["autov2", "1234567890", true],
    ["autov2", 1234567890, false],
    ["autov2", "12345E7890", false],
    ["autov2", "123456789", false],
    ["sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", true],
    ["crc32", "2639f4cb", true],
    ["autov3", null, false],
  ])("isValidHashValue(%p, %p) = %p", (algo, value, ok) => {
    expect(isValidHashValue(algo, value)).toBe(ok);
  });
});
