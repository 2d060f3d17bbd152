/**
 * A large, varied inventory with preview images, made in memory: the 200-model screenshot in the
 * browser tests and the 2,000-model gallery benchmark. Deterministic for a given size.
 */
import type { Inventory } from "../../src/report/inventory-types.ts";
import type { FileRecord } from "../../src/report/record-types.ts";
import type { PreviewOutcome } from "../../src/preview/previews.ts";
import { hueColour, makeJpeg, picture } from "./images.ts";
import { makeCivitai, makeInventory, makeMatchedFile, makeRecord } from "./sample-inventory.ts";

const ADJECTIVES = [
  "Velvet",
  "Neon",
  "Dreamy",
  "Pixel",
  "Ink",
  "Film",
  "Crystal",
  "Retro",
  "Soft",
  "Cyber",
  "Golden",
  "Misty",
  "Paper",
  "Glass",
];
const NOUNS = ["Portrait", "Anime", "Landscape", "Style", "Lighting", "Detail", "Armor", "Forest", "City", "Watercolor", "Sketch", "Mecha"];
const TYPES = ["LORA", "LORA", "LORA", "Checkpoint", "LoCon", "TextualInversion", "VAE"];
const BASES = ["SDXL 1.0", "SD 1.5", "Pony", "Illustrious", "Flux.1 D"];
const SUBDIR: Record<string, string> = {
  LORA: "loras",
  LoCon: "loras",
  Checkpoint: "checkpoints",
  TextualInversion: "embeddings",
  VAE: "vae",
};

/** The record's image URL, in Civitai's shape (never fetched: tests and benchmarks put the bytes in the cache). */
function imageUrl(i: number): string {
  return `https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/synthetic-${i}/original=true/${i}.jpeg`;
}

export interface SyntheticLibrary {
  inventory: Inventory;
  /** By record path; every found record has a JPEG thumbnail. */
  previews: Map<string, PreviewOutcome>;
}

/**
 * `n` models: mostly found (every 23rd not found, every 41st an error), a few with an update,
 * duplicate or gone badge, each found one with a 224×304 JPEG thumbnail of its own colours.
 * `thumbnail(i)` replaces the picture (the benchmark uses images of a realistic weight).
 */
export function syntheticLibrary(n: number, thumbnail?: (i: number) => Uint8Array): SyntheticLibrary {
  const records: FileRecord[] = [];
  const previews = new Map<string, PreviewOutcome>();
  for (let i = 0; i < n; i++) {
    const type = TYPES[i % TYPES.length]!;
    const base = BASES[(i * 7) % BASES.length]!;
    const name = `${ADJECTIVES[i % ADJECTIVES.length]} ${NOUNS[(i * 5) % NOUNS.length]} ${Math.floor(i / 14) + 1}`;
    const path = `/models/${SUBDIR[type]}/${name.toLowerCase().replace(/ /g, "-")}-${i}.safetensors`;
    const size = type === "Checkpoint" ? 2_132_625_432 + i * 1000 : 18_000_000 + i * 77_777;
    const modelId = 10_000 + i;
    const status = i % 23 === 22 ? "not_found" : i % 41 === 40 ? "error" : "found";
    if (status !== "found") {
      records.push(makeRecord({ path, size, status }));
      continue;
    }
    const record: FileRecord = makeRecord({
      path,
      size,
      civitai: makeCivitai({
        modelId,
        modelName: name,
        modelType: type,
        versionId: modelId * 10,
        versionName: `v${1 + (i % 4)}.${i % 3}`,
        baseModel: base,
        trainedWords: i % 3 === 0 ? [] : [`${NOUNS[(i * 5) % NOUNS.length]!.toLowerCase()} style`, `trigger${i}`],
        creator: `artist${i % 17}`,
        tags: [type.toLowerCase(), base.toLowerCase()],
        publishedAt: new Date(Date.UTC(2023, 0, 1) + i * 86_400_000).toISOString(),
        matchedFile: makeMatchedFile({ id: modelId * 100 }),
        images: [{ url: imageUrl(i), nsfwLevel: 1, width: 832, height: 1216, type: "image" }],
      }),
    });
    if (i % 11 === 3) {
      const newer = {
        versionId: modelId * 10 + 1,
        name: `v${2 + (i % 4)}.0`,
        baseModel: base,
        publishedAt: "2026-02-01T00:00:00.000Z",
        access: null,
        inLibrary: [],
        pageUrl: `https://civitai.com/models/${modelId}?modelVersionId=${modelId * 10 + 1}`,
      };
      record.update = { sameBaseModel: newer, newest: newer };
    }
    if (i % 17 === 5) record.duplicate = { copies: 2, others: [`/models/backup/${name.toLowerCase().replace(/ /g, "-")}.safetensors`] };
    if (i % 29 === 7) {
      record.status = "gone";
      record.gone = { reason: "not_found", lastSeenAt: "2026-03-01T00:00:00Z" };
    }
    records.push(record);
    const bytes = thumbnail ? thumbnail(i) : makeJpeg(28, 38, (x, y) => picture(28, 38, hueColour(i), hueColour(i + 3, 0.35))(x, y));
    previews.set(path, {
      kind: "image",
      url: imageUrl(i),
      bytes,
      image: { kind: "jpeg", mime: "image/jpeg", ext: "jpg" },
      fromCache: true,
    });
  }
  return { inventory: makeInventory(records), previews };
}
