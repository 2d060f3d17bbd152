import { describe, expect, test } from "bun:test";
import { decodeExtValue, fileNameFromContentDisposition, parseContentDispositionRaw } from "../../../src/download/content-disposition.ts";

describe("Content-Disposition (docs/cases.md F4)", () => {
  test("plain, quoted and escaped filename", () => {
    expect(fileNameFromContentDisposition('attachment; filename="BodHor-V1.safetensors"')).toBe("BodHor-V1.safetensors");
    expect(fileNameFromContentDisposition("attachment; filename=plain.pt")).toBe("plain.pt");
    expect(fileNameFromContentDisposition('attachment; filename="a\\"b;c.pt"')).toBe("a_b;c.pt");
  });

  test("filename* (RFC 5987) wins over filename", () => {
    expect(fileNameFromContentDisposition(`attachment; filename="fallback.pt"; filename*=UTF-8''%E6%A8%A1%E5%9E%8B.safetensors`)).toBe(
      "模型.safetensors",
    );
    expect(decodeExtValue("iso-8859-1'en'caf%E9.pt")).toBe("café.pt");
    expect(decodeExtValue("UTF-8''%E0%A4%A")).toBeNull();
    expect(decodeExtValue("no-quotes")).toBeNull();
  });

  test("traversal and hostile names are basenamed and sanitised, never a path", () => {
    expect(fileNameFromContentDisposition('attachment; filename="../../x"')).toBe("x");
    expect(fileNameFromContentDisposition(`attachment; filename*=UTF-8''..%2F..%2Fx`)).toBe("x");
    expect(fileNameFromContentDisposition(`attachment; filename*=UTF-8''..%5C..%5Cevil.dll`)).toBe("evil.dll");
    expect(fileNameFromContentDisposition('attachment; filename="f:foo"')).toBe("f_foo");
    expect(fileNameFromContentDisposition('attachment; filename=".."')).toBeNull();
    expect(fileNameFromContentDisposition(`attachment; filename*=UTF-8''..; filename=".."`)).toBeNull();
  });

  test("an unusable filename* falls back to filename; missing header → null", () => {
    expect(fileNameFromContentDisposition(`attachment; filename*=UTF-8''..; filename="ok.pt"`)).toBe("ok.pt");
    expect(fileNameFromContentDisposition(null)).toBeNull();
    expect(fileNameFromContentDisposition("inline")).toBeNull();
    expect(parseContentDispositionRaw('attachment; FILENAME="A.pt"').filename).toBe("A.pt");
  });
});
