/**
 * Metadata-cache keys. unstorage normalises keys lossily (`a/b` ≡ `a:b`, everything after `?`
 * dropped, docs/reliability.md §3.1) and the fs maps them to paths, so a key is built only from parts
 * we validated: lower-case hex of an exact length, or a positive integer id. Anything else throws;
 * a hostile or malformed value never becomes a key, a collision or a path.
 */

const SHA256_RE = /^[0-9a-f]{64}$/;
const AUTOV3_RE = /^[0-9a-f]{12}$/;
// Civitai ids are Postgres int4 (docs/civitai-api.md §2.1).
const MAX_ID = 2_147_483_647;

/** Lower-case form of a 64-hex SHA-256, or null when `value` is not one. */
export function normalizeSha256(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const lower = value.toLowerCase();
  return SHA256_RE.test(lower) ? lower : null;
}

/** Lower-case form of a 12-hex AutoV3, or null when `value` is not one. */
export function normalizeAutov3(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const lower = value.toLowerCase();
  return AUTOV3_RE.test(lower) ? lower : null;
}

export function isCivitaiId(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value > 0 && value <= MAX_ID;
}

export function versionKeyBySha256(sha256: string): string {
  const hex = normalizeSha256(sha256);
  if (hex === null) throw new TypeError(`not a SHA-256 (64 hex digits): ${JSON.stringify(String(sha256).slice(0, 80))}`);
  return `version:sha256:${hex}`;
}

export function versionKeyByAutov3(autov3: string): string {
  const hex = normalizeAutov3(autov3);
  if (hex === null) throw new TypeError(`not an AutoV3 (12 hex digits): ${JSON.stringify(String(autov3).slice(0, 80))}`);
  return `version:autov3:${hex}`;
}

export function modelKey(id: number): string {
  if (!isCivitaiId(id)) throw new TypeError(`not a Civitai id: ${JSON.stringify(String(id).slice(0, 80))}`);
  return `model:${id}`;
}
