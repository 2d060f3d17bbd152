import { describe, expect, test } from "bun:test";
import { joinWithin, PathEscapeError, sanitizeFileName, sanitizeRelativePath } from "../../../src/download/file-name.ts";

const bytes = (s: string) => Buffer.byteLength(s);

describe("sanitizeFileName (docs/reliability.md §4.2, docs/cases.md F3)", () => {
  test.each([
    ["../../.bashrc", ".bashrc"],
    ["..\\..\\x.safetensors", "x.safetensors"],
    ["/etc/passwd", "passwd"],
    ["a:b.safetensors", "a_b.safetensors"],
    ['w<h>a"t|?*.pt', "w_h_a_t___.pt"],
    ["CON.safetensors", "CON_.safetensors"],
    ["CON .safetensors", "CON _.safetensors"],
    ["nul  .tar.gz", "nul  _.tar.gz"],
    ["con", "con_"],
    ["LPT9.ckpt", "LPT9_.ckpt"],
    ["CONIN$.bin", "CONIN_.bin"],
    ["COM10.bin", "COM10.bin"],
    ["CONSOLE.bin", "CONSOLE.bin"],
    ["spam. . .", "spam"],
    ["evil\u001b]52;c;x\u0007.safetensors", "evil]52;c;x.safetensors"],
    ["nul\u0000byte.pt", "nulbyte.pt"],
    ["c1\u009bcontrol.pt", "c1control.pt"],
    // Names of our own transfer files (another file's .part, resume state, lock) get a `_`.
    ["x.safetensors.8.part", "x.safetensors.8.part_"],
    ["x.safetensors.8.PART.json", "x.safetensors.8.PART_.json"],
    ["x.safetensors.8.part.lock", "x.safetensors.8.part_.lock"],
    ["x.safetensors.part", "x.safetensors.part"],
    ["x.8.part.txt", "x.8.part.txt"],
  ])("%j → %j", (input, expected) => {
    expect(sanitizeFileName(input)).toBe(expected);
  });

  test.each(["", ".", "..", "../..", "/", "a/..", "...", " ", "\u0000"])("%j is unusable → null", (input) => {
    expect(sanitizeFileName(input)).toBeNull();
  });

  test("T14: bidi controls and invisible format characters are removed (U+202E would show 'gnp.exe' as 'exe.png')", () => {
    expect(sanitizeFileName("invoice\u202Egnp.safetensors")).toBe("invoicegnp.safetensors");
    for (const ch of [
      "\u061C",
      "\u200B",
      "\u200E",
      "\u200F",
      "\u202A",
      "\u202B",
      "\u202C",
      "\u202D",
      "\u2028",
      "\u2029",
      "\u2060",
      "\u2066",
      "\u2067",
      "\u2068",
      "\u2069",
      "\uFEFF",
    ]) {
      expect(sanitizeFileName(`a${ch}b.pt`)).toBe("ab.pt");
    }
    // Joiners stay: they are part of emoji and of several scripts' spelling.
    expect(sanitizeFileName("\u{1F469}\u200D\u{1F52C}.pt")).toBe("\u{1F469}\u200D\u{1F52C}.pt");
  });

  test("T3: $ and backticks become _ (a shell or envsubst would act on them in an emitted list)", () => {
    expect(sanitizeFileName("lora_${CIVITAI_API_KEY}.safetensors")).toBe("lora__{CIVITAI_API_KEY}.safetensors");
    expect(sanitizeFileName("a`id`$(id).pt")).toBe("a_id__(id).pt");
    expect(sanitizeRelativePath("$HOME/`x`/a.pt")).toBe("_HOME/_x_/a.pt");
  });

  test("T12: a name's escaped raw bytes (not valid UTF-8) are kept only when asked; other lone surrogates become U+FFFD", () => {
    expect(sanitizeFileName("bad\udcff\udcfe.pt", { rawBytes: true })).toBe("bad\udcff\udcfe.pt");
    expect(sanitizeRelativePath("dir\udc80/bad\udcff.pt", { rawBytes: true })).toBe("dir\udc80/bad\udcff.pt");
    // From the API a lone surrogate is no file name byte: it must not turn into one on disk.
    expect(sanitizeFileName("bad\udcff.pt")).toBe("bad\ufffd.pt");
    expect(sanitizeFileName("bad\ud800.pt", { rawBytes: true })).toBe("bad\ufffd.pt");
  });

  test("NFD input comes out NFC", () => {
    expect(sanitizeFileName("Cafe\u0301.pt")).toBe("Caf\u00e9.pt");
  });

  test("a 300-byte CJK name is cut to ≤ 255 bytes on a code point boundary, keeping the extension", () => {
    const out = sanitizeFileName(`${"模".repeat(100)}.safetensors`)!;
    expect(bytes(out)).toBeLessThanOrEqual(255);
    expect(out.endsWith(".safetensors")).toBe(true);
    expect(out).toMatch(/^模+\.safetensors$/);
    expect(bytes(sanitizeFileName(`${"😀".repeat(80)}.pt`, { maxBytes: 100 })!)).toBeLessThanOrEqual(100);
  });
});

describe("sanitizeRelativePath", () => {
  test("each component is sanitised; .. anywhere rejects", () => {
    expect(sanitizeRelativePath("loras/sd:xl/a.safetensors")).toBe("loras/sd_xl/a.safetensors");
    expect(sanitizeRelativePath("./a\\b.pt")).toBe("a/b.pt");
    expect(sanitizeRelativePath("a/../../b.pt")).toBeNull();
    expect(sanitizeRelativePath("")).toBeNull();
  });
});

describe("joinWithin", () => {
  test("stays inside; anything escaping throws", () => {
    expect(joinWithin("/data/models", "a/b.pt")).toBe("/data/models/a/b.pt");
    for (const bad of ["../x", "a/../../x", "/etc/passwd", "", ".", "C:evil", "a/../.."]) {
      expect(() => joinWithin("/data/models", bad)).toThrow(PathEscapeError);
    }
    expect(() => joinWithin("/data/models", "../models-evil/x")).toThrow(PathEscapeError);
  });
});
