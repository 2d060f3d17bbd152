/**
 * Issue 9, file contents: huge safetensors headers (docs/cases.md T13), safetensors whose length looks like a
 * pickle signature (docs/cases.md T16) and our own `.civitai.info` for a non-primary file (docs/cases.md T20).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli, runCliBytes } from "../helpers/run-cli.ts";
import { buildSafetensors, maliciousPickle, rawSafetensors, sdxlLoraTensors } from "../helpers/safetensors.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");
const GiB = 1024 ** 3;

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});
beforeEach(() => {
  civitai.reset();
  civitai.clearData();
});

/**
 * A valid safetensors file whose header is `headerBytes` long (at most the format's 100 MB limit),
 * almost all of it `__metadata__` entries `"k0000000":"v",` — millions of keys. One U8 tensor.
 * `seed` (one digit) names the file's output name and is its tensor byte, so each file has its own
 * content; the millions of keys are the same in every file, built once and patched per seed.
 */
function hugeMetadataFiles(paths: readonly string[], headerBytes: number): number {
  const head = (seed: number) => `{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"ss_output_name":"huge ${seed}",`;
  const tail = `"last":"x"}}`;
  const entry = 15; // "k0000000":"v",
  const keys = Math.floor((headerBytes - head(0).length - tail.length) / entry);
  const buf = Buffer.alloc(8 + headerBytes + 1, 0x20);
  buf.writeBigUInt64LE(BigInt(headerBytes), 0);
  const start = 8 + buf.write(head(0), 8, "latin1");
  // `"k0000000":"v",` then `"k0000001":"v",` …: the first key, then ten times as many by copying
  // what is there nine times and setting one more digit in each copy (~1 byte written per key:
  // byte by byte, with the digits counted in place, this took ~0.3 s of every run).
  if (keys > 9_999_999) throw new Error("seven digits per key");
  buf.write(`"k0000000":"v",`, start, "latin1");
  for (let have = 1, digit = 8; have < keys; have *= 10, digit--) {
    for (let d = 1; d <= 9 && d * have < keys; d++) {
      const count = Math.min(have, keys - d * have);
      const to = start + d * have * entry;
      buf.copy(buf, to, start, start + count * entry);
      for (let k = 0; k < count; k++) buf[to + k * entry + digit] = 0x30 + d;
    }
  }
  const at = start + keys * entry;
  buf.write(tail, at, "latin1");
  paths.forEach((path, seed) => {
    if (seed > 9) throw new Error("one digit per seed: the head's length must not change");
    buf.write(head(seed), 8, "latin1");
    buf[8 + headerBytes] = seed; // the tensor's one byte
    writeFileSync(path, buf);
    utimesSync(path, PAST, PAST);
  });
  return keys + 2;
}

describe("T13: headers at the 100 MB limit with millions of metadata keys", () => {
  const LIMIT = 100_000_000;
  let dir: string;
  let keys: number;
  beforeAll(() => {
    dir = tmp.make();
    keys = hugeMetadataFiles(
      [0, 1, 2, 3].map((i) => join(dir, `huge${i}.safetensors`)),
      LIMIT,
    );
  }, 120_000);

  test("T13: inspect stays under 1 GB peak and keeps a bounded part of the metadata", async () => {
    const r = await runCliBytes(["inspect", "--json", "--no-hash", join(dir, "huge0.safetensors")], {
      timeoutMs: 120_000,
      measureRss: true,
    });
    console.log(`T13 inspect: peak RSS ${(r.maxRss / 2 ** 20).toFixed(0)} MiB`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.toString());
    expect(out.local.format).toBe("safetensors");
    expect(out.local.header.metadataCount).toBe(keys);
    expect(Object.keys(out.local.header.metadata).length).toBeLessThanOrEqual(1000);
    expect(out.local.training.outputName).toBe("huge 0");
    expect(out.local.tensors.count).toBe(1);
    expect(r.maxRss).toBeLessThan(GiB);
  }, 120_000);

  test("T13: scan --offline of four such files stays under 1 GB peak", async () => {
    const out = join(tmp.make(), "inv.json");
    const r = await runCliBytes(["scan", dir, "--offline", "--no-cache", "--local-metadata", "-o", out], {
      timeoutMs: 180_000,
      measureRss: true,
    });
    console.log(`T13 scan of 4 files: peak RSS ${(r.maxRss / 2 ** 20).toFixed(0)} MiB`);
    expect(r.code).toBe(0);
    const inv = JSON.parse(readFileSync(out, "utf8"));
    expect(inv.records).toHaveLength(4);
    for (const rec of inv.records) {
      expect(rec.local.errors).toEqual([]);
      expect(rec.local.header.metadataCount).toBe(keys);
      expect(Object.keys(rec.local.header.metadata).length).toBeLessThanOrEqual(1000);
    }
    expect(r.maxRss).toBeLessThan(GiB);
  }, 180_000);
});

describe("T16: a safetensors length whose first bytes look like a pickle signature", () => {
  /** A valid one-tensor file whose JSON header is padded to exactly `length` bytes. */
  function withHeaderLength(path: string, length: number): Uint8Array {
    const json = JSON.stringify({ w: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] }, __metadata__: { ss_output_name: "x" } });
    const bytes = rawSafetensors(json.padEnd(length, " "), new Uint8Array(8).fill(7)).bytes;
    writeFileSync(path, bytes);
    utimesSync(path, PAST, PAST);
    return bytes;
  }

  test("T16: header lengths 0x280, 0x380, 0x480 and 0x580 are read as safetensors, not pickles", async () => {
    const dir = tmp.make();
    for (const length of [0x280, 0x380, 0x480, 0x580]) {
      const path = join(dir, `len-${length.toString(16)}.safetensors`);
      const bytes = withHeaderLength(path, length);
      expect(bytes[0]).toBe(0x80);
      const r = await runCli(["inspect", "--json", "--no-hash", path]);
      expect({ length, code: r.code }).toEqual({ length, code: 0 });
      const out = JSON.parse(r.stdout);
      expect({ length, format: out.local.format }).toEqual({ length, format: "safetensors" });
      expect(out.local.tensors.count).toBe(1);
      expect(out.local.header.length).toBe(length);
      expect(JSON.stringify(out.local.warnings)).not.toContain("pickle");
    }
    const scan = await runCli(["scan", dir, "--offline", "--no-cache"]);
    for (const rec of JSON.parse(scan.stdout).records) expect(rec.local.format).toBe("safetensors");
  });

  test("T16: a real pickle named .safetensors is still recognised as a pickle", async () => {
    const dir = tmp.make();
    const path = join(dir, "sneaky.safetensors");
    writeFileSync(path, maliciousPickle(join(dir, "never-created")));
    const r = await runCli(["inspect", "--json", "--no-hash", path]);
    expect(JSON.parse(r.stdout).local.format).toBe("pickle");
    expect(existsSync(join(dir, "never-created"))).toBe(false);
  });
});

describe("T20: our own .civitai.info identifies a non-primary file", () => {
  test("T20: a pruned variant (not the primary file) is known from its sidecar on a later scan --offline", async () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "loras"));
    const bytes = buildSafetensors(sdxlLoraTensors(2), { ss_output_name: "pruned" }).bytes;
    // The local name differs from every name Civitai gives, so only the SHA-256 can tell which file it is.
    const path = join(dir, "loras", "my-renamed-copy.safetensors");
    writeFileSync(path, bytes);
    utimesSync(path, PAST, PAST);
    const version = makeVersion({
      versionId: 301,
      modelId: 30,
      sha256: sha256("the full-size primary file"),
      files: [{ sha256: sha256(bytes), name: "model_pruned.safetensors", sizeKB: bytes.length / 1024 }],
    });
    civitai.addModel(makeModel({ modelId: 30, name: "Pruned Model", versions: [version] }));

    const online = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "--write-sidecars"]);
    expect(online.code).toBe(0);
    const found = JSON.parse(online.stdout).records[0];
    expect(found.status).toBe("found");
    expect(found.civitai.matchedFile.primary).toBe(false);
    expect(existsSync(join(dir, "loras", "my-renamed-copy.civitai.info"))).toBe(true);

    const offline = await runCli(["scan", dir, "--offline", "--no-cache"]);
    expect(offline.code).toBe(0);
    const rec = JSON.parse(offline.stdout).records[0];
    expect(rec.knownFrom).toBe("sidecar:civitai-helper");
    expect(rec.sidecar).toMatchObject({ versionId: 301, modelId: 30, checkedBy: "sha256" });
    expect(JSON.stringify(rec.local.warnings)).not.toContain("differs");
  });
});
