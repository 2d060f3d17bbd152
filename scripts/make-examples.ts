/**
 * Regenerates docs/examples/: a scan of a generated folder against the fake Civitai server from
 * the tests (no network), written as JSON, CSV, Markdown and JUnit XML (a model with newer
 * versions, one in early access and one for another base model; a copy of a file); then the
 * folder changed (a file moved, one deleted, one added), scanned again and compared with `diff`
 * (docs/examples/diff.md); then an HTML gallery of a larger generated library whose preview
 * images the fake serves (docs/examples/gallery.html), and its screenshot in headless Chromium
 * (docs/examples/gallery.png; skipped without a Chromium, or with --no-gallery).
 *   bun scripts/make-examples.ts [--no-gallery]
 */
import { createHash } from "node:crypto";
import { mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
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
files["backup/pixel-art-xl.safetensors"] = files["loras/pixel-art-xl.safetensors"]!; // a copy
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
  publishedAt: "2026-01-10T12:00:00.000Z",
});
// Newer versions of Pixel Art XL: one for the same base model, still in early access, and the newest for another base model.
const pixelV2 = makeVersion({
  versionId: 135999,
  modelId: 120096,
  sha256: sha("pixel art xl v2, not in the library"),
  name: "v2.0",
  modelName: "Pixel Art XL",
  baseModel: "SDXL 1.0",
  publishedAt: "2026-10-01T12:00:00.000Z",
  extra: { availability: "EarlyAccess", earlyAccessDeadline: "2027-01-31T00:00:00.000Z" },
});
const pixelFlux = makeVersion({
  versionId: 136500,
  modelId: 120096,
  sha256: sha("pixel art flux, not in the library"),
  name: "Flux v1",
  modelName: "Pixel Art XL",
  baseModel: "Flux.1 D",
  publishedAt: "2026-11-01T12:00:00.000Z",
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
    // Civitai's order: the latest first.
    versions: [pixelFlux, pixelV2, pixel],
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

async function cli(args: string[]): Promise<void> {
  const proc = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), ...args], { stdout: "inherit", stderr: "inherit" });
  if ((await proc.exited) !== 0) throw new Error(`civitai-meta ${args[0]} failed`);
}

mkdirSync(OUT, { recursive: true });
try {
  for (const ext of ["json", "csv", "md", "xml"]) {
    await cli(["scan", LIB, "--api-url", civitai.url, "--no-cache", "-o", join(OUT, `inventory.${ext}`)]);
  }
  // The folder a week later: the checkpoint moved into a subfolder, the embedding deleted, a LoRA added.
  mkdirSync(join(LIB, "checkpoints/sd15"));
  renameSync(join(LIB, "checkpoints/dreamy-mix-v3.safetensors"), join(LIB, "checkpoints/sd15/dreamy-mix-v3.safetensors"));
  rmSync(join(LIB, "embeddings/bad-hands.pt"));
  writeFileSync(
    join(LIB, "loras/downloaded-yesterday.safetensors"),
    lora("downloaded_yesterday", {}).replace("downloaded", "fetched"),
    "latin1",
  );
  utimesSync(join(LIB, "loras/downloaded-yesterday.safetensors"), past, past);
  const after = "/tmp/civitai-meta-example/after.json";
  await cli(["scan", LIB, "--api-url", civitai.url, "--no-cache", "-o", after]);
  await cli(["diff", join(OUT, "inventory.json"), after, "-o", join(OUT, "diff.md")]);
} finally {
  await civitai.stop();
}

if (!process.argv.includes("--no-gallery")) await makeGalleryExample(OUT);
