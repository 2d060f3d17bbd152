/**
 * AutoV3 computed from a stream as it passes (issue 14): a download sees every byte of the file it
 * writes once, so it can hand the hash cache the file's AutoV3 as well as its SHA-256, and a scan
 * right after the restore reads nothing. The same rule as the hash worker (hash-algos.ts): the
 * header length from the first 8 bytes, then the SHA-256 of everything after the header, valid
 * only if the whole file, once its size is known, passes checkSafetensorsHeader.
 */
import { HASH_HEX_LENGTH, SAFETENSORS_MAX_HEADER_SIZE, SAFETENSORS_PROBE_BYTES, safetensorsDataOffset } from "./hash-algos.ts";

export interface Autov3Tap {
  /** The next bytes of the file, in order. */
  update(chunk: Uint8Array): void;
  /** The AutoV3 (12 hex) of the bytes seen, taken as the whole file; null when it is not safetensors-shaped. */
  digest(): string | null;
}

export function createAutov3Tap(): Autov3Tap {
  const head = new Uint8Array(SAFETENSORS_PROBE_BYTES);
  let headLength = 0;
  let position = 0;
  /** Where the tensor data starts: undefined until 8 bytes are in, null when the length is out of bounds. */
  let dataOffset: number | null | undefined;
  let hasher: Bun.CryptoHasher | null = null;
  return {
    update(chunk) {
      if (headLength < head.length) {
        const take = Math.min(head.length - headLength, chunk.length);
        head.set(chunk.subarray(0, take), headLength);
        headLength += take;
      }
      if (dataOffset === undefined && headLength >= 8) {
        const n = new DataView(head.buffer).getBigUint64(0, true);
        dataOffset = n <= BigInt(SAFETENSORS_MAX_HEADER_SIZE) ? 8 + Number(n) : null;
        if (dataOffset !== null) hasher = new Bun.CryptoHasher("sha256");
      }
      const end = position + chunk.length;
      if (hasher !== null && dataOffset != null && end > dataOffset)
        hasher.update(chunk.subarray(Math.max(position, dataOffset) - position));
      position = end;
    },
    digest() {
      if (hasher === null || safetensorsDataOffset(head.subarray(0, headLength), position) !== dataOffset) return null;
      return hasher.copy().digest("hex").slice(0, HASH_HEX_LENGTH.autov3);
    },
  };
}
