import { describe, expect, test } from "bun:test";
import { parseSidecar, sidecarPaths, sidecarSha256Claims } from "../../../src/local/sidecars.ts";

const SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const SHA_UP = SHA.toUpperCase();

/** A Civitai by-hash version object as Civitai Helper stores it (docs/civitai-api.md §1.2, docs/sidecars.md §2). */
function versionObject(extra: Record<string, unknown> = {}) {
  return {
    id: 135867,
    modelId: 122359,
    name: "v1.0",
    baseModel: "SDXL 1.0",
    trainedWords: ["mytrigger", "style"],
    description: "<p>version notes</p>",
    model: { name: "My LoRA", type: "LORA", nsfw: false, poi: false },
    files: [
      {
        id: 1,
        name: "my_lora.safetensors",
        sizeKB: 148_000.5,
        type: "Model",
        primary: true,
        hashes: {
          AutoV1: "12345678",
          AutoV2: SHA_UP.slice(0, 10),
          AutoV3: "ABCDEF012345",
          SHA256: SHA_UP,
          CRC32: "DEADBEEF",
          BLAKE3: "B".repeat(64),
        },
      },
      { id: 2, name: "my_lora_training_data.zip", sizeKB: 10, type: "Training Data", primary: false, hashes: { SHA256: "C".repeat(64) } },
    ],
    images: [{ url: "https://image.civitai.com/x.jpeg" }],
    downloadUrl: "https://civitai.com/api/download/models/135867",
    someFutureField: { nested: true },
    ...extra,
  };
}

describe("<base>.civitai.info (Civitai Helper)", () => {
  test("a version object: ids, names, base model, trained words, files with normalised hashes", () => {
    const s = parseSidecar("civitai-info", "my_lora.civitai.info", JSON.stringify(versionObject(), null, 4));
    expect(s).toMatchObject({
      source: "civitai-helper",
      file: "my_lora.civitai.info",
      status: "ok",
      modelId: 122359,
      versionId: 135867,
      modelName: "My LoRA",
      versionName: "v1.0",
      modelType: "LORA",
      baseModel: "SDXL 1.0",
      trainedWords: ["mytrigger", "style"],
      nsfw: false,
      description: "<p>version notes</p>",
    });
    expect(s.files[0]).toEqual({
      name: "my_lora.safetensors",
      sizeKB: 148_000.5,
      primary: true,
      sha256: SHA,
      autov2: SHA.slice(0, 10),
      autov3: "abcdef012345",
      blake3: "b".repeat(64),
      crc32: "deadbeef",
    });
    expect(s.files).toHaveLength(2);
  });

  test("`{}` means Civitai did not know it", () => {
    const s = parseSidecar("civitai-info", "x.civitai.info", "{}");
    expect(s.status).toBe("not-found");
    expect(s.files).toEqual([]);
  });

  test("CHz: merged model data (description, tags, creator) and the not-found skeleton", () => {
    const merged = parseSidecar(
      "civitai-info",
      "x.civitai.info",
      JSON.stringify(
        versionObject({
          model: { name: "M", type: "LORA", nsfw: true, description: "<p>model</p>", tags: ["style", "anime"] },
          creator: { username: "someone" },
          extensions: { sd_civitai_helper: { version: "1.8.13", last_update: 1, skeleton_file: false } },
        }),
      ),
    );
    expect(merged).toMatchObject({ status: "ok", description: "<p>model</p>", tags: ["style", "anime"], creator: "someone", nsfw: true });

    const skeleton = {
      id: "",
      modelId: "",
      name: "my_lora",
      trainedWords: ["mytrigger"],
      baseModel: "Unknown",
      description: "",
      model: { name: "", type: "", nsfw: "", poi: "" },
      files: [{ name: "my_lora.safetensors", sizeKB: 2, type: "Model", hashes: { AutoV2: SHA.slice(0, 10), SHA256: SHA } }],
      tags: [],
      downloadUrl: "",
      skeleton_file: true,
    };
    const s = parseSidecar("civitai-info", "my_lora.civitai.info", JSON.stringify(skeleton));
    expect(s).toMatchObject({ status: "not-found", modelId: null, versionId: null, baseModel: null, trainedWords: ["mytrigger"] });
    expect(s.files[0]?.sha256).toBe(SHA);
  });

  test("the AutoV3 placeholder and malformed hashes are dropped", () => {
    const s = parseSidecar(
      "civitai-info",
      "x",
      JSON.stringify(versionObject({ files: [{ name: "a", hashes: { AutoV3: "E3B0C44298FC", SHA256: "<script>", CRC32: "xyz" } }] })),
    );
    expect(s.files[0]).toMatchObject({ autov3: null, sha256: null, crc32: null });
  });
});

describe("<base>.metadata.json (ComfyUI-Lora-Manager)", () => {
  const lm = {
    file_name: "my_lora",
    model_name: "My LoRA",
    file_path: "D:/models/loras/my_lora.safetensors",
    size: 151108832,
    modified: 1755000000.0,
    sha256: SHA,
    base_model: "SDXL 1.0",
    preview_url: "D:/models/loras/my_lora.webp",
    preview_nsfw_level: 1,
    notes: "my notes",
    from_civitai: true,
    civitai: { ...versionObject(), creator: { username: "someone" } },
    tags: ["style"],
    modelDescription: "<p>model description</p>",
    civitai_deleted: false,
    favorite: false,
    exclude: false,
    db_checked: false,
    skip_metadata_refresh: false,
    metadata_source: "civitai_api",
    last_checked_at: 1755000100.0,
    hash_status: "completed",
    autov3: "0123456789ab",
    trainedWords: [],
    usage_tips: "{}",
    _unknown_future_key: [1, 2, 3],
  };

  test("the documented fields", () => {
    const s = parseSidecar("lora-manager", "my_lora.metadata.json", JSON.stringify(lm, null, 2));
    expect(s).toMatchObject({
      source: "lora-manager",
      status: "ok",
      modelName: "My LoRA",
      size: 151108832,
      baseModel: "SDXL 1.0",
      notes: "my notes",
      deleted: false,
      versionId: 135867,
      modelId: 122359,
      trainedWords: ["mytrigger", "style"],
      tags: ["style"],
      creator: "someone",
      description: "<p>model description</p>",
    });
    // LM's own hashes of the local file come first.
    expect(s.files[0]).toMatchObject({ name: "my_lora", sha256: SHA, autov3: "0123456789ab" });
  });

  test("a model LM did not find on Civitai, with hashing still pending", () => {
    const s = parseSidecar(
      "lora-manager",
      "x.metadata.json",
      JSON.stringify({ ...lm, from_civitai: false, civitai: {}, sha256: "", hash_status: "pending", autov3: null }),
    );
    expect(s.status).toBe("not-found");
    expect(s.files).toEqual([]);
  });
});

describe("<base>.cm-info.json (Stability Matrix)", () => {
  test("PascalCase fields", () => {
    const cm = {
      ModelId: 122359,
      ModelName: "My LoRA",
      ModelDescription: "<p>d</p>",
      Nsfw: false,
      Tags: ["style"],
      ModelType: "LORA",
      VersionId: 135867,
      VersionName: "v1.0",
      VersionDescription: "notes",
      AuthorUsername: "someone",
      BaseModel: "SDXL 1.0",
      RemoteFileName: "my_lora.safetensors",
      RemoteFileId: 1,
      FileMetadata: { fp: "fp16", size: "pruned", format: "SafeTensor" },
      ImportedAt: "2024-01-01T00:00:00+00:00",
      Hashes: { SHA256: SHA_UP, CRC32: "DEADBEEF", BLAKE3: "A".repeat(64) },
      TrainedWords: ["mytrigger"],
      Stats: { downloadCount: 1 },
      Source: 0,
    };
    const s = parseSidecar("stability-matrix", "my_lora.cm-info.json", JSON.stringify(cm));
    expect(s).toMatchObject({
      source: "stability-matrix",
      status: "ok",
      modelId: 122359,
      versionId: 135867,
      modelName: "My LoRA",
      versionName: "v1.0",
      modelType: "LORA",
      baseModel: "SDXL 1.0",
      creator: "someone",
      trainedWords: ["mytrigger"],
      tags: ["style"],
      notes: "notes",
    });
    expect(s.files).toEqual([
      {
        name: "my_lora.safetensors",
        sizeKB: null,
        primary: null,
        sha256: SHA,
        autov2: null,
        autov3: null,
        blake3: "a".repeat(64),
        crc32: "deadbeef",
      },
    ]);
  });

  test("the minimal example from MetadataImportServiceTests.cs", () => {
    const s = parseSidecar("stability-matrix", "x.cm-info.json", '{"ModelName":"Sample","Hashes":{"BLAKE3":"hash"}}');
    expect(s).toMatchObject({ status: "ok", modelName: "Sample", files: [] });
  });
});

describe("<base>.json", () => {
  test("A1111 user metadata", () => {
    const s = parseSidecar(
      "json",
      "x.json",
      JSON.stringify({
        description: "d",
        "sd version": "SDXL",
        "activation text": "mytrigger, style",
        "preferred weight": 0.8,
        "negative text": "bad",
        notes: "n",
      }),
    );
    expect(s).toMatchObject({
      source: "a1111-user-metadata",
      status: "ok",
      description: "d",
      sdVersion: "SDXL",
      activationText: "mytrigger, style",
      preferredWeight: 0.8,
      negativeText: "bad",
      notes: "n",
      files: [],
    });
  });
  test("with CivitAI Browser+ ids and an upper-case sha256", () => {
    const s = parseSidecar(
      "json",
      "x.json",
      JSON.stringify({ description: "", "activation text": "", modelId: 1, modelVersionId: 2, sha256: SHA_UP }),
    );
    expect(s).toMatchObject({ modelId: 1, versionId: 2, status: "ok" });
    expect(s.files[0]?.sha256).toBe(SHA);
  });
  test('CBP "Model not found"', () => {
    expect(parseSidecar("json", "x.json", JSON.stringify({ sha256: "Model not found" })).status).toBe("not-found");
  });
  test("a version object (e.g. GCD) is read as one", () => {
    const s = parseSidecar("json", "x.json", JSON.stringify(versionObject()));
    expect(s).toMatchObject({ source: "version-json", versionId: 135867 });
  });
  test("unrelated JSON is invalid, not guessed at", () => {
    expect(parseSidecar("json", "x.json", '{"name":"something else"}')).toMatchObject({
      status: "invalid",
      error: "no keys of a known sidecar format",
    });
  });
});

describe("hostile or broken sidecars", () => {
  test("not JSON, not an object, too deep → invalid with a reason, no throw", () => {
    expect(parseSidecar("civitai-info", "x", "not json").status).toBe("invalid");
    expect(parseSidecar("civitai-info", "x", "[1,2]").error).toBe("not a JSON object");
    expect(parseSidecar("civitai-info", "x", "[".repeat(100_000)).error).toContain("nested deeper than 128");
  });
  test("a BOM is tolerated", () => {
    expect(parseSidecar("json", "x.json", `\ufeff${JSON.stringify({ notes: "n" })}`).notes).toBe("n");
  });
  test("NaN and ±Infinity, which Python's json writes and reads back (LM, CH, CBP), read as null; inside strings they stay text", () => {
    const text = `{\n  "file_name": "m",\n  "model_name": "NaN Infinity -Infinity",\n  "size": 1024,\n  "modified": NaN,\n  "sha256": "${"ab".repeat(32)}",\n  "from_civitai": true,\n  "civitai": {"id": 11, "modelId": 1, "name": "v", "stats": {"rating": Infinity, "low": -Infinity}},\n  "last_checked_at": NaN\n}`;
    const s = parseSidecar("lora-manager", "m.metadata.json", text);
    expect(s).toMatchObject({ status: "ok", modelName: "NaN Infinity -Infinity", modelId: 1, versionId: 11, size: 1024 });
    expect(s.files[0]!.sha256).toBe("ab".repeat(32));
    // Still invalid when something else is wrong.
    expect(parseSidecar("lora-manager", "m.metadata.json", '{"size": NaN, "x": }').status).toBe("invalid");
  });
  test("__proto__ in a sidecar pollutes nothing", () => {
    const s = parseSidecar(
      "civitai-info",
      "x",
      '{"__proto__":{"polluted":1},"id":5,"modelId":6,"model":{"__proto__":{"polluted":2},"name":"n"}}',
    );
    expect(s).toMatchObject({ versionId: 5, modelId: 6, modelName: "n" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  test("ids must be positive integers; strings cut with a marker", () => {
    const s = parseSidecar("civitai-info", "x", JSON.stringify({ id: -1, modelId: "12abc", name: "v".repeat(3000), model: { name: 5 } }));
    expect(s.versionId).toBeNull();
    expect(s.modelId).toBeNull();
    expect(s.modelName).toBeNull();
    expect(s.versionName).toBe(`${"v".repeat(1000)}…[truncated 2000 chars]`);
  });
});

describe("helpers", () => {
  test("sidecarPaths strips only the model extension", () => {
    expect(sidecarPaths("/m/my.lora.v2.safetensors").map((p) => p.path)).toEqual([
      "/m/my.lora.v2.civitai.info",
      "/m/my.lora.v2.metadata.json",
      "/m/my.lora.v2.cm-info.json",
      "/m/my.lora.v2.json",
    ]);
  });

  test("sha256 claims: by file name, LM stem, the only file, else the primary; size match noted", () => {
    const ch = parseSidecar("civitai-info", "my_lora.civitai.info", JSON.stringify(versionObject()));
    expect(sidecarSha256Claims([ch], "my_lora.safetensors", Math.round(148_000.5 * 1024))).toEqual([
      { sha256: SHA, source: "civitai-helper", file: "my_lora.civitai.info", sizeMatches: true },
    ]);
    // Renamed locally: the primary file's hash is the claim; a different size says so.
    expect(sidecarSha256Claims([ch], "renamed.safetensors", 5)).toEqual([
      { sha256: SHA, source: "civitai-helper", file: "my_lora.civitai.info", sizeMatches: false },
    ]);
    const lm = parseSidecar("lora-manager", "my_lora.metadata.json", JSON.stringify({ file_name: "my_lora", size: 100, sha256: SHA }));
    expect(sidecarSha256Claims([lm], "my_lora.safetensors", 100)).toEqual([
      { sha256: SHA, source: "lora-manager", file: "my_lora.metadata.json", sizeMatches: true },
    ]);
    expect(sidecarSha256Claims([parseSidecar("civitai-info", "x", "{}")], "x.safetensors", 1)).toEqual([]);
  });

  test("T20: with the file's own SHA-256, a non-primary entry with that hash is a claim too", () => {
    const pruned = "b".repeat(64);
    const version = versionObject();
    const files = [
      ...(version.files as object[]),
      { name: "my_lora_pruned.safetensors", sizeKB: 2, primary: false, hashes: { SHA256: pruned.toUpperCase() } },
    ];
    const ch = parseSidecar("civitai-info", "copy.civitai.info", JSON.stringify({ ...version, files }));
    // Renamed locally and not primary: only the hash can tell which entry it is.
    expect(sidecarSha256Claims([ch], "copy.safetensors", 2048).map((c) => c.sha256)).toEqual([SHA]);
    expect(sidecarSha256Claims([ch], "copy.safetensors", 2048, pruned)).toEqual([
      { sha256: SHA, source: "civitai-helper", file: "copy.civitai.info", sizeMatches: false },
      { sha256: pruned, source: "civitai-helper", file: "copy.civitai.info", sizeMatches: true },
    ]);
  });
});
