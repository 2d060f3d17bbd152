import { sanitizeFileName, type SanitizeOptions } from "./file-name.ts";

/**
 * The file name a storage server suggests (`Content-Disposition: attachment; filename="…"` or
 * RFC 5987 `filename*=UTF-8''…`). The server is untrusted (docs/cases.md F4): the result always goes through the
 * same sanitiser as API names, so `../../x` becomes `x` and never a path.
 */

/** Splits on `;` outside quoted strings. */
function splitParams(header: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const ch = header[i]!;
    if (quoted && ch === "\\" && i + 1 < header.length) {
      current += ch + header[++i];
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === ";" && !quoted) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1).replace(/\\(.)/g, "$1");
  return v;
}

/** RFC 5987 ext-value `charset'lang'pct-encoded`; null when malformed or not UTF-8/ISO-8859-1. */
export function decodeExtValue(value: string): string | null {
  const m = /^([A-Za-z0-9!#$&+.^_`|~-]+)'[^']*'(.*)$/.exec(unquote(value));
  if (!m) return null;
  const charset = m[1]!.toLowerCase();
  const encoded = m[2]!;
  try {
    if (charset === "utf-8") return decodeURIComponent(encoded);
    if (charset === "iso-8859-1") return encoded.replace(/%([0-9a-fA-F]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16)));
  } catch {
    return null;
  }
  return null;
}

/** The raw (unsanitised) file name parameters: `filename*` wins over `filename` (RFC 6266 §4.3). */
export function parseContentDispositionRaw(header: string | null | undefined): { filename: string | null; filenameStar: string | null } {
  let filename: string | null = null;
  let filenameStar: string | null = null;
  if (!header) return { filename, filenameStar };
  for (const param of splitParams(header).slice(1)) {
    const eq = param.indexOf("=");
    if (eq === -1) continue;
    const key = param.slice(0, eq).trim().toLowerCase();
    const value = param.slice(eq + 1);
    if (key === "filename*" && filenameStar === null) filenameStar = decodeExtValue(value);
    else if (key === "filename" && filename === null) filename = unquote(value);
  }
  return { filename, filenameStar };
}

/** The sanitised file name from a Content-Disposition header, or null when it gives none usable. */
export function fileNameFromContentDisposition(header: string | null | undefined, options: SanitizeOptions = {}): string | null {
  const raw = parseContentDispositionRaw(header);
  for (const candidate of [raw.filenameStar, raw.filename]) {
    if (candidate === null) continue;
    const clean = sanitizeFileName(candidate, options);
    if (clean !== null) return clean;
  }
  return null;
}
