import { describe, expect, test } from "bun:test";
import nodePath from "node:path";
import {
  basenamePath,
  decodeFsName,
  dirnamePath,
  encodeFsName,
  fsNameBytes,
  fsPath,
  hasRawBytes,
  joinPath,
  rawSafe,
  resolvePath,
  showRawBytes,
} from "../../../src/shared/fs-path.ts";
import { userArgs } from "../../../src/shared/raw-argv.ts";

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

  test("fsNameBytes gives encodeFsName's bytes, for plain, non-ASCII and raw-byte names alike", () => {
    const names = [
      "f000001.safetensors",
      "лора_模型_🙂.safetensors",
      `💻${String.fromCharCode(0xdcff)}`,
      decodeFsName(bytes(0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x73)),
      decodeFsName(bytes(0xc3, 0xa9, 0x80, 0xe2, 0x82, 0xac, 0xff)),
      "",
    ];
    for (const name of names) expect({ name, bytes: [...fsNameBytes(name)] }).toEqual({ name, bytes: [...encodeFsName(name)] });
  });

  test("shown as \\xNN escapes", () => {
    expect(showRawBytes(decodeFsName(bytes(0x62, 0xff, 0xfe, 0x2e)))).toBe("b\\xff\\xfe.");
  });

  test("T12: an emoji whose second half lies in U+DC80–U+DCFF (💻 = \\ud83d\\udcbb) is not a raw byte", () => {
    const name = "👩‍💻 lora.safetensors";
    expect(hasRawBytes(name)).toBe(false);
    expect(showRawBytes(name)).toBe(name);
    expect(fsPath(name)).toBe(name);
    const mixed = `💻${String.fromCharCode(0xdcff)}`;
    expect(hasRawBytes(mixed)).toBe(true);
    expect([...encodeFsName(mixed)]).toEqual([...Buffer.from("💻"), 0xff]);
    expect(showRawBytes(mixed)).toBe("💻\\xff");
  });
});

describe("T12: path arithmetic keeps raw bytes (Bun's node:path turns them into U+FFFD)", () => {
  const bad = `bad${String.fromCharCode(0xdcff, 0xdcfe)}`;

  test("join, resolve, dirname and basename give node:path's answers with the bytes kept", () => {
    expect(joinPath("/models", bad, "x.safetensors")).toBe(`/models/${bad}/x.safetensors`);
    expect(joinPath("/models/", `./${bad}`, "..", "y")).toBe("/models/y");
    expect(joinPath(`${bad}//a/`, "../b")).toBe(`${bad}/b`);
    expect(resolvePath("/models", bad)).toBe(`/models/${bad}`);
    expect(resolvePath(`/a/${bad}`, "/abs", "c")).toBe("/abs/c");
    expect(resolvePath(bad)).toBe(`${process.cwd()}/${bad}`);
    expect(dirnamePath(`/m/${bad}/f.ckpt`)).toBe(`/m/${bad}`);
    expect(dirnamePath(`/${bad}`)).toBe("/");
    expect(dirnamePath(bad)).toBe(".");
    expect(basenamePath(`/m/${bad}/`)).toBe(bad);
  });

  test("rawSafe runs any node:path function, even on paths holding private-use characters", () => {
    expect(rawSafe(nodePath.relative, `/m/${bad}`, `/m/${bad}/sub/x`)).toBe("sub/x");
    expect(rawSafe(nodePath.relative, "/m/a", `/m/${bad}`)).toBe(`../${bad}`);
    const privateUse = `\ue000\ue07f${bad}`;
    expect(joinPath("/m", privateUse, "x")).toBe(`/m/${privateUse}/x`);
    expect(basenamePath(`/m/${privateUse}`)).toBe(privateUse);
  });

  test("plain paths take node:path's own route", () => {
    for (const parts of [["/a", "b", "../c"], ["a/", "./b"], ["/"]]) expect(joinPath(...parts)).toBe(nodePath.join(...parts));
    expect(resolvePath("x")).toBe(nodePath.resolve("x"));
    expect(dirnamePath("/a/b")).toBe("/a");
    expect(basenamePath("/a/b.c")).toBe("b.c");
  });
});

describe("T12: arguments that are not UTF-8 are read again from /proc/self/cmdline", () => {
  const cmdline =
    (...parts: (string | Uint8Array)[]) =>
    () =>
      Buffer.concat(parts.flatMap((p) => [typeof p === "string" ? Buffer.from(p) : Buffer.from(p), Buffer.from([0])]));

  test("a lossy argument gets its bytes back; the others must agree", () => {
    const raw = new Uint8Array([0x62, 0xff, 0x2e, 0x73]);
    const got = userArgs(["hash", "b\ufffd.s"], cmdline("/usr/bin/bun", "src/cli.ts", "hash", raw));
    expect(got).toEqual(["hash", `b${String.fromCharCode(0xdcff)}.s`]);
    // A command line that does not end with our arguments is not used.
    expect(userArgs(["scan", "b\ufffd.s"], cmdline("bun", "hash", raw))).toEqual(["scan", "b\ufffd.s"]);
    // Run by the npm launcher: its CIVITAI_META_RAW_ARGV (hex, comma-separated) holds the bytes.
    const saved = process.env.CIVITAI_META_RAW_ARGV;
    try {
      process.env.CIVITAI_META_RAW_ARGV = `${Buffer.from("hash").toString("hex")},62ff2e73`;
      expect(userArgs(["hash", "b\ufffd.s"])).toEqual(["hash", `b${String.fromCharCode(0xdcff)}.s`]);
      // Bytes that do not agree with the arguments decoded without loss are not used.
      expect(userArgs(["scan", "b\ufffd.s"])).toEqual(["scan", "b\ufffd.s"]);
    } finally {
      if (saved === undefined) delete process.env.CIVITAI_META_RAW_ARGV;
      else process.env.CIVITAI_META_RAW_ARGV = saved;
    }
    // Nothing lossy: /proc is not read at all.
    expect(
      userArgs(["hash", "a"], () => {
        throw new Error("read");
      }),
    ).toEqual(["hash", "a"]);
  });
});
