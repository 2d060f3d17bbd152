/**
 * Civitai's content ratings for images, and the limit a gallery or a written preview respects.
 *
 * Civitai rates every image with a `nsfwLevel` bit flag (docs/civitai-api.md §1.2): 1 PG, 2 PG-13,
 * 4 R, 8 X, 16 XXX, 32 Blocked (the same bits LoRA Manager stores as `preview_nsfw_level`). Older
 * answers carried `nsfw` (a boolean, later "None" | "Soft" | "Mature" | "X") instead
 * (docs/civitai-api.md §1.4). `--nsfw-level` names the highest rating allowed; the default shows
 * PG and PG-13 only, so a gallery is safe to open in public (LykosAI/StabilityMatrix#1109).
 * An image with no rating (0, missing, unknown shape) is never shown: unrated is not "safe".
 */

const NSFW_BITS = { pg: 1, pg13: 2, r: 4, x: 8, xxx: 16 } as const;
/** Never shown, whatever the limit. */
const NSFW_BLOCKED = 32;

export type NsfwLimitName = keyof typeof NSFW_BITS;
export const NSFW_LIMIT_NAMES: readonly NsfwLimitName[] = ["pg", "pg13", "r", "x", "xxx"];
export const DEFAULT_NSFW_LIMIT: NsfwLimitName = "pg13";

/** Human labels, for messages and the gallery. */
export const NSFW_LABEL: Readonly<Record<NsfwLimitName, string>> = { pg: "PG", pg13: "PG-13", r: "R", x: "X", xxx: "XXX" };

/** The bit mask of every rating up to and including `limit` (pg13 → PG | PG-13 = 3). */
export function nsfwMask(limit: NsfwLimitName): number {
  const top = NSFW_BITS[limit];
  return top * 2 - 1;
}

export const DEFAULT_NSFW_MASK = nsfwMask(DEFAULT_NSFW_LIMIT);

/**
 * `--nsfw-level` value → limit name, or null when it is not one. Accepts the names in any case and
 * the spellings people use for them (`pg-13`, `PG13`).
 */
export function parseNsfwLimit(value: string): NsfwLimitName | null {
  const v = value
    .trim()
    .toLowerCase()
    .replace(/[-_\s]/g, "");
  return (NSFW_LIMIT_NAMES as readonly string[]).includes(v) ? (v as NsfwLimitName) : null;
}

/** The limit name for a mask made by {@link nsfwMask}; null for any other mask. */
export function limitOfMask(mask: number): NsfwLimitName | null {
  return NSFW_LIMIT_NAMES.find((n) => nsfwMask(n) === mask) ?? null;
}

const LEGACY_LEVEL: Readonly<Record<string, number>> = { none: 1, soft: 2, mature: 4, x: 8 };

/**
 * One image's rating as a single bit (the highest set), from `nsfwLevel`, else the older `nsfw`
 * field; null when unrated or unreadable. `nsfw: true` (degree unknown) counts as X.
 */
export function imageNsfwLevel(image: { nsfwLevel?: unknown; nsfw?: unknown }): number | null {
  const level = image.nsfwLevel;
  if (typeof level === "number" && Number.isInteger(level) && level > 0 && level < 1 << 16) {
    return highestBit(level);
  }
  const legacy = image.nsfw;
  if (legacy === false) return NSFW_BITS.pg;
  if (legacy === true) return NSFW_BITS.x;
  if (typeof legacy === "string") return LEGACY_LEVEL[legacy.trim().toLowerCase()] ?? null;
  return null;
}

function highestBit(n: number): number {
  let bit = 1;
  while (bit * 2 <= n) bit *= 2;
  return bit;
}

/** True when a rated image (`level` from {@link imageNsfwLevel}) is within `mask`. */
export function withinNsfwMask(level: number | null, mask: number): boolean {
  if (level === null || level <= 0 || level >= NSFW_BLOCKED) return false;
  return (level & ~mask) === 0;
}

/** Videos (and animated posts Civitai marks as video) are never previews: a still is wanted. */
export function isVideo(image: { type?: unknown; url?: unknown }): boolean {
  if (image.type === "video") return true;
  return typeof image.url === "string" && /\.(mp4|webm|mov|m4v)(?:$|[?#])/i.test(image.url);
}
