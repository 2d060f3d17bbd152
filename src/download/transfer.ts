import { lstatSync } from "node:fs";
import type { Stats } from "node:fs";
import { lstat, lutimes, mkdir, realpath, rename } from "node:fs/promises";
import { isAbsolute, relative, sep } from "node:path";
import { fsyncDirSync } from "../shared/atomic-write.ts";
import { decodeFsName, fsPath, rawSafe } from "../shared/fs-path.ts";
import { describeErrno, errnoCode, errorMessage } from "../shared/errors.ts";
import { formatBytes } from "../shared/format.ts";
import { createRedactor, type Redactor } from "../shared/redact.ts";
import { sleep } from "../shared/sleep.ts";
import { attempt, SIZE_TOLERANCE } from "./attempt.ts";
import { freeBytes } from "./disk-space.ts";
import { DownloadFailure, RetryableFailure } from "./download-errors.ts";
import { acquireLock, type LockOwner } from "./download-lock.ts";
import type { DownloadTask, DownloaderOptions } from "./download-task.ts";
import {
  closeResume,
  discardPart,
  forgetResumeState,
  hardLinkedPart,
  lockPathFor,
  openResume,
  partPathFor,
  type PartState,
} from "./resume-state.ts";
import { resolveSignedLink } from "./signed-link.ts";
import { parentOf } from "./file-name.ts";
import { isSafetensorsPath } from "../hash/hash-algos.ts";
import { createAutov3Tap } from "../hash/autov3-tap.ts";
import { settledMtime, type VerifiedHashes } from "../hash/verified-hash.ts";

/**
 * One verified, resumable transfer (docs/reliability.md §1.7, issue #6): the checks before a byte is
 * fetched, the loop of attempts (retries, fresh signed links) and the verified rename. The API answers
 * with a 307 to a signed storage URL (signed-link.ts); one GET against storage is attempt.ts; where a
 * download resumes is resume-state.ts. The final name appears only when size and SHA-256 equal Civitai's.
 */

export type { DownloadTask, DownloaderOptions } from "./download-task.ts";
export { transferPaths } from "./resume-state.ts";

type DownloadStatus = "downloaded" | "present" | "exists" | "locked" | "failed";

export interface DownloadResult {
  task: DownloadTask;
  status: DownloadStatus;
  /** Why it was skipped or failed; never a secret. */
  message?: string;
  /** Bytes received over the network in this run. */
  bytesReceived: number;
  lockOwner?: LockOwner | null;
  /** "downloaded" or "present" with Civitai's SHA-256 checked: the file's hashes, for the hash cache. */
  verified?: VerifiedHashes;
}

const MAX_RETRY_DELAY_MS = 30_000;

/**
 * SHA-256 of the first `length` bytes of `path` (all when omitted), streamed; with `withAutov3`,
 * the AutoV3 of the same bytes too (undefined without it, null when not safetensors-shaped).
 */
export async function hashFile(
  path: string,
  length?: number,
  withAutov3 = false,
): Promise<{ hasher: Bun.CryptoHasher; bytes: number; autov3?: string | null }> {
  const hasher = new Bun.CryptoHasher("sha256");
  const tap = withAutov3 ? createAutov3Tap() : null;
  let bytes = 0;
  const name = fsPath(path);
  // Bun.file takes a path as bytes too (a name that is not valid UTF-8).
  const file = typeof name === "string" ? Bun.file(name) : Bun.file(new Uint8Array(name));
  const stream = (length === undefined ? file : file.slice(0, length)).stream();
  for await (const chunk of stream) {
    hasher.update(chunk);
    tap?.update(chunk);
    bytes += chunk.byteLength;
  }
  return { hasher, bytes, ...(tap ? { autov3: tap.digest() } : {}) };
}

/** Downloads one file; never throws except on abort (the signal's reason). */
export async function downloadFile(task: DownloadTask, options: DownloaderOptions): Promise<DownloadResult> {
  const redact = createRedactor([options.apiKey]);
  let bytesReceived = 0;
  const counted = (n: number) => {
    bytesReceived += n;
  };
  try {
    const outcome = await run(task, options, redact, counted);
    return { ...outcome, task, bytesReceived, message: outcome.message === undefined ? undefined : redact(outcome.message) };
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    const message = err instanceof DownloadFailure ? err.message : (cannotWrite(task, err) ?? `${task.dest}: ${errorMessage(err)}`);
    return { task, status: "failed", message: redact(message), bytesReceived };
  }
}

/**
 * A folder the run may not write in (a read-only mount, no permission): said in words with what to
 * do, not as the raw errno of whichever of mkdir, the lock or the `.part` met it first.
 */
function cannotWrite(task: DownloadTask, err: unknown): string | null {
  const code = errnoCode(err);
  if (code !== "EROFS" && code !== "EACCES" && code !== "EPERM") return null;
  const advice =
    code === "EROFS"
      ? "the filesystem is mounted read-only: choose another --dest or remount it read-write"
      : "check the folder's owner and permissions, or choose another --dest";
  return `${task.dest}: cannot write in ${parentOf(task.dest)}: ${describeErrno(err)}; ${advice}`;
}

/** The checks before any byte: the folder, the target, the `.part`, the lock; then the transfer. */
async function run(
  task: DownloadTask,
  options: DownloaderOptions,
  redact: Redactor,
  counted: (n: number) => void,
): Promise<Omit<DownloadResult, "task" | "bytesReceived">> {
  await prepareFolder(task.dest, options.root);

  // The target: a verified copy is kept, anything else is left alone unless --force (docs/cases.md A11); a symlink is never written through (docs/cases.md F5).
  const existing = await lstatOrNull(task.dest);
  if (existing) {
    if (existing.isSymbolicLink()) throw new DownloadFailure(`${task.dest} is a symlink; refusing to write through it`);
    if (!existing.isFile()) throw new DownloadFailure(`${task.dest} exists and is not a regular file; left alone`);
    const verdict = await checkExisting(task, existing.size);
    if (verdict.ok) return { status: "present", message: verdict.message, ...(verdict.verified ? { verified: verdict.verified } : {}) };
    if (!options.force)
      return { status: "exists", message: `${task.dest} exists (${verdict.message}); left alone, use --force to replace it` };
  }

  const part = partPathFor(task.dest, task.versionId);
  const partStat = lstatSync(fsPath(part), { throwIfNoEntry: false });
  if (partStat && !partStat.isFile()) {
    throw new DownloadFailure(
      `${part} is ${partStat.isSymbolicLink() ? "a symlink" : "not a regular file"}; refusing to use it (remove it to download)`,
    );
  }
  // A .part is written in place (truncated, appended to, renamed): with a second name it is another
  // file too (a model beside it, anything the user may write), whose bytes would be replaced.
  if (partStat && partStat.nlink > 1) throw new DownloadFailure(hardLinkedPart(part));

  const locked = acquireLock(lockPathFor(part), options.lock);
  if (!locked.ok) {
    const who = locked.owner ? `pid ${locked.owner.pid} since ${locked.owner.startedAt}` : "another process";
    return {
      status: "locked",
      message: `${task.dest} is being downloaded by ${who}; skipped (run again once it has finished)`,
      lockOwner: locked.owner,
    };
  }
  try {
    const verified = await transfer(task, part, options, redact, counted);
    return { status: "downloaded", ...(verified ? { verified } : {}) };
  } finally {
    locked.lock.release();
  }
}

/**
 * Creates the target's folder and checks that its real path stays inside `root`: a pre-planted
 * symlinked sub-folder must not carry the write outside the destination (docs/cases.md F3).
 */
export async function prepareFolder(target: string, root: string | undefined): Promise<void> {
  const dir = parentOf(target);
  await mkdir(fsPath(dir), { recursive: true });
  if (root === undefined) return;
  const realRoot = decodeFsName(await realpath(fsPath(root), { encoding: "buffer" }));
  const realDir = decodeFsName(await realpath(fsPath(dir), { encoding: "buffer" }));
  const rel = rawSafe(relative, realRoot, realDir);
  if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new DownloadFailure(`${target}: its folder resolves outside ${root} (a symlink?); refusing to write there`);
  }
}

/** lstat, or null when nothing is there. */
export async function lstatOrNull(path: string): Promise<Stats | null> {
  return lstat(fsPath(path)).catch((err) => {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  });
}

/**
 * The failure that ends the loop, saying only what is true about the `.part`: kept with its bytes
 * when it has some, else removed (with its resume state) and "nothing was saved".
 */
async function giveUp(task: DownloadTask, state: PartState, why: string, redact: Redactor): Promise<DownloadFailure> {
  const kept = state.handle ? ((await state.handle.stat().catch(() => null))?.size ?? 0) : 0;
  if (kept === 0) await discardPart(state);
  const after = kept > 0 ? `the .part (${formatBytes(kept)}) is kept: run again to resume` : "nothing was saved";
  return new DownloadFailure(redact(`${task.dest}: ${why}; ${after}`));
}

/** Whether the file at `task.dest` is the one wanted; `verified` when its SHA-256 was read and equals Civitai's. */
export async function checkExisting(
  task: DownloadTask,
  size: number,
): Promise<{ ok: boolean; message: string; verified?: VerifiedHashes }> {
  if (task.size !== null && task.sizeExact && size !== task.size) {
    return { ok: false, message: `${formatBytes(size)}, expected ${formatBytes(task.size)}` };
  }
  if (task.sha256 === null) {
    const near = task.size === null || Math.abs(size - task.size) <= SIZE_TOLERANCE;
    return near
      ? { ok: true, message: "already present (size matches; Civitai gives no SHA-256)" }
      : { ok: false, message: "size differs" };
  }
  const checkedFrom = Date.now();
  const { hasher, autov3 } = await hashFile(task.dest, undefined, isSafetensorsPath(task.dest));
  const actual = hasher.digest("hex");
  return actual === task.sha256
    ? {
        ok: true,
        message: "already present, verified",
        verified: { sha256: actual, checkedFrom, ...(autov3 !== undefined ? { autov3 } : {}) },
      }
    : { ok: false, message: `hash differs: SHA-256 ${actual}, expected ${task.sha256}` };
}

/**
 * The transfer loop: attempts until every byte is in, a fresh signed link when storage says the
 * old one expired, a pause that doubles after each attempt without progress; then the verified rename.
 */
async function transfer(
  task: DownloadTask,
  part: string,
  options: DownloaderOptions,
  redact: Redactor,
  counted: (n: number) => void,
): Promise<VerifiedHashes | null> {
  const state = await openResume(task, part, options);
  const report = (total: number | null) => options.onProgress?.({ task, received: state.offset + state.buffered, total });
  report(task.size);

  const maxRetries = options.maxRetries ?? 5;
  const baseDelay = options.retryDelayMs ?? 1000;
  let failures = 0;
  // Progress is a byte never held before: after a restart from 0 (a 200 or a 416 to a resume),
  // fetching the same bytes again is not progress, or a server that cuts every body and refuses
  // every resume would reset the count forever (docs/cases.md A15).
  let furthest = state.offset;
  let signedUrl: string | null = null;
  let expiredInARow = 0;
  try {
    if (task.size !== null) {
      const needed = task.size - state.offset;
      const free = await (options.freeSpace ?? freeBytes)(parentOf(task.dest));
      if (free !== null && needed > free) {
        throw new DownloadFailure(
          `${task.dest}: not enough disk space: needs ${formatBytes(needed)} more, ${formatBytes(free)} free on that disk`,
        );
      }
    }
    for (;;) {
      if (options.signal?.aborted) throw options.signal.reason;
      const before = state.offset;
      try {
        if (signedUrl === null) signedUrl = await resolveSignedLink(task, options);
        const done = await attempt(task, signedUrl, state, options, counted, report);
        if (done) break;
        throw new RetryableFailure(`connection closed at ${formatBytes(state.offset)}`);
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (!(err instanceof RetryableFailure)) throw err;
        if (err.expired) {
          signedUrl = null;
          // A fresh link refused at once is not an expiry: stop rather than loop.
          if (++expiredInARow > 2)
            throw new DownloadFailure(`${task.url}: the storage host refuses the download link even after asking Civitai for a new one`);
          options.onWarning?.(
            redact(`${task.dest}: ${err.message}; asking Civitai for a new link, continuing at ${formatBytes(state.offset)}`),
          );
          continue;
        }
        if (state.offset > furthest) {
          furthest = state.offset;
          failures = 0;
        }
        if (++failures > maxRetries)
          throw await giveUp(task, state, `${err.message}; gave up after ${maxRetries} ${maxRetries === 1 ? "retry" : "retries"}`, redact);
        options.onWarning?.(
          redact(`${task.dest}: ${err.message}; resuming at ${formatBytes(state.offset)} (retry ${failures}/${maxRetries})`),
        );
        // A Retry-After the server gave (a short 429) is waited out as given.
        await sleep(err.waitMs ?? Math.min(MAX_RETRY_DELAY_MS, baseDelay * 2 ** (failures - 1)), options.signal);
        continue;
      } finally {
        if (state.offset > before) expiredInARow = 0;
      }
    }
    return await finish(task, state, options);
  } finally {
    await closeResume(state);
  }
}

/**
 * Size and SHA-256 must both equal Civitai's; then fsync, rename, fsync the folder. Returns the
 * hashes verified (null when Civitai gave no SHA-256 to check against).
 */
async function finish(task: DownloadTask, state: PartState, options: DownloaderOptions): Promise<VerifiedHashes | null> {
  const part = state.part;
  if (task.size !== null && task.sizeExact && state.offset !== task.size) {
    await discardPart(state);
    throw new DownloadFailure(
      `${task.url}: size mismatch: expected ${task.size} bytes, got ${state.offset}; the partial download was deleted`,
    );
  }
  // The fsync (writing 25 GB back to disk takes a while) overlaps the hasher finishing its queue;
  // syncing bytes that turn out wrong costs nothing, the rename below is what must wait for both.
  const synced = state.handle ? state.handle.sync() : Promise.resolve();
  const [actual] = await Promise.all([state.hasher.digest(), synced]);
  if (task.sha256 !== null && actual !== task.sha256) {
    await discardPart(state);
    throw new DownloadFailure(
      `${task.dest}: SHA-256 mismatch: expected ${task.sha256}, got ${actual}; nothing was saved under that name and the partial download was deleted. Run the same command again to fetch it afresh; if the mismatch comes back, the file served is not the one listed (changed on Civitai since it was scanned or looked up?): look it up again with civitai-meta lookup`,
    );
  }
  if (task.sha256 === null) {
    options.onWarning?.(
      task.size === null
        ? `${task.dest}: Civitai gives neither a SHA-256 nor a size for this file: it could not be verified`
        : `${task.dest}: Civitai gives no SHA-256 for this file; only its size was checked`,
    );
  }
  const autov3 = task.sha256 !== null && isSafetensorsPath(task.dest) ? await state.hasher.autov3() : undefined;
  // A little in the past, so the hash cache may trust the entry at once (verified-hash.ts); the
  // handle when there is one, else the name without following a link.
  const checkedFrom = Date.now();
  if (state.handle) {
    await state.handle.utimes(new Date(), settledMtime(checkedFrom));
    await state.handle.close();
    state.handle = null;
  } else {
    await lutimes(fsPath(part), new Date(), settledMtime(checkedFrom));
  }
  const now = lstatSync(fsPath(task.dest), { throwIfNoEntry: false });
  if (now) {
    if (now.isSymbolicLink() || !now.isFile())
      throw new DownloadFailure(
        `${task.dest} became ${now.isSymbolicLink() ? "a symlink" : "something else"} during the download; refusing to replace it (the verified file is kept as ${part})`,
      );
    if (!options.force)
      throw new DownloadFailure(`${task.dest} appeared during the download; left alone (the verified file is kept as ${part})`);
  }
  await rename(fsPath(part), fsPath(task.dest));
  fsyncDirSync(parentOf(task.dest));
  forgetResumeState(part);
  return task.sha256 === null ? null : { sha256: task.sha256, checkedFrom, ...(autov3 !== undefined ? { autov3 } : {}) };
}

/** True when `path` is a regular file that is not a symlink (for the command's dry run). */
export function isPlainFile(path: string): boolean {
  const s = lstatSync(fsPath(path), { throwIfNoEntry: false });
  return s !== undefined && s.isFile();
}
