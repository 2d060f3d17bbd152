import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { fsPath } from "./fs-path.ts";

/** Why readRegularFile read nothing. */
export type NotRead = "not a regular file" | "too large";

/**
 * Opens the file at `path` for reading without blocking, then checks by fstat that it is a regular
 * file before a byte is read: a FIFO there (a plain read waits for a writer forever, and Ctrl-C
 * cannot stop a synchronous read) or a device such as /dev/zero (endless) is refused. `follow:
 * false` refuses a symlink too (O_NOFOLLOW). Returns the descriptor (the caller closes it) and its
 * stat, or "not a regular file" (closed here). Throws what opening throws (ENOENT, EACCES, and
 * ELOOP for a refused link).
 */
export function openRegularFile(path: string, options: { follow: boolean }): { fd: number; stat: Stats } | "not a regular file" {
  const noFollow = options.follow ? 0 : constants.O_NOFOLLOW;
  const fd = openSync(fsPath(path), constants.O_RDONLY | constants.O_NONBLOCK | noFollow);
  let stat: Stats;
  try {
    stat = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (stat.isFile()) return { fd, stat };
  closeSync(fd);
  return "not a regular file";
}

/** Reads `buffer.length` bytes of `fd` from its start into `buffer` (fewer at its end); returns how many. */
export function readInto(fd: number, buffer: Buffer): number {
  let read = 0;
  while (read < buffer.length) {
    const n = readSync(fd, buffer, read, buffer.length - read, read);
    if (n === 0) break;
    read += n;
  }
  return read;
}

/**
 * The bytes of the regular file at `path` (openRegularFile), if it is one of at most `maxBytes`.
 * Throws what opening or reading throws.
 */
export function readRegularFile(path: string, options: { maxBytes: number; follow: boolean }): Buffer | NotRead {
  const opened = openRegularFile(path, options);
  if (typeof opened === "string") return opened;
  try {
    if (opened.stat.size > options.maxBytes) return "too large";
    const buffer = Buffer.allocUnsafe(opened.stat.size);
    return buffer.subarray(0, readInto(opened.fd, buffer));
  } finally {
    closeSync(opened.fd);
  }
}

/**
 * The first `bytes` bytes of the regular file at `path` (fewer when it is shorter), never through
 * a link; null when it is not one or cannot be read. Never throws.
 */
export function readFileHead(path: string, bytes: number): Buffer | null {
  try {
    const opened = openRegularFile(path, { follow: false });
    if (typeof opened === "string") return null;
    try {
      const head = Buffer.alloc(bytes);
      return head.subarray(0, readInto(opened.fd, head));
    } finally {
      closeSync(opened.fd);
    }
  } catch {
    return null;
  }
}

/**
 * The text of a small file we wrote ourselves (a download's resume state or lock, a metadata cache
 * entry), or null when what sits at that name is not one: a symlink (never followed), a FIFO, a
 * device, or a file larger than `maxBytes` (readRegularFile). Never throws.
 */
export function readSmallRegularFile(path: string, maxBytes: number): string | null {
  try {
    const read = readRegularFile(path, { maxBytes, follow: false });
    return typeof read === "string" ? null : read.toString("utf8");
  } catch {
    return null;
  }
}
