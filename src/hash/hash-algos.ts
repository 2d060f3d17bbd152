import { UsageError } from "../shared/errors.ts";
import { HASH_ALGOS, type HashAlgo } from "../scan/types.ts";

/**
 * Pure rules of the hash algorithms (docs/civitai-api.md §5). The I/O that feeds them lives in
 * src/services/hash-worker.ts; everything here is testable without a file.
 */

/** AutoV1 (A1111 "old hash"): SHA-256 of the 64 KiB at offset 1 MiB, first 8 hex. */
export const AUTOV1_OFFSET = 0x100000;
export const AUTOV1_LENGTH = 0x10000;
export const AUTOV1_END = AUTOV1_OFFSET + AUTOV1_LENGTH;
/**
 * Civitai's scanner stores no AutoV1 for files smaller than this; A1111 (and we) still compute
 * it on whatever bytes exist, so a small file's AutoV1 never matches anything on Civitai.
 */
export const AUTOV1_CIVITAI_MIN_SIZE = 0x200000;

/** huggingface/safetensors `MAX_HEADER_SIZE` (docs/reliability.md §4.7). */
export const SAFETENSORS_MAX_HEADER_SIZE = 100_000_000;
/** Bytes the header-length rule looks at: the u64 length plus the start of the JSON. */
export const SAFETENSORS_PROBE_BYTES = 16;

/** Length of each algorithm's lower-case hex as we print and cache it. */
export const HASH_HEX_LENGTH: Readonly<Record<HashAlgo, number>> = {
  sha256: 64,
  autov1: 8,
  autov2: 10,
  autov3: 12,
  crc32: 8,
};

/** SHA-256 of empty input: the hash of every empty file. */
export const SHA256_OF_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** SHA-256 of empty input cut to AutoV3 length: written by some repackaging tools, matches many models. */
export const AUTOV3_OF_EMPTY = SHA256_OF_EMPTY.slice(0, 12);

const SAFETENSORS_EXT_RE = /\.(safetensors|sft)$/i;

export function isHashAlgo(value: string): value is HashAlgo {
  return (HASH_ALGOS as readonly string[]).includes(value);
}

/**
 * Parses `--algo sha256,autov2` (case-insensitive, repeated flags allowed). The result keeps the
 * canonical HASH_ALGOS order so output columns do not depend on how the user typed them.
 */
export function parseAlgos(spec: string | readonly string[]): HashAlgo[] {
  const parts = (typeof spec === "string" ? [spec] : spec)
    .flatMap((s) => s.split(","))
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  if (parts.length === 0) {
    throw new UsageError(`--algo takes ${HASH_ALGOS.join(", ")}, comma-separated (got none)`);
  }
  const wanted = new Set<HashAlgo>();
  for (const part of parts) {
    if (!isHashAlgo(part)) {
      throw new UsageError(`--algo takes ${HASH_ALGOS.join(", ")}, comma-separated (got "${part}")`);
    }
    wanted.add(part);
  }
  return HASH_ALGOS.filter((a) => wanted.has(a));
}

export function isSafetensorsPath(path: string): boolean {
  return SAFETENSORS_EXT_RE.test(path);
}

/**
 * What we compute when the user names no algorithm: SHA-256 (the lookup key) and AutoV2 (free, and
 * what A1111 infotext shows). AutoV3 (for safetensors whose embedded metadata was edited) is a
 * second SHA-256 over nearly the whole file: with it a 2 GiB file took 1.87x `openssl dgst
 * -sha256`, and 8 files on two cores twice as long, so it is computed only when asked for
 * (`--algo`) or needed (scan: the SHA-256 is unknown to Civitai).
 */
export const DEFAULT_ALGOS: readonly HashAlgo[] = ["sha256", "autov2"];

/**
 * Civitai prints .NET's Crc32 result, which is little-endian: the usual CRC-32 hex with its four
 * bytes reversed ("123456789" → cbf43926 usual, 2639f4cb Civitai).
 */
export function formatCrc32Civitai(crc: number): string {
  const v = crc >>> 0;
  const reversed = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
  return (reversed >>> 0).toString(16).padStart(8, "0");
}

/** True for a value of the right length in lower-case hex: the only shape we print or cache. */
export function isValidHashValue(algo: HashAlgo, value: unknown): value is string {
  return typeof value === "string" && value.length === HASH_HEX_LENGTH[algo] && /^[0-9a-f]+$/.test(value);
}

export type SafetensorsHeaderCheck =
  | { ok: true; headerLength: number; dataOffset: number }
  | { ok: false; reason: "header too small" | "header too large" | "incomplete header" | "not a JSON object" };

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const OPEN_BRACE = 0x7b;

/**
 * The safetensors header-length rule, applied before anything is allocated (docs/reliability.md §4.7,
 * docs/cases.md E1–E4): `n` is read as BigInt so 0xFFFF_FFFF_FFFF_FFFF cannot round, and must be ≤ 100 MB and
 * fit in the file; the JSON must start with `{` (leading whitespace allowed, as the reference
 * parser does). `head` is the first SAFETENSORS_PROBE_BYTES of the file (fewer if the file is
 * shorter); `fileSize` is the whole file's size.
 */
export function checkSafetensorsHeader(head: Uint8Array, fileSize: number | bigint): SafetensorsHeaderCheck {
  if (head.length < 8) return { ok: false, reason: "header too small" };
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n = view.getBigUint64(0, true);
  const size = BigInt(fileSize);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_SIZE)) return { ok: false, reason: "header too large" };
  if (size < 8n || n > size - 8n) return { ok: false, reason: "incomplete header" };
  const headerLength = Number(n);
  // The JSON's first non-blank byte must be `{` and lie inside the header.
  const end = Math.min(head.length, 8 + headerLength);
  let i = 8;
  while (i < end && WHITESPACE.has(head[i]!)) i++;
  if (i >= end || head[i] !== OPEN_BRACE) return { ok: false, reason: "not a JSON object" };
  return { ok: true, headerLength, dataOffset: 8 + headerLength };
}

/** Offset where tensor data (the part AutoV3 hashes) starts, or null when the file does not look like safetensors. */
export function safetensorsDataOffset(head: Uint8Array, fileSize: number | bigint): number | null {
  const check = checkSafetensorsHeader(head, fileSize);
  return check.ok ? check.dataOffset : null;
}

/** Derives the prefix hashes from the full digests the reader produced, keeping only `algos`. */
export function buildFileHashes(
  algos: readonly HashAlgo[],
  digests: { sha256?: string; autov1Full?: string; autov3Full?: string; crc32?: number },
): Partial<Record<HashAlgo, string>> {
  const out: Partial<Record<HashAlgo, string>> = {};
  for (const algo of algos) {
    switch (algo) {
      case "sha256":
        if (digests.sha256 !== undefined) out.sha256 = digests.sha256;
        break;
      case "autov2":
        if (digests.sha256 !== undefined) out.autov2 = digests.sha256.slice(0, HASH_HEX_LENGTH.autov2);
        break;
      case "autov1":
        if (digests.autov1Full !== undefined) out.autov1 = digests.autov1Full.slice(0, HASH_HEX_LENGTH.autov1);
        break;
      case "autov3":
        if (digests.autov3Full !== undefined) out.autov3 = digests.autov3Full.slice(0, HASH_HEX_LENGTH.autov3);
        break;
      case "crc32":
        if (digests.crc32 !== undefined) out.crc32 = formatCrc32Civitai(digests.crc32);
        break;
    }
  }
  return out;
}
