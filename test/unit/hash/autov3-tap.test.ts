import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createAutov3Tap } from "../../../src/hash/autov3-tap.ts";

/** A safetensors file: the u64 header length, the header, the tensor bytes. */
function safetensors(header: string, data: Uint8Array, declared = Buffer.byteLength(header)): Uint8Array {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(declared));
  return new Uint8Array(Buffer.concat([len, Buffer.from(header), data]));
}
const autov3Of = (data: Uint8Array) => createHash("sha256").update(data).digest("hex").slice(0, 12);

function tapped(bytes: Uint8Array, cuts: number[]): string | null {
  const tap = createAutov3Tap();
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    tap.update(bytes.subarray(at, cut));
    at = cut;
  }
  return tap.digest();
}

describe("AutoV3 from a stream", () => {
  const data = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
  const file = safetensors('{"a":1}  ', data);

  test("the SHA-256 of the bytes after the header, whatever the chunking", () => {
    const want = autov3Of(data);
    for (const cuts of [[], [1], [7, 8], [8, 9, 16], [17], [3, 4000], [...Array(50).keys()].map((i) => i * 100 + 1)]) {
      expect({ cuts, got: tapped(file, cuts) }).toEqual({ cuts, got: want });
    }
  });

  test("null when the bytes are not safetensors-shaped (the same rule as the hash worker)", () => {
    expect(tapped(Buffer.from("plain text, no header"), [])).toBeNull();
    expect(tapped(new Uint8Array(5), [])).toBeNull(); // shorter than the length field
    expect(tapped(safetensors('{"a":1}', data, 10_000_000), [])).toBeNull(); // header longer than the file
    expect(tapped(safetensors('{"a":1}', data, 200_000_000), [])).toBeNull(); // over the 100 MB limit
    expect(tapped(safetensors('["not an object"]', data), [])).toBeNull();
    // An empty tensor section is still an AutoV3: of nothing.
    expect(tapped(safetensors("{}", new Uint8Array(0)), [3])).toBe(autov3Of(new Uint8Array(0)));
  });
});
