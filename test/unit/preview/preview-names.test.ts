import { expect, test } from "bun:test";
import { existingPreview, previewPath } from "../../../src/preview/preview-names.ts";

test("previewPath: <base>.preview.<ext> beside the model", () => {
  expect(previewPath("/m/loras/pixel-art.safetensors", "jpg")).toBe("/m/loras/pixel-art.preview.jpg");
  expect(previewPath("/m/loras/v1.5.final.ckpt", "webp")).toBe("/m/loras/v1.5.final.preview.webp");
  expect(previewPath("/m/.hidden", "png")).toBe("/m/.hidden.preview.png");
});

test("existingPreview: any name A1111, Forge, LoRA Manager or Stability Matrix reads, in any case", () => {
  const model = "/m/loras/Pixel Art.safetensors";
  expect(existingPreview(model, ["Pixel Art.safetensors", "Pixel Art.civitai.info"])).toBeNull();
  for (const name of [
    "Pixel Art.png",
    "Pixel Art.preview.png",
    "pixel art.PREVIEW.JPG",
    "Pixel Art.jpeg",
    "Pixel Art.webp",
    "Pixel Art.gif",
    "Pixel Art.avif",
    "Pixel Art.jxl",
    "Pixel Art.mp4",
    "Pixel Art.preview.webm",
  ]) {
    expect(existingPreview(model, ["Pixel Art.safetensors", name])).toBe(name);
  }
  // Another model's preview, or an unrelated picture, is not ours.
  expect(existingPreview(model, ["Pixel Art 2.png", "Pixel.png", "Pixel Art.preview.txt", "Pixel Art.json"])).toBeNull();
});
