import { lstatSync } from "node:fs";
import { resolve } from "node:path";
import { AppError } from "../shared/errors.ts";
import { writeFileAtomic } from "../shared/atomic-write.ts";

/**
 * Writes a finished report: stdout, or FILE via temp + rename in FILE's folder, so a reader never
 * sees half a report and an interrupted run leaves the old one whole. A symlink at FILE is
 * replaced by the report rather than followed to wherever it points (docs/cases.md F9).
 */
export function writeReport(text: string, file: string | undefined): void {
  if (file === undefined || file === "-") {
    process.stdout.write(text);
    return;
  }
  const target = resolve(file);
  try {
    if (lstatSync(target).isDirectory())
      throw new AppError(`Cannot write the report to ${target}: it is a folder; give a file name such as ${target}/inventory.json`);
  } catch (error) {
    if (error instanceof AppError) throw error;
  }
  try {
    writeFileAtomic(target, text, { mode: 0o644 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new AppError(`Cannot write the report to ${target}: ${code}. Check that the folder exists and is writable.`);
  }
}

import type { ReportFormat } from "./render.ts";
export type { ReportFormat };

/** `--format` wins; else the extension of `-o FILE` (.html/.htm: the gallery); else JSON. */
export function chooseFormat(format: string | undefined, file: string | undefined, configured?: ReportFormat): ReportFormat {
  if (format !== undefined) {
    const f = format.toLowerCase();
    if (f === "json" || f === "csv" || f === "md" || f === "html") return f;
    if (f === "markdown") return "md";
    throw new AppError(`--format must be json, csv, md or html (got "${format}")`, { exitCode: 2 });
  }
  const ext = file?.toLowerCase().match(/\.(json|csv|md|markdown|html|htm)$/)?.[1];
  if (ext) return ext === "markdown" ? "md" : ext === "htm" ? "html" : (ext as ReportFormat);
  return configured ?? "json";
}
