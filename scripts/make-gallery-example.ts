/**
 * docs/examples/gallery.html and gallery.png (called by make-examples.ts): a library of a dozen
 * generated model files, known to the fake Civitai with generated preview images it serves on
 * 127.0.0.1, scanned with `--format html` as a user would; then a screenshot in headless Chromium.
 */
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { makeModel, makeVersion, startFakeCivitai } from "../test/helpers/fake-civitai.ts";
import { hueColour, makePng, picture } from "../test/helpers/images.ts";
import { findChromium, launchChromium } from "../test/helpers/browser.ts";
import { buildSafetensors, kohyaMetadata } from "../test/helpers/safetensors.ts";

const ROOT = join(import.meta.dir, "..");
const LIB = "/tmp/civitai-meta-example-gallery/ComfyUI/models";

interface Entry {
  file: string;
  name: string;
  type: string;
  base: string;
  words: string[];
  /** Image rating (1 PG, 2 PG-13, 4 R); the R-only model shows why it has no preview. */
  rating?: number;
  creator: string;
  description: string;
}

const ENTRIES: Entry[] = [
  {
    file: "loras/pixel-art-xl.safetensors",
    name: "Pixel Art XL",
    type: "LORA",
    base: "SDXL 1.0",
    words: ["pixel art"],
    creator: "nerijs",
    description: "Pixel art for SDXL.",
  },
  {
    file: "loras/ink-wash.safetensors",
    name: "Ink Wash Painting",
    type: "LORA",
    base: "SD 1.5",
    words: ["ink wash", "sumi-e"],
    creator: "brushwork",
    description: "East Asian ink painting style.",
  },
  {
    file: "loras/neon-city.safetensors",
    name: "Neon City Nights",
    type: "LORA",
    base: "Pony",
    words: ["neon city", "night"],
    creator: "glowfox",
    description: "Rainy streets under neon signs.",
  },
  {
    file: "loras/film-grain.safetensors",
    name: "Analog Film Grain",
    type: "LORA",
    base: "Flux.1 D",
    words: ["film grain"],
    creator: "darkroom",
    description: "35 mm film look.",
  },
  {
    file: "loras/watercolor.safetensors",
    name: "Soft Watercolor",
    type: "LORA",
    base: "Illustrious",
    words: ["watercolor"],
    creator: "paperlane",
    description: "Loose watercolour washes.",
  },
  {
    file: "loras/armor-detail.safetensors",
    name: "Armor Detailer",
    type: "LoCon",
    base: "SDXL 1.0",
    words: ["ornate armor"],
    creator: "smith",
    description: "More detail on armour and metal.",
  },
  {
    file: "loras/moody-light.safetensors",
    name: "Moody Lighting",
    type: "LORA",
    base: "SDXL 1.0",
    words: ["moody lighting"],
    rating: 4,
    creator: "umbra",
    description: "Low-key light. Its only sample image is rated R, so the default gallery shows none.",
  },
  {
    file: "checkpoints/dreamy-mix-v3.safetensors",
    name: "Dreamy Mix",
    type: "Checkpoint",
    base: "SD 1.5",
    words: [],
    creator: "dreamer",
    description: "A soft, dreamy general-purpose mix.",
  },
  {
    file: "checkpoints/realvis-xl.safetensors",
    name: "Real Vision XL",
    type: "Checkpoint",
    base: "SDXL 1.0",
    words: [],
    creator: "lensman",
    description: "Photographic base model.",
  },
  {
    file: "embeddings/bad-hands.safetensors",
    name: "Bad Hands",
    type: "TextualInversion",
    base: "SD 1.5",
    words: ["bad-hands-5"],
    creator: "hands_fixer",
    description: "Put it in the negative prompt.",
  },
  {
    file: "vae/clear-vae.safetensors",
    name: "Clear VAE",
    type: "VAE",
    base: "SDXL 1.0",
    words: [],
    creator: "pixelpeep",
    description: "Crisper colours.",
  },
];

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

function modelBytes(name: string): Uint8Array {
  return buildSafetensors(
    [
      { name: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight", shape: [8, 2048] },
      { name: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight", shape: [640, 8] },
    ],
    kohyaMetadata({ ss_output_name: name }),
  ).bytes;
}

/** Writes gallery.html (and gallery.png when a Chromium is installed) into `out`. */
export async function makeGalleryExample(out: string): Promise<void> {
  rmSync("/tmp/civitai-meta-example-gallery", { recursive: true, force: true });
  const civitai = await startFakeCivitai({ fixtures: false });
  const past = new Date("2026-01-15T10:00:00Z");
  try {
    ENTRIES.forEach((e, i) => {
      const path = join(LIB, e.file);
      mkdirSync(join(path, ".."), { recursive: true });
      const bytes = modelBytes(e.name);
      writeFileSync(path, bytes);
      utimesSync(path, past, past);
      // Small pictures, smooth when scaled: a gradient with a light disc in each model's colours.
      civitai.addImage(`img${i}`, makePng(112, 140, picture(112, 140, hueColour(i * 2), hueColour(i * 2 + 5, 0.35))));
      const modelId = 900_100 + i;
      const version = makeVersion({
        versionId: modelId * 10,
        modelId,
        sha256: sha(bytes),
        name: `v${1 + (i % 3)}.0`,
        modelName: e.name,
        modelType: e.type,
        baseModel: e.base,
        extra: {
          trainedWords: e.words,
          images: [{ url: civitai.imageUrl(`img${i}`), nsfwLevel: e.rating ?? 1, width: 832, height: 1040, type: "image" }],
        },
      });
      civitai.addModel(
        makeModel({
          modelId,
          name: e.name,
          type: e.type,
          creator: { username: e.creator },
          description: `<p>${e.description}</p>`,
          versions: [version],
        }),
      );
    });
    // A file Civitai does not know: listed with what the file itself says.
    writeFileSync(join(LIB, "loras/my-own-character.safetensors"), modelBytes("my_own_character"));
    utimesSync(join(LIB, "loras/my-own-character.safetensors"), past, past);

    const gallery = join(out, "gallery.html");
    const proc = Bun.spawn(
      [process.execPath, join(ROOT, "src/cli.ts"), "scan", LIB, "--api-url", civitai.url, "--no-cache", "-o", gallery],
      { stdout: "inherit", stderr: "inherit" },
    );
    if ((await proc.exited) !== 0) throw new Error("scan for the gallery failed");

    if (!findChromium()) {
      console.warn("no Chromium: docs/examples/gallery.png not updated (apt-get install -y chromium)");
      return;
    }
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1400 }, colorScheme: "light" });
      await page.goto(pathToFileURL(gallery).href);
      await page.screenshot({ path: join(out, "gallery.png") });
    } finally {
      await browser.close();
    }
  } finally {
    await civitai.stop();
  }
}
