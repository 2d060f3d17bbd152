import { describe, expect, test } from "bun:test";
import {
  indexedHashes,
  INDEX_FORMAT,
  parseLibraryIndex,
  relativeToRoot,
  renderLibraryIndex,
  type IndexEntry,
} from "../../../src/scan/library-index.ts";

const SHA = "ab".repeat(32);
const entry = (path: string, over: Partial<IndexEntry> = {}): IndexEntry => ({
  path,
  size: 10,
  mtimeNs: "1700000000123456789",
  hashes: { sha256: SHA, autov2: SHA.slice(0, 10), autov3: "0123456789ab" },
  ...over,
});
const TOOL = { name: "civitai-meta", version: "0.1.0" };

describe("library index format", () => {
  test("round trip: sorted by path, one entry a line, names that are not UTF-8 kept exactly", () => {
    const raw = "loras/bad\udcff.safetensors";
    const text = renderLibraryIndex(
      [entry("z.ckpt"), entry(raw), entry("a.ckpt", { hashes: { sha256: SHA } })],
      TOOL,
      "2026-01-01T00:00:00.000Z",
    );
    expect(text.split("\n")[0]).toBe(
      `{"format":"${INDEX_FORMAT}","version":1,"tool":{"name":"civitai-meta","version":"0.1.0"},"generatedAt":"2026-01-01T00:00:00.000Z","files":[`,
    );
    expect(text).toContain('"path":"loras/bad\\udcff.safetensors"');
    const parsed = parseLibraryIndex(text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect([...parsed.entries.keys()]).toEqual(["a.ckpt", raw, "z.ckpt"]);
    expect(parsed.entries.get(raw)).toEqual(entry(raw));
    expect(parseLibraryIndex(renderLibraryIndex([], TOOL, "x"))).toEqual({ ok: true, entries: new Map() });
  });

  test("damaged, cut short, another tool's, newer, or with one bad entry: not used, and why", () => {
    const good = renderLibraryIndex([entry("a.ckpt"), entry("b.ckpt")], TOOL, "t");
    const why = (text: string) => {
      const r = parseLibraryIndex(text);
      return r.ok ? "ok" : r.why;
    };
    expect(why(good.slice(0, good.length / 2))).toContain("not valid JSON");
    expect(why("")).toContain("not valid JSON");
    expect(why('{"files":[]}')).toBe("not a civitai-meta library index");
    expect(why("[]")).toBe("not a civitai-meta library index");
    expect(why(good.replace('"version":1', '"version":2'))).toContain("index format 2 by a newer civitai-meta");
    expect(why(good.replace('"version":1', '"version":"1"'))).toBe("its format version is unreadable");
    expect(why(good.replace('"path":"b.ckpt"', '"path":"a.ckpt"'))).toBe("entry 2 repeats a path");
    for (const bad of ['"path":"/etc/b.ckpt"', '"path":"../b.ckpt"', '"path":"x//b.ckpt"', '"path":""']) {
      expect(why(good.replace('"path":"b.ckpt"', bad))).toBe("entry 2 is not valid");
    }
    expect(why(good.replace('"size":10', '"size":-1'))).toBe("entry 1 is not valid");
    expect(why(good.replace('"mtimeNs":"1700000000123456789"', '"mtimeNs":1700000000123456789'))).toBe("entry 1 is not valid");
    expect(why(good.replace(`"sha256":"${SHA}"`, `"sha256":"${SHA.toUpperCase()}"`))).toBe("entry 1 is not valid");
    expect(why(good.replace('"autov3":"0123456789ab"', '"blake3":"0123456789ab"'))).toBe("entry 1 is not valid");
    // AutoV2 is the SHA-256's prefix; an entry where they disagree was not written by us.
    expect(why(good.replace(`"autov2":"${SHA.slice(0, 10)}"`, '"autov2":"0000000000"'))).toBe("entry 1 is not valid");
    expect(why(good.replace(`"sha256":"${SHA}","autov2":"${SHA.slice(0, 10)}",`, ""))).toBe("entry 1 is not valid");
  });

  test("an entry is used only with the same size, the same mtime to the nanosecond, and every hash the scan needs", () => {
    const e = entry("a.safetensors");
    const algos = ["sha256", "autov2", "autov3"] as const;
    expect(indexedHashes(e, 10, "1700000000123456789", algos)).toEqual(e.hashes);
    expect(indexedHashes(e, 10, "1700000000123456789", ["sha256"])).toEqual({ sha256: SHA });
    expect(indexedHashes(e, 11, "1700000000123456789", algos)).toBeNull();
    expect(indexedHashes(e, 10, "1700000000123456788", algos)).toBeNull();
    expect(indexedHashes(e, 10, "1700000000123456789", ["sha256", "crc32"])).toBeNull();
    expect(indexedHashes(undefined, 10, "1700000000123456789", algos)).toBeNull();
  });

  test("paths relative to the root, never outside it", () => {
    expect(relativeToRoot("/nas/models/loras/a.safetensors", "/nas/models")).toBe("loras/a.safetensors");
    expect(relativeToRoot("/nas/models/a.ckpt", "/nas/models/")).toBe("a.ckpt");
    expect(relativeToRoot("/nas/models-old/a.ckpt", "/nas/models")).toBeNull();
    expect(relativeToRoot("/nas/models/a.ckpt", "/nas/models/a.ckpt")).toBe("a.ckpt");
    expect(relativeToRoot("/", "/")).toBeNull();
  });
});
