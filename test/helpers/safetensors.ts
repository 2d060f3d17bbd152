/**
 * Writes REAL safetensors files for tests: tensors with real bytes laid out as the reference
 * implementation does (sorted by name, contiguous, header padded with spaces to 8 bytes), plus
 * `__metadata__`. `rawSafetensors` builds the malformed ones (docs/cases.md E1–E8) byte by byte.
 */
import { writeFileSync } from "node:fs";

const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;
type Dtype = keyof typeof DTYPE_BYTES;

export interface TensorSpec {
  name: string;
  shape: number[];
  /** Default F32. */
  dtype?: Dtype;
  /** Exact bytes; default a deterministic pattern derived from the name. */
  data?: Uint8Array;
}

export interface BuiltSafetensors {
  bytes: Uint8Array;
  /** `n`: JSON header length, padding included. */
  headerLength: number;
  /** 8 + n: where the tensor data (what AutoV3 hashes) starts. */
  dataOffset: number;
  header: Record<string, unknown>;
}

function patternBytes(name: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let seed = 2166136261;
  for (let i = 0; i < name.length; i++) seed = Math.imul(seed ^ name.charCodeAt(i), 16777619);
  for (let i = 0; i < length; i++) {
    seed = Math.imul(seed ^ (seed >>> 13), 0x5bd1e995) >>> 0;
    out[i] = seed & 0xff;
  }
  return out;
}

function tensorByteLength(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype ?? "F32"];
}

/** A valid file: what `safetensors.torch.save_file(tensors, metadata=…)` would write. */
export function buildSafetensors(tensors: TensorSpec[], metadata?: Record<string, string>): BuiltSafetensors {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of sorted) {
    const length = tensorByteLength(t);
    const data = t.data ?? patternBytes(t.name, length);
    if (data.length !== length) throw new Error(`tensor ${t.name}: ${data.length} bytes given, ${length} needed`);
    header[t.name] = { dtype: t.dtype ?? "F32", shape: t.shape, data_offsets: [offset, offset + length] };
    chunks.push(data);
    offset += length;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += " ".repeat(pad);
  const built = rawSafetensors(json, concat(chunks));
  return { ...built, header };
}

/** Any header text (or bytes) and data; `length` overrides the u64 (for the length attacks). */
export function rawSafetensors(headerJson: string | Uint8Array, data: Uint8Array = new Uint8Array(0), length?: bigint): BuiltSafetensors {
  const headerBytes = typeof headerJson === "string" ? new TextEncoder().encode(headerJson) : headerJson;
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, length ?? BigInt(headerBytes.length), true);
  return {
    bytes: concat([prefix, headerBytes, data]),
    headerLength: headerBytes.length,
    dataOffset: 8 + headerBytes.length,
    header: {},
  };
}

export function writeSafetensors(path: string, tensors: TensorSpec[], metadata?: Record<string, string>): BuiltSafetensors {
  const built = buildSafetensors(tensors, metadata);
  writeFileSync(path, built.bytes);
  return built;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** kohya-ss sd-scripts style metadata for a LoRA (docs/sidecars.md §5); override any key. */
export function kohyaMetadata(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ss_output_name: "my_style",
    ss_sd_model_name: "sd_xl_base_1.0.safetensors",
    ss_new_sd_model_hash: "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
    ss_base_model_version: "sdxl_base_v1-0",
    ss_network_module: "networks.lora",
    ss_network_dim: "32",
    ss_network_alpha: "16.0",
    ss_network_args: '{"conv_dim": "8"}',
    ss_resolution: "(1024, 1024)",
    ss_epoch: "10",
    ss_num_epochs: "10",
    ss_steps: "2500",
    ss_max_train_steps: "2500",
    ss_clip_skip: "2",
    ss_num_train_images: "250",
    ss_learning_rate: "0.0001",
    ss_optimizer: "bitsandbytes.optim.adamw.AdamW8bit",
    ss_mixed_precision: "bf16",
    ss_training_started_at: "1700000000.0",
    ss_training_finished_at: "1700003600.0",
    ss_training_comment: "None",
    ss_tag_frequency: JSON.stringify({
      "10_mystyle": { "1girl": 40, solo: 30, "my style": 50, outdoors: 5 },
      "5_extra": { "1girl": 20, landscape: 12, "my style": 1 },
    }),
    ss_datasets: JSON.stringify([
      {
        is_dreambooth: true,
        batch_size_per_device: 1,
        subsets: [
          { image_dir: "10_mystyle", class_tokens: "mystyle woman", num_repeats: 10 },
          { image_dir: "5_extra", class_tokens: null },
        ],
      },
    ]),
    ss_dataset_dirs: JSON.stringify({ "10_mystyle": { n_repeats: 10, img_count: 25 } }),
    sshs_model_hash: "4b0f45c2a1d85e6a8c1e0a9f0d5b3f2e1c7a9b8d6e5f4a3b2c1d0e9f8a7b6c5d",
    sshs_legacy_hash: "1a2b3c4d",
    ...overrides,
  };
}

/** SAI ModelSpec keys as sd-scripts writes them. */
export function modelspecMetadata(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    "modelspec.sai_model_spec": "1.0.0",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
    "modelspec.title": "My Style",
    "modelspec.author": "someone",
    "modelspec.description": "A style LoRA",
    "modelspec.trigger_phrase": "mystyle",
    "modelspec.license": "openrail++",
    "modelspec.date": "2024-01-01T00:00:00",
    "modelspec.resolution": "1024x1024",
    ...overrides,
  };
}

/** A small kohya-named SDXL LoRA: cross-attention to_k down-projection takes the 2048-d context. */
export function sdxlLoraTensors(rank = 4): TensorSpec[] {
  const block = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2";
  return [
    { name: `${block}_to_k.lora_down.weight`, shape: [rank, 2048], dtype: "F16" },
    { name: `${block}_to_k.lora_up.weight`, shape: [640, rank], dtype: "F16" },
    { name: `${block}_to_k.alpha`, shape: [], dtype: "F16" },
    { name: "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", shape: [rank, 768], dtype: "F16" },
    { name: "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", shape: [768, rank], dtype: "F16" },
    { name: "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", shape: [rank, 1280], dtype: "F16" },
    { name: "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", shape: [1280, rank], dtype: "F16" },
  ];
}

/**
 * The start of a PyTorch zip (`.ckpt`/`.pt`): one local file header for `name` followed by the
 * first bytes of a pickle. Enough for format detection; never a loadable archive.
 */
export function zipLocalHeader(name: string): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const h = new Uint8Array(30);
  const v = new DataView(h.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint16(26, nameBytes.length, true);
  return concat([h, nameBytes, Uint8Array.from([0x80, 0x02])]);
}

/**
 * A protocol-2 pickle that, if anything ever unpickled it, would run `touch <markerPath>`
 * (os.system). Tests assert the marker never appears.
 */
export function maliciousPickle(markerPath: string): Uint8Array {
  return concat([Uint8Array.from([0x80, 0x02]), new TextEncoder().encode(`cos\nsystem\n(S'touch ${markerPath}'\ntR.`)]);
}
