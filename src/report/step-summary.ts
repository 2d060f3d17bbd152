/**
 * GitHub Actions' job summary: when `GITHUB_STEP_SUMMARY` names a file, `scan` and `diff` append
 * their Markdown summary to it (the runner renders it on the run's page). Appended, never
 * replaced: other steps write there too. A failure to write is a warning, never the run's failure.
 */
import { appendFileSync, closeSync, constants, fstatSync, openSync, writeSync } from "node:fs";
import { errnoCode } from "../shared/errors.ts";
import { fsPath } from "../shared/fs-path.ts";

/** The file to append to, or null when not running under GitHub Actions (or it is set empty). */
export function stepSummaryPath(env: Readonly<Record<string, string | undefined>>): string | null {
  const path = env.GITHUB_STEP_SUMMARY;
  return typeof path === "string" && path.trim() !== "" ? path : null;
}

/**
 * Appends `markdown` (and a blank line) to the step summary; returns why it could not, or null.
 * The first open does not wait: a FIFO that no one reads (or a link to one) would otherwise hold
 * the run after its inventory is written, forever, and a blocked open cannot be stopped by a
 * signal. A FIFO someone reads, a terminal or `/dev/null` is then opened again and written as usual.
 */
export function appendStepSummary(path: string, markdown: string): string | null {
  const text = `${markdown.endsWith("\n") ? markdown : `${markdown}\n`}\n`;
  try {
    const fd = openSync(fsPath(path), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o666);
    try {
      const bytes = Buffer.from(text);
      if (fstatSync(fd).isFile()) for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
      // Opened again while the first is still open: closing it first showed a reader such as `cat`
      // the end of the stream, so it left, and the second open then waited for a reader forever.
      else appendFileSync(fsPath(path), text);
    } finally {
      closeSync(fd);
    }
    return null;
  } catch (error) {
    const code = errnoCode(error);
    return code === "ENXIO" ? "ENXIO: it is a FIFO that no one reads" : (code ?? String(error));
  }
}
