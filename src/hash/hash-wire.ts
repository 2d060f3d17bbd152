/**
 * What hasher.ts and hash-worker.ts say to each other, flattened to arrays of strings and numbers.
 * Posting a batch as objects (a path, an identity object and an algorithm list per file, and as
 * much back) cost ~30 µs of the main thread per file, a third of a cold run over 100,000 small
 * files; strings and a Float64Array cost a tenth of that. Pure: no I/O.
 */
import { HASH_ALGOS, type FileHashes, type FileIdentity, type HashAlgo } from "../scan/types.ts";

export interface HashJob {
  /** Position in the caller's input, echoed back. */
  index: number;
  path: string;
  /** What the walker saw; dev, ino and size must still hold when the file is opened. */
  identity: FileIdentity;
  algos: HashAlgo[];
  /**
   * Set when the worker's fstat is the walker's second look (docs/cases.md D7): a file whose
   * dev/ino, size or this mtime changed since the walk is skipped as in progress, not hashed.
   */
  secondLook?: boolean;
  /** Main thread only (sent with a store): the cache key, and the hash part to merge into ("" when none). */
  realPath?: string;
  previous?: string;
}

/** Why a file given for its second look is left out (walker.ts SKIP_REASON has the words). */
export type SecondLookSkip = "replaced" | "sizeChanged" | "modified" | "removed";

export interface HashJobResult {
  index: number;
  hashes: FileHashes;
  /** Requested algorithms that do not apply to this file (AutoV3 of a non-safetensors file). */
  absent: HashAlgo[];
  /** Identity observed by fstat, equal before and after the read; set only on success, in the worker (it is what the worker stores; not sent back). */
  identity?: FileIdentity;
  bytesRead: number;
  error?: string;
  /** The second look found the file changed since the walk: not hashed, and not an error. */
  skip?: SecondLookSkip;
}

/**
 * One batch of files sharing one list of algorithms. Each list of texts travels as one string,
 * its items joined by NUL (which no path, hash part or stamp holds): a message of 512 strings per
 * list cost the main thread more to clone than one string of the same bytes.
 */
export interface BatchMessage {
  type: "batch";
  batchId: number;
  bufferSize: number;
  algos: HashAlgo[];
  /** The paths, NUL-joined. */
  paths: string;
  /** index, dev, ino and size of each file, in order. */
  stamps: Float64Array;
  /** The walker's mtimes and ctimes (NUL-joined), when the worker takes the second look. */
  mtimes?: string;
  ctimes?: string;
  /**
   * Where to store the results (hash-cache.ts WorkerStore), with each file's real path ("" when it
   * is its path) and the hash part to merge into ("" when none), NUL-joined; a list of nothing but
   * "" is sent as "" (storeItems reads both).
   */
  store?: { file: string; clockOffset: number; keys: string; previous: string };
}

/**
 * `close`: no more batches; the worker closes its store and says `closed`. `checkpoint`: this
 * worker hashes nothing, it folds the store's WAL into the database every `intervalMs` until closed.
 */
export type ToWorkerMessage = BatchMessage | { type: "close" } | { type: "checkpoint"; file: string; intervalMs: number };
export type FromWorkerMessage =
  | { type: "closed" }
  | { type: "progress"; batchId: number; bytes: number }
  /**
   * One text per file (encodeResult), NUL-joined in batch order; with a store, how many results
   * were stored (the successes, committed before this message) or the error that stopped storing.
   */
  | { type: "done"; batchId: number; results: string; stored?: number; storeError?: { code?: string; message: string } };

/** Separates the items of a list in a message (see BatchMessage). */
export const WIRE_SEPARATOR = "\0";

export function encodeBatch(
  batchId: number,
  jobs: readonly HashJob[],
  bufferSize: number,
  store?: { file: string; clockOffset: number },
): BatchMessage {
  const stamps = new Float64Array(jobs.length * 4);
  const paths: string[] = [];
  jobs.forEach((j, i) => {
    stamps[i * 4] = j.index;
    stamps[i * 4 + 1] = j.identity.dev;
    stamps[i * 4 + 2] = j.identity.ino;
    stamps[i * 4 + 3] = j.identity.size;
    paths.push(j.path);
  });
  const joined = (f: (j: HashJob) => string) => jobs.map(f).join(WIRE_SEPARATOR);
  // "" when every item is "" (each file of a cold run in a folder reached without a link): 1,023
  // separators per list were built and cloned for nothing (see storeItems for the reading).
  const sparse = (f: (j: HashJob) => string) => (jobs.some((j) => f(j) !== "") ? joined(f) : "");
  return {
    type: "batch",
    batchId,
    bufferSize,
    algos: jobs[0]?.algos ?? [],
    paths: paths.join(WIRE_SEPARATOR),
    stamps,
    ...(jobs[0]?.secondLook ? { mtimes: joined((j) => j.identity.mtimeNs), ctimes: joined((j) => j.identity.ctimeNs) } : {}),
    ...(store
      ? {
          store: {
            ...store,
            keys: sparse((j) => (j.realPath === undefined || j.realPath === j.path ? "" : j.realPath)),
            previous: sparse((j) => j.previous ?? ""),
          },
        }
      : {}),
  };
}

/** A NUL-joined list back as its items (`count` of them: "" joins one empty item, or none). */
export function splitWire(text: string, count: number): string[] {
  return count === 0 ? [] : text.split(WIRE_SEPARATOR);
}

/**
 * Each file's store key ("" when it is the file's path) and hash part to merge into ("" when none),
 * on the worker's side: a list sent as "" holds "" for every file (encodeBatch's `sparse`).
 */
export function storeItems(store: NonNullable<BatchMessage["store"]>, count: number): { keys: string[]; previous: string[] } {
  const items = (text: string) => (text === "" ? Array.from({ length: count }, () => "") : splitWire(text, count));
  return { keys: items(store.keys), previous: items(store.previous) };
}

/** The jobs of a batch, on the worker's side (dev, ino and size of the identity; its times for the second look). */
export function decodeBatch(msg: BatchMessage): HashJob[] {
  const count = msg.stamps.length / 4;
  const mtimes = msg.mtimes === undefined ? undefined : splitWire(msg.mtimes, count);
  const ctimes = msg.ctimes === undefined ? undefined : splitWire(msg.ctimes, count);
  return splitWire(msg.paths, count).map((path, i) => ({
    index: msg.stamps[i * 4]!,
    path,
    identity: {
      dev: msg.stamps[i * 4 + 1]!,
      ino: msg.stamps[i * 4 + 2]!,
      size: msg.stamps[i * 4 + 3]!,
      mtimeNs: mtimes?.[i] ?? "",
      ctimeNs: ctimes?.[i] ?? "",
    },
    algos: msg.algos,
    ...(mtimes ? { secondLook: true } : {}),
  }));
}

/** The hashes in a fixed order; `|` never occurs in hex, numbers or algorithm names. */
const WIRE_ALGOS = HASH_ALGOS;

/**
 * `+bytesRead|<one cell per algorithm>|absent,…` on success, `-bytesRead|error` on failure, `~reason`
 * for a file the second look leaves out. The identity the worker saw stays with the worker, which
 * stores it: the main thread has the walk's, and decoding it per file showed in a cold run.
 */
export function encodeResult(r: HashJobResult): string {
  if (r.skip) return `~${r.skip}`;
  if (r.error !== undefined || !r.identity) return `-${r.bytesRead}|${r.error ?? "no identity"}`;
  const h = r.hashes;
  // Spelled out in WIRE_ALGOS order: a list and a join per file cost more than the rest of the line.
  return `+${r.bytesRead}|${h.sha256 ?? ""}|${h.autov1 ?? ""}|${h.autov2 ?? ""}|${h.autov3 ?? ""}|${h.crc32 ?? ""}|${r.absent.join(",")}`;
}

export function decodeResult(index: number, text: string): HashJobResult {
  if (text.startsWith("~"))
    return { index, hashes: {}, absent: [], bytesRead: 0, skip: text.slice(1) as SecondLookSkip, error: "changed since the walk" };
  if (text.startsWith("-")) {
    const bar = text.indexOf("|");
    return { index, hashes: {}, absent: [], bytesRead: Number(text.slice(1, bar)), error: text.slice(bar + 1) };
  }
  const f = text.slice(1).split("|");
  const hashes: FileHashes = {};
  for (let i = 0; i < WIRE_ALGOS.length; i++) {
    const value = f[1 + i];
    if (value) hashes[WIRE_ALGOS[i]!] = value;
  }
  const absentText = f[1 + WIRE_ALGOS.length] ?? "";
  return { index, hashes, absent: absentText === "" ? [] : (absentText.split(",") as HashAlgo[]), bytesRead: Number(f[0]) };
}
