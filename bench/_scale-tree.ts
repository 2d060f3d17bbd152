/**
 * Trees for the scale benchmarks (issue 11): N safetensors files of 4 KiB, 500 per folder, each a
 * real file (a kohya-like LoRA header with `__metadata__` and three F16 tensors that fill the rest),
 * so the header pass and AutoV3 do the work they do on a real library. Files are dated an hour
 * back: a fresh file is "racy" and its hash would never be trusted (docs/reliability.md §3.4).
 *
 * A tree is written once under $TMPDIR/civitai-meta-bench-scale/<n>/ with a manifest of every
 * file's SHA-256 (to seed the fake Civitai); a later run reuses it when the manifest is complete.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const FILE_BYTES = 4096;
export const FILES_PER_FOLDER = 500;
/** The JSON header is padded to this length so the tensors fill the file exactly. */
const HEADER_BYTES = 1016;
const DATA_BYTES = FILE_BYTES - 8 - HEADER_BYTES;

export interface ScaleTree {
  dir: string;
  count: number;
  /** SHA-256 of every file, in generation order (file i is `d<i/500>/lora_<i>.safetensors`). */
  sha256: string[];
}

export function scaleRoot(): string {
  return join(process.env.TMPDIR || tmpdir(), "civitai-meta-bench-scale");
}

function headerFor(i: number): Uint8Array {
  const name = `lora_${String(i).padStart(6, "0")}`;
  const third = DATA_BYTES / 3;
  const header: Record<string, unknown> = {
    __metadata__: {
      ss_output_name: name,
      ss_base_model_version: "sdxl_base_v1-0",
      ss_network_module: "networks.lora",
      ss_network_dim: "4",
      ss_network_alpha: "4",
      "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    },
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha": { dtype: "F16", shape: [third / 2], data_offsets: [0, third] },
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": {
      dtype: "F16",
      shape: [4, third / 8],
      data_offsets: [third, 2 * third],
    },
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": {
      dtype: "F16",
      shape: [third / 8, 4],
      data_offsets: [2 * third, 3 * third],
    },
  };
  const json = JSON.stringify(header);
  if (json.length > HEADER_BYTES) throw new Error(`bench header too long (${json.length})`);
  const body = new TextEncoder().encode(json.padEnd(HEADER_BYTES, " "));
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

/** Free bytes where the trees go; the caller refuses to start when a tree would not fit twice over. */
export function freeBytes(dir: string): number {
  mkdirSync(dir, { recursive: true });
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Bytes a tree of `count` files takes on disk (data plus an inode and a folder entry each, roughly). */
export function treeBytes(count: number): number {
  return count * (FILE_BYTES + 512);
}

/** The tree of `count` files, written now or reused from an earlier run. */
export function scaleTree(count: number, log: (line: string) => void = () => {}): ScaleTree {
  const dir = join(scaleRoot(), String(count));
  const manifest = join(dir, "manifest.txt");
  if (existsSync(manifest)) {
    const sha256 = readFileSync(manifest, "utf8").split("\n").filter(Boolean);
    if (sha256.length === count) return { dir, count, sha256 };
  }
  const free = freeBytes(scaleRoot());
  if (free < 2 * treeBytes(count)) {
    throw new Error(`not enough free space under ${scaleRoot()} for ${count} files (${free} bytes free); set TMPDIR elsewhere`);
  }
  rmSync(dir, { recursive: true, force: true });
  const tree = join(dir, "tree");
  mkdirSync(tree, { recursive: true });
  log(`writing ${count} files of ${FILE_BYTES} B under ${tree}`);
  const past = new Date(Date.now() - 3600_000);
  const data = new Uint8Array(DATA_BYTES);
  const sha256: string[] = [];
  for (let i = 0; i < count; i++) {
    const sub = join(tree, `d${String(Math.floor(i / FILES_PER_FOLDER)).padStart(4, "0")}`);
    if (i % FILES_PER_FOLDER === 0) mkdirSync(sub);
    const path = join(sub, `lora_${String(i).padStart(6, "0")}.safetensors`);
    const head = headerFor(i);
    // Distinct data per file: a random head, the rest as it was (hash cost does not depend on content).
    crypto.getRandomValues(data.subarray(0, 64));
    const fd = openSync(path, "w");
    writeSync(fd, head);
    writeSync(fd, data);
    closeSync(fd);
    utimesSync(path, past, past);
    sha256.push(new Bun.CryptoHasher("sha256").update(head).update(data).digest("hex"));
  }
  writeFileSync(manifest, `${sha256.join("\n")}\n`);
  return { dir, count, sha256 };
}

/** The folder the CLI is pointed at. */
export function treeDir(tree: ScaleTree): string {
  return join(tree.dir, "tree");
}
