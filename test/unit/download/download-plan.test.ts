import { describe, expect, test } from "bun:test";
import type { ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import {
  buildPlan,
  bytesFromSizeKB,
  KEY_PLACEHOLDER,
  pickFile,
  relativeToRoots,
  renderDryRun,
  renderEmit,
  shQuote,
  wantedFromInventory,
  wantedFromVersion,
  type WantedFile,
} from "../../../src/download/download-plan.ts";
import { partPathFor } from "../../../src/download/resume-state.ts";
import type { Inventory } from "../../../src/report/inventory-types.ts";
import type { CivitaiInfo, FileRecord } from "../../../src/report/record-types.ts";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

const version: ApiModelVersion = {
  id: 456,
  modelId: 123,
  name: "v1.0",
  model: { name: "Cool LoRA", type: "LORA" },
  files: [
    { id: 1, name: "config.yaml", sizeKB: 1, type: "Config", hashes: { SHA256: SHA_B.toUpperCase() } },
    { id: 2, name: "../../cool.safetensors", sizeKB: 2048.5, type: "Model", primary: true, hashes: { SHA256: SHA_A.toUpperCase() } },
  ],
};

function info(versionId: number, fileId: number | null, sha: string): CivitaiInfo {
  return {
    modelId: 1,
    modelName: "M",
    modelType: "LORA",
    versionId,
    versionName: "v",
    baseModel: null,
    baseModelType: null,
    trainedWords: [],
    nsfw: false,
    nsfwLevel: null,
    availability: { archived: false, takenDown: false, earlyAccess: false, paidAccess: false },
    createdAt: null,
    updatedAt: null,
    publishedAt: null,
    description: null,
    creator: null,
    tags: [],
    license: null,
    pageUrl: "",
    air: null,
    matchedFile:
      fileId === null
        ? null
        : { id: fileId, name: "x", sizeKB: 3, type: "Model", primary: true, format: null, fp: null, size: null, hashes: { SHA256: sha } },
    downloadUrl: null,
    primaryDownloadUrl: "",
    previewImageUrl: null,
  };
}

function record(path: string, extra: Partial<FileRecord>): FileRecord {
  return { path, aliases: [], size: 1000, mtime: null, hashes: { sha256: SHA_A }, status: "found", ...extra };
}

function inventory(records: FileRecord[]): Inventory {
  return {
    schemaVersion: 1,
    generatedAt: "2025-01-01T00:00:00Z",
    tool: { name: "civitai-meta", version: "0.0.0" },
    roots: ["/src/models", "/src/models/loras", "/other/single.safetensors"],
    options: { apiUrl: null, fallbackUrl: null, offline: false, details: true, refresh: false, extensions: [], exclude: [], algos: [] },
    summary: {
      files: records.length,
      byStatus: { found: 0, gone: 0, not_found: 0, error: 0, skipped: 0 },
      bytes: 0,
      durationMs: 0,
      requests: 0,
      cacheHits: { hashes: 0, metadata: 0 },
    },
    records,
  };
}

describe("choosing the file of a version", () => {
  test("by fileId, by SHA-256, else the primary; names sanitised; size from sizeKB is approximate", () => {
    expect(pickFile(version)?.id).toBe(2);
    expect(pickFile(version, { fileId: 1 })?.id).toBe(1);
    expect(pickFile(version, { sha256: SHA_B })?.id).toBe(1);
    expect(pickFile(version, { fileId: 99 })).toBeNull();
    const w = wantedFromVersion(version);
    expect(w).toEqual({
      ok: true,
      wanted: {
        versionId: 456,
        fileId: 2,
        relPath: "cool.safetensors",
        size: 2097664,
        sizeExact: false,
        sha256: SHA_A,
        label: "Cool LoRA / v1.0",
      },
    });
    expect(wantedFromVersion({ id: 9, files: [] })).toEqual({
      ok: false,
      reason: "version 9 lists no downloadable file (archived or removed?)",
    });
    expect(wantedFromVersion(version, { fileId: 7 })).toEqual({ ok: false, reason: "version 456 has no file 7" });
    expect(bytesFromSizeKB(0.5)).toBe(512);
    expect(bytesFromSizeKB("1")).toBeNull();
  });

  test("an unusable API name falls back to an id-based name", () => {
    const w = wantedFromVersion({ id: 5, files: [{ id: 6, name: "..", primary: true }] });
    expect(w.ok && w.wanted.relPath).toBe("civitai-5-6.bin");
  });
});

describe("inventory sources", () => {
  test("found records only, each at its path relative to the longest scan root; exact size and SHA-256 for SHA matches", () => {
    const inv = inventory([
      record("/src/models/checkpoints/a.safetensors", { civitai: info(10, 11, SHA_A), matchedBy: "sha256" }),
      record("/src/models/loras/b.safetensors", { civitai: info(20, 21, SHA_A), matchedBy: "sha256", size: 5 }),
      record("/other/single.safetensors", { civitai: info(30, null, SHA_A) }),
      record("/src/models/x.safetensors", { status: "not_found" }),
      record("/src/models/sub/e.safetensors", { status: "error" }),
      record("/src/models/s.part", { status: "skipped" }),
      record("/src/models/v3.safetensors", { civitai: info(40, 41, SHA_B), matchedBy: "autov3" }),
    ]);
    const { wanted, problems, notOnCivitai, notLookedUp } = wantedFromInventory(inv);
    expect(problems).toEqual([]);
    // What a restore cannot bring back is kept, to be said (a skipped file was never a model).
    expect(notOnCivitai).toEqual(["x.safetensors"]);
    expect(notLookedUp).toEqual(["sub/e.safetensors"]);
    expect(wanted.map((w) => [w.relPath, w.versionId, w.fileId, w.size, w.sizeExact, w.sha256])).toEqual([
      ["checkpoints/a.safetensors", 10, 11, 1000, true, SHA_A],
      ["b.safetensors", 20, 21, 5, true, SHA_A],
      ["single.safetensors", 30, null, 1000, true, SHA_A],
      // AutoV3 match: the scanned file differs from Civitai's, so Civitai's hash and size are expected.
      ["v3.safetensors", 40, 41, 3072, false, SHA_B],
    ]);
  });

  test("a hostile inventory path cannot climb out", () => {
    const inv = inventory([record("/elsewhere/../../etc/passwd", { civitai: info(10, 11, SHA_A) })]);
    const { wanted } = wantedFromInventory(inv);
    expect(wanted.map((w) => w.relPath)).toEqual(["passwd"]);
    expect(relativeToRoots("/r/a/b", ["/r/", "/r/a"])).toBe("b");
  });
});

describe("buildPlan", () => {
  const w = (relPath: string, versionId: number, sha = SHA_A): WantedFile => ({
    versionId,
    fileId: versionId + 1,
    relPath,
    size: 10,
    sizeExact: true,
    sha256: sha,
    label: "x",
  });

  test("URLs are ours (civitai.com, ?fileId=), destinations inside DIR, duplicates fetched once, collisions reported", () => {
    const plan = buildPlan([w("a/x.pt", 1), w("a/x.pt", 1), w("A/X.pt", 2), w("y.pt", 3)], "/dest");
    expect(plan.items.map((i) => [i.dest, i.url])).toEqual([
      ["/dest/a/x.pt", "https://civitai.com/api/download/models/1?fileId=2"],
      ["/dest/y.pt", "https://civitai.com/api/download/models/3?fileId=4"],
    ]);
    expect(plan.conflicts.map((c) => c.reason)).toEqual(["A/X.pt: the same path is already planned for version 1 (a/x.pt)"]);
    expect(partPathFor("/dest/y.pt", 3)).toBe("/dest/y.pt.3.part");
  });

  test("a relative path that escapes DIR becomes a conflict, never an item", () => {
    const plan = buildPlan([w("../x.pt", 1)], "/dest");
    expect(plan.items).toEqual([]);
    expect(plan.conflicts).toHaveLength(1);
  });
});

describe("--dry-run and --emit", () => {
  const items = buildPlan(
    [
      { versionId: 1, fileId: 2, relPath: "it's/a.safetensors", size: 1024 * 1024, sizeExact: true, sha256: SHA_A, label: "a" },
      { versionId: 3, fileId: null, relPath: "b.pt", size: null, sizeExact: false, sha256: null, label: "b" },
    ],
    "/dest dir",
  ).items;

  test("dry run lists sizes, paths, URLs and the total", () => {
    const text = renderDryRun([{ item: items[0]! }, { item: items[1]! }]);
    expect(text).toBe(
      [
        "   1.0 MiB  it's/a.safetensors  https://civitai.com/api/download/models/1?fileId=2",
        "         ?  b.pt  https://civitai.com/api/download/models/3",
        "2 files to fetch, 1.0 MiB plus 1 of unknown size",
        "",
      ].join("\n"),
    );
    expect(renderDryRun([{ item: items[0]!, note: "exists" }])).toContain("0 files to fetch, 0 B");
  });

  test("urls: URL with the key placeholder, output path and SHA-256, tab-separated, no key", () => {
    expect(renderEmit(items, "urls")).toBe(
      `https://civitai.com/api/download/models/1?fileId=2&token=${KEY_PLACEHOLDER}\t${items[0]!.dest}\t${SHA_A}\n` +
        `https://civitai.com/api/download/models/3?token=${KEY_PLACEHOLDER}\t${items[1]!.dest}\t\n`,
    );
  });

  test("aria2: token placeholder, dir/out, checksum=sha-256", () => {
    const text = renderEmit(items, "aria2", "1.2.3");
    expect(text).toContain(
      `https://civitai.com/api/download/models/1?fileId=2&token=${KEY_PLACEHOLDER}\n  dir=/dest dir/it's\n  out=a.safetensors\n  checksum=sha-256=${SHA_A}`,
    );
    expect(text).toContain(`https://civitai.com/api/download/models/3?token=${KEY_PLACEHOLDER}\n  dir=/dest dir\n  out=b.pt`);
    expect(text).not.toContain("checksum=sha-256=\n");
  });

  test("sh: curl with the header placeholder, --fail, -C -, sha256sum check; quoted paths; runs under sh -n", async () => {
    const text = renderEmit(items, "sh");
    expect(text.startsWith("#!/bin/sh\n")).toBe(true);
    expect(text).toContain(`-H "Authorization: Bearer ${KEY_PLACEHOLDER}"`);
    expect(text).toContain("--fail");
    expect(text).toContain("-C -");
    expect(text).toContain("sha256sum");
    expect(text).toContain(`fetch 'https://civitai.com/api/download/models/1?fileId=2' '/dest dir/it'\\''s/a.safetensors' '${SHA_A}'`);
    const check = Bun.spawnSync(["sh", "-n"], { stdin: new TextEncoder().encode(text) });
    expect(check.exitCode).toBe(0);
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
  });
});

describe("issue 9", () => {
  test("T3: no emitted field but the key placeholder carries $ or a backtick, whatever the API names the file", () => {
    const hostile: ApiModelVersion = {
      id: 77,
      files: [{ id: 78, name: "lora_${CIVITAI_API_KEY}`id`$(id).safetensors", primary: true, hashes: { SHA256: SHA_A.toUpperCase() } }],
    };
    const w = wantedFromVersion(hostile);
    if (!w.ok) throw new Error(w.reason);
    const items = buildPlan([w.wanted], "/dest").items;
    const placeholder = /token=\$\{CIVITAI_API_KEY\}/;
    const aria = renderEmit(items, "aria2");
    for (const line of aria.split("\n").filter((l) => l.startsWith("  "))) expect(line).not.toMatch(/[$`]/);
    expect(aria).toContain("  out=lora__{CIVITAI_API_KEY}_id__(id).safetensors");
    for (const line of renderEmit(items, "urls").trim().split("\n")) expect(line.replace(placeholder, "")).not.toMatch(/[$`]/);
    const fetches = renderEmit(items, "sh")
      .split("\n")
      .filter((l) => l.startsWith("fetch "));
    expect(fetches).toHaveLength(1);
    expect(fetches[0]).not.toMatch(/[$`]/);
  });

  test("T17: a record's other names come along, relative to their scan root and sanitised; a bad one is a problem line", () => {
    const inv = inventory([
      record("/src/models/checkpoints/a.safetensors", {
        civitai: info(10, 11, SHA_A),
        matchedBy: "sha256",
        aliases: ["/src/models/loras/a-link.safetensors", "/src/models/ui/a:b.safetensors", "/src/models/../../etc/x"],
      }),
    ]);
    const { wanted, problems } = wantedFromInventory(inv);
    expect(wanted.map((w) => [w.relPath, w.aliases])).toEqual([
      ["checkpoints/a.safetensors", ["a-link.safetensors", "ui/a_b.safetensors"]],
    ]);
    expect(problems).toEqual(["/src/models/../../etc/x: no usable name for this other name of /src/models/checkpoints/a.safetensors"]);
  });

  test("T17: the plan gives each other name a destination; one that escapes or takes a planned path is a conflict", () => {
    const w = (relPath: string, versionId: number, aliases: string[] = []): WantedFile => ({
      versionId,
      fileId: versionId + 1,
      relPath,
      aliases,
      size: 10,
      sizeExact: true,
      sha256: SHA_A,
      label: "x",
    });
    const plan = buildPlan([w("a.pt", 1, ["b/a.pt", "a.pt", "../x.pt", "c.pt"]), w("c.pt", 3)], "/dest");
    expect(plan.items.map((i) => [i.relPath, i.aliases.map((a) => a.dest)])).toEqual([
      ["a.pt", ["/dest/b/a.pt"]],
      ["c.pt", []],
    ]);
    expect(plan.conflicts.map((c) => c.reason)).toEqual([
      'other name "../x.pt" would be outside /dest',
      "other name c.pt: the same path is already planned for version 3 (c.pt)",
    ]);
    const dry = renderDryRun([{ item: plan.items[0]! }]);
    expect(dry).toContain("      link  b/a.pt  (another name of a.pt)");
    const sh = renderEmit(plan.items, "sh");
    expect(sh).toContain(`link '/dest/a.pt' '/dest/b/a.pt'`);
    expect(Bun.spawnSync(["sh", "-n"], { stdin: new TextEncoder().encode(sh) }).exitCode).toBe(0);
  });
});
