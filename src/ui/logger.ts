import { closeSync, openSync, writeSync } from "node:fs";
import { formatWithOptions } from "node:util";
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola";
import { createRedactor, type Redactor } from "../shared/redact.ts";
import { escapeControl } from "../shared/format.ts";
import { fsPath } from "../shared/fs-path.ts";

/**
 * Logs go to stderr: stdout carries results (changelogen pattern). Two sinks, one text: every
 * message is redacted (the API key and credential patterns, shared/redact.ts) and stripped of
 * control characters line by line before any sink sees it, so a caller that forgot to escape a
 * file name or a server message cannot drive the terminal or leak the key. stderr shows what its
 * level allows (-q, default, --verbose); the log file (--log-file) gets every line down to debug,
 * timestamped, appended.
 */

const LEVEL = { quiet: 1, normal: 3, verbose: 4 } as const;
/** What the log file records: consola's debug level (trace, 5, is not used by this tool). */
const FILE_LEVEL = 4;

let stderrLevel: number = LEVEL.normal;
let logFd: number | null = null;
const secrets = new Set<string>();
let redactor: Redactor = createRedactor([]);

/** The one text both sinks show: redacted, controls escaped per line (line breaks of our own messages kept). */
function cleanText(args: unknown[]): string {
  const text = formatWithOptions({ colors: false, breakLength: Number.POSITIVE_INFINITY }, ...args);
  return redactor(text).split("\n").map(escapeControl).join("\n");
}

function cleaned(logObj: LogObject): LogObject {
  return { ...logObj, args: [cleanText(logObj.args)] };
}

const consola: ConsolaInstance = createConsola({
  stdout: process.stderr,
  stderr: process.stderr,
  level: LEVEL.normal,
  formatOptions: { date: false },
});

/** consola's own reporter (fancy on a terminal, plain otherwise), behind our level and cleaning. */
const terminalReporters = [...consola.options.reporters];
const stderrReporter: ConsolaReporter = {
  log(logObj, ctx) {
    if (logObj.level > stderrLevel) return;
    const clean = cleaned(logObj);
    for (const reporter of terminalReporters) reporter.log(clean, ctx);
  },
};

const fileReporter: ConsolaReporter = {
  log(logObj) {
    if (logFd === null) return;
    writeLogLines(logObj.type, cleanText(logObj.args), logObj.date);
  },
};

consola.setReporters([stderrReporter, fileReporter]);

export const logger: ConsolaInstance = consola;

function writeLogLines(type: string, text: string, date: Date): void {
  if (logFd === null) return;
  const stamp = date.toISOString();
  const lines = text.split("\n").map((line) => `${stamp} [${type}] ${line}\n`);
  try {
    writeSync(logFd, lines.join(""));
  } catch {
    // A full disk must not end the run; stderr still has the messages.
  }
}

function applyLevels(): void {
  consola.level = logFd === null ? stderrLevel : Math.max(stderrLevel, FILE_LEVEL);
}

export function setLogLevel(opts: { verbose?: boolean; quiet?: boolean }): void {
  if (opts.quiet) stderrLevel = LEVEL.quiet;
  else if (opts.verbose) stderrLevel = LEVEL.verbose;
  else stderrLevel = LEVEL.normal;
  applyLevels();
}

/** Removes `secret` (the API key, however it was given) from every later log line, in both sinks. */
export function addLogSecret(secret: string | null | undefined): void {
  if (!secret || secrets.has(secret)) return;
  secrets.add(secret);
  redactor = createRedactor([...secrets]);
}

/** True once a log file is open (`--log-file` wins over the config's `logFile`). */
export function hasLogFile(): boolean {
  return logFd !== null;
}

/**
 * Opens `path` for appending (created with mode 600: a log names the user's files) and sends every
 * later log line to it. Throws the fs error; the caller turns it into a message naming the file.
 */
export function openLogFile(path: string): void {
  const fd = openSync(fsPath(path), "a", 0o600);
  if (logFd !== null) closeSync(logFd);
  logFd = fd;
  applyLevels();
}
