/**
 * GitHub Actions' job summary: when `GITHUB_STEP_SUMMARY` names a file, `scan` and `diff` append
 * their Markdown summary to it (the runner renders it on the run's page). Appended, never
 * replaced: other steps write there too. A failure to write is a warning, never the run's failure.
 */
import { closeSync } from "node:fs";
import { writeAll } from "../shared/stdio.ts";
import { openForAppend } from "../shared/open-append.ts";
import { errnoCode } from "../shared/errors.ts";

/** The file to append to, or null when not running under GitHub Actions (or it is set empty). */
export function stepSummaryPath(env: Readonly<Record<string, string | undefined>>): string | null {
  const path = env.GITHUB_STEP_SUMMARY;
  return typeof path === "string" && path.trim() !== "" ? path : null;
}

/**
 * Appends `markdown` (and a blank line) to the step summary; returns why it could not, or null.
 * A FIFO that no one reads (or a link to one) is ENXIO, never a run held after its inventory is
 * written (shared/open-append.ts).
 */
export function appendStepSummary(path: string, markdown: string): string | null {
  const text = `${markdown.endsWith("\n") ? markdown : `${markdown}\n`}\n`;
  try {
    const fd = openForAppend(path, 0o666);
    try {
      writeAll(fd, Buffer.from(text));
    } finally {
      closeSync(fd);
    }
    return null;
  } catch (error) {
    const code = errnoCode(error);
    return code === "ENXIO" ? "ENXIO: it is a FIFO that no one reads" : (code ?? String(error));
  }
}
