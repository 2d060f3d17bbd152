/**
 * Regenerates docs/examples/: a scan of a generated folder against the fake Civitai server from
 * the tests (no network), written in all three formats.  bun scripts/make-examples.ts
 */
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai } from "../test/helpers/fake-civitai.ts";

const ROOT = join(import.meta.dir, "..");
const OUT = join(ROOT, "docs/examples");
const LIB = "/tmp/civitai-meta-example/ComfyUI/models";
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

rmSync("/tmp/civitai-meta-example", { recursive: true, force: true });
const files: Record<string, string> = {
  "loras/pixel-art-xl.safetensors": "example: pixel art lora",
  "loras/my-own-character.safetensors": "example: a LoRA I trained myself",
  "checkpoints/dreamy-mix-v3.safetensors": "example: dreamy mix checkpoint",
  "embeddings/bad-hands.pt": "example: negative embedding",
};
const past = new Date("2026-01-15T10:00:00Z");
for (const [name, content] of Object.entries(files)) {
  mkdirSync(join(LIB, name, ".."), { recursive: true });
  writeFileSync(join(LIB, name), content);
  utimesSync(join(LIB, name), past, past);
}
writeFileSync(join(LIB, "loras/still-downloading.safetensors.part"), "partial");

const civitai = await startFakeCivitai({ fixtures: false });
const pixel = makeVersion({ versionId: 135931, modelId: 120096, sha256: sha(files["loras/pixel-art-xl.safetensors"]!), name: "v1.1", modelName: "Pixel Art XL", baseModel: "SDXL 1.0" });
const dreamy = makeVersion({ versionId: 880001, modelId: 770001, sha256: sha(files["checkpoints/dreamy-mix-v3.safetensors"]!), name: "v3 (fp16)", modelName: "Dreamy Mix", modelType: "Checkpoint", baseModel: "SD 1.5" });
const hands = makeVersion({ versionId: 60938, modelId: 56519, sha256: sha(files["embeddings/bad-hands.pt"]!), name: "v5", modelName: "Bad Hands", modelType: "TextualInversion", baseModel: "SD 1.5" });
civitai.addModel(makeModel({ modelId: 120096, name: "Pixel Art XL", type: "LORA", tags: ["pixel art", "style"], creator: { username: "nerijs" }, description: "<p>Pixel art LoRA for <b>SDXL</b>. Use <i>pixel art</i> in the prompt.</p>", versions: [pixel] }));
civitai.addModel(makeModel({ modelId: 770001, name: "Dreamy Mix", type: "Checkpoint", tags: ["base model", "anime"], creator: { username: "dreamer" }, description: "<p>A soft, dreamy general-purpose mix.</p>", versions: [dreamy] }));
civitai.addModel(makeModel({ modelId: 56519, name: "Bad Hands", type: "TextualInversion", tags: ["negative embedding"], creator: { username: "hands_fixer" }, description: "<p>Put it in the negative prompt.</p>", versions: [hands] }));

mkdirSync(OUT, { recursive: true });
try {
  for (const ext of ["json", "csv", "md"]) {
    const proc = Bun.spawn([process.execPath, join(ROOT, "src/cli.ts"), "scan", LIB, "--api-url", civitai.url, "--no-cache", "-o", join(OUT, `inventory.${ext}`)], {
      stdout: "inherit",
      stderr: "inherit",
    });
    if ((await proc.exited) !== 0) throw new Error(`scan for ${ext} failed`);
  }
} finally {
  await civitai.stop();
}
