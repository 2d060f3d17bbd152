import { constants as FS, lstatSync, unlinkSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { writeFileAtomic } from "../shared/atomic-write.ts";
import { fsPath } from "../shared/fs-path.ts";
import { readSmallRegularFile } from "../shared/read-small-file.ts";
import { formatBytes } from "../shared/format.ts";
import { createStreamHasher, type StreamHasher } from "../hash/stream-hasher.ts";
import { isSafetensorsPath } from "../hash/hash-algos.ts";
import { DownloadFailure, RetryableFailure } from "./download-errors.ts";
import type { DownloadTask, DownloaderOptions } from "./download-task.ts";
import { contentLength, parseContentRange, unsatisfiedTotal } from "./responses.ts";

/**
 * Where a download resumes, all in one place (docs/reliability.md §1.7):
 *   1. the files: `<final>.<versionId>.part` holds the bytes, `<part>.json` its resume state (which
 *      file it is, and the server's ETag / Last-Modified), `<part>.lock` the lock;
 *   2. where to start ({@link openResume}): the end of a `.part` whose resume state names the same
 *      version, file and SHA-256 (its bytes are hashed again), else byte 0;
 *   3. what to ask ({@link resumeHeaders}): `Range: bytes=N-` with `If-Range`, so a changed file
 *      comes back whole instead of spliced;
 *   4. how the answer is judged ({@link acceptAnswer}, {@link onUnsatisfiable}): a 206 at our
 *      offset continues, a 206 elsewhere discards the `.part` (docs/cases.md A4), a 200 restarts from 0 (docs/cases.md A3, A5),
 *      a 416 hashes what we have and never trusts the size alone (docs/cases.md A8).
 */

/** What `<part>.json` holds: enough to tell whether the `.part` is the same file, and the validators. */
interface ResumeState {
  versionId: number;
  fileId: number | null;
  url: string;
  size: number | null;
  sha256: string | null;
  etag: string | null;
  lastModified: string | null;
}

/** `<final>.<versionId>.part`: per version, so two versions sharing a name never share a part file. */
export function partPathFor(dest: string, versionId: number): string {
  return `${dest}.${versionId}.part`;
}

function resumeStatePathFor(part: string): string {
  return `${part}.json`;
}

export function lockPathFor(part: string): string {
  return `${part}.lock`;
}

/** For tests and the command: the part, resume state and lock paths of a target. */
export function transferPaths(dest: string, versionId: number): { part: string; resumeState: string; lock: string } {
  const part = partPathFor(dest, versionId);
  return { part, resumeState: resumeStatePathFor(part), lock: lockPathFor(part) };
}

/** A resume state is a few hundred bytes; anything larger is not ours. */
const MAX_STATE_BYTES = 64 * 1024;

/** A FIFO, a link or a device planted at that name is no resume state: never read (docs/cases.md A16). */
function readResumeState(path: string): ResumeState | null {
  const text = readSmallRegularFile(path, MAX_STATE_BYTES);
  if (text === null) return null;
  try {
    const doc = JSON.parse(text) as Partial<ResumeState>;
    if (typeof doc.versionId !== "number") return null;
    return {
      versionId: doc.versionId,
      fileId: typeof doc.fileId === "number" ? doc.fileId : null,
      url: String(doc.url ?? ""),
      size: typeof doc.size === "number" ? doc.size : null,
      sha256: typeof doc.sha256 === "string" ? doc.sha256 : null,
      etag: typeof doc.etag === "string" ? doc.etag : null,
      lastModified: typeof doc.lastModified === "string" ? doc.lastModified : null,
    };
  } catch {
    return null;
  }
}

/** The `.part` of one transfer: its handle, how far it is, the hash of its bytes and its resume state. */
export interface PartState {
  part: string;
  handle: FileHandle | null;
  /** Bytes on disk in the .part (and fed to the hasher). */
  offset: number;
  /** Bytes received and not yet written (at most one write batch). */
  buffered: number;
  hasher: StreamHasher;
  makeHasher: (seed?: { path: string; length: number }) => StreamHasher;
  resume: ResumeState;
}

export async function openPart(part: string, create: boolean): Promise<FileHandle> {
  // O_NOFOLLOW on reopen and O_EXCL on create: a symlink planted at the part name is never followed (docs/cases.md F5).
  const name = fsPath(part);
  return create ? open(name, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, 0o644) : open(name, FS.O_WRONLY | FS.O_NOFOLLOW);
}

/** Why a `.part` with other names is not written into (transfer.ts checks first; openResume again on the open file). */
export function hardLinkedPart(part: string): string {
  return `${part} has other names (hard links); refusing to write into it (remove it to download)`;
}

/** Where this transfer starts: after the bytes of a `.part` that is the same file, else at 0. */
export async function openResume(task: DownloadTask, part: string, options: DownloaderOptions): Promise<PartState> {
  const fresh: ResumeState = {
    versionId: task.versionId,
    fileId: task.fileId,
    url: task.url,
    size: task.size,
    sha256: task.sha256,
    etag: null,
    lastModified: null,
  };
  const makeHasher = (seed?: { path: string; length: number }) =>
    // A safetensors also gets its AutoV3 from the same bytes, for the hash cache (verified-hash.ts).
    createStreamHasher({ ...(seed ? { seed } : {}), inline: options.inlineHash === true, autov3: isSafetensorsPath(task.dest) });
  const state: PartState = { part, handle: null, offset: 0, buffered: 0, hasher: makeHasher(), makeHasher, resume: fresh };

  // Resume only a .part whose resume state says it holds the same file; anything else starts over.
  const old = readResumeState(resumeStatePathFor(part));
  const partStat = lstatSync(fsPath(part), { throwIfNoEntry: false });
  if (partStat) {
    const same = old !== null && old.versionId === task.versionId && old.fileId === task.fileId && old.sha256 === task.sha256;
    state.handle = await openPart(part, false);
    // On the open file, so a link made after transfer.ts looked is caught before a byte is written.
    if ((await state.handle.stat()).nlink > 1) {
      await state.handle.close();
      state.handle = null;
      throw new DownloadFailure(hardLinkedPart(part));
    }
    if (same && partStat.size > 0) {
      // The bytes already there are hashed by the hasher's worker while the request goes out.
      replaceHasher(state, { path: part, length: partStat.size });
      state.offset = partStat.size;
      state.resume = old;
    } else {
      // Bytes thrown away are said: a .part without its resume state (a crash before it was
      // written), or one for another file (Civitai replaced the file under this name).
      if (partStat.size > 0) {
        const why = old === null ? "has no resume state to check it against" : "was for another file (its resume state differs)";
        options.onWarning?.(`${task.dest}: the .part (${formatBytes(partStat.size)}) ${why}; starting over`);
      }
      await state.handle.truncate(0);
    }
  }
  return state;
}

/** `Range` from our offset, with `If-Range` (a strong ETag, else Last-Modified) so a changed file comes back whole. */
export function resumeHeaders(state: PartState): Record<string, string> {
  if (state.offset === 0) return {};
  const headers: Record<string, string> = { Range: `bytes=${state.offset}-` };
  const { etag, lastModified } = state.resume;
  const validator = etag && !etag.startsWith("W/") ? etag : lastModified;
  if (validator) headers["If-Range"] = validator;
  return headers;
}

/**
 * Judges a 200 or 206 answer against our offset and returns the file's total size (null when
 * unknown). A 206 elsewhere than our offset is refused; a 200 to a resume restarts from 0.
 */
export async function acceptAnswer(
  task: DownloadTask,
  state: PartState,
  res: Response,
  options: DownloaderOptions,
  restarted: () => void,
): Promise<number | null> {
  if (res.status === 206) {
    const range = parseContentRange(res.headers.get("content-range"));
    if (!range || range.start !== state.offset) {
      const asked = state.offset; // before the discard below sets it back to 0
      await res.body?.cancel().catch(() => {});
      // Splicing bytes from another offset would corrupt the file silently (pip, docs/cases.md A4).
      await discardPart(state);
      throw new DownloadFailure(
        `${task.url}: the server resumed at the wrong offset (asked for byte ${asked}, got ${range ? range.start : "no Content-Range"}); the partial download was discarded, run again to start over`,
      );
    }
    return range.total;
  }
  if (state.offset > 0) {
    const etag = res.headers.get("etag");
    const changed = state.resume.etag !== null && etag !== null && etag !== state.resume.etag;
    options.onWarning?.(
      `${task.dest}: ${changed ? "the remote file changed since the .part was started" : "the server ignored the resume request"}; restarting from 0`,
    );
    await restart(state);
    restarted();
  }
  return contentLength(res);
}

/** Keeps the validators of this answer in the resume state, so the next run can ask for the rest. */
export function saveResumeState(task: DownloadTask, state: PartState, res: Response, total: number | null): void {
  const etag = res.headers.get("etag");
  const lastModified = res.headers.get("last-modified");
  if (res.status === 200 || state.resume.etag !== etag || state.resume.lastModified !== lastModified) {
    state.resume = { ...state.resume, size: total ?? task.size, etag, lastModified };
  }
  writeFileAtomic(resumeStatePathFor(state.part), `${JSON.stringify(state.resume)}\n`, { fsync: false });
}

/** 416 on a resume: the `.part` may already be whole. Hash it, never trust the size alone (docs/cases.md A8). */
export async function onUnsatisfiable(
  task: DownloadTask,
  state: PartState,
  res: Response,
  options: DownloaderOptions,
  restarted: () => void,
): Promise<boolean> {
  const total = unsatisfiedTotal(res.headers.get("content-range")) ?? (task.sizeExact ? task.size : null);
  if (state.offset > 0 && total !== null && state.offset === total) {
    const digest = await state.hasher.digest();
    if (task.sha256 === null || digest === task.sha256) return true;
  }
  // Said once, by the transfer loop's warning for this failure ("…; resuming at 0 B (retry n/N)").
  const why = `the .part (${formatBytes(state.offset)}) does not match the remote file (416), so it starts over`;
  await restart(state);
  restarted();
  throw new RetryableFailure(why);
}

function replaceHasher(state: PartState, seed?: { path: string; length: number }): void {
  state.hasher.close();
  state.hasher = state.makeHasher(seed);
}

/** Empties the `.part` and starts again from byte 0. */
async function restart(state: PartState): Promise<void> {
  await state.handle?.truncate(0);
  state.offset = 0;
  replaceHasher(state);
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(fsPath(path));
  } catch {
    /* absent */
  }
}

/** Deletes the `.part` and its resume state: their bytes must never be resumed. */
export async function discardPart(state: PartState): Promise<void> {
  await state.handle?.close().catch(() => {});
  state.handle = null;
  tryUnlink(state.part);
  tryUnlink(resumeStatePathFor(state.part));
  state.offset = 0;
  replaceHasher(state);
}

/** After the rename: the resume state has nothing left to resume. */
export function forgetResumeState(part: string): void {
  tryUnlink(resumeStatePathFor(part));
}

export function closeResume(state: PartState): Promise<void> {
  const handle = state.handle;
  state.handle = null;
  state.hasher.close();
  return handle ? handle.close().catch(() => {}) : Promise.resolve();
}
