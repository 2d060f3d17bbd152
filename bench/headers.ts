/**
 * The local header pass (issue #5): 10,000 safetensors files of 1 MB each (sparse: a real header,
 * then truncated to 1 MB) go through `readLocalPass`, the function `scan` uses. It must read only
 * their headers (Σ 8 + n bytes, checked exactly) and take under 2 s. Median of RUNS runs; the
 * files are written once into a temp dir that is removed afterwards.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readLocalPass } from "../src/local/local-reader.ts";
import { check, median } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const FILES = Number(process.env.BENCH_HEADER_FILES ?? 10_000);
const FILE_BYTES = 1024 * 1024;
const TARGET_MS = 2000;

/** Header length of every file: fixed, so the tensors can be laid out to fill the 1 MB exactly. */
const HEADER_BYTES = 4096;

/**
 * A kohya-like LoRA header whose tensors cover the whole file (a valid file, not trailing data):
 * eight F16 down-projections and one U8 tensor for the rest, JSON padded with spaces to HEADER_BYTES.
 */
function headerFor(i: number): Uint8Array {
  const header: Record<string, unknown> = {
    __metadata__: {
      ss_output_name: `lora_${i}`,
      ss_base_model_version: "sdxl_base_v1-0",
      ss_network_module: "networks.lora",
      ss_network_dim: "8",
      "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    },
  };
  let offset = 0;
  for (let t = 0; t < 8; t++) {
    const bytes = 8 * 2048 * 2;
    header[`lora_unet_input_blocks_${t}_1_transformer_blocks_0_attn2_to_k.lora_down.weight`] = {
      dtype: "F16",
      shape: [8, 2048],
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  const end = FILE_BYTES - 8 - HEADER_BYTES;
  header["zz_rest"] = { dtype: "U8", shape: [end - offset], data_offsets: [offset, end] };
  const json = JSON.stringify(header);
  if (json.length > HEADER_BYTES) throw new Error("bench header too long");
  const body = new TextEncoder().encode(json.padEnd(HEADER_BYTES, " "));
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

export async function benchHeaders(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-bench-headers-"));
  try {
    const items: { path: string; size: number }[] = [];
    let expectedBytes = 0;
    for (let i = 0; i < FILES; i++) {
      const sub = join(dir, `d${Math.floor(i / 500)}`);
      if (i % 500 === 0) mkdirSync(sub);
      const path = join(sub, `lora_${i}.safetensors`);
      const head = headerFor(i);
      const fd = openSync(path, "w");
      writeSync(fd, head);
      closeSync(fd);
      truncateSync(path, FILE_BYTES);
      items.push({ path, size: FILE_BYTES });
      expectedBytes += head.length;
    }
    console.log(`# local header pass (median of ${RUNS} runs; ${FILES} files of 1 MB)`);
    const times: number[] = [];
    let bytesOk = true;
    let lastBytes = 0;
    let errors = 0;
    for (let r = 0; r < RUNS; r++) {
      const started = performance.now();
      const pass = await readLocalPass(items);
      times.push(performance.now() - started);
      lastBytes = pass.bytesRead;
      bytesOk &&= pass.bytesRead === expectedBytes;
      errors = pass.infos.filter((info) => info.errors.length > 0 || info.format !== "safetensors").length;
    }
    const ms = median(times);
    const ok1 = check(
      "header pass reads only headers",
      bytesOk && errors === 0,
      `${lastBytes} bytes read, expected Σ(8+n) = ${expectedBytes} (${((lastBytes / (FILES * FILE_BYTES)) * 100).toFixed(2)}% of the data); ${errors} files with errors`,
    );
    const ok2 = check(
      `header pass, ${FILES} files`,
      ms < TARGET_MS,
      `${ms.toFixed(0)} ms (${((FILES / ms) * 1000).toFixed(0)} files/s; target < ${TARGET_MS} ms)`,
    );
    return ok1 && ok2;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) process.exitCode = (await benchHeaders()) ? 0 : 1;
