/**
 * Which of a version's images is its preview: the first still image whose rating is within the
 * limit (docs/civitai-api.md §1.2 lists at most 10, in Civitai's order). Pure.
 */
import type { CivitaiImage } from "../report/record-types.ts";
import { imageNsfwLevel, isVideo, limitOfMask, NSFW_LABEL, withinNsfwMask } from "./nsfw.ts";
import { isKeepableImageUrl } from "./image-url.ts";
import { isPlainObject } from "../shared/json-guard.ts";

/** Civitai answers at most 10 images per version; more would be a changed API or a hostile file. */
export const MAX_IMAGES_PER_VERSION = 10;

export type ImageChoice = { image: CivitaiImage } | { image: null; reason: string };

/**
 * The version's images as we keep them (at most {@link MAX_IMAGES_PER_VERSION}): an http(s) URL
 * each, the rating as one bit (from `nsfwLevel`, else the older `nsfw`), sizes and type.
 */
export function toCivitaiImages(images: unknown): CivitaiImage[] {
  if (!Array.isArray(images)) return [];
  const out: CivitaiImage[] = [];
  for (const image of images) {
    if (out.length >= MAX_IMAGES_PER_VERSION) break;
    if (!isPlainObject(image)) continue;
    const i = image;
    if (!isKeepableImageUrl(i.url)) continue;
    out.push({
      url: i.url,
      nsfwLevel: imageNsfwLevel(i),
      width: dimension(i.width),
      height: dimension(i.height),
      type: typeof i.type === "string" && /^[a-z]{1,20}$/i.test(i.type) ? i.type.toLowerCase() : null,
    });
  }
  return out;
}

/**
 * What a record keeps: the first still, rated image of each rating, in Civitai's order (at most
 * five). That is enough to choose the preview for any --nsfw-level later (the first image within
 * a limit is always the first of its own rating), at a fraction of ten images per record in a
 * 100,000-file inventory. Videos and unrated images are never previews, so they are not kept.
 */
export function previewCandidates(images: readonly CivitaiImage[]): CivitaiImage[] {
  const seen = new Set<number>();
  const out: CivitaiImage[] = [];
  for (const image of images) {
    if (isVideo(image) || image.nsfwLevel === null || seen.has(image.nsfwLevel)) continue;
    seen.add(image.nsfwLevel);
    out.push(image);
  }
  return out;
}

function dimension(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) && value > 0 && value < 1_000_000 ? value : null;
}

/** The limit's name for messages ("PG-13"); "the limit" for a mask no name makes. */
function limitLabel(mask: number): string {
  const name = limitOfMask(mask);
  return name ? NSFW_LABEL[name] : "the limit";
}

/**
 * The first still image within `mask`, or why there is none. `images` comes from a record, which
 * `report` reads from a file that may have been edited: it is checked again like an API answer.
 */
export function chooseImage(images: readonly CivitaiImage[] | undefined, mask: number): ImageChoice {
  if (!Array.isArray(images)) {
    return { image: null, reason: "this inventory predates image ratings; scan again to get previews" };
  }
  return chooseFrom(toCivitaiImages(images), mask);
}

function chooseFrom(images: readonly CivitaiImage[], mask: number): ImageChoice {
  if (images.length === 0) return { image: null, reason: "Civitai lists no rated still image for this version" };
  const stills = images.filter((i) => !isVideo(i));
  if (stills.length === 0) return { image: null, reason: "Civitai lists only videos for this version" };
  const found = stills.find((i) => withinNsfwMask(i.nsfwLevel, mask));
  if (found) return { image: found };
  const unrated = stills.filter((i) => i.nsfwLevel === null).length;
  const n = stills.length;
  if (unrated === n) return { image: null, reason: `${n === 1 ? "its image is" : `its ${n} images are`} unrated (never shown)` };
  const hint = limitOfMask(mask) === "xxx" ? "" : " (--nsfw-level allows more)";
  return { image: null, reason: `no image is rated ${limitLabel(mask)} or lower${hint}` };
}
