import { describe, expect, test } from "bun:test";
import { detectFormat, detectFormatFromBytes, formatsForExtension, parseZipFirstEntry } from "../../../src/local/file-format.ts";
import { buildGguf } from "../../helpers/gguf.ts";
import { buildSafetensors, concat, zipLocalHeader } from "../../helpers/safetensors.ts";

const head = (b: Uint8Array) => b.subarray(0, 16);
const PICKLE = Uint8Array.from([0x80, 0x02, 0x63, 0x6f, 0x73, 0x0a]); // PROTO 2, GLOBAL "os\n…"

describe("detectFormatFromBytes", () => {
  test("safetensors: u64 length then `{` (leading whitespace allowed)", () => {
    expect(detectFormatFromBytes(head(buildSafetensors([{ name: "a", shape: [1] }]).bytes))).toBe("safetensors");
    const padded = concat([Uint8Array.from([4, 0, 0, 0, 0, 0, 0, 0]), new TextEncoder().encode("  {}")]);
    expect(detectFormatFromBytes(padded)).toBe("safetensors");
  });
  test("GGUF magic", () => {
    expect(detectFormatFromBytes(head(buildGguf({ kv: [] })))).toBe("gguf");
  });
  test("zip local header, empty zip", () => {
    expect(detectFormatFromBytes(zipLocalHeader("archive/data.pkl"))).toBe("zip");
    expect(detectFormatFromBytes(Uint8Array.from([0x50, 0x4b, 0x05, 0x06, 0, 0]))).toBe("zip");
  });
  test("pickle protocols 2–5, not 0x80 0x01 or 0x80 0x06", () => {
    for (const p of [2, 3, 4, 5]) expect(detectFormatFromBytes(Uint8Array.from([0x80, p, 0x7d]))).toBe("pickle");
    expect(detectFormatFromBytes(Uint8Array.from([0x80, 0x01]))).toBe("unknown");
    expect(detectFormatFromBytes(Uint8Array.from([0x80, 0x06]))).toBe("unknown");
  });
  test("T16: a safetensors length whose low bytes are 0x0280–0x0580 (80 02…80 05) is safetensors when it fits the file", () => {
    for (const length of [0x280, 0x380, 0x480, 0x580, 0x1_0480]) {
      const probe = new Uint8Array(16).fill(0x20);
      new DataView(probe.buffer).setBigUint64(0, BigInt(length), true);
      probe[8] = 0x7b;
      expect(probe[0]).toBe(0x80);
      expect({ length, format: detectFormatFromBytes(probe, 8 + length + 8) }).toEqual({ length, format: "safetensors" });
      expect(detectFormatFromBytes(probe)).toBe("safetensors");
      // A length past the end of the file is no safetensors header: the pickle signature decides.
      expect(detectFormatFromBytes(probe, length)).toBe("pickle");
    }
  });
  test("empty, short and random bytes are unknown", () => {
    expect(detectFormatFromBytes(new Uint8Array(0))).toBe("unknown");
    expect(detectFormatFromBytes(Uint8Array.from([1, 2, 3]))).toBe("unknown");
    expect(detectFormatFromBytes(new TextEncoder().encode("hello world, not a model"))).toBe("unknown");
  });
});

describe("detectFormat: content wins over the name", () => {
  test("a pickle named .safetensors (and .SafeTensors) → pickle with a mismatch warning (InvokeAI #2946)", () => {
    for (const name of ["evil.safetensors", "evil.SafeTensors"]) {
      const d = detectFormat(PICKLE, `/models/${name}`);
      expect(d.format).toBe("pickle");
      expect(d.mismatch).toContain("content is a Python pickle but the name ends in .");
      expect(d.mismatch).toContain("never loaded");
    }
  });
  test("a zip named .safetensors → zip with a mismatch", () => {
    expect(detectFormat(zipLocalHeader("archive/data.pkl"), "x.safetensors").mismatch).toContain("zip");
  });
  test("zip or pickle named .ckpt/.pt/.pth/.bin is expected: no warning", () => {
    for (const ext of ["ckpt", "pt", "pth", "bin"]) {
      expect(detectFormat(zipLocalHeader("archive/data.pkl"), `m.${ext}`)).toEqual({ format: "zip", expected: ["zip", "pickle"] });
      expect(detectFormat(PICKLE, `m.${ext}`).mismatch).toBeUndefined();
    }
  });
  test("safetensors content named .ckpt, GGUF named .safetensors → mismatch", () => {
    expect(detectFormat(head(buildSafetensors([{ name: "a", shape: [1] }]).bytes), "m.ckpt").mismatch).toContain(
      "content is safetensors but the name ends in .ckpt",
    );
    expect(detectFormat(head(buildGguf({ kv: [] })), "m.safetensors").mismatch).toContain("GGUF");
  });
  test("unknown content is not a mismatch (the reader reports a header error instead)", () => {
    expect(detectFormat(Uint8Array.from([1, 2, 3]), "m.safetensors")).toEqual({ format: "unknown", expected: ["safetensors"] });
  });
  test("extensions", () => {
    expect(formatsForExtension("a.sft")).toEqual(["safetensors"]);
    expect(formatsForExtension("a.GGUF")).toEqual(["gguf"]);
    expect(formatsForExtension("a.onnx")).toBeNull();
    expect(formatsForExtension("noext")).toBeNull();
  });
});

describe("parseZipFirstEntry", () => {
  test("torch archive: first entry <name>/data.pkl", () => {
    expect(parseZipFirstEntry(zipLocalHeader("archive/data.pkl"))).toEqual({ firstEntry: "archive/data.pkl", torch: true });
    expect(parseZipFirstEntry(zipLocalHeader("model_v1/data.pkl"))).toEqual({ firstEntry: "model_v1/data.pkl", torch: true });
  });
  test("another zip", () => {
    expect(parseZipFirstEntry(zipLocalHeader("readme.txt"))).toEqual({ firstEntry: "readme.txt", torch: false });
  });
  test("a name longer than the bytes read is cut, not over-read", () => {
    const full = zipLocalHeader("x/".repeat(100) + "data.pkl");
    expect(parseZipFirstEntry(full.subarray(0, 40)).firstEntry).toBe("x/x/x/x/x/…");
  });
});
