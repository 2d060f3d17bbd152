/**
 * Opening a file we append to but that the user names (a log file, GitHub's step summary), which
 * may be a FIFO, a terminal or /dev/null as well as a file.
 */
import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { fsPath } from "./fs-path.ts";

/**
 * A descriptor appending to `path` (created with `mode`). The
 * first open does not wait: a FIFO that no one reads would hold the run forever, and a blocked open
 * cannot be stopped by a signal; it throws ENXIO instead. Anything but a regular file is opened
 * again, blocking, so its writes wait for the reader rather than fail, and before the first
 * descriptor is closed: closing it first showed a reader such as `cat` the end of the stream, so it
 * left, and the second open then waited for a reader forever.
 */
export function openForAppend(path: string, mode: number): number {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;
  const first = openSync(fsPath(path), flags | constants.O_NONBLOCK, mode);
  let regular = false;
  try {
    regular = fstatSync(first).isFile();
    return regular ? first : openSync(fsPath(path), flags, mode);
  } finally {
    if (!regular) closeSync(first);
  }
}
