/**
 * stdout and stderr written through their descriptors, and whether each is a terminal.
 *
 * Why not `process.stdout` / `process.stderr`: the first touch of either builds Node's stream
 * machinery, ~18 ms of CPU in the compiled binary (measured: 40 starts of a binary that only reads
 * `process.stdout.isTTY`, against one that does nothing: 1.1 s against 0.35 s of CPU). That was
 * about half of what every command costs to start. Writing through the descriptor costs nothing
 * to set up; the streams are still used where a terminal is (progress bars, terminal width),
 * where a person waits anyway.
 *
 * A reader that leaves early is not a crash: on stdout (`civitai-meta … | head`) EPIPE ends the run
 * quietly with the exit code it had; on stderr the run goes on without its messages. A descriptor
 * left non-blocking by whoever opened it is waited for.
 */
import { fstatSync, statSync, writeSync } from "node:fs";
import { AppError, describeErrno, errnoCode } from "./errors.ts";

/** Code units encoded at a time: a 256 KiB flush is one piece, a whole gallery many. */
const PIECE = 256 * 1024;

/** Every byte of `bytes` to `fd`; a descriptor left non-blocking by whoever opened it is waited for. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (error) {
      if (errnoCode(error) !== "EAGAIN") throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

/**
 * Writes text through one buffer reused for every write, a piece at a time: a Buffer per write is
 * memory outside the engine's heap that it frees late (hundreds of MB over a 500 MB report;
 * issue 11, target 2), and a whole 26 MB gallery is never copied at once.
 */
export function textWriter(): (fd: number, data: string | Uint8Array) => void {
  // A UTF-16 code unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4).
  const buf = Buffer.allocUnsafe(PIECE * 3);
  return (fd, data) => {
    if (typeof data !== "string") return writeAll(fd, data);
    const text = data;
    for (let at = 0; at < text.length;) {
      let end = Math.min(text.length, at + PIECE);
      // Never cut a surrogate pair in two (each half alone would be written as U+FFFD).
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
      writeAll(fd, buf.subarray(0, buf.write(text.slice(at, end), "utf8")));
      at = end;
    }
  };
}

let stdioWriter: ((fd: number, data: string | Uint8Array) => void) | undefined;
/** stderr's reader has left: the run goes on without its messages (its results are elsewhere). */
let stderrGone = false;

/** Results: everything written before it returns. A reader gone (`… | head`) ends the run quietly. */
export function writeStdout(data: string | Uint8Array): void {
  if (windowsConsole(1)) {
    process.stdout.write(data);
    return;
  }
  stdioWriter ??= textWriter();
  try {
    stdioWriter(1, data);
  } catch (error) {
    if (errnoCode(error) === "EPIPE") process.exit(process.exitCode ?? 0);
    // `… > /dev/full`: the error alone ("ENOSPC: …, write") did not say it was stdout.
    throw new AppError(`Cannot write to stdout: ${describeErrno(error)}`, { cause: error });
  }
}

/**
 * Messages (the logger's lines). A reader gone (`2>&1 | head -1`, a closed log pipe) is no reason
 * to stop: the report being written, to a file or to stdout, is finished all the same.
 */
export function writeStderr(data: string | Uint8Array): void {
  if (stderrGone) return;
  if (windowsConsole(2)) {
    process.stderr.write(data);
    return;
  }
  stdioWriter ??= textWriter();
  try {
    stdioWriter(2, data);
  } catch (error) {
    if (errnoCode(error) !== "EPIPE") throw error;
    stderrGone = true;
  }
}

/**
 * A Windows console takes text through its own API (WriteConsoleW), which Node's streams use;
 * bytes written to the descriptor would show other than UTF-8 in older consoles. A person is
 * waiting there anyway, so the streams' start-up cost does not matter.
 */
function windowsConsole(fd: 1 | 2): boolean {
  return process.platform === "win32" && isTerminal(fd);
}

const terminal = new Map<number, boolean>();

/**
 * Whether descriptor `fd` is a terminal. Loading node:tty to ask costs as much as the streams
 * (~20 ms), so fstat answers first for a pipe, a file or /dev/null (every run under CI, in a
 * script or in the tests); only another character device is asked about.
 */
export function isTerminal(fd: 1 | 2): boolean {
  let known = terminal.get(fd);
  if (known === undefined) {
    known = mayBeTerminal(fd) && (process.getBuiltinModule("node:tty") as typeof import("node:tty")).isatty(fd);
    terminal.set(fd, known);
  }
  return known;
}

function mayBeTerminal(fd: number): boolean {
  // Windows consoles are not character devices to fstat: ask node:tty there.
  if (process.platform === "win32") return true;
  try {
    const st = fstatSync(fd);
    return st.isCharacterDevice() && st.rdev !== statSync("/dev/null").rdev;
  } catch {
    return false; // closed
  }
}
