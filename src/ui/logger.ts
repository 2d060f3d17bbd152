import { createConsola, type ConsolaInstance } from "consola";

/** Logs go to stderr: stdout carries results (changelogen pattern). */
export const logger: ConsolaInstance = createConsola({
  stdout: process.stderr,
  stderr: process.stderr,
  level: 3,
  formatOptions: { date: false },
});

export function setLogLevel(opts: { verbose?: boolean; quiet?: boolean }): void {
  if (opts.quiet) logger.level = 1;
  else if (opts.verbose) logger.level = 4;
  else logger.level = 3;
}
