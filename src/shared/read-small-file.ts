import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { fsPath } from "./fs-path.ts";

/**
 * The text of a small file we wrote ourselves beside the user's files (a download's resume state or
 * lock), or null when what sits at that name is not one: a symlink (never followed), a FIFO (opened
 * without blocking: a plain read waits for a writer forever, and Ctrl-C cannot stop a synchronous
 * read), a device such as /dev/zero (endless), or a file larger than `maxBytes`. Never throws.
 */
export function readSmallRegularFile(path: string, maxBytes: number): string | null {
  let fd: number;
  try {
    fd = openSync(fsPath(path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size > maxBytes) return null;
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read).toString("utf8");
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}
