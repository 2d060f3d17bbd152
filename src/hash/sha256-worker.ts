/**
 * Worker side of createStreamHasher: keeps one SHA-256 off the main thread, so a download's
 * receiving, writing and hashing run on different cores. Messages are handled in order. With
 * `autov3` (sent first), the file's AutoV3 is computed from the same bytes (autov3-tap.ts).
 */
import { closeSync, openSync, readSync } from "node:fs";
import { fsPath } from "../shared/fs-path.ts";
import { normalJit } from "../shared/jit-policy.ts";
import { createAutov3Tap, type Autov3Tap } from "./autov3-tap.ts";

export type ToSha256Worker =
  | { type: "autov3" }
  | { type: "seed"; path: string; length: number }
  | { type: "update"; chunk: Uint8Array }
  | { type: "digest"; id: number };

/** `autov3`: null when not asked for, or when the bytes are not safetensors-shaped. */
export type FromSha256Worker =
  | { type: "digest"; id: number; hex: string; autov3: string | null }
  | { type: "digest"; id: number; error: string };

declare const self: Worker;

let hasher = new Bun.CryptoHasher("sha256");
let tap: Autov3Tap | null = null;
let failure: string | null = null;

function feed(chunk: Uint8Array): void {
  hasher.update(chunk);
  tap?.update(chunk);
}

/** Hashes the first `length` bytes of a file already on disk (a .part being resumed). */
function seed(path: string, length: number): void {
  const fd = openSync(fsPath(path), "r");
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, length - done), done);
      if (n === 0) throw new Error(`${path} is shorter than ${length} bytes`);
      feed(buffer.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

normalJit();

self.onmessage = (event: MessageEvent<ToSha256Worker>) => {
  const msg = event.data;
  if (msg.type === "digest") {
    const reply: FromSha256Worker =
      failure === null
        ? { type: "digest", id: msg.id, hex: hasher.copy().digest("hex"), autov3: tap?.digest() ?? null }
        : { type: "digest", id: msg.id, error: failure };
    self.postMessage(reply);
    return;
  }
  if (failure !== null) return;
  try {
    if (msg.type === "autov3") {
      tap = createAutov3Tap();
    } else if (msg.type === "seed") {
      hasher = new Bun.CryptoHasher("sha256");
      if (tap) tap = createAutov3Tap();
      seed(msg.path, msg.length);
    } else {
      feed(msg.chunk);
    }
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  }
};
