import { errnoCode, errorMessage } from "../shared/errors.ts";
import { formatBytes } from "../shared/format.ts";
import { diskSpace, freeBytes } from "./disk-space.ts";
import { DownloadFailure, RetryableFailure } from "./download-errors.ts";
import { DEFAULT_STALL_TIMEOUT_MS, type DownloadTask, type DownloaderOptions } from "./download-task.ts";
import { parentOf } from "./file-name.ts";
import { PartWriter } from "./part-writer.ts";
import { baseHeaders, dropBody, isWebPage, MAX_REDIRECTS, redirectTarget, storageFailure } from "./responses.ts";
import { acceptAnswer, discardPart, onUnsatisfiable, openPart, resumeHeaders, saveResumeState, type PartState } from "./resume-state.ts";
import { stallGuard } from "./stall-guard.ts";

export const SIZE_TOLERANCE = 1024;

/**
 * When neither Civitai nor the server says how large a file is, nothing else ends a body that does
 * not end (docs/cases.md T6). Two bounds then hold: this upper limit, far above the largest model files Civitai
 * serves (full-precision image and video checkpoints run to a few tens of GB), and a free-space
 * margin (below) so the disk never fills. A known size is its own bound: a byte more is refused.
 */
const UNKNOWN_SIZE_LIMIT = 128 * 1024 ** 3;
/** With the size unknown, free space is checked after every this many bytes. */
const FREE_CHECK_BYTES = 1024 * 1024;

/**
 * Room left free on the disk while a file of unknown size streams in: 5 % of the filesystem, at
 * least 4 MiB (more than the bytes between two checks plus one write batch), at most 1 GiB.
 */
function freeSpaceMargin(total: number): number {
  return Math.min(1024 ** 3, Math.max(4 * 1024 * 1024, Math.floor(total * 0.05)));
}

/** Reports progress; `total` null when unknown (or when a restart dropped the count to 0). */
export type ReportProgress = (total: number | null) => void;

/**
 * One GET against storage, from the `.part`'s offset. Returns true when every expected byte is in
 * the `.part`, false when the body ended early (resumable); throws RetryableFailure or
 * DownloadFailure otherwise. The loop that calls it again is in transfer.ts.
 */
export async function attempt(
  task: DownloadTask,
  signedUrl: string,
  state: PartState,
  options: DownloaderOptions,
  counted: (n: number) => void,
  report: ReportProgress,
): Promise<boolean> {
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const guard = stallGuard(stallMs, options.signal);
  let host = new URL(signedUrl).host;
  try {
    const answer = await requestStorage(task, signedUrl, state, options, guard.signal, guard.stalled, stallMs);
    const res = answer.res;
    host = answer.host;

    if (res.status === 416) {
      await dropBody(res);
      return await onUnsatisfiable(task, state, res, options, () => report(null));
    }
    if (res.status !== 200 && res.status !== 206) {
      await dropBody(res);
      throw storageFailure(task.url, res, host);
    }
    // An error page must never become the model file (civitai/civitai#975, docs/cases.md A7).
    if (isWebPage(res)) {
      await dropBody(res);
      throw new DownloadFailure(
        `${task.url}: got a web page (${(res.headers.get("content-type") ?? "").split(";")[0]}) instead of the file; nothing was saved`,
      );
    }
    const total = await acceptAnswer(task, state, res, options, () => report(null));
    checkTotal(task, total);
    // Civitai's size was checked against free space before the first request; a size only the server gives is checked here.
    if (task.size === null && total !== null) await checkRoom(task, state, total, options, res);

    if (state.handle === null) state.handle = await openPart(state.part, true);
    saveResumeState(task, state, res, total);
    const expected = total ?? task.size;
    if (!res.body) return expected === null || state.offset >= expected;
    guard.kick();
    await receiveBody(task, res.body, state, expected, options, guard, stallMs, counted, () => report(total));
    return expected === null || state.offset >= expected;
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof DownloadFailure || err instanceof RetryableFailure) throw err;
    if (guard.stalled()) throw new RetryableFailure(`stalled: no data for ${Math.round(stallMs / 1000)} s`);
    if (
      err instanceof TypeError ||
      (err as Error)?.name === "FetchError" ||
      /ECONN|socket|closed|network/i.test(String((err as Error)?.message))
    ) {
      throw new RetryableFailure(`cannot reach the storage host ${host}: ${errorMessage(err)}`);
    }
    throw err;
  } finally {
    guard.stop();
  }
}

/** The GET with its redirect hops (by hand: never Authorization, R2 rejects requests that carry it). */
async function requestStorage(
  task: DownloadTask,
  startUrl: string,
  state: PartState,
  options: DownloaderOptions,
  signal: AbortSignal,
  stalled: () => boolean,
  stallMs: number,
): Promise<{ res: Response; host: string }> {
  const doFetch = options.fetch ?? fetch;
  let url = startUrl;
  let host = new URL(url).host;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers = { ...baseHeaders(options.userAgent), ...resumeHeaders(state) };
    let res: Response;
    try {
      res = await doFetch(url, { headers, redirect: "manual", signal, timeout: false });
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw new RetryableFailure(
        stalled()
          ? `no answer from the storage host for ${Math.round(stallMs / 1000)} s`
          : `cannot reach the storage host ${host}: ${errorMessage(err)}`,
      );
    }
    if (res.status < 300 || res.status >= 400) return { res, host };
    await dropBody(res);
    const next = redirectTarget(url, res, task.url, "the storage host");
    url = next.href;
    host = next.host;
  }
  throw new DownloadFailure(`${task.url}: too many redirects`);
}

/**
 * Streams the body into the `.part` through a PartWriter (batched writes, hashing as written). More
 * bytes than expected, or past the bounds of a file of unknown size, discard the `.part`; a full
 * disk says how much is kept and how much more is needed; a cut connection keeps what arrived so the
 * next attempt resumes after it.
 */
async function receiveBody(
  task: DownloadTask,
  body: ReadableStream<Uint8Array>,
  state: PartState,
  expected: number | null,
  options: DownloaderOptions,
  guard: { kick: () => void; stalled: () => boolean },
  stallMs: number,
  counted: (n: number) => void,
  progress: () => void,
): Promise<void> {
  const reader = body.getReader();
  const writer = new PartWriter(state.handle!, state.hasher, state.offset);
  const sync = () => {
    state.offset = writer.offset;
    state.buffered = writer.buffered;
  };
  const stop = async (): Promise<void> => {
    await reader.cancel().catch(() => {});
    await writer.drain().catch(() => {});
    sync();
    await discardPart(state);
  };
  const written = async (work: Promise<void>): Promise<void> => {
    try {
      await work;
    } catch (err) {
      sync();
      await reader.cancel().catch(() => {});
      throw await writeFailure(task, state, expected, options, err);
    }
    sync();
  };
  const unknown = expected === null ? await unknownSizeBound(task, options) : null;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (err) {
      // What arrived before the cut (or Ctrl-C) is good: keep it so the resume starts after it.
      await written(writer.drain());
      if (options.signal?.aborted) throw options.signal.reason;
      throw new RetryableFailure(
        guard.stalled() ? `stalled: no data for ${Math.round(stallMs / 1000)} s` : `connection lost (${errorMessage(err)})`,
      );
    }
    if (chunk.done) break;
    guard.kick();
    const bytes = chunk.value;
    const after = writer.offset + writer.buffered + bytes.byteLength;
    if (expected !== null && after > expected) {
      await stop();
      throw new DownloadFailure(
        `${task.url}: the server sent more than the expected ${expected} bytes; the partial download was discarded`,
      );
    }
    const over = unknown ? await unknown.check(after) : null;
    if (over !== null) {
      await stop();
      throw new DownloadFailure(
        `${task.dest}: the server sent ${over.sent} without saying how large the file is (no size from Civitai, no Content-Length); stopped${over.why}, the partial download was deleted and nothing was saved`,
      );
    }
    await written(writer.push(bytes));
    counted(bytes.byteLength);
    progress();
  }
  await written(writer.drain());
}

/**
 * The bounds of a body whose size nobody gave: `check(bytes)` answers null while the stream may go
 * on, else what was sent and why it stopped (the upper limit, or the free-space margin).
 */
async function unknownSizeBound(
  task: DownloadTask,
  options: DownloaderOptions,
): Promise<{ check: (bytes: number) => Promise<{ sent: string; why: string } | null> }> {
  const dir = parentOf(task.dest);
  const limit = options.unknownSizeLimit ?? UNKNOWN_SIZE_LIMIT;
  const space = await diskSpace(dir);
  const margin = space === null ? null : freeSpaceMargin(space.total);
  let nextCheck = 0;
  return {
    async check(bytes) {
      if (bytes > limit) return { sent: `more than ${formatBytes(limit)}`, why: "" };
      if (margin === null || bytes < nextCheck) return null;
      nextCheck = bytes + FREE_CHECK_BYTES;
      const free = await (options.freeSpace ?? freeBytes)(dir);
      if (free === null || free - FREE_CHECK_BYTES >= margin) return null;
      return { sent: formatBytes(bytes), why: ` to keep ${formatBytes(margin)} free on that disk` };
    },
  };
}

/**
 * A failed write of the `.part`. A full disk says what is really kept (the bytes on disk, which
 * may run past what was confirmed when a write stopped half way) and what more is needed; a `.part`
 * with nothing worth resuming, or of a file whose size nobody gave, is deleted and the message says
 * so. Anything else is returned as is.
 */
async function writeFailure(
  task: DownloadTask,
  state: PartState,
  expected: number | null,
  options: DownloaderOptions,
  err: unknown,
): Promise<unknown> {
  if (errnoCode(err) !== "ENOSPC" && errnoCode(err) !== "EDQUOT") return err;
  const kept = (await state.handle?.stat().catch(() => null))?.size ?? state.offset;
  const free = await (options.freeSpace ?? freeBytes)(parentOf(task.dest));
  const freeText = free === null ? "unknown" : formatBytes(free);
  if (expected === null) {
    await discardPart(state);
    return new DownloadFailure(
      `${task.dest}: disk full after ${formatBytes(kept)} of a file whose size the server did not give (${freeText} free); the partial download was deleted and nothing was saved`,
    );
  }
  if (kept === 0) {
    await discardPart(state);
    return new DownloadFailure(
      `${task.dest}: disk full before the first byte was saved; nothing was kept: needs ${formatBytes(expected)}, ${freeText} free; free some space and run again`,
    );
  }
  return new DownloadFailure(
    `${task.dest}: disk full after ${formatBytes(kept)}: needs ${formatBytes(expected - kept)} more, ${freeText} free; the .part (${formatBytes(kept)}) is kept: free some space and run again to resume`,
  );
}

/** Fails before the `.part` grows when the size the server gives cannot fit on the disk. */
async function checkRoom(task: DownloadTask, state: PartState, total: number, options: DownloaderOptions, res: Response): Promise<void> {
  const needed = total - state.offset;
  const free = await (options.freeSpace ?? freeBytes)(parentOf(task.dest));
  if (free === null || needed <= free) return;
  await dropBody(res);
  throw new DownloadFailure(
    `${task.dest}: not enough disk space: the server says the file is ${formatBytes(total)}, needs ${formatBytes(needed)} more, ${formatBytes(free)} free on that disk`,
  );
}

/** The server's size must be Civitai's (exactly, or within 1 KiB of a rounded `sizeKB`). */
function checkTotal(task: DownloadTask, total: number | null): void {
  if (total === null || task.size === null) return;
  const off = Math.abs(total - task.size);
  if (off === 0 || (!task.sizeExact && off <= SIZE_TOLERANCE)) return;
  throw new DownloadFailure(
    `${task.url}: the server's file is ${total} bytes but Civitai lists ${task.size}: the remote file changed? Look it up again (civitai-meta lookup) before downloading`,
  );
}
