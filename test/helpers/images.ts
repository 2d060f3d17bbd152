/**
 * Small valid images made here, for the preview tests and the example gallery: PNG and baseline
 * JPEG encoders of tile patterns (enough for a browser to decode and a screenshot to show), plus a
 * 4×4 WebP and a 1×1 GIF. No image library: the bytes are built from the format specs.
 */
import { deflateSync } from "node:zlib";

export type Rgb = readonly [number, number, number];

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u32be(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const typeBytes = new TextEncoder().encode(type);
  return concat([u32be(data.length), typeBytes, data, u32be(crc32(concat([typeBytes, data])))]);
}

/**
 * An RGB PNG of `width`×`height` whose pixel (x, y) is `pixel(x, y)`. `noise` adds that much
 * pseudo-random jitter per channel, to make a file of a realistic size (noise does not compress).
 */
export function makePng(width: number, height: number, pixel: (x: number, y: number) => Rgb, noise = 0): Uint8Array {
  const raw = new Uint8Array(height * (1 + width * 3));
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 16) / 65536;
  };
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * 3);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      const j = () => (noise > 0 ? Math.round((rand() - 0.5) * noise) : 0);
      raw[row + 1 + x * 3] = clamp(r + j());
      raw[row + 2 + x * 3] = clamp(g + j());
      raw[row + 3 + x * 3] = clamp(b + j());
    }
  }
  const ihdr = concat([u32be(width), u32be(height), new Uint8Array([8, 2, 0, 0, 0])]);
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", new Uint8Array(deflateSync(raw))),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

function clamp(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

/** A soft two-colour gradient with a lighter disc: looks like a picture in a screenshot. */
export function picture(width: number, height: number, from: Rgb, to: Rgb): (x: number, y: number) => Rgb {
  return (x, y) => {
    const t = (x + y) / (width + height);
    const dx = x - width * 0.5;
    const dy = y - height * 0.38;
    const disc = Math.max(0, 1 - Math.sqrt(dx * dx + dy * dy) / (width * 0.28));
    const mix = (i: 0 | 1 | 2) => from[i] * (1 - t) + to[i] * t + disc * 70;
    return [mix(0), mix(1), mix(2)];
  };
}

// --- baseline JPEG ------------------------------------------------------------------------------

class BitWriter {
  private bytes: number[] = [];
  private acc = 0;
  private n = 0;
  write(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >>> i) & 1);
      if (++this.n === 8) this.flushByte();
    }
  }
  private flushByte(): void {
    this.bytes.push(this.acc);
    if (this.acc === 0xff) this.bytes.push(0x00); // byte stuffing
    this.acc = 0;
    this.n = 0;
  }
  finish(): number[] {
    while (this.n !== 0) this.write(1, 1);
    return this.bytes;
  }
}

function segment(marker: number, data: readonly number[]): number[] {
  const length = data.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...data];
}

/**
 * A baseline JPEG of `blocksWide`×`blocksHigh` 8×8 tiles, each one flat colour `tile(bx, by)`:
 * every block is DC only, so two tiny Huffman tables do (DC: 12 categories of 4-bit codes; AC: the
 * end-of-block symbol alone, code `0`). Quantisation 1, YCbCr 4:4:4. Decoders accept it as is.
 */
export function makeJpeg(blocksWide: number, blocksHigh: number, tile: (bx: number, by: number) => Rgb): Uint8Array {
  const width = blocksWide * 8;
  const height = blocksHigh * 8;
  const out: number[] = [0xff, 0xd8];
  out.push(...segment(0xdb, [0x00, ...Array.from({ length: 64 }, () => 1)]));
  out.push(...segment(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]));
  const dcBits = [0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  out.push(...segment(0xc4, [0x00, ...dcBits, ...Array.from({ length: 12 }, (_, i) => i)]));
  out.push(...segment(0xc4, [0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]));
  out.push(...segment(0xda, [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]));
  const bits = new BitWriter();
  const previous = [0, 0, 0];
  for (let by = 0; by < blocksHigh; by++) {
    for (let bx = 0; bx < blocksWide; bx++) {
      const [r, g, b] = tile(bx, by);
      const ycc = [
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
      ];
      for (let c = 0; c < 3; c++) {
        // A flat block's DC coefficient is 8 × (value − 128).
        const dc = Math.round(8 * (clamp(ycc[c]!) - 128));
        const diff = dc - previous[c]!;
        previous[c] = dc;
        const magnitude = Math.abs(diff);
        const category = magnitude === 0 ? 0 : Math.floor(Math.log2(magnitude)) + 1;
        bits.write(category, 4);
        if (category > 0) bits.write(diff >= 0 ? diff : diff + (1 << category) - 1, category);
        bits.write(0, 1); // end of block
      }
    }
  }
  out.push(...bits.finish(), 0xff, 0xd9);
  return new Uint8Array(out);
}

/** A 4×4 blue lossy WebP (a VP8 chunk made by Chromium's encoder, in a minimal RIFF). */
export const TINY_WEBP = new Uint8Array(
  Buffer.from("UklGRjoAAABXRUJQVlA4IC4AAADQAQCdASoEAAQAAUAmJaACdLoB+AADsAD+5fo/+oM+Js8TZ89v/5glfkG5UAAA", "base64"),
);

/** The classic 1×1 transparent GIF (43 bytes). */
export const TINY_GIF = new Uint8Array(Buffer.from("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==", "base64"));

/** The first bytes of an AVIF file (an ISO-BMFF `ftyp` box, brand avif): enough for sniffing, not decoding. */
export const AVIF_HEAD = new Uint8Array([
  0,
  0,
  0,
  0x1c,
  0x66,
  0x74,
  0x79,
  0x70,
  0x61,
  0x76,
  0x69,
  0x66,
  0,
  0,
  0,
  0,
  0x61,
  0x76,
  0x69,
  0x66,
  0x6d,
  0x69,
  0x66,
  0x31,
  0x6d,
  0x69,
  0x61,
  0x66,
  ...Array.from({ length: 16 }, () => 0),
]);

/** A colour per index, spread around the hue circle (for many distinct pictures). */
export function hueColour(index: number, lightness = 0.55): Rgb {
  const h = ((index * 137.508) % 360) / 60;
  const c = (1 - Math.abs(2 * lightness - 1)) * 0.65;
  const x = c * (1 - Math.abs((h % 2) - 1));
  const [r, g, b] = h < 1 ? [c, x, 0] : h < 2 ? [x, c, 0] : h < 3 ? [0, c, x] : h < 4 ? [0, x, c] : h < 5 ? [x, 0, c] : [c, 0, x];
  const m = lightness - c / 2;
  return [(r + m) * 255, (g + m) * 255, (b + m) * 255];
}
