/**
 * Hashes many files in parallel on a pool of worker threads (hash-worker.ts), using the hash cache
 * and letting the workers fill it (each commits its batch's results before answering). The main
 * thread only plans, dispatches and collects, so a spinner or Ctrl-C handler stays responsive
 * while workers read.
 */
import { availableParallelism } from "node:os";
import { AppError, UsageError, errorMessage } from "../shared/errors.ts";
import type { FileHashes, FoundFile, HashAlgo, HashResult } from "../scan/types.ts";
import type { HashCache, WorkerStore, WorkerWrites } from "./hash-cache.ts";
import {
  decodeResult,
  encodeBatch,
  splitWire,
  type FromWorkerMessage,
  type HashJob,
  type ToWorkerMessage,
  type HashJobResult,
  type SecondLookSkip,
} from "./hash-wire.ts";
import { serviceWorkerUrl } from "./worker-url.ts";
import { closeStoreHere, runBatchHere } from "./hash-worker.ts";

/**
 * Read buffer per worker. Measured on a 1 GB file (sha256+crc32, 2-core VM): 1, 4 and 8 MiB were
 * within noise on a warm page cache (~1.5 GB/s); on a cold 2 GiB sparse file 1 MiB took 2.8 s
 * against 1.55 s for 4 and 8 MiB. 4 MiB keeps the speed with half the memory of 8.
 */
const DEFAULT_READ_BUFFER_SIZE = 4 * 1024 * 1024;

/** Files below this size are sent to a worker in batches: 10,000 tiny files must not cost 10,000 round trips. */
const SMALL_FILE_BYTES = 1024 * 1024;
/**
 * Per message to a worker, and per transaction of its store. 1,024 against 512 took a cold run of
 * 100k files of 4 KiB from 4.62 to 3.96 s (median of 4 interleaved runs, 2 cores); 2,048 was no
 * faster. Fewer files per batch when there are few files, so every worker still gets some.
 */
const BATCH_MAX_FILES = 1024;
/** Batches per worker, at least, when there are enough files (see BATCH_MAX_FILES). */
const BATCHES_PER_WORKER = 2;
const BATCH_MAX_BYTES = 16 * 1024 * 1024;
const PROGRESS_MIN_INTERVAL_MS = 100;

export interface HashProgress {
  /** Bytes read so far, of files that needed reading (cache hits excluded). */
  bytesDone: number;
  bytesTotal: number;
  /** Files finished, cache hits and errors included. */
  filesDone: number;
  filesTotal: number;
  filesCached: number;
  /** The caller may still add files (startHashFiles with `growing`, before end()): the totals are so far. */
  growing?: boolean;
}

export interface HashFilesOptions {
  /** Algorithms to compute: one list for all files, or per file (e.g. `defaultAlgosFor(file.path)`). */
  algos: readonly HashAlgo[] | ((file: FoundFile) => readonly HashAlgo[]);
  /** Worker threads; default os.availableParallelism(). Never more than there are batches to hash. */
  jobs?: number;
  /** Used for lookups and filled with new hashes; null or absent for --no-cache. */
  cache?: HashCache | null;
  /** Ignore cache hits but still store fresh results (--rehash). */
  rehash?: boolean;
  /** The caller already asked the cache about these files and every one missed: do not ask again. */
  lookedUp?: boolean;
  /**
   * The files come from a walk with `stability: "deferred"`: the worker's fstat is the second look
   * (docs/cases.md D7), and a file changed since the walk goes to `onSkipped` (its result carries
   * an error too) instead of being hashed.
   */
  secondLook?: boolean;
  onSkipped?: (file: FoundFile, why: SecondLookSkip, index: number) => void;
  /** At most ~10 calls a second, plus one at the start and one at the end. */
  onProgress?: (progress: HashProgress) => void;
  /** startHashFiles: files come in parts while the caller still looks for more; progress says `growing` until end(). */
  growing?: boolean;
  /** Each result as it completes (completion order; `index` is the input position). */
  onResult?: (result: HashResult, index: number) => void;
  /** Aborting terminates the workers; hashFiles then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Read buffer per worker; the default was measured fastest. Tests shrink it to widen race windows. */
  bufferSize?: number;
  /** Worker script override (tests inject failing workers); default hashWorkerUrl(). */
  workerUrl?: string;
  /** Files to hash from which a worker checkpoints the store meanwhile (default CHECKPOINT_MIN_FILES); tests lower it. */
  checkpointFrom?: number;
}

interface Batch {
  id: number;
  jobs: HashJob[];
  bytes: number;
}

/** The hash worker's script (see serviceWorkerUrl for the compiled-binary case). */
export function hashWorkerUrl(moduleUrl?: string): string {
  return serviceWorkerUrl("hash-worker.ts", moduleUrl);
}

/** Batches for `jobs`, numbered from `firstId` (a run adds files in parts: ids stay unique). */
function planBatches(jobs: HashJob[], workers: number, firstId: number): Batch[] {
  const batches: Batch[] = [];
  const maxFiles = Math.max(1, Math.min(BATCH_MAX_FILES, Math.ceil(jobs.length / (workers * BATCHES_PER_WORKER))));
  let current: Batch | null = null;
  for (const job of jobs) {
    const size = job.identity.size;
    if (size >= SMALL_FILE_BYTES) {
      batches.push({ id: firstId + batches.length, jobs: [job], bytes: size });
      continue;
    }
    // A batch travels with one list of algorithms.
    const first = current?.jobs[0]?.algos;
    const sameAlgos = first !== undefined && (first === job.algos || first.join() === job.algos.join());
    if (!current || !sameAlgos || current.jobs.length >= maxFiles || current.bytes + size > BATCH_MAX_BYTES) {
      current = { id: firstId + batches.length, jobs: [], bytes: 0 };
      batches.push(current);
    }
    current.jobs.push(job);
    current.bytes += size;
  }
  return batches;
}

/**
 * Hashes `files` and resolves with one result per file, in input order. Per-file problems (gone,
 * not a regular file, changed while read) are results with `error`, never rejections; the promise
 * rejects only on abort or when no worker can be started.
 */
export async function hashFiles(files: readonly FoundFile[], options: HashFilesOptions): Promise<HashResult[]> {
  const run = startHashFiles(options);
  run.add(files);
  return run.end();
}

/** Files given in parts, hashed as they come (a walk's folders while it goes on); see hashFiles. */
export interface HashRun {
  /** Adds files after those added before (their results follow in the same order). */
  add(files: readonly FoundFile[]): void;
  /** No more files: one result per file added, in order (hashFiles' contract). */
  end(): Promise<HashResult[]>;
  /** Gives up without results (the caller failed before end): the workers are stopped. */
  cancel(): void;
}

/**
 * hashFiles in parts: the workers start on the first files while the caller still looks for the
 * rest, and are let go at `end`. A few small files in all are hashed on this thread at `end`, as
 * hashFiles does. Long because the cache lookups, the plan, the pool and the results share one
 * progress record.
 */
export function startHashFiles(options: HashFilesOptions): HashRun {
  const { cache, signal, onProgress, onResult } = options;
  signal?.throwIfAborted();
  const jobsWanted = options.jobs ?? availableParallelism();
  if (!Number.isInteger(jobsWanted) || jobsWanted < 1) {
    throw new UsageError(`--jobs must be a positive integer, got ${jobsWanted}`);
  }
  const bufferSize = options.bufferSize ?? DEFAULT_READ_BUFFER_SIZE;
  if (!Number.isInteger(bufferSize) || bufferSize < 1) throw new RangeError(`bufferSize must be a positive integer`);
  const algosFor = typeof options.algos === "function" ? options.algos : () => options.algos as readonly HashAlgo[];
  const url = options.workerUrl ?? hashWorkerUrl();

  const files: FoundFile[] = [];
  const results: (HashResult | undefined)[] = [];
  const progress: HashProgress = { bytesDone: 0, bytesTotal: 0, filesDone: 0, filesTotal: 0, filesCached: 0 };
  if (options.growing) progress.growing = true;
  const finish = (index: number, result: HashResult) => {
    results[index] = result;
    progress.filesDone++;
    onResult?.(result, index);
  };
  let lastEmit = 0;
  let emitted = false;
  const emit = (force: boolean) => {
    if (!onProgress) return;
    const now = performance.now();
    if (!force && now - lastEmit < PROGRESS_MIN_INTERVAL_MS) return;
    lastEmit = now;
    onProgress({ ...progress });
  };

  // The workers store what they compute (hash-worker.ts); this thread only hands them what to merge into.
  const store = cache?.workerStore() ?? null;
  /** Jobs not planned into a batch yet, and how many there were in all. */
  let waiting: HashJob[] = [];
  let jobCount = 0;
  let lastAsked: readonly HashAlgo[] | undefined;
  let lastAlgos: HashAlgo[] = [];
  const writes: WorkerWrites = { stored: [] };
  // Until end(), one worker fewer than asked: the caller is still busy on a core of its own (a
  // walk), and a third busy thread on two cores cost more than it gained.
  const source: BatchSource = { queue: [], ended: false, count: 0, workers: Math.max(1, jobsWanted - 1) };
  let pool: Promise<unknown> | null = null;
  let poolError: { error: unknown } | null = null;
  const callbacks: PoolCallbacks = {
    onProgress: (bytesDone) => {
      progress.bytesDone = bytesDone;
      emit(false);
    },
    onJobResult: (r, stored) => {
      const file = files[r.index]!;
      if (r.skip) options.onSkipped?.(file, r.skip, r.index);
      if (stored && r.error === undefined) writes.stored.push(file.realPath);
      finish(
        r.index,
        r.error === undefined ? { file, hashes: r.hashes, cached: false } : { file, hashes: {}, cached: false, error: r.error },
      );
    },
    onStoreError: (err) => {
      writes.error ??= err;
    },
  };
  /** Plans what is waiting and hands it to the pool (started on the first call). */
  const dispatch = () => {
    if (waiting.length > 0) {
      const batches = planBatches(waiting, jobsWanted, source.count);
      waiting = [];
      source.queue.push(...batches);
      source.count += batches.length;
    }
    // Tests that bring their own worker script get no checkpointer from it.
    const checkpoint = options.workerUrl === undefined && jobCount >= (options.checkpointFrom ?? CHECKPOINT_MIN_FILES) ? store : null;
    if (pool === null) {
      // Caught here, so a failure while the caller still adds files is not unhandled; end() throws it.
      pool = runPool(source, bufferSize, url, signal, checkpoint, store, callbacks).catch((error: unknown) => {
        poolError = { error };
      });
    } else source.onMore?.(checkpoint);
  };

  return {
    add(added) {
      signal?.throwIfAborted();
      for (const file of added) {
        const index = files.length;
        files.push(file);
        results.push(undefined);
        progress.filesTotal++;
        const asked = algosFor(file);
        // One copy per distinct list (batches compare them), not one per file.
        if (asked !== lastAsked) {
          lastAsked = asked;
          lastAlgos = [...asked];
        }
        const algos = lastAlgos;
        const hit: FileHashes | null =
          cache && !options.rehash && !options.lookedUp ? cache.get(file.realPath, file.identity, algos) : null;
        if (hit) {
          progress.filesCached++;
          finish(index, { file, hashes: hit, cached: true });
          continue;
        }
        const job: HashJob = { index, path: file.path, identity: file.identity, algos };
        if (options.secondLook) job.secondLook = true;
        if (store && cache) {
          job.realPath = file.realPath;
          job.previous = cache.workerPrevious(file.realPath, file.identity);
        }
        waiting.push(job);
        jobCount++;
        progress.bytesTotal += file.identity.size;
      }
      if (!emitted) {
        emitted = true;
        emit(true);
      }
      // A few small files wait for end(), which may hash them here.
      if (pool !== null || jobCount > HERE_MAX_FILES || progress.bytesTotal > HERE_MAX_BYTES) dispatch();
    },
    async end() {
      if (progress.growing) progress.growing = false;
      if (!emitted) {
        emitted = true;
        emit(true);
      }
      try {
        if (pool === null && waiting.length > 0) {
          // A few small files are hashed here: a worker takes longer to start and stop than they take
          // to read. Tests that bring their own worker (workerUrl) always get one.
          if (options.workerUrl === undefined) {
            const batches = planBatches(waiting, jobsWanted, 0);
            waiting = [];
            await runHere(batches, bufferSize, signal, store, callbacks);
          } else dispatch();
        }
        source.ended = true;
        source.workers = jobsWanted;
        if (pool !== null) {
          if (waiting.length > 0) dispatch();
          else source.onMore?.(null);
          await pool;
          if (poolError) throw (poolError as { error: unknown }).error;
        }
      } finally {
        // What the workers committed (also on Ctrl-C: each batch was committed before it was answered).
        if (jobCount > 0) cache?.fromWorkers(writes);
      }
      progress.bytesDone = progress.bytesTotal;
      emit(true);
      return results as HashResult[];
    },
    cancel() {
      source.ended = true;
      source.stop?.();
    },
  };
}

/**
 * At most this many files, of at most HERE_MAX_BYTES in all, are hashed on the calling thread. A
 * worker costs ~15–25 ms of CPU to start and stop; these read in a few ms (a `hash` or `scan` of a
 * handful of LoRAs' headers, a CI job's one new file).
 */
const HERE_MAX_FILES = 16;
const HERE_MAX_BYTES = 4 * 1024 * 1024;

/** runPool's contract on the calling thread: each batch through the worker's own code (runBatchHere). */
async function runHere(
  batches: Batch[],
  bufferSize: number,
  signal: AbortSignal | undefined,
  store: WorkerStore | null,
  cb: PoolCallbacks,
): Promise<void> {
  const buffer = Buffer.allocUnsafe(bufferSize);
  let completedBytes = 0;
  try {
    for (const batch of batches) {
      signal?.throwIfAborted();
      const msg = encodeBatch(batch.id, batch.jobs, bufferSize, store ?? undefined);
      const done = runBatchHere(msg, buffer, (bytes) => cb.onProgress(completedBytes + bytes));
      if (done.storeError) cb.onStoreError(done.storeError);
      const results = splitWire(done.results, batch.jobs.length).map((text, i) => decodeResult(batch.jobs[i]!.index, text));
      for (const r of results) cb.onJobResult(r, (done.stored ?? 0) > 0);
      completedBytes += batch.bytes;
      cb.onProgress(completedBytes);
    }
  } finally {
    // Closed before the cache's own close, which then folds the WAL in (as after the workers).
    closeStoreHere();
  }
}

/**
 * From this many files to hash (and store), one more worker folds the store's WAL into the
 * database while they are hashed (hash-worker.ts startCheckpointer), and every 100 ms. Below, the
 * last close does it in a few tens of ms, less than that worker costs to start.
 */
const CHECKPOINT_MIN_FILES = 10_000;
const CHECKPOINT_INTERVAL_MS = 100;

/** The checkpointing worker for `store`, or null when it cannot be started (the last close then does all of it). */
function startCheckpointer(url: string, store: WorkerStore): Worker | null {
  try {
    const worker = new Worker(url);
    worker.onerror = () => worker.terminate();
    worker.postMessage({ type: "checkpoint", file: store.file, intervalMs: CHECKPOINT_INTERVAL_MS } satisfies ToWorkerMessage);
    return worker;
  } catch {
    return null;
  }
}

/** How long a worker is given to close its store before it is stopped anyway. */
const CLOSE_WAIT_MS = 2000;

/** Asks a worker to close its store, then ends it (on its answer, or after CLOSE_WAIT_MS). */
function closeWorker(worker: Worker): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      worker.terminate();
      resolve();
    };
    const timer = setTimeout(done, CLOSE_WAIT_MS);
    worker.onmessage = (event: MessageEvent<FromWorkerMessage>) => {
      if (event.data.type === "closed") done();
    };
    worker.onerror = done;
    try {
      worker.postMessage({ type: "close" });
    } catch {
      done();
    }
  });
}

/** Bun's ErrorEvent.message carries a source excerpt; keep only the error's own message, on one line. */
function workerErrorText(event: ErrorEvent): string {
  if (event.error instanceof Error && event.error.message) return event.error.message;
  const lines = (event.message || "unknown error")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const errLine = lines.find((l) => /^(\w*Error|error):/.test(l));
  return (errLine ?? lines.at(-1) ?? "unknown error").replace(/^error:\s*/, "");
}

interface PoolCallbacks {
  onProgress: (bytesDone: number) => void;
  /** `stored`: the worker committed the results of this result's batch to the hash cache. */
  onJobResult: (result: HashJobResult, stored: boolean) => void;
  onStoreError: (error: { code?: string; message: string }) => void;
}

/**
 * Batches sent to a worker ahead of its answers. With one, a worker sat idle while the main thread
 * stored its last batch's results (0.9 cores in use on 2 for 100k small files); with two it
 * always has the next batch already.
 */
const BATCHES_AHEAD = 2;

interface Flight {
  batch: Batch;
  bytesSeen: number;
}

/** Batches for the pool: it takes them from `queue`; `count` were given in all, and `ended` says no more will come. */
interface BatchSource {
  queue: Batch[];
  ended: boolean;
  count: number;
  /** Workers the pool may run now (it starts more when this grows). */
  workers: number;
  /**
   * Set by the pool: more batches were queued, or `ended` was set. With `checkpoint`, a
   * checkpointing worker is started if there is none yet (enough files were given by now).
   */
  onMore?: (checkpoint: WorkerStore | null) => void;
  /** Set by the pool: ends it now, its workers terminated. */
  stop?: () => void;
}

/**
 * Runs the batches of `source` on up to `source.workers` workers, BATCHES_AHEAD batches queued per
 * worker; a worker with nothing to do waits for more until the source has ended. A worker that
 * crashes fails the batch it was on; the batches queued behind it go back to the front of the line
 * for a fresh worker.
 */
// Long because it is one closure: every worker's handlers share the queue, the flights and the counts.
function runPool(
  source: BatchSource,
  bufferSize: number,
  url: string,
  signal: AbortSignal | undefined,
  checkpoint: WorkerStore | null,
  store: WorkerStore | null,
  cb: PoolCallbacks,
): Promise<void> {
  return new Promise<void>(
    // Long because the executor is the pool itself (see above).
    (resolve, reject) => {
      const workers = new Set<Worker>();
      let checkpointer = checkpoint ? startCheckpointer(url, checkpoint) : null;
      const inFlight = new Map<Worker, Flight[]>();
      /** Batches to send, in order; a crashed worker's queued batches are put back in front. */
      const queue = source.queue;
      let completed = 0;
      let completedBytes = 0;
      let settled = false;
      let anyWorkerWorked = false;

      const inFlightBytes = () => {
        let sum = 0;
        for (const flights of inFlight.values()) for (const f of flights) sum += f.bytesSeen;
        return sum;
      };
      const stopAll = () => {
        for (const w of workers) w.terminate();
        workers.clear();
        checkpointer?.terminate();
        signal?.removeEventListener("abort", onAbort);
      };
      const settle = (err?: unknown) => {
        if (settled) return;
        settled = true;
        if (err !== undefined) {
          stopAll();
          reject(err);
          return;
        }
        // Done: each worker closes its store before it goes, so the cache's close can fold the WAL in.
        void closeAll().then(resolve);
      };
      /** Workers let go early (nothing left for them), still closing their store. */
      const closing: Promise<void>[] = [];
      const closeAll = async () => {
        signal?.removeEventListener("abort", onAbort);
        const all = checkpointer ? [...workers, checkpointer] : [...workers];
        await Promise.all([...closing, ...all.map((w) => closeWorker(w))]);
        workers.clear();
      };
      function onAbort() {
        settle(signal?.reason ?? new DOMException("aborted", "AbortError"));
      }

      /** Keeps `worker` BATCHES_AHEAD batches ahead; lets it go when there is nothing left for it. */
      const feed = (worker: Worker) => {
        const flights = inFlight.get(worker) ?? [];
        inFlight.set(worker, flights);
        while (flights.length < BATCHES_AHEAD && queue.length > 0) {
          const batch = queue.shift()!;
          flights.push({ batch, bytesSeen: 0 });
          worker.postMessage(encodeBatch(batch.id, batch.jobs, bufferSize, store ?? undefined));
        }
        if (flights.length === 0 && source.ended) {
          // Nothing left for this one: let it go instead of idling until the last batch ends.
          inFlight.delete(worker);
          workers.delete(worker);
          closing.push(closeWorker(worker));
        }
      };

      const finishBatch = (flight: Flight, jobResults: HashJobResult[], stored = false) => {
        for (const r of jobResults) cb.onJobResult(r, stored);
        completed++;
        completedBytes += flight.batch.bytes;
        cb.onProgress(completedBytes + inFlightBytes());
        if (source.ended && completed === source.count) settle();
      };

      const spawn = () => {
        let worker: Worker;
        try {
          worker = new Worker(url);
        } catch (err) {
          settle(new AppError(`cannot start a hash worker: ${errorMessage(err)}`, { cause: err }));
          return;
        }
        workers.add(worker);
        let heardFrom = false;
        worker.onmessage = (event: MessageEvent<FromWorkerMessage>) => {
          if (settled) return;
          heardFrom = true;
          anyWorkerWorked = true;
          const msg = event.data;
          try {
            const flights = inFlight.get(worker);
            if (msg.type === "progress") {
              const flight = flights?.find((f) => f.batch.id === msg.batchId);
              if (flight) flight.bytesSeen += msg.bytes;
              cb.onProgress(completedBytes + inFlightBytes());
            } else if (msg.type === "done" && flights?.[0]?.batch.id === msg.batchId) {
              const flight = flights.shift()!;
              // The next batch goes out before these results are handled, so the worker never waits for us.
              feed(worker);
              if (msg.storeError) cb.onStoreError(msg.storeError);
              finishBatch(
                flight,
                splitWire(msg.results, flight.batch.jobs.length).map((text, i) => decodeResult(flight.batch.jobs[i]!.index, text)),
                (msg.stored ?? 0) > 0,
              );
            }
          } catch (err) {
            // A throwing onResult/onProgress callback (or cache bug) must not leave the promise pending forever.
            settle(err);
          }
        };
        worker.onerror = (event: ErrorEvent) => {
          if (settled) return;
          const reason = workerErrorText(event);
          if (!heardFrom && !anyWorkerWorked) {
            // Most likely the worker script is missing (a binary built without it): retrying per batch would not help.
            settle(new AppError(`cannot start a hash worker: ${reason}`));
            return;
          }
          // A crashed worker fails only the batch it was on; the ones queued behind it go to a fresh worker.
          const flights = inFlight.get(worker) ?? [];
          inFlight.delete(worker);
          workers.delete(worker);
          worker.terminate();
          const [current, ...waiting] = flights;
          queue.unshift(...waiting.map((f) => f.batch));
          if (queue.length > 0) spawn();
          if (current) {
            const error = `hash worker failed: ${reason}`;
            finishBatch(
              current,
              current.batch.jobs.map((j): HashJobResult => ({ index: j.index, hashes: {}, absent: [], bytesRead: 0, error })),
            );
          }
        };
        feed(worker);
      };

      /** Workers for what is queued (up to source.workers), and the next batches for those waiting. */
      const wake = () => {
        // feed may let a worker go (delete it from the set): fine while iterating a Set.
        for (const worker of workers) if (inFlight.get(worker)?.length === 0) feed(worker);
        while (workers.size < source.workers && queue.length > 0 && !settled) spawn();
        if (source.ended && completed === source.count) settle();
      };
      source.stop = () => settle(new DOMException("stopped", "AbortError"));
      source.onMore = (more) => {
        if (settled) return;
        if (more && !checkpointer) checkpointer = startCheckpointer(url, more);
        wake();
      };

      signal?.addEventListener("abort", onAbort, { once: true });
      // An abort from a callback before this point fired no event we could hear.
      if (signal?.aborted) return onAbort();
      wake();
    },
  );
}
