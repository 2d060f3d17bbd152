import { dirname } from "node:path";
import { errnoCode } from "../shared/errors.ts";
import { formatBytes } from "../shared/format.ts";
import { freeBytes } from "./disk-space.ts";
import { DownloadFailure, RetryableFailure } from "./download-errors.ts";
import { DEFAULT_STALL_TIMEOUT_MS, type DownloadTask, type DownloaderOptions } from "./download-task.ts";
import { PartWriter } from "./part-writer.ts";
import { baseHeaders, dropBody, isWebPage, MAX_REDIRECTS, redirectTarget, storageFailure } from "./responses.ts";
import { acceptAnswer, discardPart, onUnsatisfiable, openPart, resumeHeaders, saveResumeState, type PartState } from "./resume-state.ts";
import { stallGuard } from "./stall-guard.ts";

export const SIZE_TOLERANCE = 1024;

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
    // An error page must never become the model file (civitai/civitai#975, A7).
    if (isWebPage(res)) {
      await dropBody(res);
      throw new DownloadFailure(
        `${task.url}: got a web page (${(res.headers.get("content-type") ?? "").split(";")[0]}) instead of the file; nothing was saved`,
      );
    }
    const total = await acceptAnswer(task, state, res, options, () => report(null));
    checkTotal(task, total);

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
      throw new RetryableFailure(`cannot reach the storage host ${host}: ${(err as Error)?.message ?? err}`);
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
          : `cannot reach the storage host ${host}: ${(err as Error)?.message ?? err}`,
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
 * bytes than expected discard the `.part`; a write error that is a full disk says how much room is
 * needed; a cut connection keeps what arrived so the next attempt resumes after it.
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
  // A write error is a disk problem: say how much room is needed; anything else is rethrown.
  const written = async (work: Promise<void>): Promise<void> => {
    try {
      await work;
    } catch (err) {
      sync();
      await reader.cancel().catch(() => {});
      if (errnoCode(err) === "ENOSPC" || errnoCode(err) === "EDQUOT") {
        const free = await (options.freeSpace ?? freeBytes)(dirname(task.dest));
        const needed = expected === null ? null : expected - state.offset;
        throw new DownloadFailure(
          `${task.dest}: disk full after ${formatBytes(state.offset)}: needs ${needed === null ? "more" : `${formatBytes(needed)} more`}, ${free === null ? "unknown" : formatBytes(free)} free; the .part is kept, free some space and run again to resume`,
        );
      }
      throw err;
    }
    sync();
  };
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (err) {
      // What arrived before the cut (or Ctrl-C) is good: keep it so the resume starts after it.
      await written(writer.drain());
      if (options.signal?.aborted) throw options.signal.reason;
      throw new RetryableFailure(
        guard.stalled() ? `stalled: no data for ${Math.round(stallMs / 1000)} s` : `connection lost (${(err as Error)?.message ?? err})`,
      );
    }
    if (chunk.done) break;
    guard.kick();
    const bytes = chunk.value;
    if (expected !== null && writer.offset + writer.buffered + bytes.byteLength > expected) {
      await reader.cancel().catch(() => {});
      await writer.drain().catch(() => {});
      sync();
      await discardPart(state);
      throw new DownloadFailure(
        `${task.url}: the server sent more than the expected ${expected} bytes; the partial download was discarded`,
      );
    }
    await written(writer.push(bytes));
    counted(bytes.byteLength);
    progress();
  }
  await written(writer.drain());
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
