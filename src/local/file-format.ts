/**
 * What a model file is, by its first bytes, whatever its name says (docs/reliability.md §4.8):
 * dispatching on the extension let a pickle renamed `.SafeTensors` be unpickled (InvokeAI #2946).
 */
import type { LocalFormat, ZipSummary } from "./local-types.ts";
import { SAFETENSORS_MAX_HEADER_SIZE } from "../hash/hash-algos.ts";

/** Bytes the detection looks at (the u64 safetensors length and the start of its JSON). */
export const FORMAT_PROBE_BYTES = 16;
/** A zip local-file header (30 bytes) plus a generous first-entry name. */
export const ZIP_PROBE_BYTES = 30 + 512;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** What the extension promises; null when it promises nothing we check. */
export function formatsForExtension(path: string): LocalFormat[] | null {
  const m = /\.([A-Za-z0-9]+)$/.exec(path);
  switch (m?.[1]?.toLowerCase()) {
    case "safetensors":
    case "sft":
      return ["safetensors"];
    case "gguf":
      return ["gguf"];
    // PyTorch writes a zip since 1.6 and a raw pickle before; `.bin` is also diffusers' torch file.
    case "ckpt":
    case "pt":
    case "pth":
    case "bin":
      return ["zip", "pickle"];
    default:
      return null;
  }
}

function startsWith(head: Uint8Array, bytes: readonly number[]): boolean {
  return head.length >= bytes.length && bytes.every((b, i) => head[i] === b);
}

/**
 * True when `head` has the safetensors shape: a u64 length that is at most the format's limit and
 * fits the file (when its size is known), then `{` after optional whitespace at byte 8.
 */
function looksLikeSafetensors(head: Uint8Array, fileSize?: number): boolean {
  if (head.length < 9) return false;
  const n = new DataView(head.buffer, head.byteOffset, head.byteLength).getBigUint64(0, true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_SIZE) || (fileSize !== undefined && n > BigInt(fileSize) - 8n)) return false;
  let i = 8;
  while (i < head.length && WHITESPACE.has(head[i]!)) i++;
  return i < head.length && head[i] === 0x7b;
}

/**
 * Format from the magic bytes alone; `head` is the first FORMAT_PROBE_BYTES (fewer for a short
 * file), `fileSize` the whole file's size when known.
 */
export function detectFormatFromBytes(head: Uint8Array, fileSize?: number): LocalFormat {
  // The safetensors shape first (docs/cases.md T16): a header length of 0x0480 starts with the bytes 80 04, which
  // is also the pickle signature, so 1 file in 2,048 was taken for a pickle. A pickle with a
  // length-shaped start and a `{` at byte 8 that fits the file does not occur (`{` is no opcode).
  if (looksLikeSafetensors(head, fileSize)) return "safetensors";
  if (startsWith(head, [0x47, 0x47, 0x55, 0x46])) return "gguf"; // "GGUF"
  // Local file header, empty archive, spanned archive.
  if (
    startsWith(head, [0x50, 0x4b, 0x03, 0x04]) ||
    startsWith(head, [0x50, 0x4b, 0x05, 0x06]) ||
    startsWith(head, [0x50, 0x4b, 0x07, 0x08])
  ) {
    return "zip";
  }
  // PROTO opcode 0x80 then protocol 2–5: every torch.save pickle and any modern pickle.
  if (head.length >= 2 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return "pickle";
  // u64 length then `{` after optional whitespace, but a length too large or past the end of the
  // file: still safetensors-shaped; checkSafetensorsHeader says what is wrong with it (docs/cases.md E1–E4).
  let i = 8;
  while (i < head.length && WHITESPACE.has(head[i]!)) i++;
  if (i < head.length && head[i] === 0x7b) return "safetensors";
  return "unknown";
}

export interface FormatDetection {
  format: LocalFormat;
  /** What the extension promises, if anything. */
  expected: LocalFormat[] | null;
  /** A warning when content and name disagree (the name is what other tools dispatch on). */
  mismatch?: string;
}

export function detectFormat(head: Uint8Array, path: string, fileSize?: number): FormatDetection {
  const format = detectFormatFromBytes(head, fileSize);
  const expected = formatsForExtension(path);
  const detection: FormatDetection = { format, expected };
  // An unrecognised file with a safetensors name gets a header error instead (too small, …).
  if (expected && format !== "unknown" && !expected.includes(format)) {
    const ext = /\.[^./\\]+$/.exec(path)?.[0] ?? "";
    const danger = format === "pickle" || format === "zip" ? "; tools that trust the name may unpickle it: it is never loaded here" : "";
    detection.mismatch = `content is ${describeFormat(format)} but the name ends in ${ext}${danger}`;
  }
  return detection;
}

export function describeFormat(format: LocalFormat): string {
  switch (format) {
    case "safetensors":
      return "safetensors";
    case "gguf":
      return "GGUF";
    case "zip":
      return "a zip archive";
    case "pickle":
      return "a Python pickle";
    default:
      return "an unknown format";
  }
}

/**
 * The first entry of a zip from its local file header: enough to tell a PyTorch archive
 * (`archive/data.pkl`, `<name>/data.pkl`, `<name>/version`, …) from another zip. Nothing is
 * decompressed and no central directory is read.
 */
export function parseZipFirstEntry(bytes: Uint8Array): ZipSummary {
  if (bytes.length < 30 || !startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return { firstEntry: null, torch: false };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nameLength = view.getUint16(26, true);
  const available = Math.min(nameLength, bytes.length - 30);
  const name = new TextDecoder("utf-8").decode(bytes.subarray(30, 30 + available));
  const torch =
    /(^|\/)(data\.pkl|version|byteorder|\.data\/version|data\/\d+)$/.test(name) || /^[^/]+\/(data\.pkl|data\/|version)/.test(name);
  return { firstEntry: available < nameLength ? `${name}…` : name, torch };
}
