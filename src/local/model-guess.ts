/**
 * What a model file probably is, from its tensor names and shapes plus what its own metadata
 * claims. It is a guess and says so: `guessed: true`, a confidence, and the clues it used. Names
 * follow the original (LDM / kohya / BFL) layouts and the diffusers ones; unknown layouts give
 * "unknown" rather than a wrong answer.
 */
import { cutText } from "../shared/json-guard.ts";
import type { GuessConfidence, ModelFamily, ModelGuess, ModelKind } from "./local-types.ts";

export interface TensorLike {
  name: string;
  /** PyTorch order (outermost first); GGUF's reversed order must be flipped by the caller. */
  shape: readonly number[];
}

export interface GuessHints {
  /** kohya `ss_base_model_version` (sd_v1, sd_v2_768_v, sdxl_base_v1-0, flux1, sd3, …). */
  baseModelVersion?: string | null;
  /** `modelspec.architecture` (stable-diffusion-xl-v1-base/lora, flux-1-dev, …) or GGUF `general.architecture`. */
  architecture?: string | null;
  /** kohya `ss_network_module` (networks.lora, lycoris.kohya, …). */
  networkModule?: string | null;
}

/** Metadata text quoted in evidence is cut to this. */
const HINT_MAX_CHARS = 80;

/** Cross-attention context size → family (the text-encoder width the UNet attends to). */
const CONTEXT_DIM_FAMILY: Readonly<Record<number, ModelFamily>> = { 768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL", 1280: "SDXL" };
/** Textual-inversion vector width → family. */
const EMBEDDING_DIM_FAMILY: Readonly<Record<number, ModelFamily>> = { 768: "SD 1.x", 1024: "SD 2.x" };

interface FamilyClue {
  family: ModelFamily;
  confidence: GuessConfidence;
  evidence: string;
}

/** Family named by the file's metadata (kohya base version, ModelSpec or GGUF architecture). */
export function familyFromHint(hint: string): ModelFamily {
  const h = hint.toLowerCase();
  if (/flux/.test(h)) return "Flux";
  if (/sd3|stable-diffusion-v3|sd_v3|stable-diffusion-3/.test(h)) return "SD3";
  if (/sdxl|stable-diffusion-xl|\bxl\b/.test(h)) return "SDXL";
  if (/sd_v2|stable-diffusion-v2|\bsd2|v2-/.test(h)) return "SD 2.x";
  if (/sd_v1|stable-diffusion-v1|\bsd1|sd15|sd_1/.test(h)) return "SD 1.x";
  return "unknown";
}

function kindFromHint(hints: GuessHints): ModelKind | null {
  const a = hints.architecture?.toLowerCase() ?? "";
  if (a.endsWith("/lora")) return "lora";
  if (a.endsWith("/lycoris")) return "lycoris";
  if (a.endsWith("/textual-inversion")) return "textual-inversion";
  if (a.endsWith("/controlnet")) return "controlnet";
  return null;
}

function first<T>(items: readonly T[], pred: (t: T) => boolean): T | undefined {
  for (const t of items) if (pred(t)) return t;
  return undefined;
}

const SD3_BLOCK_RE = /(^|[._])transformer_blocks[._]\d+[._]/;

/**
 * `transformer_blocks.<n>.` followed somewhere by `context_block`, or `context_embedder.`. Not one
 * regex with `.*` between the two: that backtracks from every `transformer_blocks.0.` in the name,
 * and a header's tensor name (any length up to the 100 MB header) repeating it hung `inspect` and
 * `scan` (320 KB: 7.6 s, 1 MB: minutes). The first match ends earliest, so one search after it decides.
 */
function isSd3DiffusersName(name: string): boolean {
  const block = SD3_BLOCK_RE.exec(name);
  if (block !== null && name.includes("context_block", block.index + block[0].length)) return true;
  return /(^|\.)context_embedder\./.test(name);
}

/**
 * HunyuanVideo reuses Flux's block names (double_blocks / single_blocks) but spells its layers its
 * own way (ComfyUI renames them on load): `img_attn_qkv`, `img_mod.linear`, `img_mlp.fc1`,
 * `modulation.linear` where Flux has `img_attn.qkv`, `img_mod.lin`, `img_mlp.0`, `modulation.lin`,
 * plus its text refiner. In kohya LoRA names `img_attn_qkv` is both, so only the dotted form counts.
 */
const HUNYUAN_VIDEO_RE =
  /individual_token_refiner|(^|[._])double_blocks\.\d+\.(img|txt)_attn_qkv|(^|[._])(img|txt)_mod[._]linear|(^|[._])(img|txt)_mlp[._]fc[12]|(^|[._])modulation[._]linear/;

/** Family from the tensors alone, strongest clue first. */
function familyFromTensors(tensors: readonly TensorLike[], names: readonly string[]): FamilyClue | null {
  const has = (re: RegExp) => names.some((n) => re.test(n));
  if (has(/(^|[._])double_blocks[._]/) && has(/(^|[._])single_blocks[._]/)) {
    if (has(HUNYUAN_VIDEO_RE)) {
      return { family: "unknown", confidence: "low", evidence: "double_blocks and single_blocks with HunyuanVideo layer names (not Flux)" };
    }
    return { family: "Flux", confidence: "high", evidence: "double_blocks and single_blocks (Flux transformer)" };
  }
  // AuraFlow (diffusers) has single_transformer_blocks too, beside its joint_transformer_blocks.
  if (has(/(^|[._])single_transformer_blocks[._]/) && !has(/(^|[._])joint_transformer_blocks[._]/)) {
    return { family: "Flux", confidence: "high", evidence: "single_transformer_blocks (Flux, diffusers layout)" };
  }
  if (has(/(^|[._])joint_blocks[._]/)) return { family: "SD3", confidence: "high", evidence: "joint_blocks (SD3 MMDiT)" };
  if (names.some(isSd3DiffusersName)) {
    return {
      family: "SD3",
      confidence: "medium",
      evidence: "context_embedder / context_block without single blocks (SD3, diffusers layout)",
    };
  }
  if (has(/^conditioner\.embedders\.1\./))
    return { family: "SDXL", confidence: "high", evidence: "conditioner.embedders.1 (second text encoder, SDXL)" };
  if (has(/^lora_te2_|(^|\.)text_encoder_2\./))
    return { family: "SDXL", confidence: "high", evidence: "second text encoder (lora_te2 / text_encoder_2: SDXL)" };

  // Cross-attention key projection: its input width is the text context size.
  const toK = first(
    tensors,
    (t) => /attn2[._](to_k|processor[._]to_k)/.test(t.name) && t.shape.length >= 2 && !/lora_up|lora_B|lora[._]up/.test(t.name),
  );
  if (toK) {
    const dim = toK.shape[1]!;
    const family = CONTEXT_DIM_FAMILY[dim];
    if (family) return { family, confidence: "high", evidence: `cross-attention context ${dim} (${family})` };
  }
  if (has(/^model\.diffusion_model\.label_emb\.|(^|\.)add_embedding\.linear_1\./)) {
    return { family: "SDXL", confidence: "medium", evidence: "label_emb / add_embedding (SDXL size conditioning)" };
  }
  if (has(/^cond_stage_model\.transformer\.text_model\./))
    return { family: "SD 1.x", confidence: "medium", evidence: "CLIP ViT-L text encoder (SD 1.x)" };
  if (has(/^cond_stage_model\.model\.transformer\./))
    return { family: "SD 2.x", confidence: "medium", evidence: "OpenCLIP ViT-H text encoder (SD 2.x)" };
  // A single-text-encoder kohya LoRA: the encoder width tells CLIP-L (SD 1.x) from OpenCLIP-H (SD 2.x).
  const te = first(tensors, (t) => /^lora_te_.*(q_proj|k_proj)\.lora_down\.weight$/.test(t.name) && t.shape.length === 2);
  if (te) {
    const family = EMBEDDING_DIM_FAMILY[te.shape[1]!];
    if (family) return { family, confidence: "medium", evidence: `text-encoder width ${te.shape[1]} (${family})` };
  }
  return null;
}

interface KindClue {
  kind: ModelKind;
  subtype: string | null;
  evidence: string;
  /** Extra family clue only this kind knows (embedding width, VAE latent channels). */
  family?: FamilyClue;
}

type Has = (re: RegExp) => boolean;

const CONTROLNET_RE =
  /^control_model\.|(^|\.)input_hint_block\.|(^|\.)controlnet_cond_embedding\.|(^|\.)zero_convs\.|^controlnet_(down_)?blocks\./;
const TEXT_ENCODER_RE = /^(text_model\.)?encoder\.layers\.\d+\.self_attn\.|^encoder\.block\.\d+\.layer\.|^transformer\.resblocks\./;

/** What kind of model the tensors are, by their names and shapes; the first clue that fits wins. */
function kindFromTensors(tensors: readonly TensorLike[], names: readonly string[], hints: GuessHints): KindClue | null {
  const has: Has = (re) => names.some((n) => re.test(n));
  return (
    textualInversionKind(tensors, names) ??
    adapterKind(tensors, has, hints) ??
    (has(CONTROLNET_RE) ? { kind: "controlnet", subtype: null, evidence: "control_model / input_hint_block (ControlNet)" } : null) ??
    diffusionKind(has) ??
    vaeKind(tensors, names, has) ??
    (has(TEXT_ENCODER_RE) ? { kind: "text-encoder", subtype: null, evidence: "text-encoder layers only (CLIP or T5)" } : null)
  );
}

/** Textual inversion: a handful of vectors under A1111 / kohya / SDXL names. */
function textualInversionKind(tensors: readonly TensorLike[], names: readonly string[]): KindClue | null {
  const emb = first(tensors, (t) => /^(emb_params|string_to_param(\.\*)?|clip_l|clip_g|\*)$/.test(t.name));
  if (!emb || names.length > 8) return null;
  const g = first(tensors, (t) => t.name === "clip_g");
  let family: FamilyClue | undefined;
  if (g) family = { family: "SDXL", confidence: "high", evidence: "clip_g vectors (SDXL embedding)" };
  else {
    const width = emb.shape[emb.shape.length - 1];
    const f = width === undefined ? undefined : EMBEDDING_DIM_FAMILY[width];
    if (f) family = { family: f, confidence: "high", evidence: `embedding width ${width} (${f})` };
  }
  return { kind: "textual-inversion", subtype: null, evidence: `"${emb.name}" vectors (textual inversion)`, family };
}

/** LyCORIS algorithms name their factors; kohya / PEFT LoRA use lora_down/up or lora_A/B. */
function adapterKind(tensors: readonly TensorLike[], has: Has, hints: GuessHints): KindClue | null {
  if (has(/\.hada_w[12]_[ab]$/)) return { kind: "lycoris", subtype: "LoHa", evidence: "hada_w1/hada_w2 factors (LyCORIS LoHa)" };
  if (has(/\.lokr_w[12](_[ab])?$/)) return { kind: "lycoris", subtype: "LoKr", evidence: "lokr_w1/lokr_w2 factors (LyCORIS LoKr)" };
  if (has(/\.oft_(blocks|diag)$|\.oft_R\./)) return { kind: "lycoris", subtype: "OFT", evidence: "oft_blocks (LyCORIS OFT)" };
  if (!has(/lora_down|lora_up|\.lora_[AB]\.|\.lora\.(down|up)\.|_lora\.(down|up)\./)) return null;
  const dora = has(/dora_scale$/);
  const mid = has(/\.lora_mid\.weight$/);
  const conv = tensors.some((t) => t.name.endsWith("lora_down.weight") && t.shape.length === 4 && (t.shape[2]! > 1 || t.shape[3]! > 1));
  const lycorisModule = /lycoris/i.test(hints.networkModule ?? "");
  if (mid || (conv && lycorisModule)) {
    return {
      kind: "lycoris",
      subtype: "LoCon",
      evidence: mid ? "lora_mid (LoCon with CP decomposition)" : "LoRA on 3×3 convolutions with lycoris module (LoCon)",
    };
  }
  return {
    kind: "lora",
    subtype: dora ? "DoRA" : conv ? "LoCon (conv layers)" : null,
    evidence: dora ? "lora_down/up with dora_scale (DoRA)" : "lora_down/lora_up (or lora_A/B) pairs (LoRA)",
  };
}

/** A full checkpoint (diffusion model with VAE or text encoder), or the diffusion model alone in any layout. */
function diffusionKind(has: Has): KindClue | null {
  const diffusion = has(/^model\.diffusion_model\./);
  const vaePart = has(/^first_stage_model\.|^vae\./);
  const textPart = has(/^cond_stage_model\.|^conditioner\.|^text_encoders?\./);
  if (diffusion && (vaePart || textPart)) {
    return {
      kind: "checkpoint",
      subtype: null,
      evidence: `model.diffusion_model with ${[vaePart ? "VAE" : "", textPart ? "text encoder" : ""].filter(Boolean).join(" and ")} (full checkpoint)`,
    };
  }
  if (diffusion)
    return { kind: "unet", subtype: null, evidence: "model.diffusion_model only (UNet / diffusion model without VAE or text encoder)" };
  if (has(/^(input_blocks|double_blocks|joint_blocks)\./) || (has(/^single_blocks\./) && has(/^img_in\./))) {
    return { kind: "unet", subtype: null, evidence: "bare diffusion-model tensors (UNet / transformer only)" };
  }
  if (
    (has(/^down_blocks\./) && has(/^up_blocks\./) && has(/^time_embedding\./)) ||
    (has(/^transformer_blocks\./) && has(/^(x_embedder|pos_embed)\./))
  ) {
    return { kind: "unet", subtype: "diffusers", evidence: "diffusers UNet / transformer layout" };
  }
  return null;
}

/** VAE alone: encoder.down + decoder.up and nothing else of note. */
function vaeKind(tensors: readonly TensorLike[], names: readonly string[], has: Has): KindClue | null {
  const vaeOnly = names.length > 0 && names.every((n) => /^(encoder|decoder|quant_conv|post_quant_conv)\./.test(n));
  if (!vaeOnly || !has(/^encoder\.(down|down_blocks)\./) || !has(/^decoder\.(up|up_blocks)\./)) return null;
  const convIn = first(tensors, (t) => t.name === "decoder.conv_in.weight");
  const latent = convIn?.shape[1];
  const evidence = latent === 16 ? "16 latent channels (SD3 or Flux VAE)" : latent === 4 ? "4 latent channels (SD 1.x/2.x/SDXL VAE)" : null;
  return {
    kind: "vae",
    subtype: null,
    evidence: "encoder.down and decoder.up only (VAE)",
    family: evidence ? { family: "unknown", confidence: "low", evidence } : undefined,
  };
}

/**
 * Guesses kind and family. Tensor clues win; metadata hints fill gaps, and a hint that disagrees
 * with the tensors lowers the confidence and is listed as evidence.
 */
export function guessModel(tensors: readonly TensorLike[], hints: GuessHints = {}): ModelGuess {
  const names = tensors.map((t) => t.name);
  const evidence: string[] = [];
  const kindClue = kindFromTensors(tensors, names, hints);
  let kind: ModelKind = kindClue?.kind ?? "unknown";
  let subtype = kindClue?.subtype ?? null;
  if (kindClue) evidence.push(kindClue.evidence);
  else {
    const hinted = kindFromHint(hints);
    if (hinted) {
      kind = hinted;
      evidence.push(`metadata architecture "${cutText(hints.architecture ?? "", HINT_MAX_CHARS)}"`);
    }
  }

  const clue = familyFromTensors(tensors, names) ?? kindClue?.family ?? null;
  const hintText = cutText(hints.architecture ?? hints.baseModelVersion ?? "", HINT_MAX_CHARS);
  const hintFamily = [hints.architecture, hints.baseModelVersion]
    .filter((h): h is string => typeof h === "string" && h !== "")
    .map(familyFromHint)
    .find((f) => f !== "unknown");
  let family: ModelFamily = "unknown";
  let confidence: GuessConfidence = "low";
  if (clue && clue.family !== "unknown") {
    family = clue.family;
    confidence = clue.confidence;
    evidence.push(clue.evidence);
    if (hintFamily && hintFamily !== family) {
      evidence.push(`but the metadata says ${hintFamily} ("${hintText}")`);
      confidence = "low";
    }
  } else {
    if (clue) evidence.push(clue.evidence);
    if (hintFamily) {
      family = hintFamily;
      confidence = "medium";
      evidence.push(`metadata says ${hintFamily} ("${hintText}")`);
    }
  }
  if (kind === "unknown") confidence = "low";
  if (kind === "lora" && /lycoris/i.test(hints.networkModule ?? "")) {
    kind = "lycoris";
    subtype = subtype ?? "LoCon";
    evidence.push(`network module "${cutText(hints.networkModule ?? "", HINT_MAX_CHARS)}"`);
  }
  return { guessed: true, kind, subtype, family, confidence, evidence };
}
