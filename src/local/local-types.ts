/**
 * What we know about a model file from the file itself and the sidecars other tools left beside
 * it, with no network: the future `local` section of a FileRecord (issue #5). Everything here is
 * plain JSON (no BigInt, no Map) so it can be cached and written into reports as is.
 */

/** The format by content (magic bytes), never by extension (docs/reliability.md §4.8). */
export type LocalFormat = "safetensors" | "gguf" | "zip" | "pickle" | "unknown";

export interface ZipSummary {
  /** Name of the first entry, cut and only from a bounded read; never extracted. */
  firstEntry: string | null;
  /** A PyTorch archive (`<name>/data.pkl` and friends): a pickle inside, never loaded. */
  torch: boolean;
}

interface HeaderSummary {
  /** JSON header length `n` (bytes after the 8-byte length). */
  length: number;
  /** Where the tensor data starts (8 + n): the offset AutoV3 hashes from. */
  dataOffset: number;
  /** Number of `__metadata__` entries in the file. */
  metadataCount: number;
  /**
   * `__metadata__` string values (null-prototype, keys `__proto__`/`constructor`/`prototype`
   * dropped), each cut at LOCAL_VALUE_MAX_CHARS with a "…[truncated N chars]" marker. Absent when
   * the reader was asked not to keep it.
   */
  metadata?: Record<string, string>;
}

interface TensorSummary {
  count: number;
  /** dtype → number of tensors, e.g. `{ "F16": 720, "F32": 2 }`. */
  dtypes: Record<string, number>;
  /** Sum of the shape products; a Number (exact below 2^53, which any real model is). */
  parameters: number;
}

export type ModelKind =
  | "lora"
  | "lycoris"
  | "checkpoint"
  | "unet"
  | "textual-inversion"
  | "vae"
  | "controlnet"
  | "text-encoder"
  | "unknown";

export type ModelFamily = "SD 1.x" | "SD 2.x" | "SDXL" | "SD3" | "Flux" | "unknown";

export type GuessConfidence = "high" | "medium" | "low";

/** A guess from tensor names and shapes (and metadata hints): never presented as a fact. */
export interface ModelGuess {
  /** Always true: readers must label it "guess". */
  guessed: true;
  kind: ModelKind;
  /** Finer kind when known: "LoCon", "LoHa", "LoKr", "OFT", "DoRA", "diffusers", … */
  subtype: string | null;
  family: ModelFamily;
  confidence: GuessConfidence;
  /** Why, one short phrase per clue, e.g. "cross-attention context 2048 (SDXL)". */
  evidence: string[];
}

export interface TagCount {
  tag: string;
  count: number;
}

/** The kohya-ss `ss_*` keys users look at (docs/sidecars.md §5). Strings are cut. */
export interface TrainingInfo {
  outputName: string | null;
  baseModelVersion: string | null;
  /** `ss_sd_model_name`: the model it was trained on. */
  sourceModelName: string | null;
  sourceModelHash: string | null;
  networkModule: string | null;
  networkDim: number | null;
  networkAlpha: number | null;
  networkArgs: string | null;
  resolution: string | null;
  epoch: number | null;
  numEpochs: number | null;
  steps: number | null;
  maxTrainSteps: number | null;
  clipSkip: number | null;
  numTrainImages: number | null;
  learningRate: string | null;
  optimizer: string | null;
  mixedPrecision: string | null;
  trainingStartedAt: string | null;
  trainingFinishedAt: string | null;
  comment: string | null;
  /** From `ss_tag_frequency`, summed over datasets, most frequent first (at most TOP_TAGS_MAX). */
  topTags: TagCount[];
  /** From `ss_datasets[].subsets[].class_tokens`, else the `N_tokens` folder names of `ss_dataset_dirs`. */
  classTokens: string[];
}

/** SAI ModelSpec keys (`modelspec.*`, docs/sidecars.md §5). */
export interface ModelSpecInfo {
  specVersion: string | null;
  architecture: string | null;
  implementation: string | null;
  title: string | null;
  author: string | null;
  description: string | null;
  triggerPhrase: string | null;
  license: string | null;
  date: string | null;
  resolution: string | null;
  usageHint: string | null;
  tags: string | null;
  predictionType: string | null;
}

export type EmbeddedHashKey = "sshs_model_hash" | "sshs_legacy_hash" | "modelspec.hash_sha256";

/** A hash the file claims about itself: checked for shape only, never trusted as ours. */
export interface EmbeddedHash {
  key: EmbeddedHashKey;
  /** Lower-case hex, `0x` prefix removed. */
  value: string;
  /** First 12 hex of a full (64-hex) data hash: what Civitai calls AutoV3. */
  autov3: string | null;
}

export type GgufScalar = string | number | boolean;

interface GgufArraySummary {
  array: true;
  itemType: string;
  length: number;
  /** The first few items only. */
  head: GgufScalar[];
}

export type GgufValue = GgufScalar | GgufArraySummary;

export interface GgufSummary {
  version: number;
  tensorCount: number;
  kvCount: number;
  architecture: string | null;
  name: string | null;
  /** `general.file_type` (llama.cpp's ftype number) when present. */
  fileType: number | null;
  /** Key/value metadata (null-prototype), strings cut, arrays summarised. */
  metadata: Record<string, GgufValue>;
  /** True when the bounded prefix ended before all of the metadata (or tensor list) was read. */
  truncated: boolean;
}

export type SidecarSource =
  | "civitai-helper" // <base>.civitai.info
  | "lora-manager" // <base>.metadata.json
  | "stability-matrix" // <base>.cm-info.json
  | "a1111-user-metadata" // <base>.json with A1111 keys (and CivitAI Browser+'s sha256)
  | "version-json"; // <base>.json holding a Civitai version object (e.g. GCD)

/** Hashes one sidecar attributes to one file (lower-case hex, shape-checked). */
export interface SidecarFileHashes {
  name: string | null;
  sizeKB: number | null;
  primary: boolean | null;
  sha256: string | null;
  autov2: string | null;
  autov3: string | null;
  blake3: string | null;
  crc32: string | null;
}

/** One sidecar in one normalised shape. Hints only: its hashes count when ours agree. */
export interface SidecarInfo {
  source: SidecarSource;
  /** The sidecar's file name (base name only). */
  file: string;
  /** `not-found`: the tool looked and Civitai did not know it (CH `{}`, CHz skeleton, CBP "Model not found"). */
  status: "ok" | "not-found" | "invalid";
  error?: string;
  modelId: number | null;
  versionId: number | null;
  modelName: string | null;
  versionName: string | null;
  modelType: string | null;
  baseModel: string | null;
  trainedWords: string[];
  tags: string[];
  creator: string | null;
  nsfw: boolean | null;
  /** Raw (often HTML) description, cut. */
  description: string | null;
  /** Size in bytes the tool recorded for the local file (LM `size`), for --trust-sidecars. */
  size: number | null;
  /** The files the sidecar describes with their hashes (the version's files, or just this one). */
  files: SidecarFileHashes[];
  /** Civitai Helper / LM / CBP say Civitai deleted or never had it. */
  deleted: boolean | null;
  /** A1111 user metadata fields. */
  activationText: string | null;
  preferredWeight: number | null;
  negativeText: string | null;
  notes: string | null;
  sdVersion: string | null;
}

/** Everything the local pass learned about one file. `errors` are per file and never stop a scan. */
export interface LocalInfo {
  format: LocalFormat;
  /** Set when the extension promises another format (a pickle named .safetensors: InvokeAI #2946). */
  formatMismatch?: string;
  /** Bytes read from the model file itself (header only; sidecars not counted). */
  bytesRead: number;
  header?: HeaderSummary;
  tensors?: TensorSummary;
  guess?: ModelGuess;
  training?: TrainingInfo;
  modelspec?: ModelSpecInfo;
  embeddedHashes?: EmbeddedHash[];
  gguf?: GgufSummary;
  zip?: ZipSummary;
  sidecars?: SidecarInfo[];
  errors: string[];
  warnings: string[];
}
