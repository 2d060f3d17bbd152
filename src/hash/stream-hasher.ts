import type { FromSha256Worker, ToSha256Worker } from "./sha256-worker.ts";
import { createAutov3Tap } from "./autov3-tap.ts";
import { serviceWorkerUrl } from "./worker-url.ts";
import { fsPath } from "../shared/fs-path.ts";

/** An incremental SHA-256 whose digest may be computed elsewhere (a worker thread). */
export interface StreamHasher {
  /** Takes ownership of `chunk`: the caller must not touch it afterwards (its buffer may move). */
  update(chunk: Uint8Array): void;
  /** Lower-case hex of everything given so far; the hasher stays usable. */
  digest(): Promise<string>;
  /**
   * With the `autov3` option: the AutoV3 of everything given so far, taken as the whole file (null
   * when it is not safetensors-shaped); null without the option.
   */
  autov3(): Promise<string | null>;
  /** Frees the worker; later calls are not allowed. */
  close(): void;
}

export interface StreamHasherOptions {
  /** Start from the first `length` bytes of this file (a .part being resumed), hashed off-thread too. */
  seed?: { path: string; length: number };
  /** Hash on this thread (tests, or where workers are unwanted). */
  inline?: boolean;
  /** Also compute the AutoV3 (a second SHA-256, of the tensor data: only for files that may be safetensors). */
  autov3?: boolean;
}

/**
 * SHA-256 for downloads. On the main thread the hash competed with receiving and writing and held
 * a 2 GiB download to about 0.7× curl's rate; in a worker the three overlap on separate cores.
 */
export function createStreamHasher(options: StreamHasherOptions = {}): StreamHasher {
  return options.inline ? inlineHasher(options.seed, options.autov3 === true) : workerHasher(options.seed, options.autov3 === true);
}

function inlineHasher(seed: StreamHasherOptions["seed"], withAutov3: boolean): StreamHasher {
  const hasher = new Bun.CryptoHasher("sha256");
  const tap = withAutov3 ? createAutov3Tap() : null;
  const feed = (chunk: Uint8Array) => {
    hasher.update(chunk);
    tap?.update(chunk);
  };
  let ready: Promise<void> = Promise.resolve();
  if (seed) {
    ready = (async () => {
      const name = fsPath(seed.path); // a name that is not valid UTF-8 is opened by its bytes
      const file = typeof name === "string" ? Bun.file(name) : Bun.file(new Uint8Array(name));
      for await (const chunk of file.slice(0, seed.length).stream()) feed(chunk);
    })();
  }
  const pending: Uint8Array[] = [];
  const settle = async () => {
    await ready;
    for (const chunk of pending.splice(0)) feed(chunk);
  };
  return {
    update(chunk) {
      if (seed) pending.push(chunk);
      else feed(chunk);
    },
    async digest() {
      await settle();
      return hasher.copy().digest("hex");
    },
    async autov3() {
      await settle();
      return tap?.digest() ?? null;
    },
    close() {},
  };
}

function workerHasher(seed: StreamHasherOptions["seed"], withAutov3: boolean): StreamHasher {
  const worker = new Worker(serviceWorkerUrl("sha256-worker.ts"));
  // A download must never hang the process on exit because a hasher was left open.
  worker.unref();
  let nextId = 0;
  const waiting = new Map<number, { resolve: (digest: { hex: string; autov3: string | null }) => void; reject: (err: Error) => void }>();
  let broken: Error | null = null;
  const post = (msg: ToSha256Worker, transfer: ArrayBuffer[] = []) => worker.postMessage(msg, transfer);
  worker.onmessage = (event: MessageEvent<FromSha256Worker>) => {
    const msg = event.data;
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (waiting.size === 0) worker.unref();
    if ("hex" in msg) w.resolve({ hex: msg.hex, autov3: msg.autov3 });
    else w.reject(new Error(`cannot hash the partial download: ${msg.error}`));
  };
  worker.onerror = (event) => {
    broken = new Error(`the hash worker failed: ${event.message}`);
    for (const w of waiting.values()) w.reject(broken);
    waiting.clear();
  };
  if (withAutov3) post({ type: "autov3" });
  if (seed) post({ type: "seed", path: seed.path, length: seed.length });
  const ask = (): Promise<{ hex: string; autov3: string | null }> => {
    if (broken) return Promise.reject(broken);
    const id = nextId++;
    // While an answer is awaited the worker must keep the process alive.
    worker.ref();
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      post({ type: "digest", id });
    });
  };
  return {
    update(chunk) {
      // Moving the buffer is free; a view into a larger buffer is copied first so we move only it.
      const own =
        chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer
          ? chunk
          : chunk.slice();
      post({ type: "update", chunk: own }, [own.buffer as ArrayBuffer]);
    },
    async digest() {
      return (await ask()).hex;
    },
    async autov3() {
      return (await ask()).autov3;
    },
    close() {
      worker.terminate();
      for (const w of waiting.values()) w.reject(new Error("hasher closed"));
      waiting.clear();
    },
  };
}
