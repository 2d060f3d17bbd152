/**
 * Worker-thread entry for hasher.ts, and the one function that reads a file to hash it. One
 * sequential read into one reusable buffer feeds every requested algorithm, so memory stays flat
 * whatever the file size. With a store in the batch, the worker commits its results to the hash
 * cache itself (storeResults). `hashFileSync` is exported so tests can drive it in-process.
 *
 * Build note: `bun build --compile` must be given this file as an extra entrypoint; hasher.ts loads
 * it with `new Worker(new URL("./hash-worker.ts", import.meta.url).href)`.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type BigIntStats } from "node:fs";
import { buildFileHashes, AUTOV1_END, AUTOV1_OFFSET, SAFETENSORS_PROBE_BYTES, safetensorsDataOffset } from "./hash-algos.ts";
import { errnoCode, errorMessage } from "../shared/errors.ts";
import type { HashAlgo } from "../scan/types.ts";
import { identityFromStats } from "../scan/file-identity.ts";
import { fsNameBytes, fsPath } from "../shared/fs-path.ts";
import {
  decodeBatch,
  encodeResult,
  type BatchMessage,
  type FromWorkerMessage,
  type HashJob,
  type HashJobResult,
  type SecondLookSkip,
  type ToWorkerMessage,
  storeItems,
  WIRE_SEPARATOR,
} from "./hash-wire.ts";
import { checksum, hashPartText, mergeHashes, parseHashPart, splitPath } from "./hash-entry.ts";
import { openStore, type HashStore, type PartRow } from "./hash-store.ts";
import { normalJit } from "../shared/jit-policy.ts";

export type { HashJob, HashJobResult } from "./hash-wire.ts";

/** How often a worker reports bytes read within one big file. */
const PROGRESS_INTERVAL_MS = 100;

export const ERR_CHANGED_SINCE_FOUND = "file changed since it was found";
export const ERR_CHANGED_WHILE_HASHING = "file changed while it was hashed";
export const ERR_NOT_REGULAR = "not a regular file";

export interface HashFileHooks {
  /** Called after each chunk with the bytes read so far; tests use it to modify the file mid-read. */
  onChunk?: (bytesSoFar: number) => void;
  /** Called at most every PROGRESS_INTERVAL_MS with the bytes read since the last call. */
  onProgress?: (deltaBytes: number) => void;
}

function sameContentStamp(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * Hashes one file with the requested algorithms. Never returns a hash that may not match the
 * bytes on disk: the file must be the one the walker found (dev/ino/size), and fstat before and
 * after the read must agree with each other and with the byte count, else the result is an error.
 */
// Long because the checks, the read loop and the hashers share one descriptor and the two fstats,
// and their order is the guarantee.
export function hashFileSync(job: HashJob, buffer: Buffer, hooks: HashFileHooks = {}): HashJobResult {
  // A file that fits the buffer, given for its second look with the walk's whole stamp: one fstat.
  if (job.secondLook && job.identity.ctimeNs !== "" && job.identity.size < Math.min(ONE_LOOK_MAX_BYTES, buffer.length)) {
    const once = hashSmallFileSync(job, buffer, hooks);
    // Only the ctime moved since the walk (chmod, a link added): hashed again with both fstats.
    if (once !== "again") return once;
    return hashFileSync({ ...job, identity: { ...job.identity, ctimeNs: "" } }, buffer, hooks);
  }
  const { index, path, identity, algos } = job;
  const fail = (error: string, bytesRead = 0): HashJobResult => failed(index, error, bytesRead);
  const skip = (why: SecondLookSkip): HashJobResult => skipped(index, why);
  let fd: number;
  try {
    fd = openForHashing(path);
  } catch (err) {
    if (job.secondLook && errnoCode(err) === "ENOENT") return skip("removed");
    return fail(errorMessage(err));
  }
  let pos = 0;
  try {
    const before = fstatSync(fd, { bigint: true });
    const sameFile = Number(before.dev) === identity.dev && Number(before.ino) === identity.ino;
    if (job.secondLook) {
      // The walker's second look (docs/cases.md D7), taken here so the file is stat'ed once more, not twice.
      if (!sameFile || !before.isFile()) return skip("replaced");
      if (Number(before.size) !== identity.size) return skip("sizeChanged");
      if (before.mtimeNs.toString() !== identity.mtimeNs) return skip("modified");
    }
    if (!before.isFile()) return fail(ERR_NOT_REGULAR);
    if (!sameFile || Number(before.size) !== identity.size) return fail(ERR_CHANGED_SINCE_FOUND);
    const size = Number(before.size);

    const want = wantedSet(algos);
    const sha = want.has("sha256") || want.has("autov2") ? new Bun.CryptoHasher("sha256") : null;
    const v1 = want.has("autov1") ? new Bun.CryptoHasher("sha256") : null;
    let crc = want.has("crc32") ? 0 : null;
    let v3: Bun.CryptoHasher | null = null;
    let v3Offset = 0;
    // AutoV3's start is read from the first chunk (no extra read per file), or probed when it was too short.
    let v3Undecided = want.has("autov3");

    let lastProgressAt = Date.now();
    let unreported = 0;
    // Reading stops at the size fstat gave (no read just to meet EOF, which is one syscall per small
    // file); a file that changed meanwhile fails the fstat comparison below. An empty file is read
    // once: a file system that reports 0 for a file with content must not give the empty hash.
    while (pos < size || (size === 0 && pos === 0)) {
      const n = readSync(fd, buffer, 0, buffer.length, pos);
      if (n === 0) break;
      const chunk = n === buffer.length ? buffer : buffer.subarray(0, n);
      if (v3Undecided) {
        v3Undecided = false;
        const head = n >= SAFETENSORS_PROBE_BYTES || n >= size ? chunk.subarray(0, SAFETENSORS_PROBE_BYTES) : probeHead(fd);
        const offset = safetensorsDataOffset(head, size);
        if (offset !== null) {
          v3 = new Bun.CryptoHasher("sha256");
          v3Offset = offset;
        }
      }
      const end = pos + n;
      sha?.update(chunk);
      if (crc !== null) crc = Bun.hash.crc32(chunk, crc);
      if (v1 && end > AUTOV1_OFFSET && pos < AUTOV1_END) {
        v1.update(chunk.subarray(Math.max(pos, AUTOV1_OFFSET) - pos, Math.min(end, AUTOV1_END) - pos));
      }
      if (v3 && end > v3Offset) v3.update(chunk.subarray(Math.max(pos, v3Offset) - pos));
      pos = end;
      hooks.onChunk?.(pos);
      if (hooks.onProgress) {
        unreported += n;
        const now = Date.now();
        if (now - lastProgressAt >= PROGRESS_INTERVAL_MS) {
          hooks.onProgress(unreported);
          unreported = 0;
          lastProgressAt = now;
        }
      }
    }
    // Bytes not yet reported are accounted for by the caller when the file completes.

    const after = fstatSync(fd, { bigint: true });
    if (pos !== size || !sameContentStamp(before, after)) return fail(ERR_CHANGED_WHILE_HASHING, pos);

    return hashedResult(index, algos, want, { sha, v1, v3, crc }, identityFromStats(before), pos);
  } catch (err) {
    return fail(errorMessage(err), pos);
  } finally {
    closeSync(fd);
  }
}

/**
 * Below this size, a file given for its second look with the walk's whole stamp is fstat'ed once,
 * after its one read (hashSmallFileSync). Bigger files keep the fstat before the read too: their
 * read is long, and must not be spent on a file that is no longer the one found.
 */
/** A file that could not be hashed, with what was read of it. */
/** A file read whole: its hashes from the digests; AutoV3 absent when it was wanted and the file has none. */
function hashedResult(
  index: number,
  algos: readonly HashAlgo[],
  want: ReadonlySet<HashAlgo>,
  d: { sha: Bun.CryptoHasher | null; v1: Bun.CryptoHasher | null; v3: Bun.CryptoHasher | null; crc: number | null },
  identity: HashJobResult["identity"],
  bytesRead: number,
): HashJobResult {
  const hashes = buildFileHashes(algos, {
    sha256: d.sha?.digest("hex"),
    autov1Full: d.v1?.digest("hex"),
    autov3Full: d.v3?.digest("hex"),
    crc32: d.crc ?? undefined,
  });
  const absent = want.has("autov3") && !d.v3 ? (["autov3"] as HashAlgo[]) : [];
  return { index, hashes, absent, identity, bytesRead };
}

function failed(index: number, error: string, bytesRead = 0): HashJobResult {
  return { index, hashes: {}, absent: [], bytesRead, error };
}

/** A file left out because it changed since the walk (the second look's verdict). */
function skipped(index: number, why: SecondLookSkip): HashJobResult {
  return { index, hashes: {}, absent: [], bytesRead: 0, skip: why, error: ERR_CHANGED_SINCE_FOUND };
}

/** O_NONBLOCK: opening a FIFO put in a file's place would otherwise wait for a writer forever. */
function openForHashing(path: string): number {
  return openSync(fsPath(path), constants.O_RDONLY | constants.O_NONBLOCK);
}

const ONE_LOOK_MAX_BYTES = 1024 * 1024;

/**
 * hashFileSync for a small file whose walk stat is its `identity` (ctime included): the walk's
 * stat and one fstat after the read bracket the read, as the two fstats do for other files. The
 * fstat is of the descriptor read, so equal dev/ino prove it is the file found, and equal size,
 * mtime and ctime that nothing changed it since the walk. Each file then costs open, read, fstat
 * and close, like sha256sum (a second fstat was a sixth of a worker's time per 4 KiB file). A
 * file changed since the walk is left out as the second look would (SKIP_REASON), even when the
 * read failed on it (a FIFO put in its place). "again": only its ctime differs from the walk's.
 */
function hashSmallFileSync(job: HashJob, buffer: Buffer, hooks: HashFileHooks): HashJobResult | "again" {
  const { index, path, identity, algos } = job;
  const skip = (why: SecondLookSkip): HashJobResult => skipped(index, why);
  let fd: number;
  try {
    fd = openForHashing(path);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return skip("removed");
    return failed(index, errorMessage(err));
  }
  let pos = 0;
  try {
    const want = wantedSet(algos);
    const sha = want.has("sha256") || want.has("autov2") ? new Bun.CryptoHasher("sha256") : null;
    const v1 = want.has("autov1") ? new Bun.CryptoHasher("sha256") : null;
    let crc: number | null = null;
    let v3Offset: number | null = null;
    let readError: unknown;
    try {
      // One read (the file fits the buffer): a file that grew meanwhile fails the size check below.
      const n = readSync(fd, buffer, 0, buffer.length, 0);
      pos = n;
      const chunk = buffer.subarray(0, n);
      hooks.onChunk?.(n);
      sha?.update(chunk);
      if (want.has("crc32")) crc = Bun.hash.crc32(chunk, 0);
      if (v1 && n > AUTOV1_OFFSET) v1.update(chunk.subarray(AUTOV1_OFFSET, Math.min(n, AUTOV1_END)));
      if (want.has("autov3")) v3Offset = safetensorsDataOffset(chunk.subarray(0, SAFETENSORS_PROBE_BYTES), n);
    } catch (err) {
      readError = err;
    }
    const after = fstatSync(fd, { bigint: true });
    if (Number(after.dev) !== identity.dev || Number(after.ino) !== identity.ino || !after.isFile()) return skip("replaced");
    if (Number(after.size) !== identity.size) return skip("sizeChanged");
    if (after.mtimeNs.toString() !== identity.mtimeNs) return skip("modified");
    if (after.ctimeNs.toString() !== identity.ctimeNs) return "again";
    if (readError !== undefined) return failed(index, errorMessage(readError));
    if (pos !== identity.size) return failed(index, ERR_CHANGED_WHILE_HASHING, pos);
    const v3 = v3Offset === null ? null : new Bun.CryptoHasher("sha256").update(buffer.subarray(v3Offset, pos));
    return hashedResult(index, algos, want, { sha, v1, v3, crc }, { ...identity }, pos);
  } catch (err) {
    return failed(index, errorMessage(err), pos);
  } finally {
    closeSync(fd);
  }
}

let lastAlgos: readonly HashAlgo[] | null = null;
let lastWanted: ReadonlySet<HashAlgo> = new Set();

/** `new Set(algos)`, once per list: the files of a batch share one (a set per 4 KiB file showed in a cold run). */
function wantedSet(algos: readonly HashAlgo[]): ReadonlySet<HashAlgo> {
  if (algos !== lastAlgos) {
    lastAlgos = algos;
    lastWanted = new Set(algos);
  }
  return lastWanted;
}

/** The first bytes of the file, when the first read gave fewer than the header rule needs. */
function probeHead(fd: number): Uint8Array {
  const head = Buffer.alloc(SAFETENSORS_PROBE_BYTES);
  const got = readSync(fd, head, 0, head.length, 0);
  return head.subarray(0, got);
}

function runBatch(msg: BatchMessage, buffer: Buffer): FromWorkerMessage {
  return runBatchHere(msg, buffer, (bytes) => {
    postMessage({ type: "progress", batchId: msg.batchId, bytes } satisfies FromWorkerMessage);
  });
}

/**
 * One batch on the calling thread, exactly as a worker runs it (the hashes, the store's commit, the
 * answer); the hasher uses it for a few small files, where starting a worker costs more than the
 * work. `closeStoreHere` ends the store connection it opened.
 */
export function runBatchHere(
  msg: BatchMessage,
  buffer: Buffer,
  onProgress: (bytes: number) => void,
): Extract<FromWorkerMessage, { type: "done" }> {
  const jobs = decodeBatch(msg);
  const results = jobs.map((job) => hashFileSync(job, buffer, { onProgress }));
  const texts = results.map(encodeResult).join(WIRE_SEPARATOR);
  return { type: "done", batchId: msg.batchId, results: texts, ...storeResults(msg, jobs, results) };
}

/** This worker's connection to the hash store, and the error that stopped it storing. */
let store: { file: string; store: HashStore } | null = null;
let storeFailed = false;

/**
 * Stores a batch's results in the hash cache, in one transaction before the batch is answered (so
 * the main thread never holds them, and a kill loses at most the batches in flight). Each is
 * merged with the hash part the main thread found for the same state. The first error stops this
 * worker's storing and is reported once; the main thread turns it into one warning.
 */
function storeResults(
  msg: BatchMessage,
  jobs: readonly HashJob[],
  results: readonly HashJobResult[],
): Pick<Extract<FromWorkerMessage, { type: "done" }>, "stored" | "storeError"> {
  const target = msg.store;
  if (!target || storeFailed) return {};
  try {
    if (store?.file !== target.file) {
      store?.store.close();
      const opened = openStore(target.file);
      if (opened.kind !== "ok") throw opened.kind === "newer" ? new Error("a newer store appeared") : opened.error;
      store = { file: target.file, store: opened.store };
    }
    const now = Date.now() + target.clockOffset;
    const { keys, previous: previousTexts } = storeItems(target, jobs.length);
    const rows: PartRow[] = [];
    // A batch is mostly one folder: its bytes are encoded once.
    let lastDir: { text: string; bytes: Uint8Array } | null = null;
    results.forEach((r, i) => {
      if (r.error !== undefined || !r.identity) return;
      const previousText = previousTexts[i] ?? "";
      const previous = previousText ? parseHashPart(previousText, checksum(previousText), now) : null;
      const update = { hashes: r.hashes, absent: r.absent };
      // Nothing to merge with (every file of a cold run): the part is this result as it is. mergeHashes
      // would check each value computed here and copy it, a twentieth of a worker's time on 4 KiB files.
      const part = previous ? mergeHashes(r.identity, previous, update, now, true) : { ...r.identity, at: now, ...update };
      const text = hashPartText(part);
      const [dir, name] = splitPath(keys[i] || jobs[i]!.path);
      if (lastDir?.text !== dir) lastDir = { text: dir, bytes: fsNameBytes(dir) };
      rows.push({ dir: lastDir.bytes, name: fsNameBytes(name), text, sum: checksum(text) });
    });
    store.store.write(rows);
    return { stored: rows.length };
  } catch (err) {
    storeFailed = true;
    store?.store.close();
    store = null;
    const code = (err as { code?: unknown } | null)?.code;
    return { stored: 0, storeError: { ...(typeof code === "string" ? { code } : {}), message: errorMessage(err) } };
  }
}

/** Closes this thread's store connection (runBatchHere's, or a worker's before it ends). */
export function closeStoreHere(): void {
  store?.store.close();
  store = null;
  storeFailed = false;
  stopCheckpointer();
}

let checkpointer: { timer: ReturnType<typeof setInterval>; store: HashStore } | null = null;

/**
 * Folds the WAL into the database every `intervalMs` while the hash workers write, on a thread of
 * its own: the copy and its fsyncs then happen while the files are hashed, instead of all at the
 * last close, when every other thread is done and waits for it (0.35 s at 100k new rows). PASSIVE
 * never waits for a writer, and a writer never waits for it. Any error ends it quietly: the last
 * close still folds in whatever is left, and the writers report what is wrong with the store.
 */
function startCheckpointer(file: string, intervalMs: number): void {
  const opened = openStore(file);
  if (opened.kind !== "ok") return;
  const timer = setInterval(() => {
    try {
      opened.store.checkpoint();
    } catch {
      stopCheckpointer();
    }
  }, intervalMs);
  checkpointer = { timer, store: opened.store };
}

function stopCheckpointer(): void {
  if (!checkpointer) return;
  clearInterval(checkpointer.timer);
  checkpointer.store.close();
  checkpointer = null;
}

// Bun's documented way to type the worker global scope.
declare var self: Worker;

if (!Bun.isMainThread) {
  normalJit();
  let buffer: Buffer | undefined;
  self.onmessage = (event: MessageEvent<ToWorkerMessage>) => {
    const msg = event.data;
    if (msg.type === "close") {
      // Closed before the thread ends, so the main thread's close can fold the WAL in.
      closeStoreHere();
      postMessage({ type: "closed" } satisfies FromWorkerMessage);
      return;
    }
    if (msg.type === "checkpoint") {
      startCheckpointer(msg.file, msg.intervalMs);
      return;
    }
    if (msg.type !== "batch") return;
    if (!buffer || buffer.length !== msg.bufferSize) buffer = Buffer.allocUnsafe(msg.bufferSize);
    postMessage(runBatch(msg, buffer));
  };
}
