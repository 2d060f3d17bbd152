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

/**
 * Keys are sharded by a two-hex-digit segment so no folder of the fs store holds more than about
 * 1/256 of the entries (100,000 files: ~400 per folder, issue 11): `version:sha256:<ab>:<hex>`
 * with `ab` the first two digits, `model:<ab>:<id>` with `ab` the id's low byte.
 */
export function versionKeyBySha256(sha256: string): string {
  const hex = normalizeSha256(sha256);
  if (hex === null) throw new TypeError(`not a SHA-256 (64 hex digits): ${JSON.stringify(String(sha256).slice(0, 80))}`);
  return `version:sha256:${hex.slice(0, 2)}:${hex}`;
}

export function versionKeyByAutov3(autov3: string): string {
  const hex = normalizeAutov3(autov3);
  if (hex === null) throw new TypeError(`not an AutoV3 (12 hex digits): ${JSON.stringify(String(autov3).slice(0, 80))}`);
  return `version:autov3:${hex.slice(0, 2)}:${hex}`;
}

export function modelKey(id: number): string {
  if (!isCivitaiId(id)) throw new TypeError(`not a Civitai id: ${JSON.stringify(String(id).slice(0, 80))}`);
  return `model:${modelShard(id)}:${id}`;
}

function modelShard(id: number): string {
  return (id & 0xff).toString(16).padStart(2, "0");
}

/** The cache folder of a key (its shard): the key without its last segment, e.g. `model:2a`. */
export function keyFolder(key: string): string {
  return key.slice(0, key.lastIndexOf(":"));
}

const FOLDER_RE = /^(?:version:sha256|version:autov3|model):[0-9a-f]{2}$/;

/** Whether `folder` is one keyFolder gives. */
export function isKeyFolder(folder: string): boolean {
  return FOLDER_RE.test(folder);
}

export type ParsedKey = { kind: "sha256"; hex: string } | { kind: "autov3"; hex: string } | { kind: "model"; id: number };

const KEY_RE =
  /^(?:version:(sha256):([0-9a-f]{2}):([0-9a-f]{64})|version:(autov3):([0-9a-f]{2}):([0-9a-f]{12})|model:([0-9a-f]{2}):([1-9][0-9]{0,9}))$/;

/** What a key names, when it is exactly a key the functions above build; else null. */
export function parseKey(key: unknown): ParsedKey | null {
  if (typeof key !== "string") return null;
  const m = KEY_RE.exec(key);
  if (!m) return null;
  if (m[1]) return m[2] === m[3]!.slice(0, 2) ? { kind: "sha256", hex: m[3]! } : null;
  if (m[4]) return m[5] === m[6]!.slice(0, 2) ? { kind: "autov3", hex: m[6]! } : null;
  const id = Number(m[8]);
  return isCivitaiId(id) && m[7] === modelShard(id) ? { kind: "model", id } : null;
}

/**
 * One key segment per API base URL, readable and injective: `https://civitai.com` →
 * `https-civitai.com-443`. The scheme has no `-` and the port is digits, and every host character
 * other than `a-z 0-9 . -` becomes `_` + two hex digits, so two bases never share a segment. A base
 * with a path (a mirror under a prefix) or a very long host gets `h-` + its SHA-256 instead.
 */
export function originSegment(base: string): string {
  const url = new URL(base);
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new TypeError(`not an http(s) origin: ${JSON.stringify(base.slice(0, 100))}`);
  const scheme = url.protocol.slice(0, -1);
  const port = url.port || (scheme === "https" ? "443" : "80");
  const host = url.hostname.toLowerCase().replace(/[^a-z0-9.-]/g, (ch) => `_${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
  const segment = `${scheme}-${host}-${port}`;
  const hasPath = url.pathname !== "/" && url.pathname !== "";
  if (!hasPath && !url.search && segment.length <= 100) return segment;
  return `h-${new Bun.CryptoHasher("sha256").update(url.href.replace(/\/+$/, "")).digest("hex")}`;
}

/**
 * The namespace of a metadata cache: the primary API base, then the fallback one (or `none`).
 * Answers depend on both (a "not found" means "on neither"), so each pair has its own entries and
 * an answer from one server is never served for another (issue 9, docs/cases.md T2).
 */
export function cacheScope(origins: readonly string[]): string {
  const [primary, fallback] = origins;
  if (primary === undefined) throw new TypeError("a metadata cache needs the API origin it caches");
  return `${originSegment(primary)}:${fallback === undefined ? "none" : originSegment(fallback)}`;
}
