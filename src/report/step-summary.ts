/**
 * GitHub Actions' job summary: when `GITHUB_STEP_SUMMARY` names a file, `scan` and `diff` append
 * their Markdown summary to it (the runner renders it on the run's page). Appended, never
 * replaced: other steps write there too. A failure to write is a warning, never the run's failure.
 */
import { appendFileSync } from "node:fs";
import { errnoCode } from "../shared/errors.ts";
import { fsPath } from "../shared/fs-path.ts";

/** The file to append to, or null when not running under GitHub Actions (or it is set empty). */
export function stepSummaryPath(env: Readonly<Record<string, string | undefined>>): string | null {
  const path = env.GITHUB_STEP_SUMMARY;
  return typeof path === "string" && path.trim() !== "" ? path : null;
}

/** Appends `markdown` (and a blank line) to the step summary; returns why it could not, or null. */
export function appendStepSummary(path: string, markdown: string): string | null {
  try {
    appendFileSync(fsPath(path), `${markdown.endsWith("\n") ? markdown : `${markdown}\n`}\n`);
    return null;
  } catch (error) {
    return errnoCode(error) ?? String(error);
  }
}
