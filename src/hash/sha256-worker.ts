/**
 * Worker side of createStreamHasher: keeps one SHA-256 off the main thread, so a download's
 * receiving, writing and hashing run on different cores. Messages are handled in order.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { fsPath } from "../shared/fs-path.ts";

export type ToSha256Worker =
  | { type: "seed"; path: string; length: number }
  | { type: "update"; chunk: Uint8Array }
  | { type: "digest"; id: number };

export type FromSha256Worker = { type: "digest"; id: number; hex: string } | { type: "digest"; id: number; error: string };

declare const self: Worker;

let hasher = new Bun.CryptoHasher("sha256");
let failure: string | null = null;

/** Hashes the first `length` bytes of a file already on disk (a .part being resumed). */
function seed(path: string, length: number): void {
  const fd = openSync(fsPath(path), "r");
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, length - done), done);
      if (n === 0) throw new Error(`${path} is shorter than ${length} bytes`);
      hasher.update(buffer.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

self.onmessage = (event: MessageEvent<ToSha256Worker>) => {
  const msg = event.data;
  if (msg.type === "digest") {
    const reply: FromSha256Worker =
      failure === null ? { type: "digest", id: msg.id, hex: hasher.copy().digest("hex") } : { type: "digest", id: msg.id, error: failure };
    self.postMessage(reply);
    return;
  }
  if (failure !== null) return;
  try {
    if (msg.type === "seed") {
      hasher = new Bun.CryptoHasher("sha256");
      seed(msg.path, msg.length);
    } else {
      hasher.update(msg.chunk);
    }
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  }
};
