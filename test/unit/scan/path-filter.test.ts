import { describe, expect, test } from "bun:test";
import { UsageError } from "../../../src/shared/errors.ts";
import {
  compareByteOrder,
  createExcludeMatcher,
  DEFAULT_EXTENSIONS,
  hasModelExtension,
  inProgressSuffix,
  isInByteOrder,
  isOwnTempName,
  normaliseExtensions,
} from "../../../src/scan/path-filter.ts";

describe("normaliseExtensions", () => {
  const cases: [string, readonly string[] | string | undefined, string[]][] = [
    ["undefined → defaults", undefined, [...DEFAULT_EXTENSIONS]],
    ["empty list → defaults", [], [...DEFAULT_EXTENSIONS]],
    ["blanks only → defaults", [" ", ","], [...DEFAULT_EXTENSIONS]],
    ["bare name gets a dot", ["safetensors"], [".safetensors"]],
    ["dotted kept", [".gguf"], [".gguf"]],
    ["single string", "ckpt", [".ckpt"]],
    ["comma separated, spaces trimmed", ["safetensors, .gguf ,ckpt"], [".safetensors", ".gguf", ".ckpt"]],
    ["repeated flags and case folded, deduplicated", ["SafeTensors", ".safetensors", "GGUF"], [".safetensors", ".gguf"]],
    ["multi-dot extension", ["tar.gz"], [".tar.gz"]],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => expect(normaliseExtensions(input)).toEqual(expected));
  }

  for (const bad of [".", "a/b", "a b", "*.bin", "..\\x"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      expect(() => normaliseExtensions([bad])).toThrow(UsageError);
    });
  }
});

describe("hasModelExtension", () => {
  const exts = normaliseExtensions(undefined);
  const cases: [string, boolean][] = [
    ["model.safetensors", true],
    ["Model.SafeTensors", true],
    ["x.SFT", true],
    ["a.ckpt", true],
    ["a.pt", true],
    ["a.pth", true],
    ["pytorch_model.bin", true],
    ["q4.GGUF", true],
    ["notes.txt", false],
    ["model.safetensors.part", false],
    ["model.safetensors.aria2", false],
    [".safetensors", false],
    ["safetensors", false],
    ["a.ptx", false],
    ["a.opt", false],
  ];
  for (const [name, expected] of cases) {
    test(`${name} → ${expected}`, () => expect(hasModelExtension(name, exts)).toBe(expected));
  }

  test("respects a custom list", () => {
    expect(hasModelExtension("a.onnx", [".onnx"])).toBe(true);
    expect(hasModelExtension("a.safetensors", [".onnx"])).toBe(false);
  });
});

describe("inProgressSuffix", () => {
  const exts = normaliseExtensions(undefined);
  const cases: [string, string | undefined][] = [
    ["x.safetensors.part", ".part"],
    ["x.safetensors.PART", ".part"],
    ["x.safetensors.incomplete", ".incomplete"],
    ["x.ckpt.tmp", ".tmp"],
    ["x.gguf.crdownload", ".crdownload"],
    ["x.safetensors", undefined],
    ["video.mp4.part", undefined],
    [".part", undefined],
    ["x.safetensors.aria2", undefined],
    ["x.part", undefined],
  ];
  for (const [name, expected] of cases) {
    test(`${name} → ${expected}`, () => expect(inProgressSuffix(name, exts)).toBe(expected));
  }
  test("follows the extension list", () => {
    expect(inProgressSuffix("x.onnx.part", [".onnx"])).toBe(".part");
    expect(inProgressSuffix("x.safetensors.part", [".onnx"])).toBeUndefined();
  });
});

test("isOwnTempName", () => {
  expect(isOwnTempName(".civitai-meta-tmp-123.safetensors")).toBe(true);
  expect(isOwnTempName("civitai-meta-tmp-123.safetensors")).toBe(false);
  expect(isOwnTempName("x.safetensors")).toBe(false);
});

describe("createExcludeMatcher", () => {
  // [patterns, relPath, isDirectory, excluded]
  const cases: [string[], string, boolean, boolean][] = [
    [[], "a/b.safetensors", false, false],
    // No "/" → matched against the name at any depth.
    [["*.bin"], "x.bin", false, true],
    [["*.bin"], "deep/er/x.bin", false, true],
    [["*.bin"], "x.safetensors", false, false],
    [["*.bin"], "bin", true, false],
    [["backup"], "backup", true, true],
    [["backup"], "loras/backup", true, true],
    [["backup"], "loras/backup", false, true],
    [["backup"], "loras/backup2", true, false],
    [["backup"], "backup/x.safetensors", false, false], // the folder itself is excluded, so never reached
    [["old-*"], "sd15/old-v1", true, true],
    // Trailing "/" → folders only.
    [["cache/"], "a/cache", true, true],
    [["cache/"], "a/cache", false, false],
    // With "/" → relative path from the root, anchored.
    [["loras/old/*"], "loras/old/a.safetensors", false, true],
    [["loras/old/*"], "x/loras/old/a.safetensors", false, false],
    [["loras/*.pt"], "loras/a.pt", false, true],
    [["loras/*.pt"], "loras/sub/a.pt", false, false],
    [["**/tmp/*.pt"], "a/b/tmp/x.pt", false, true],
    [["**/tmp/*.pt"], "tmp/x.pt", false, true],
    [["/top"], "top", true, true],
    [["/top"], "a/top", true, false],
    [["./top"], "top", true, true],
    // "dir/**" also excludes the folder itself (so it is not walked for nothing).
    [["old/**"], "old", true, true],
    [["old/**"], "old/a/b.safetensors", false, true],
    [["old/**"], "older", true, false],
    // Case-sensitive, like the file systems it runs on.
    [["*.BIN"], "x.bin", false, false],
    // Several patterns: any one excludes.
    [["*.bin", "backup"], "backup", true, true],
    [["*.bin", "backup"], "y.bin", false, true],
    [["*.bin", "backup"], "y.gguf", false, false],
    [["{a,b}.gguf"], "sub/b.gguf", false, true],
  ];
  for (const [patterns, rel, isDir, expected] of cases) {
    test(`${JSON.stringify(patterns)} ${rel}${isDir ? "/" : ""} → ${expected}`, () => {
      expect(createExcludeMatcher(patterns)(rel, isDir)).toBe(expected);
    });
  }

  for (const bad of ["", "   ", "/", "./", "."]) {
    test(`rejects ${JSON.stringify(bad)}`, () => expect(() => createExcludeMatcher([bad])).toThrow(UsageError));
  }
});

describe("compareByteOrder", () => {
  test("byte order, not locale: upper case before lower case, and no numeric collation", () => {
    expect(["b", "B", "a", "A", "a10", "a9", "_"].sort(compareByteOrder)).toEqual(["A", "B", "_", "a", "a10", "a9", "b"]);
  });
  test("astral characters sort after U+E000–U+FFFF, as in UTF-8", () => {
    const astral = "\u{1F600}";
    const privateUse = "\uE000";
    // UTF-16 code units would put the surrogate pair (0xD83D…) first.
    expect(astral < privateUse).toBe(true);
    expect([astral, privateUse].sort(compareByteOrder)).toEqual([privateUse, astral]);
    expect(Buffer.compare(Buffer.from(privateUse), Buffer.from(astral))).toBe(-1);
  });
  test("prefix sorts first; equal is 0", () => {
    expect(compareByteOrder("abc", "abcd")).toBeLessThan(0);
    expect(compareByteOrder("abcd", "abc")).toBeGreaterThan(0);
    expect(compareByteOrder("é", "é")).toBe(0);
  });
});

describe("isInByteOrder", () => {
  test("agrees with a sort by compareByteOrder, astral, private-use and raw-byte names included", () => {
    const names = [
      "/m/a",
      "/m/A",
      "/m/\u{1F600}",
      "/m/\uE000",
      "/m/\uFFFD",
      "/m/é",
      "/m/\udcff",
      "/m/\udc80x",
      "/m/b/c",
      "/m/b",
      "/m/a\u{1F600}",
      "/m/a\uE000",
      "",
    ];
    const sorted = [...names].sort(compareByteOrder);
    expect(isInByteOrder(sorted)).toBe(true);
    // Every swap of two neighbours that differ is out of order.
    for (let i = 1; i < sorted.length; i++) {
      if (compareByteOrder(sorted[i - 1]!, sorted[i]!) === 0) continue;
      const swapped = [...sorted];
      [swapped[i - 1], swapped[i]] = [swapped[i]!, swapped[i - 1]!];
      expect({ i, ok: isInByteOrder(swapped) }).toEqual({ i, ok: false });
    }
    // UTF-16 order is not byte order: the astral name sorts after U+E000 in bytes.
    expect(isInByteOrder(["/m/\u{1F600}", "/m/\uE000"])).toBe(false);
    expect(isInByteOrder([])).toBe(true);
  });
});
