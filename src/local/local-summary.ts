/**
 * The few facts of a record's `local` section that CSV and Markdown show (docs/report-format.md):
 * one place, so both views say the same. Plain values; escaping is the renderer's job.
 */
import type { LocalInfo, ModelGuess, ModelKind, SidecarSource } from "./local-types.ts";
import type { FileRecord, KnownFrom } from "../report/record-types.ts";

/** Training tags standing in for trigger words: a handful, the most frequent. */
const TRIGGER_TAGS_MAX = 5;

const KIND_LABEL: Readonly<Record<ModelKind, string>> = {
  lora: "LoRA",
  lycoris: "LyCORIS",
  checkpoint: "Checkpoint",
  unet: "UNet only",
  "textual-inversion": "Textual inversion",
  vae: "VAE",
  controlnet: "ControlNet",
  "text-encoder": "Text encoder",
  unknown: "unknown kind",
};

export const SIDECAR_SOURCE_LABEL: Readonly<Record<SidecarSource, string>> = {
  "civitai-helper": "Civitai Helper",
  "lora-manager": "LoRA Manager",
  "stability-matrix": "Stability Matrix",
  "a1111-user-metadata": "A1111 user metadata",
  "version-json": "Civitai version JSON",
};

/** "LoRA, SDXL (guess)", "LyCORIS (LoCon), SD 1.x (guess)"; null when the guess says nothing. */
export function guessLabel(guess: ModelGuess | undefined): string | null {
  if (!guess || (guess.kind === "unknown" && guess.family === "unknown")) return null;
  const kind = KIND_LABEL[guess.kind] ?? String(guess.kind);
  const parts = [guess.subtype ? `${kind} (${guess.subtype})` : kind];
  if (guess.family !== "unknown") parts.push(guess.family);
  return `${parts.join(", ")} (guess)`;
}

/**
 * Trigger words the file itself suggests: the ModelSpec trigger phrase, else kohya's class tokens,
 * else the TRIGGER_TAGS_MAX most frequent training tags. Empty when it has none of them.
 */
export function localTriggerWords(local: LocalInfo | undefined): string[] {
  const phrase = local?.modelspec?.triggerPhrase;
  if (phrase) return [phrase];
  const training = local?.training;
  if (!training) return [];
  if (training.classTokens.length > 0) return training.classTokens;
  return training.topTags.slice(0, TRIGGER_TAGS_MAX).map((t) => t.tag);
}

/** What it was trained on: `ss_base_model_version`, else `ss_sd_model_name`, else `modelspec.architecture`. */
export function trainingBaseModel(local: LocalInfo | undefined): string | null {
  return local?.training?.baseModelVersion ?? local?.training?.sourceModelName ?? local?.modelspec?.architecture ?? null;
}

/** `knownFrom`, or `civitai` for a found record of an inventory written before the field existed. */
export function knownFromOf(record: FileRecord): KnownFrom | null {
  if (record.knownFrom) return record.knownFrom;
  return (record.status === "found" || record.status === "gone") && record.civitai ? "civitai" : null;
}
