import { closeSync, writeSync } from "node:fs";
import { openForAppend } from "../shared/open-append.ts";
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";
import { createRedactor, type Redactor } from "../shared/redact.ts";
import { escapeControl } from "../shared/format.ts";
import { isTerminal, writeStderr } from "../shared/stdio.ts";

/**
 * Logs go to stderr: stdout carries results (changelogen pattern). Two sinks, one text: every
 * message is redacted (the API key and credential patterns, shared/redact.ts) and stripped of
 * control characters line by line before any sink sees it, so a caller that forgot to escape a
 * file name or a server message cannot drive the terminal or leak the key. stderr shows what its
 * level allows (-q, default, --verbose); the log file (--log-file) gets every line down to debug,
 * timestamped, appended.
 *
 * stderr shows consola's own reporter on a terminal (prepareLogger), and otherwise plain
 * `[type] message` lines, consola's basic format, written to the descriptor: "consola" itself
 * builds process.stdout and process.stderr when imported, ~18 ms of every start (shared/stdio.ts).
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
  // One string (nearly every message) is its own text, as formatWithOptions gives it; node:util is
  // loaded for anything else (~1 ms of a start that logs only strings).
  const text =
    args.length === 1 && typeof args[0] === "string"
      ? args[0]
      : (require("node:util") as typeof import("node:util")).formatWithOptions(
          { colors: false, breakLength: Number.POSITIVE_INFINITY },
          ...args,
        );
  return redactor(text).split("\n").map(escapeControl).join("\n");
}

function cleaned(logObj: LogObject): LogObject {
  return { ...logObj, args: [cleanText(logObj.args)] };
}

const consola: ConsolaInstance = createConsola({
  level: LEVEL.normal,
  formatOptions: { date: false },
});

/** Off a terminal (pipes, files, CI, tests): consola's basic format, `[warn] message`. */
const plainReporter: ConsolaReporter = {
  log(logObj) {
    const message = String(logObj.args[0] ?? "");
    writeStderr(message === "" ? `[${logObj.type}]\n` : `[${logObj.type}] ${message}\n`);
  },
};

/**
 * Replaced by consola's own reporter (fancy on a terminal, plain in CI) when stderr is a terminal,
 * with the context it writes through (process.stderr).
 */
let terminal: { reporters: ConsolaReporter[]; ctx?: Parameters<ConsolaReporter["log"]>[1] } = { reporters: [plainReporter] };
const stderrReporter: ConsolaReporter = {
  log(logObj, ctx) {
    if (logObj.level > stderrLevel) return;
    const clean = cleaned(logObj);
    for (const reporter of terminal.reporters) reporter.log(clean, terminal.ctx ?? ctx);
  },
};

const fileReporter: ConsolaReporter = {
  log(logObj) {
    if (logFd === null) return;
    writeLogLines(logObj.type, cleanText(logObj.args), logObj.date);
  },
};

consola.setReporters([stderrReporter, fileReporter]);

/**
 * On a terminal, stderr shows consola's own reporter as consola chooses it (icons and colours,
 * plain in CI). Called once before the command runs; loads "consola" only there. With require, not
 * import(): the binary's bundle evaluates a module imported dynamically at start all the same
 * (Bun 1.4.5), and a required one only when required.
 */
export function prepareLogger(): void {
  if (!isTerminal(2)) return;
  const { createConsola: createFull } = require("consola") as typeof import("consola");
  const full = createFull({ stdout: process.stderr, stderr: process.stderr, formatOptions: { date: false } });
  terminal = { reporters: [...full.options.reporters], ctx: { options: full.options } };
}

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
 * A FIFO that no one reads is ENXIO, never a run held before it starts (shared/open-append.ts).
 */
export function openLogFile(path: string): void {
  const fd = openForAppend(path, 0o600);
  if (logFd !== null) closeSync(logFd);
  logFd = fd;
  applyLevels();
}
