import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { PartWriter } from "../../../src/download/part-writer.ts";
import { createStreamHasher } from "../../../src/hash/stream-hasher.ts";
import { hashFileSync } from "../../../src/hash/hash-worker.ts";
import { identityFromStats } from "../../../src/scan/file-identity.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function chunksOf(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe("PartWriter", () => {
  test("file bytes and hash equal the stream, for any chunking; offset counts only finished writes", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 12345);
    const path = join(tmp.make(), "x.part");
    const handle = await open(path, "w");
    const hasher = createStreamHasher();
    const writer = new PartWriter(handle, hasher, 0, 256 * 1024);
    // Copies: the hasher takes ownership of what it is given, so the source must stay intact.
    for (const c of chunksOf(data, [1, 65536, 300_000, 7]).map((b) => Buffer.from(b))) {
      await writer.push(c);
      expect(writer.offset + writer.buffered).toBeLessThanOrEqual(data.length);
    }
    await writer.drain();
    await handle.close();
    expect(writer.offset).toBe(data.length);
    expect(writer.buffered).toBe(0);
    expect(readFileSync(path).equals(data)).toBe(true);
    expect(await hasher.digest()).toBe(sha(data));
    hasher.close();
  });

  test("resumes at an offset: appends after the existing bytes", async () => {
    const head = randomBytes(1000);
    const tail = randomBytes(5000);
    const path = join(tmp.make(), "y.part");
    await Bun.write(path, head);
    const handle = await open(path, "r+");
    const hasher = createStreamHasher({ seed: { path, length: head.length } });
    const writer = new PartWriter(handle, hasher, head.length, 1024);
    for (const c of chunksOf(tail, [333]).map((b) => Buffer.from(b))) await writer.push(c);
    await writer.drain();
    await handle.close();
    expect(sha(readFileSync(path))).toBe(sha(Buffer.concat([head, tail])));
    expect(await hasher.digest()).toBe(sha(Buffer.concat([head, tail])));
    hasher.close();
  });

  test("a short writev is completed piece by piece", async () => {
    const data = randomBytes(10_000);
    const path = join(tmp.make(), "z.part");
    const real = await open(path, "w");
    let calls = 0;
    // Writes only the first 100 bytes of each writev, as a signal-interrupted call can.
    const handle = {
      writev: async (chunks: Uint8Array[], position: number) => {
        calls++;
        const part = Buffer.concat(chunks).subarray(0, 100);
        return real.write(part, 0, part.length, position);
      },
      write: (buf: Uint8Array, off: number, len: number, pos: number) => real.write(buf, off, len, pos),
    } as unknown as FileHandle;
    const writer = new PartWriter(handle, createStreamHasher({ inline: true }), 0, 4096);
    for (const c of chunksOf(data, [999]).map((b) => Buffer.from(b))) await writer.push(c);
    await writer.drain();
    await real.close();
    expect(calls).toBeGreaterThan(1);
    expect(readFileSync(path).equals(data)).toBe(true);
  });

  test("a failed write (disk full) surfaces at the next push or drain; offset stays at what is on disk", async () => {
    let writes = 0;
    const handle = {
      writev: async (chunks: Uint8Array[]) => {
        writes++;
        if (writes === 2) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
        return { bytesWritten: chunks.reduce((n, c) => n + c.byteLength, 0), buffers: chunks };
      },
    } as unknown as FileHandle;
    const writer = new PartWriter(handle, createStreamHasher({ inline: true }), 0, 1000);
    await writer.push(new Uint8Array(1000)); // first write starts
    await writer.push(new Uint8Array(1000)); // first confirmed, second starts (and fails)
    await expect(writer.drain()).rejects.toMatchObject({ code: "ENOSPC" });
    expect(writer.offset).toBe(1000);
  });
});

describe("createStreamHasher", () => {
  for (const inline of [false, true]) {
    test(`${inline ? "inline" : "worker"}: agrees with node:crypto for any chunking, views into larger buffers, a digest mid-way, and a seed file`, async () => {
      const data = randomBytes(2 * 1024 * 1024 + 333);
      const h = createStreamHasher({ inline });
      const half = data.length >> 1;
      h.update(Buffer.from(data.subarray(0, 1000)));
      // A view into a bigger buffer: only its bytes may count.
      const big = Buffer.concat([Buffer.alloc(50, 1), data.subarray(1000, half), Buffer.alloc(70, 2)]);
      h.update(big.subarray(50, 50 + (half - 1000)));
      expect(await h.digest()).toBe(sha(data.subarray(0, half)));
      h.update(Buffer.from(data.subarray(half)));
      expect(await h.digest()).toBe(sha(data));
      h.close();

      const path = join(tmp.make(), "seed.part");
      await Bun.write(path, data);
      const seeded = createStreamHasher({ inline, seed: { path, length: half } });
      seeded.update(Buffer.from(data.subarray(half)));
      expect(await seeded.digest()).toBe(sha(data));
      seeded.close();
    });
  }

  for (const inline of [false, true]) {
    test(`${inline ? "inline" : "worker"}: with autov3, the AutoV3 of a safetensors stream (seeded or not) equals the hash worker's; null otherwise`, async () => {
      const header = Buffer.from(JSON.stringify({ __metadata__: { x: "y" } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      const data = Buffer.concat([len, header, randomBytes(3 * 1024 * 1024 + 17)]);
      const dir = tmp.make();
      const file = join(dir, "m.safetensors");
      await Bun.write(file, data);
      const st = statSync(file, { bigint: true });
      const expected = hashFileSync({ index: 0, path: file, identity: identityFromStats(st), algos: ["autov3"] }, Buffer.alloc(1 << 20))
        .hashes.autov3;
      expect(expected).toMatch(/^[0-9a-f]{12}$/);
      const h = createStreamHasher({ inline, autov3: true });
      // Chunks that split the length field and the header.
      for (const [from, to] of [
        [0, 3],
        [3, 20],
        [20, 4096],
        [4096, data.length],
      ] as const)
        h.update(Buffer.from(data.subarray(from, to)));
      expect(await h.autov3()).toBe(expected!);
      expect(await h.digest()).toBe(sha(data));
      h.close();
      const seeded = createStreamHasher({ inline, autov3: true, seed: { path: file, length: 10 } });
      seeded.update(Buffer.from(data.subarray(10)));
      expect(await seeded.autov3()).toBe(expected!);
      seeded.close();
      const plain = createStreamHasher({ inline, autov3: true });
      plain.update(Buffer.from("not a safetensors file at all"));
      expect(await plain.autov3()).toBeNull();
      plain.close();
      const without = createStreamHasher({ inline });
      without.update(Buffer.from(data));
      expect(await without.autov3()).toBeNull();
      without.close();
    });
  }

  test("a seed file shorter than claimed is an error at digest, never a wrong hash", async () => {
    const path = join(tmp.make(), "short.part");
    await Bun.write(path, randomBytes(100));
    const h = createStreamHasher({ seed: { path, length: 1000 } });
    await expect(h.digest()).rejects.toThrow(/shorter than 1000 bytes/);
    h.close();
  });
});
