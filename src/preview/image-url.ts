/**
 * Which image URLs we fetch, and how small. Pure rules; image-fetch.ts applies them.
 *
 * Civitai's image URLs are `https://image.civitai.com/<account>/<image key>/<variant>/<name>`,
 * where the variant segment is a comma-separated list of transforms (`original=true`,
 * `width=450`, `anim=false,width=450,optimized=true`) that its image CDN applies
 * (docs/civitai-api.md §1.2; the `width=` rewrite is what peers use for previews, docs/sidecars.md §6).
 * Replacing that segment asks for a small still image instead of the full-size original, so a
 * 2,000-model gallery stays small. Older answers used `imagecache.civitai.com` with the same shape.
 */

/** Civitai's image hosts: the only hosts images are fetched from by default (https only). */
const CIVITAI_IMAGE_HOSTS: ReadonlySet<string> = new Set(["image.civitai.com", "imagecache.civitai.com"]);

/** Width of gallery thumbnails: cards show them at about this many CSS pixels. */
export const GALLERY_IMAGE_WIDTH = 224;
/** Width of `<base>.preview.<ext>` files: what A1111 / ComfyUI cards show, as peers fetch it. */
export const PREVIEW_FILE_WIDTH = 450;

/** URLs longer than this are not fetched (and not kept in records). */
const MAX_IMAGE_URL_LENGTH = 2048;

// One transform: a lower-case name, `=`, a value without `/` or `,`.
const VARIANT_RE = /^[a-z]+=[^/,=]+(?:,[a-z]+=[^/,=]+)*$/;

/** The variant we ask for: a still (`anim=false`: a GIF's first frame) `width` pixels wide, re-encoded by the CDN. */
export function thumbnailVariant(width: number): string {
  return `anim=false,width=${width},optimized=true`;
}

/**
 * `url` with its variant segment replaced by {@link thumbnailVariant}; a URL without one
 * (`…/<key>/<name>`) gets it inserted before the name. Any other shape is returned unchanged:
 * guessing a path is how a request goes astray, and the size cap still applies.
 */
export function sizedImageUrl(url: string, width: number): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  const parts = parsed.pathname.split("/");
  // ["", account, key, variant, name] or ["", account, key, name]
  if (parts.length === 5 && VARIANT_RE.test(decodeURIComponent(parts[3]!))) {
    parts[3] = thumbnailVariant(width);
  } else if (parts.length === 4 && parts.slice(1).every((p) => p !== "") && !VARIANT_RE.test(parts[3]!)) {
    parts.splice(3, 0, thumbnailVariant(width));
  } else {
    return url;
  }
  parsed.pathname = parts.join("/");
  return parsed.toString();
}

export interface ImageHostPolicy {
  /**
   * The API origin when it is not Civitai's (`--api-url` pointing at a mirror or a test server):
   * images on its own host are fetched too, with its scheme.
   */
  extraOrigin?: string | null;
}

/**
 * Why `url` must not be fetched, or null when it may: only https on Civitai's image hosts, or
 * exactly the configured API origin; no credentials in the URL, no odd ports on Civitai's hosts.
 */
export function imageUrlRefusal(url: string, policy: ImageHostPolicy = {}): string | null {
  if (url.length > MAX_IMAGE_URL_LENGTH) return "the image URL is too long";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "the image URL is not a valid URL";
  }
  if (parsed.username !== "" || parsed.password !== "") return "the image URL carries credentials";
  const extra = originOf(policy.extraOrigin);
  if (extra !== null && parsed.origin === extra) return null;
  if (parsed.protocol !== "https:") return `the image URL is not https (${parsed.protocol.replace(/:$/, "")})`;
  if (!CIVITAI_IMAGE_HOSTS.has(parsed.hostname) || parsed.port !== "") {
    return `the image is on another host (${parsed.host}), not Civitai's image hosts`;
  }
  return null;
}

function originOf(value: string | null | undefined): string | null {
  if (!value) return null;
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : null;
  } catch {
    return null;
  }
}

/** A URL we keep in a record: an absolute http(s) URL without spaces or control characters. */
export function isKeepableImageUrl(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_IMAGE_URL_LENGTH && /^https?:\/\/[^\s\u0000-\u001f\u007f]+$/i.test(value);
}

/** The host of a URL for a message (never the whole URL: it may be long). */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "an invalid URL";
  }
}
