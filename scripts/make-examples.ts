/**
 * Regenerates docs/examples/: a scan of a generated folder against the fake Civitai server from
 * the tests (no network), written in all three formats; then an HTML gallery of a larger
 * generated library whose preview images the fake serves (docs/examples/gallery.html), and its
 * screenshot in headless Chromium (docs/examples/gallery.png; skipped without a Chromium).
 *   bun scripts/make-examples.ts
 */
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai } from "../test/helpers/fake-civitai.ts";
import { buildSafetensors, kohyaMetadata } from "../test/helpers/safetensors.ts";
import { makeGalleryExample } from "./make-gallery-example.ts";

const ROOT = join(import.meta.dir, "..");
const OUT = join(ROOT, "docs/examples");
const LIB = "/tmp/civitai-meta-example/ComfyUI/models";
const sha = (s: string) => createHash("sha256").update(Buffer.from(s, "latin1")).digest("hex");

rmSync("/tmp/civitai-meta-example", { recursive: true, force: true });
// Two real safetensors LoRAs (SDXL-shaped tensor names, kohya metadata), so the local section shows.
const lora = (name: string, meta: Record<string, string>) =>
  Buffer.from(
    buildSafetensors(
      [
        { name: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight", shape: [8, 2048] },
        { name: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight", shape: [640, 8] },
        { name: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha", shape: [] },
      ],
      kohyaMetadata({ ss_output_name: name, ...meta }),
    ).bytes,
  ).toString("latin1");
const files: Record<string, string> = {
  "loras/pixel-art-xl.safetensors": lora("pixel-art-xl", {}),
  "loras/my-own-character.safetensors": lora("my_own_character", {
    "modelspec.trigger_phrase": "mychar woman",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
  }),
  "checkpoints/dreamy-mix-v3.safetensors": "example: dreamy mix checkpoint",
  "embeddings/bad-hands.pt": "example: negative embedding",
};
const past = new Date("2026-01-15T10:00:00Z");
for (const [name, content] of Object.entries(files)) {
  mkdirSync(join(LIB, name, ".."), { recursive: true });
  writeFileSync(join(LIB, name), Buffer.from(content, "latin1"));
  utimesSync(join(LIB, name), past, past);
}
writeFileSync(join(LIB, "loras/still-downloading.safetensors.part"), "partial");

const civitai = await startFakeCivitai({ fixtures: false });
const pixel = makeVersion({
  versionId: 135931,
  modelId: 120096,
  sha256: sha(files["loras/pixel-art-xl.safetensors"]!),
  name: "v1.1",
  modelName: "Pixel Art XL",
  baseModel: "SDXL 1.0",
});
const dreamy = makeVersion({
  versionId: 880001,
  modelId: 770001,
  sha256: sha(files["checkpoints/dreamy-mix-v3.safetensors"]!),
  name: "v3 (fp16)",
  modelName: "Dreamy Mix",
  modelType: "Checkpoint",
  baseModel: "SD 1.5",
});
const hands = makeVersion({
  versionId: 60938,
  modelId: 56519,
  sha256: sha(files["embeddings/bad-hands.pt"]!),
  name: "v5",
  modelName: "Bad Hands",
  modelType: "TextualInversion",
  baseModel: "SD 1.5",
});
civitai.addModel(
  makeModel({
    modelId: 120096,
    name: "Pixel Art XL",
    type: "LORA",
    tags: ["pixel art", "style"],
    creator: { username: "nerijs" },
    description: "<p>Pixel art LoRA for <b>SDXL</b>. Use <i>pixel art</i> in the prompt.</p>",
    versions: [pixel],
  }),
);
civitai.addModel(
  makeModel({
    modelId: 770001,
    name: "Dreamy Mix",
    type: "Checkpoint",
    tags: ["base model", "anime"],
    creator: { username: "dreamer" },
    description: "<p>A soft, dreamy general-purpose mix.</p>",
    versions: [dreamy],
  }),
);
civitai.addModel(
  makeModel({
    modelId: 56519,
    name: "Bad Hands",
    type: "TextualInversion",
    tags: ["negative embedding"],
    creator: { username: "hands_fixer" },
    description: "<p>Put it in the negative prompt.</p>",
    versions: [hands],
  }),
);

mkdirSync(OUT, { recursive: true });
try {
  for (const ext of ["json", "csv", "md"]) {
    const proc = Bun.spawn(
      [
        process.execPath,
        join(ROOT, "src/cli.ts"),
        "scan",
        LIB,
        "--api-url",
        civitai.url,
        "--no-cache",
        "-o",
        join(OUT, `inventory.${ext}`),
      ],
      {
        stdout: "inherit",
        stderr: "inherit",
      },
    );
    if ((await proc.exited) !== 0) throw new Error(`scan for ${ext} failed`);
  }
} finally {
  await civitai.stop();
}

await makeGalleryExample(OUT);
