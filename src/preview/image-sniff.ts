/**
 * What kind of image a byte string is, from its magic numbers, never from a Content-Type header
 * or a file name: a CDN error page, a Cloudflare challenge or a hostile server's HTML must never be
 * embedded or written as a picture. Pure.
 */

export type ImageKind = "jpeg" | "png" | "webp" | "gif" | "avif";

export interface SniffedImage {
  kind: ImageKind;
  mime: string;
  /** The extension a file of this kind gets (`<base>.preview.<ext>`). */
  ext: string;
}

const INFO: Readonly<Record<ImageKind, SniffedImage>> = {
  jpeg: { kind: "jpeg", mime: "image/jpeg", ext: "jpg" },
  png: { kind: "png", mime: "image/png", ext: "png" },
  webp: { kind: "webp", mime: "image/webp", ext: "webp" },
  gif: { kind: "gif", mime: "image/gif", ext: "gif" },
  avif: { kind: "avif", mime: "image/avif", ext: "avif" },
};

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  if (bytes.length < at + prefix.length) return false;
  return prefix.every((b, i) => bytes[at + i] === b);
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  if (bytes.length < at + length) return "";
  return String.fromCharCode(...bytes.subarray(at, at + length));
}

/** The image kind of `bytes` by magic number; null for anything else. */
export function sniffImage(bytes: Uint8Array): SniffedImage | null {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return INFO.jpeg;
  if (startsWith(bytes, PNG_SIGNATURE)) return INFO.png;
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return INFO.webp;
  const gif = ascii(bytes, 0, 6);
  if (gif === "GIF87a" || gif === "GIF89a") return INFO.gif;
  // ISO-BMFF: a `ftyp` box whose major or a compatible brand is avif/avis.
  if (ascii(bytes, 4, 4) === "ftyp") {
    const size = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
    const end = Math.min(bytes.length, size >= 16 ? size : 0, 64);
    for (let at = 8; at + 4 <= end; at += 4) {
      if (at === 12) continue; // minor version, not a brand
      const brand = ascii(bytes, at, 4);
      if (brand === "avif" || brand === "avis") return INFO.avif;
    }
  }
  return null;
}

/**
 * True when an image of `kind` looks complete: a JPEG ends with its EOI marker, a PNG with its
 * IEND chunk, a GIF with its trailer, a WebP is as long as its RIFF header says. A body cut short
 * by a dropped connection or a cap would otherwise be shown half grey. AVIF has no cheap end check.
 */
export function looksComplete(bytes: Uint8Array, kind: ImageKind): boolean {
  const n = bytes.length;
  switch (kind) {
    case "jpeg": {
      // Some encoders pad after EOI; look for it near the end.
      for (let i = n - 2; i >= Math.max(2, n - 64); i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
      return false;
    }
    case "png":
      return n >= 20 && ascii(bytes, n - 8, 4) === "IEND";
    case "gif":
      return n >= 14 && bytes[n - 1] === 0x3b;
    case "webp": {
      const riff = (bytes[4]! | (bytes[5]! << 8) | (bytes[6]! << 16) | (bytes[7]! << 24)) >>> 0;
      return n >= 12 && riff + 8 <= n;
    }
    case "avif":
      return n >= 32;
  }
}

/** What a non-image body looks like, for a message ("an HTML page", "JSON", "empty"). */
export function describeNotImage(bytes: Uint8Array, contentType: string | null): string {
  if (bytes.length === 0) return "an empty body";
  const head = new TextDecoder().decode(bytes.subarray(0, 256)).trimStart().toLowerCase();
  if (head.includes("<svg")) return "an SVG image (not accepted: SVG can carry scripts)";
  if (head.startsWith("<")) return "an HTML page, not an image";
  if (head.startsWith("{") || head.startsWith("[")) return "JSON, not an image";
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  return type && /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(type) ? `not an image (${type})` : "not an image";
}
