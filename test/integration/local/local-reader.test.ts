import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import * as childProcess from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashFiles } from "../../../src/hash/hasher.ts";
import { readLocalFacts, readLocalInfo, readSidecars, type ReadableFile } from "../../../src/local/local-reader.ts";
import { buildGguf } from "../../helpers/gguf.ts";
import {
  buildSafetensors,
  concat,
  kohyaMetadata,
  maliciousPickle,
  modelspecMetadata,
  rawSafetensors,
  sdxlLoraTensors,
  writeSafetensors,
  zipLocalHeader,
} from "../../helpers/safetensors.ts";
import { foundFile } from "../../helpers/found-file.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "civitai-meta-local-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

const read = (p: string) => readLocalInfo(p, statSync(p).size);

/** An opener that records every read (position, length) so tests can assert what was touched. */
function recordingOpen(reads: { position: number; length: number }[]) {
  return async (p: string): Promise<ReadableFile> => {
    const fh = await open(p, "r");
    return {
      read: async (buffer, offset, length, position) => {
        reads.push({ position, length });
        return fh.read(buffer, offset, length, position);
      },
      close: () => fh.close(),
    };
  };
}

describe("a real kohya SDXL LoRA", () => {
  test("metadata, training summary, modelspec, tensors, guess and embedded hashes", async () => {
    const p = join(dir, "my_style.safetensors");
    const built = writeSafetensors(p, sdxlLoraTensors(8), { ...kohyaMetadata(), ...modelspecMetadata() });
    const info = await read(p);
    expect(info.errors).toEqual([]);
    expect(info.warnings).toEqual([]);
    expect(info.format).toBe("safetensors");
    expect(info.formatMismatch).toBeUndefined();
    expect(info.header).toMatchObject({ length: built.headerLength, dataOffset: built.dataOffset, metadataCount: 36 });
    expect(info.header?.metadata?.ss_output_name).toBe("my_style");
    expect(info.tensors).toEqual({
      count: 7,
      dtypes: { F16: 7 },
      parameters: 8 * 2048 + 640 * 8 + 1 + 8 * 768 + 768 * 8 + 8 * 1280 + 1280 * 8,
    });
    expect(info.guess).toMatchObject({ guessed: true, kind: "lora", family: "SDXL", confidence: "high" });
    expect(info.training).toMatchObject({
      outputName: "my_style",
      baseModelVersion: "sdxl_base_v1-0",
      networkDim: 32,
      networkAlpha: 16,
      epoch: 10,
      steps: 2500,
      clipSkip: 2,
      classTokens: ["mystyle woman"],
    });
    expect(info.training?.topTags[0]).toEqual({ tag: "1girl", count: 60 });
    expect(info.modelspec).toMatchObject({ architecture: "stable-diffusion-xl-v1-base/lora", title: "My Style", triggerPhrase: "mystyle" });
    expect(info.embeddedHashes?.map((h) => h.key)).toEqual(["sshs_model_hash", "sshs_legacy_hash"]);
    // Only the header was read: 8 bytes of length and exactly n header bytes.
    expect(info.bytesRead).toBe(8 + built.headerLength);
    expect(() => JSON.stringify(info)).not.toThrow();
  });

  test("includeMetadata: false keeps the summary but not the raw values", async () => {
    const p = write("nometa.safetensors", buildSafetensors(sdxlLoraTensors(), kohyaMetadata()).bytes);
    const info = await readLocalInfo(p, statSync(p).size, { includeMetadata: false });
    expect(info.header?.metadata).toBeUndefined();
    expect(info.header?.metadataCount).toBe(26);
    expect(info.training?.outputName).toBe("my_style");
  });

  test("AutoV3 from the header offset (8+n) equals the hasher's AutoV3 and the embedded sshs_model_hash", async () => {
    const tensors = sdxlLoraTensors(16);
    // The data section does not depend on the metadata, so hash it first and embed the result.
    const plain = buildSafetensors(tensors);
    const dataHash = createHash("sha256").update(plain.bytes.subarray(plain.dataOffset)).digest("hex");
    const p = join(dir, "autov3.safetensors");
    writeSafetensors(p, tensors, { ...kohyaMetadata({ sshs_model_hash: dataHash }), "modelspec.hash_sha256": `0x${dataHash}` });

    const info = await read(p);
    const bytes = readFileSync(p);
    const ours = createHash("sha256").update(bytes.subarray(info.header!.dataOffset)).digest("hex").slice(0, 12);
    const [hashed] = await hashFiles([foundFile(p)], { algos: ["autov3"], jobs: 1 });
    expect(hashed?.error).toBeUndefined();
    expect(hashed?.hashes.autov3).toBe(ours);
    expect(ours).toBe(dataHash.slice(0, 12));
    expect(info.embeddedHashes?.find((h) => h.key === "sshs_model_hash")?.autov3).toBe(ours);
    expect(info.embeddedHashes?.find((h) => h.key === "modelspec.hash_sha256")?.autov3).toBe(ours);
  });

  test("a 1 MB file: reads stay inside the header (recorded reads)", async () => {
    const p = write("big.safetensors", buildSafetensors([{ name: "w", shape: [256, 1024], dtype: "F32" }], { a: "b" }).bytes);
    const reads: { position: number; length: number }[] = [];
    const info = await readLocalInfo(p, statSync(p).size, { openFile: recordingOpen(reads) });
    expect(info.errors).toEqual([]);
    const end = Math.max(...reads.map((r) => r.position + r.length));
    expect(end).toBe(info.header!.dataOffset);
    expect(info.bytesRead).toBe(info.header!.dataOffset);
  });
});

describe("malicious safetensors headers (docs/cases.md E1–E8)", () => {
  test("E1: length 0xFFFFFFFFFFFFFFFF → header too large, only the 16-byte probe read", async () => {
    const p = write("e1.safetensors", rawSafetensors('{"a":1}', new Uint8Array(100), 0xffff_ffff_ffff_ffffn).bytes);
    const reads: { position: number; length: number }[] = [];
    const info = await readLocalInfo(p, statSync(p).size, { openFile: recordingOpen(reads) });
    expect(info.errors).toEqual(["invalid safetensors: header too large"]);
    expect(reads).toEqual([{ position: 0, length: 16 }]);
    expect(info.bytesRead).toBe(16);
  });

  test("E2: length 3.9 GB in a 10 KB file → rejected before reading", async () => {
    const p = write("e2.safetensors", rawSafetensors("{}" + " ".repeat(10_000), new Uint8Array(0), 3_900_000_000n).bytes);
    const info = await read(p);
    expect(info.errors).toEqual(["invalid safetensors: header too large"]);
    expect(info.bytesRead).toBe(16);
    // Under the 100 MB cap but beyond the file: the other rule.
    const p2 = write("e2b.safetensors", rawSafetensors("{}" + " ".repeat(100), new Uint8Array(0), 50_000n).bytes);
    expect((await read(p2)).errors).toEqual(["invalid safetensors: incomplete header"]);
  });

  test("E3: a 50 MB header of valid JSON is parsed within the cap and its value cut", async () => {
    const big = "x".repeat(50_000_000);
    const p = write("e3.safetensors", buildSafetensors([{ name: "w", shape: [2], dtype: "U8" }], { big }).bytes);
    const info = await read(p);
    expect(info.errors).toEqual([]);
    expect(info.header?.length).toBeGreaterThan(50_000_000);
    expect(info.header?.metadata?.big).toBe(`${"x".repeat(1000)}…[truncated 49999000 chars]`);
    expect(JSON.stringify(info).length).toBeLessThan(10_000);
  });

  test("E4: files of 0–7 bytes → header too small; length 60 with fewer bytes → incomplete header", async () => {
    for (let n = 0; n <= 7; n++) {
      const p = write(`e4-${n}.safetensors`, new Uint8Array(n).fill(1));
      expect((await read(p)).errors).toEqual(["invalid safetensors: header too small"]);
    }
    const lengthOnly = write("e4-60.safetensors", rawSafetensors(new Uint8Array(0), new Uint8Array(0), 60n).bytes);
    expect((await read(lengthOnly)).errors).toEqual(["invalid safetensors: incomplete header"]);
    const partial = write("e4-60b.safetensors", rawSafetensors('{"a":', new Uint8Array(0), 60n).bytes);
    expect((await read(partial)).errors).toEqual(["invalid safetensors: incomplete header"]);
  });

  test("E4: a file that shrank after stat → incomplete header, no throw", async () => {
    const built = buildSafetensors([{ name: "w", shape: [4] }], { pad: "p".repeat(200) });
    const p = write("shrunk.safetensors", built.bytes.subarray(0, 100));
    const info = await readLocalInfo(p, built.bytes.length);
    expect(info.errors).toEqual(["invalid safetensors: incomplete header (the file ends inside it)"]);
  });

  test("E5: not UTF-8, `{` only, `[`, duplicate tensor keys", async () => {
    const nonUtf8 = write("e5-utf8.safetensors", rawSafetensors(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])).bytes);
    expect((await read(nonUtf8)).errors).toEqual(["invalid header: not valid UTF-8"]);
    const brace = write("e5-brace.safetensors", rawSafetensors("{").bytes);
    expect((await read(brace)).errors[0]).toStartWith("invalid header: not valid JSON");
    const array = write("e5-array.safetensors", rawSafetensors("[]").bytes);
    expect((await read(array)).errors).toEqual(["invalid safetensors: not a JSON object"]);
    const dup = write(
      "e5-dup.safetensors",
      rawSafetensors(
        '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}',
        Uint8Array.from([1, 2]),
      ).bytes,
    );
    const info = await read(dup);
    expect(info.errors).toEqual([]);
    expect(info.warnings).toEqual(['duplicate keys in the header (only the last one counts): "w"']);
  });

  test("E6: [×100,000 and deeply nested __metadata__ are refused before anything is kept", async () => {
    const arrays = write("e6-arrays.safetensors", rawSafetensors("[".repeat(100_000) + "]".repeat(100_000)).bytes);
    const a = await read(arrays);
    expect(a.errors).toEqual(["invalid safetensors: not a JSON object"]);
    const inObject = write("e6-object.safetensors", rawSafetensors(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`).bytes);
    const b = await read(inObject);
    expect(b.errors).toEqual(["invalid header: JSON nested deeper than 128 levels"]);
    let nested = '"x"';
    for (let i = 0; i < 1000; i++) nested = `{"k":${nested}}`;
    const meta = write("e6-meta.safetensors", rawSafetensors(`{"__metadata__":{"deep":${nested}}}`).bytes);
    const c = await read(meta);
    expect(c.errors).toEqual(["invalid header: JSON nested deeper than 128 levels"]);
    for (const info of [a, b, c]) expect(() => JSON.stringify(info)).not.toThrow();
  });

  test("E7: overlap, gap, overflow, short data, trailing bytes (polyglot)", async () => {
    const cases: [string, string, Uint8Array, string][] = [
      [
        "overlap",
        '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}',
        new Uint8Array(16),
        "InvalidOffset: tensor data overlaps",
      ],
      [
        "gap",
        '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}',
        new Uint8Array(12),
        "InvalidOffset: gap",
      ],
      ["overflow", '{"a":{"dtype":"F32","shape":[2,9223372036854775808],"data_offsets":[0,8]}}', new Uint8Array(8), "ValidationOverflow"],
      [
        "short",
        '{"a":{"dtype":"U8","shape":[10],"data_offsets":[0,10]}}',
        new Uint8Array(8),
        "MetadataIncompleteBuffer: tensor data ends at byte 10",
      ],
      [
        "trailing",
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}',
        concat([Uint8Array.from([1, 2]), new TextEncoder().encode("<html>polyglot</html>")]),
        "MetadataIncompleteBuffer: 21 bytes after the last tensor",
      ],
    ];
    for (const [name, header, data, expected] of cases) {
      const p = write(`e7-${name}.safetensors`, rawSafetensors(header, data).bytes);
      const info = await read(p);
      expect(info.errors.some((e) => e.startsWith(expected))).toBe(true);
      // Flagged, but the header is still described (the hash is of bytes and is still reported by the hasher).
      expect(info.format).toBe("safetensors");
    }
  });

  test("E8: __proto__ in __metadata__ and 1 MB strings: no pollution, values cut with a marker", async () => {
    const header = `{"__metadata__":{"__proto__":{"polluted":"yes"},"constructor":"c","ss_output_name":"${"o".repeat(1_000_000)}","huge":"${"h".repeat(1_000_000)}"},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`;
    const p = write("e8.safetensors", rawSafetensors(header, Uint8Array.from([7])).bytes);
    const info = await read(p);
    expect(info.errors).toEqual([]);
    expect(info.warnings.join("\n")).toContain("prototype names");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(info.header!.metadata!).sort()).toEqual(["huge", "ss_output_name"]);
    expect(info.header!.metadata!.huge).toBe(`${"h".repeat(1000)}…[truncated 999000 chars]`);
    expect(info.training!.outputName).toBe(`${"o".repeat(1000)}…[truncated 999000 chars]`);
    const copy = { ...info.header!.metadata, ...JSON.parse(JSON.stringify(info.header!.metadata)) };
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
  });

  test("one bad file does not stop the others (a scan's view)", async () => {
    const good = write("good.safetensors", buildSafetensors([{ name: "w", shape: [1] }]).bytes);
    const bad = [join(dir, "e1.safetensors"), join(dir, "e4-3.safetensors"), join(dir, "e6-object.safetensors")];
    const infos = await Promise.all(
      [...bad, good, join(dir, "vanished.safetensors")].map((p) => readLocalInfo(p, existsSync(p) ? statSync(p).size : 100)),
    );
    expect(infos.slice(0, 3).every((i) => i.errors.length > 0)).toBe(true);
    expect(infos[3]?.errors).toEqual([]);
    expect(infos[4]?.errors).toEqual(["cannot open the file (ENOENT)"]);
  });
});

describe("other formats are never executed", () => {
  const spies: { mockRestore(): void }[] = [];
  afterEach(() => {
    for (const s of spies.splice(0)) s.mockRestore();
  });

  test("D5: a pickle named .SafeTensors → pickle + mismatch warning, only the probe read, nothing spawned", async () => {
    const marker = join(dir, "PWNED");
    const p = write("evil.SafeTensors", maliciousPickle(marker));
    const spawn = spyOn(Bun, "spawn");
    const spawnSync = spyOn(Bun, "spawnSync");
    const cpSpawn = spyOn(childProcess, "spawn");
    const cpExec = spyOn(childProcess, "execFile");
    spies.push(spawn, spawnSync, cpSpawn, cpExec);
    const reads: { position: number; length: number }[] = [];
    const info = await readLocalInfo(p, statSync(p).size, { openFile: recordingOpen(reads) });
    expect(info.format).toBe("pickle");
    expect(info.formatMismatch).toContain("content is a Python pickle but the name ends in .SafeTensors");
    expect(info.warnings).toContain(info.formatMismatch!);
    expect(info.errors).toEqual([]);
    expect(reads).toEqual([{ position: 0, length: 16 }]);
    expect(spawn).not.toHaveBeenCalled();
    expect(spawnSync).not.toHaveBeenCalled();
    expect(cpSpawn).not.toHaveBeenCalled();
    expect(cpExec).not.toHaveBeenCalled();
    expect(existsSync(marker)).toBe(false);
  });

  test("D5: a zip .ckpt with data.pkl → zip / torch, no mismatch, bounded read", async () => {
    const p = write("model.ckpt", concat([zipLocalHeader("archive/data.pkl"), new Uint8Array(100_000)]));
    const info = await read(p);
    expect(info).toMatchObject({ format: "zip", zip: { firstEntry: "archive/data.pkl", torch: true }, errors: [], warnings: [] });
    expect(info.bytesRead).toBeLessThan(1000);
  });

  test("a raw pickle .pt is fine; random bytes named .gguf are an error", async () => {
    expect((await read(write("old.pt", maliciousPickle(join(dir, "PWNED2"))))).format).toBe("pickle");
    expect((await read(write("x.gguf", new Uint8Array(64).fill(9)))).errors).toEqual(["invalid GGUF: bad magic"]);
  });
});

describe("GGUF files", () => {
  test("a Flux diffusion GGUF: metadata, tensors (ggml dims flipped) and guess", async () => {
    const bytes = buildGguf({
      kv: [
        { key: "general.architecture", type: "string", value: "flux" },
        { key: "general.name", type: "string", value: "flux1-dev" },
        { key: "general.file_type", type: "uint32", value: 8 },
      ],
      tensors: [
        { name: "double_blocks.0.img_attn.qkv.weight", dims: [16, 48], type: 1 },
        { name: "single_blocks.0.linear1.weight", dims: [16, 8], type: 0 },
        { name: "img_in.weight", dims: [4, 16], type: 0 },
      ],
    });
    const p = write("flux1-dev-Q8_0.gguf", bytes);
    const info = await read(p);
    expect(info.errors).toEqual([]);
    expect(info.gguf).toMatchObject({ version: 3, architecture: "flux", name: "flux1-dev", fileType: 8, tensorCount: 3, truncated: false });
    expect(info.tensors).toEqual({ count: 3, dtypes: { F16: 1, F32: 2 }, parameters: 16 * 48 + 16 * 8 + 4 * 16 });
    expect(info.guess).toMatchObject({ kind: "unet", family: "Flux" });
  });

  test("metadata longer than the read limit: partial, with a warning", async () => {
    const bytes = buildGguf({
      kv: [
        { key: "general.architecture", type: "string", value: "llama" },
        { key: "tokenizer.ggml.tokens", type: "array", itemType: "string", items: Array.from({ length: 5000 }, (_, i) => `tok${i}`) },
      ],
    });
    const p = write("llm.gguf", bytes);
    const info = await readLocalInfo(p, statSync(p).size, { ggufPrefixBytes: 4096 });
    expect(info.bytesRead).toBe(4096);
    expect(info.gguf).toMatchObject({ architecture: "llama", truncated: true });
    expect(info.warnings).toEqual(["GGUF header longer than the 4096-byte read limit: partly read"]);
    expect(info.errors).toEqual([]);
  });

  test("a GGUF cut inside its header is an error", async () => {
    const bytes = buildGguf({ kv: [{ key: "general.architecture", type: "string", value: "llama" }] });
    const p = write("cut.gguf", bytes.subarray(0, 30));
    expect((await read(p)).errors).toEqual(["invalid GGUF: the file ends inside its header"]);
  });
});

describe("readSidecars", () => {
  test("reads the four formats beside a model, each labelled", async () => {
    const sub = mkdtempSync(join(dir, "side-"));
    const model = join(sub, "my_lora.safetensors");
    writeFileSync(model, buildSafetensors([{ name: "w", shape: [1] }]).bytes);
    writeFileSync(join(sub, "my_lora.civitai.info"), "{}");
    writeFileSync(
      join(sub, "my_lora.metadata.json"),
      JSON.stringify({ file_name: "my_lora", model_name: "M", sha256: "a".repeat(64), civitai: { id: 2, modelId: 1 } }),
    );
    writeFileSync(join(sub, "my_lora.cm-info.json"), JSON.stringify({ ModelId: 1, VersionId: 2, ModelName: "M" }));
    writeFileSync(join(sub, "my_lora.json"), JSON.stringify({ "activation text": "trigger", "preferred weight": 0.7 }));
    writeFileSync(join(sub, "other.civitai.info"), "{}");
    const r = await readSidecars(model);
    expect(r.warnings).toEqual([]);
    expect(r.sidecars.map((s) => [s.source, s.file, s.status])).toEqual([
      ["civitai-helper", "my_lora.civitai.info", "not-found"],
      ["lora-manager", "my_lora.metadata.json", "ok"],
      ["stability-matrix", "my_lora.cm-info.json", "ok"],
      ["a1111-user-metadata", "my_lora.json", "ok"],
    ]);
    expect(r.sidecars[3]?.activationText).toBe("trigger");
    expect(r.bytesRead).toBeGreaterThan(0);
  });

  test("oversized, non-UTF-8 and FIFO sidecars are skipped or marked, never hang", async () => {
    const sub = mkdtempSync(join(dir, "side2-"));
    const model = join(sub, "m.safetensors");
    writeFileSync(model, "x");
    writeFileSync(join(sub, "m.metadata.json"), `{"notes":"${"n".repeat(2000)}"}`);
    writeFileSync(join(sub, "m.json"), Uint8Array.from([0x7b, 0xff, 0x7d]));
    const fifo = Bun.spawnSync(["mkfifo", join(sub, "m.civitai.info")]);
    const r = await readSidecars(model, { maxBytes: 1000 });
    expect(r.warnings).toContain(`${join(sub, "m.metadata.json")}: sidecar larger than 1000 bytes; ignored`);
    if (fifo.exitCode === 0) expect(r.warnings).toContain(`${join(sub, "m.civitai.info")}: sidecar is not a regular file; ignored`);
    expect(r.sidecars).toMatchObject([{ file: "m.json", status: "invalid", error: "not valid UTF-8" }]);
  });

  test("no sidecars → empty", async () => {
    const sub = mkdtempSync(join(dir, "side3-"));
    expect(await readSidecars(join(sub, "lonely.safetensors"))).toEqual({ sidecars: [], warnings: [], bytesRead: 0 });
  });
});

describe("readLocalFacts in a large folder", () => {
  test("each sidecar name is looked up in the folder's long listing (by a set): the one listed sidecar is read, no other", async () => {
    // 200 models in a listing of 10,000 names. The growth with the listing (a search of it per
    // model was quadratic) is judged by `bun run bench hostile-scale`.
    const sub = mkdtempSync(join(dir, "large-"));
    const models = Array.from({ length: 200 }, (_, i) => join(sub, `m${i}.safetensors`));
    for (const m of models) writeFileSync(m, "x");
    writeFileSync(join(sub, "m7.json"), JSON.stringify({ "activation text": "seven" }));
    const listing = [...models.map((m) => m.slice(sub.length + 1)), "m7.json", ...Array.from({ length: 10_000 }, (_, i) => `n${i}.bin`)];
    const items = models.map((path) => ({ path, size: 1, cached: null }));
    const r = await readLocalFacts(items, { includeMetadata: false, names: new Map([[sub, listing]]) });
    expect(r.sidecars[7]?.map((x) => x.activationText)).toEqual(["seven"]);
    expect(r.sidecars.filter((x) => x !== undefined)).toHaveLength(1);
  });
});

describe("bounds on what is kept", () => {
  test("a header with 5,000 metadata entries keeps 1,000 and says so", async () => {
    const meta: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) meta[`k${i}`] = "v";
    const p = write("many-keys.safetensors", buildSafetensors([{ name: "w", shape: [1] }], meta).bytes);
    const info = await read(p);
    expect(info.header?.metadataCount).toBe(5000);
    expect(Object.keys(info.header!.metadata!)).toHaveLength(1000);
    expect(info.warnings).toEqual(["__metadata__ has 5000 entries; the first 1000 are kept"]);
  });
});
