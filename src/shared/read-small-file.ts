import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { fsPath } from "./fs-path.ts";

/** Why readRegularFile read nothing. */
export type NotRead = "not a regular file" | "too large";

/**
 * The bytes of the regular file at `path`, if it is one of at most `maxBytes`. Opened without
 * blocking, then checked by fstat before a byte is read: a FIFO there (a plain read waits for a
 * writer forever, and Ctrl-C cannot stop a synchronous read) or a device such as /dev/zero
 * (endless) is refused, not read. `follow: false` refuses a symlink too (O_NOFOLLOW). Throws what
 * opening or reading throws (ENOENT, EACCES, and ELOOP for a refused link).
 */
export function readRegularFile(path: string, options: { maxBytes: number; follow: boolean }): Buffer | NotRead {
  const noFollow = options.follow ? 0 : constants.O_NOFOLLOW;
  const fd = openSync(fsPath(path), constants.O_RDONLY | constants.O_NONBLOCK | noFollow);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return "not a regular file";
    if (stat.size > options.maxBytes) return "too large";
    const buffer = Buffer.allocUnsafe(stat.size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
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
