import { describe, expect, test } from "bun:test";
import { decodeFsName, encodeFsName, fsPath, hasRawBytes, showRawBytes } from "../../../src/shared/fs-path.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

describe("names that are not valid UTF-8", () => {
  test("valid UTF-8 decodes as usual and needs no escaping", () => {
    const name = "лора_模型_🙂.safetensors";
    const decoded = decodeFsName(Buffer.from(name, "utf8"));
    expect(decoded).toBe(name);
    expect(hasRawBytes(decoded)).toBe(false);
    expect(fsPath(decoded)).toBe(name);
  });

  test.each([
    ["a lone 0xff", bytes(0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x73)],
    ["a truncated sequence at the end", bytes(0x61, 0xe2, 0x82)],
    ["an overlong slash", bytes(0xc0, 0xaf)],
    ["an encoded surrogate", bytes(0xed, 0xa0, 0x80)],
    ["past U+10FFFF", bytes(0xf4, 0x90, 0x80, 0x80)],
    ["valid and invalid mixed", bytes(0xc3, 0xa9, 0x80, 0xe2, 0x82, 0xac, 0xff)],
  ])("%s round-trips to the exact bytes", (_label, raw) => {
    const decoded = decodeFsName(raw);
    expect(hasRawBytes(decoded)).toBe(true);
    expect([...encodeFsName(decoded)]).toEqual([...raw]);
    expect(Buffer.isBuffer(fsPath(decoded))).toBe(true);
    // JSON keeps it (as \udcXX escapes) and gives the same string back.
    expect(JSON.parse(JSON.stringify(decoded))).toBe(decoded);
  });

  test("shown as \\xNN escapes", () => {
    expect(showRawBytes(decodeFsName(bytes(0x62, 0xff, 0xfe, 0x2e)))).toBe("b\\xff\\xfe.");
  });
});
