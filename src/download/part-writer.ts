import type { FileHandle } from "node:fs/promises";
import type { StreamHasher } from "../hash/stream-hasher.ts";
import { startWriteback } from "./writeback.ts";

/**
 * Network chunks are ~64 KiB; one write per chunk through the fs thread pool halved throughput.
 * 1 MiB measured best (4 MiB held more memory for no gain). An fdatasync every few hundred MiB was
 * tried too: it made each pwritev wait on writeback and cost more than the final fsync it saved.
 */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * Appends a download's bytes to its .part and feeds the SHA-256 with exactly those bytes.
 * Chunks are gathered (not copied) into a batch written with one `writev` in the fs thread pool
 * while the next batch is received; once written, the batch goes to the hasher (a worker), so
 * network, disk and hashing overlap; at most two batches are held. `offset` only counts bytes whose write finished, so it is
 * always safe to resume from; a failed write is thrown by the next `push` or by `drain`.
 */
export class PartWriter {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private inflight: Promise<void> | null = null;
  private inflightBytes = 0;
  private failure: unknown = null;

  constructor(
    private readonly handle: FileHandle,
    private readonly hasher: StreamHasher,
    private confirmed: number,
    private readonly batchBytes = WRITE_BATCH_BYTES,
  ) {}

  /** Bytes on disk (every write finished). */
  get offset(): number {
    return this.confirmed;
  }

  /** Bytes received but not yet confirmed on disk. */
  get buffered(): number {
    return this.pendingBytes + this.inflightBytes;
  }

  async push(chunk: Uint8Array): Promise<void> {
    this.throwIfFailed();
    this.pending.push(chunk);
    this.pendingBytes += chunk.byteLength;
    if (this.pendingBytes >= this.batchBytes) await this.startWrite();
  }

  /** Writes what is left and waits for every write; throws the first write error. */
  async drain(): Promise<void> {
    await this.startWrite();
    await this.settle();
  }

  private async startWrite(): Promise<void> {
    await this.settle();
    if (this.pendingBytes === 0) return;
    const batch = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const position = this.confirmed;
    this.inflightBytes = bytes;
    // The failure is kept, not left as a floating rejection, and rethrown at the next call.
    this.inflight = writeAll(this.handle, batch, bytes, position).then(
      () => {
        this.confirmed = position + bytes;
        this.inflightBytes = 0;
        startWriteback(this.handle.fd, position, bytes);
        // Only now may the chunks move to the hasher (it takes their buffers); writes finish in
        // order, one at a time, so the hash sees the bytes in file order.
        for (const chunk of batch) this.hasher.update(chunk);
      },
      (err: unknown) => {
        this.failure = err;
        this.inflightBytes = 0;
      },
    );
  }

  private async settle(): Promise<void> {
    if (this.inflight) {
      const p = this.inflight;
      this.inflight = null;
      await p;
    }
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }
}

async function writeAll(handle: FileHandle, chunks: Uint8Array[], total: number, position: number): Promise<void> {
  const { bytesWritten } = await handle.writev(chunks, position);
  if (bytesWritten === total) return;
  // A short writev (rare: signals, some filesystems): write the rest piece by piece.
  let skip = bytesWritten;
  let at = position + bytesWritten;
  for (const chunk of chunks) {
    if (skip >= chunk.byteLength) {
      skip -= chunk.byteLength;
      continue;
    }
    let done = skip;
    skip = 0;
    while (done < chunk.byteLength) {
      const r = await handle.write(chunk, done, chunk.byteLength - done, at);
      done += r.bytesWritten;
      at += r.bytesWritten;
    }
  }
}
