/**
 * The parts of a safetensors `__metadata__` users look at (docs/sidecars.md §5): kohya-ss
 * training keys, SAI ModelSpec keys and the hashes a file claims about itself. Values are
 * untrusted text: strings are cut, nested JSON (ss_tag_frequency, ss_datasets) goes through the
 * same depth/size guard as the header, and embedded hashes must be hex of the right length
 * (A1111 trusted `sshs_model_hash` blindly and got stored XSS through it).
 */
import { AUTOV3_OF_EMPTY, HASH_HEX_LENGTH } from "../hash/hash-algos.ts";
import { cutText, isPlainObject, LOCAL_VALUE_MAX_CHARS, own, parseJsonGuarded } from "../shared/json-guard.ts";
import type { EmbeddedHash, EmbeddedHashKey, ModelSpecInfo, TagCount, TrainingInfo } from "./local-types.ts";

const TOP_TAGS_MAX = 20;
const CLASS_TOKENS_MAX = 50;
const TAG_MAX_CHARS = 100;
/** Nested JSON inside one metadata value: a tag list of a few MB is normal, 32 M characters is not. */
const NESTED_JSON_MAX_CHARS = 32 * 1024 * 1024;

type Meta = Readonly<Record<string, string>>;

function get(meta: Meta, key: string): string | null {
  return Object.hasOwn(meta, key) ? (meta[key] as string) : null;
}

/** A cut string, with kohya's "None" (Python's repr of a missing value) and "" as null. */
function text(meta: Meta, key: string): string | null {
  const v = get(meta, key);
  if (v === null) return null;
  const t = v.trim();
  return t === "" || t === "None" ? null : cutText(t);
}

function num(meta: Meta, key: string): number | null {
  const v = get(meta, key)?.trim();
  if (!v || !/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v)) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** Metadata entries kept for reports: real files have tens, a hostile one could have millions. */
export const METADATA_MAX_KEYS = 1000;

/**
 * `__metadata__` values cut to `max` characters with a marker, at most METADATA_MAX_KEYS entries
 * (the caller says when some were left out); a null-prototype copy.
 */
export function cutMetadata(meta: Meta, max: number = LOCAL_VALUE_MAX_CHARS, maxKeys: number = METADATA_MAX_KEYS): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const key of Object.keys(meta).slice(0, maxKeys)) out[cutText(key, 200)] = cutText(meta[key] as string, max);
  return out;
}

/** `ss_tag_frequency` (`{"10_dataset": {"tag": count}}`) summed over datasets, most frequent first. */
export function parseTagFrequency(value: string, max: number = TOP_TAGS_MAX): TagCount[] {
  const parsed = parseJsonGuarded(value, { maxChars: NESTED_JSON_MAX_CHARS, findDuplicates: false });
  if (!parsed.ok || !isPlainObject(parsed.value)) return [];
  const totals = new Map<string, number>();
  for (const dataset of Object.values(parsed.value)) {
    if (!isPlainObject(dataset)) continue;
    for (const [rawTag, count] of Object.entries(dataset)) {
      const tag = rawTag.trim();
      if (tag === "" || typeof count !== "number" || !Number.isFinite(count)) continue;
      totals.set(tag, (totals.get(tag) ?? 0) + count);
    }
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, max)
    .map(([tag, count]) => ({ tag: cutText(tag, TAG_MAX_CHARS), count }));
}

/**
 * Class tokens from `ss_datasets[].subsets[].class_tokens`; when absent, from the DreamBooth
 * folder names in `ss_dataset_dirs` (`"10_sks dog"` → `"sks dog"`).
 */
export function parseClassTokens(datasets: string | null, datasetDirs: string | null): string[] {
  const tokens: string[] = [];
  const add = (t: unknown) => {
    if (typeof t !== "string") return;
    const s = cutText(t.trim(), TAG_MAX_CHARS);
    if (s !== "" && s !== "None" && !tokens.includes(s) && tokens.length < CLASS_TOKENS_MAX) tokens.push(s);
  };
  if (datasets) {
    const parsed = parseJsonGuarded(datasets, { maxChars: NESTED_JSON_MAX_CHARS, findDuplicates: false });
    if (parsed.ok && Array.isArray(parsed.value)) {
      for (const ds of parsed.value) {
        if (!isPlainObject(ds)) continue;
        const subsets = own(ds, "subsets");
        if (!Array.isArray(subsets)) continue;
        for (const sub of subsets) if (isPlainObject(sub)) add(own(sub, "class_tokens"));
      }
    }
  }
  if (tokens.length === 0 && datasetDirs) {
    const parsed = parseJsonGuarded(datasetDirs, { maxChars: NESTED_JSON_MAX_CHARS, findDuplicates: false });
    if (parsed.ok && isPlainObject(parsed.value)) {
      for (const dir of Object.keys(parsed.value)) {
        const m = /^\d+_(.+)$/.exec(dir);
        if (m) add(m[1]);
      }
    }
  }
  return tokens;
}

/** The kohya-ss training summary, or null when the file has no `ss_*` keys. */
export function extractTraining(meta: Meta): TrainingInfo | null {
  if (!Object.keys(meta).some((k) => k.startsWith("ss_"))) return null;
  const tagFrequency = get(meta, "ss_tag_frequency");
  return {
    outputName: text(meta, "ss_output_name"),
    baseModelVersion: text(meta, "ss_base_model_version"),
    sourceModelName: text(meta, "ss_sd_model_name"),
    sourceModelHash: text(meta, "ss_new_sd_model_hash") ?? text(meta, "ss_sd_model_hash"),
    networkModule: text(meta, "ss_network_module"),
    networkDim: num(meta, "ss_network_dim"),
    networkAlpha: num(meta, "ss_network_alpha"),
    networkArgs: text(meta, "ss_network_args"),
    resolution: text(meta, "ss_resolution"),
    epoch: num(meta, "ss_epoch"),
    numEpochs: num(meta, "ss_num_epochs"),
    steps: num(meta, "ss_steps"),
    maxTrainSteps: num(meta, "ss_max_train_steps"),
    clipSkip: num(meta, "ss_clip_skip"),
    numTrainImages: num(meta, "ss_num_train_images"),
    learningRate: text(meta, "ss_learning_rate"),
    optimizer: text(meta, "ss_optimizer"),
    mixedPrecision: text(meta, "ss_mixed_precision"),
    trainingStartedAt: text(meta, "ss_training_started_at"),
    trainingFinishedAt: text(meta, "ss_training_finished_at"),
    comment: text(meta, "ss_training_comment"),
    topTags: tagFrequency ? parseTagFrequency(tagFrequency) : [],
    classTokens: parseClassTokens(get(meta, "ss_datasets"), get(meta, "ss_dataset_dirs")),
  };
}

/** The ModelSpec summary, or null when the file has no `modelspec.*` keys. */
export function extractModelSpec(meta: Meta): ModelSpecInfo | null {
  if (!Object.keys(meta).some((k) => k.startsWith("modelspec."))) return null;
  const m = (k: string) => text(meta, `modelspec.${k}`);
  return {
    specVersion: m("sai_model_spec"),
    architecture: m("architecture"),
    implementation: m("implementation"),
    title: m("title"),
    author: m("author"),
    description: m("description"),
    triggerPhrase: m("trigger_phrase"),
    license: m("license"),
    date: m("date"),
    resolution: m("resolution"),
    usageHint: m("usage_hint"),
    tags: m("tags"),
    predictionType: m("prediction_type"),
  };
}

const EMBEDDED_HASH_LENGTH: Readonly<Record<EmbeddedHashKey, number>> = {
  sshs_model_hash: 64,
  sshs_legacy_hash: HASH_HEX_LENGTH.autov1,
  "modelspec.hash_sha256": 64,
};

export interface EmbeddedHashesResult {
  hashes: EmbeddedHash[];
  /** Why a present value was ignored; never quotes the value (it may be markup). */
  warnings: string[];
}

/**
 * `sshs_model_hash`, `sshs_legacy_hash` and `modelspec.hash_sha256`, accepted only as hex of the
 * right length (an optional `0x`, as OneTrainer writes) and never the SHA-256 of empty input that
 * repackaging tools write (docs/civitai-api.md §5). A full 64-hex data hash yields an AutoV3 candidate.
 */
export function extractEmbeddedHashes(meta: Meta): EmbeddedHashesResult {
  const hashes: EmbeddedHash[] = [];
  const warnings: string[] = [];
  for (const key of Object.keys(EMBEDDED_HASH_LENGTH) as EmbeddedHashKey[]) {
    const raw = get(meta, key);
    if (raw === null || raw.trim() === "") continue;
    const length = EMBEDDED_HASH_LENGTH[key];
    const value = raw.trim().replace(/^0x/i, "").toLowerCase();
    if (value.length !== length || !/^[0-9a-f]+$/.test(value)) {
      warnings.push(`${key} ignored: not ${length} hexadecimal digits`);
      continue;
    }
    if (length === 64 && value.startsWith(AUTOV3_OF_EMPTY)) {
      warnings.push(`${key} ignored: it is the SHA-256 of empty input, a placeholder some tools write`);
      continue;
    }
    hashes.push({ key, value, autov3: length === 64 ? value.slice(0, HASH_HEX_LENGTH.autov3) : null });
  }
  return { hashes, warnings };
}
