import { closeSync, fsyncSync, linkSync, lstatSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { open, rename, stat, unlink } from "node:fs/promises";
import { errnoCode } from "./errors.ts";
import { dirnamePath, fsPath } from "./fs-path.ts";
import { tempPathFor } from "./temp-name.ts";

// The temp name lives in temp-name.ts (pure, so the walker's rules can use it); hash/hash-cache.ts
// takes these from here.
export { isTempName, tempPathFor } from "./temp-name.ts";

/**
 * Write-to-temp-then-rename, so a reader (or the next run after a kill) sees the old content or
 * the new content, never a torn file (docs/reliability.md §3.1, §3.5). The temp file sits in the target's
 * folder because rename is only atomic within one filesystem.
 */

export interface WriteFileAtomicOptions {
  /** File mode for a new file; by default an existing target's mode is kept, else 0o666 minus umask. */
  mode?: number;
  /** fsync the data before the rename (default true). Without it a power cut can leave an empty file. */
  fsync?: boolean;
  /** Also fsync the folder after the rename so the new name itself survives a power cut (default false). */
  fsyncDir?: boolean;
}

function targetMode(path: string, mode: number | undefined): number {
  if (mode !== undefined) return mode;
  try {
    return statSync(fsPath(path)).mode & 0o7777;
  } catch {
    return 0o666;
  }
}

/** fsync a folder so a rename in it survives a power cut; best effort. */
export function fsyncDirSync(dir: string): void {
  // Some filesystems refuse fsync on a directory (EINVAL); the rename has still happened.
  let fd: number | undefined;
  try {
    fd = openSync(fsPath(dir), "r");
    fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Synchronous atomic write. Throws the underlying fs error (with its path) after removing the temp
 * file. A path holding escaped raw bytes (shared/fs-path.ts) is written under its exact bytes.
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array | readonly Uint8Array[],
  options: WriteFileAtomicOptions = {},
): void {
  const tmp = tempPathFor(path);
  // Several pieces are written one after the other (a record pack: its head, then its bodies as
  // they lie in a reused buffer), so no copy of the whole is made to write it.
  const pieces = typeof data === "string" ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data;
  let fd: number | undefined;
  try {
    // "wx": never follow or clobber something already sitting at the temp name.
    fd = openSync(fsPath(tmp), "wx", targetMode(path, options.mode));
    for (const bytes of pieces) {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    }
    if (options.fsync !== false) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(fsPath(tmp), fsPath(path));
  } catch (err) {
    dropTemp(fd, tmp);
    throw err;
  }
  if (options.fsyncDir) fsyncDirSync(dirnamePath(path));
}

/** Async twin of writeFileAtomic, for large reports where blocking the event loop would stall a spinner. */
export async function writeFileAtomicAsync(path: string, data: string | Uint8Array, options: WriteFileAtomicOptions = {}): Promise<void> {
  const tmp = tempPathFor(path);
  let mode = options.mode;
  if (mode === undefined) {
    mode = await stat(fsPath(path)).then(
      (s) => s.mode & 0o7777,
      () => 0o666,
    );
  }
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(fsPath(tmp), "wx", mode);
    await handle.writeFile(data);
    if (options.fsync !== false) await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(fsPath(tmp), fsPath(path));
  } catch (err) {
    await handle?.close().catch(() => {});
    await unlink(fsPath(tmp)).catch(() => {});
    throw err;
  }
  if (options.fsyncDir) fsyncDirSync(dirnamePath(path));
}

/** Errno codes of a file system or mount that cannot hard-link: the callers fall back to a copy or a rename. */
const NO_LINK_CODES = new Set(["EXDEV", "EPERM", "EMLINK", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** True when `err` says hard links are not possible here (not that the link itself was refused). */
export function isNoLinkError(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && NO_LINK_CODES.has(code);
}

/**
 * Writes `bytes` at `path` only if nothing is there: complete or absent, never torn, never
 * clobbering a file made at the same moment. The bytes go to a temp file in the folder, which is
 * hard-linked to the final name (fails if the name exists) and removed; where hard links are not
 * possible (FAT, exFAT, some network mounts) a check, then a rename. Throws the fs error otherwise.
 */
export function writeFileExclusive(path: string, bytes: Uint8Array, mode = 0o644): "written" | "exists" {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(fsPath(tmp), "wx", mode);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    try {
      linkSync(fsPath(tmp), fsPath(path));
    } catch (err) {
      if (errnoCode(err) === "EEXIST") return "exists";
      if (!isNoLinkError(err)) throw err;
      if (lexists(path)) return "exists";
      renameSync(fsPath(tmp), fsPath(path));
    }
    return "written";
  } finally {
    dropTemp(fd, tmp);
  }
}

/** Closes `fd` if still open and removes the temp file if it is still there (never made, or not renamed). */
function dropTemp(fd: number | undefined, tmp: string): void {
  if (fd !== undefined) {
    try {
      closeSync(fd);
    } catch {
      /* already failing */
    }
  }
  try {
    unlinkSync(fsPath(tmp));
  } catch {
    /* never created, or already renamed or linked away */
  }
}

function lexists(path: string): boolean {
  try {
    lstatSync(fsPath(path));
    return true;
  } catch {
    return false;
  }
}
