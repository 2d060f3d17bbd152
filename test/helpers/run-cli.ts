import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureFreshBinary } from "./cli-binary.ts";

const ROOT = join(import.meta.dir, "../..");
export const CLI_ENTRY = join(ROOT, "src/cli.ts");
export { BINARY };
/**
 * Set for CLI children unless a test asks for real jitter: the HTTP engine's own backoff is then
 * 0 ms (src/commands/_api.ts), so retries do not sleep for real (Retry-After is still honoured).
 */
const NO_JITTER_ENV = "CIVITAI_META_TEST_NO_JITTER";
/**
 * `CIVITAI_META_TEST_CLI=source` runs every CLI child as `bun src/cli.ts` (slower; no build needed).
 * Otherwise children run dist/civitai-meta, rebuilt first when older than its sources (cli-binary.ts).
 */
const FROM_SOURCE = process.env.CIVITAI_META_TEST_CLI === "source";
let binaryChecked = false;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /**
   * Run the compiled binary exactly as users get it: without the suite's no-jitter setting (so with
   * its jitter). Children run the binary by default too, but without jitter (see `jitter`).
   */
  binary?: boolean;
  /** Run `bun src/cli.ts`, for a test whose own script names `$CLI_ENTRY`. */
  source?: boolean;
  timeoutMs?: number;
  /**
   * Keep the HTTP engine's random backoff. By default children run with CIVITAI_META_TEST_NO_JITTER=1,
   * so retries do not sleep for real (Retry-After is still honoured).
   */
  jitter?: boolean;
}

type CliMode = Pick<RunCliOptions, "binary" | "source" | "jitter">;

/**
 * Whether this child runs `bun src/cli.ts` rather than the binary. A child that runs the binary
 * (`binary: true` too: on a fresh clone it may be the worker's first) has it built first when it
 * is missing or older than its sources.
 */
function runsSource(opts: CliMode): boolean {
  if (!opts.binary && (opts.source || FROM_SOURCE)) return true;
  if (!binaryChecked) ensureFreshBinary();
  binaryChecked = true;
  return false;
}

/** This process's environment with `extra` over it, unset values dropped. */
function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extra })) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * The environment a CLI child needs on top of `extra`: unless it must run as users get it or keep
 * its jitter, CIVITAI_META_TEST_NO_JITTER=1. (A preloaded file that replaced Math.random did this
 * before, through BUN_OPTIONS: ~4 ms of CPU at every start.)
 */
export function cliEnv(extra: Record<string, string | undefined> = {}, opts: CliMode = {}): Record<string, string> {
  const env = cleanEnv(extra);
  if (!opts.binary && !opts.jitter) env[NO_JITTER_ENV] = "1";
  return env;
}

/** The command line that runs the CLI with `args` (run it with `cliEnv`): the binary, or `bun src/cli.ts`. */
export function cliCommand(args: readonly string[], opts: CliMode = {}): string[] {
  if (!runsSource(opts)) return [BINARY, ...args];
  return [process.execPath, CLI_ENTRY, ...args];
}

/** Runs the CLI as a user would: a child process, checked by exit code, stdout and stderr. */
export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const cmd = cliCommand(args, opts);
  const env = cliEnv(opts.env, opts);
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd ?? ROOT,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export interface CliBytesResult {
  code: number;
  /** stdout exactly as written (file names that are not UTF-8 stay bytes). */
  stdout: Buffer;
  stderr: string;
  /** Peak resident memory of the CLI, in bytes, when `measureRss` was asked for (else 0). */
  maxRss: number;
}

export interface RunCliBytesOptions extends RunCliOptions {
  /** Measure the CLI's peak memory through test/helpers/peak-rss.ts (see why there). */
  measureRss?: boolean;
}

/**
 * Runs a bash script in which `cli …` runs the CLI (`bun src/cli.ts …`, or the binary), so tests can
 * pass arguments that are not valid UTF-8 (`cli hash "$(printf 'bad\\xff')"`), pipes and redirections.
 */
export async function runShell(script: string, opts: RunCliOptions = {}): Promise<CliBytesResult> {
  const env = cliEnv(opts.env, opts);
  const source = runsSource(opts);
  env.CLI_EXEC = source ? process.execPath : BINARY;
  env.CLI_ENTRY = source ? CLI_ENTRY : "";
  // Scripts that cannot call the function (under script(1)) write `"$CLI_EXEC" ${CLI_ENTRY:+"$CLI_ENTRY"}`.
  const prelude = 'cli() { "$CLI_EXEC" ${CLI_ENTRY:+"$CLI_ENTRY"} "$@"; }\n';
  return spawnBytes(["bash", "-c", prelude + script], opts, env);
}

/** runCli with stdout kept as bytes and, if asked, the CLI's peak memory. */
export async function runCliBytes(args: string[], opts: RunCliBytesOptions = {}): Promise<CliBytesResult> {
  const env = cliEnv(opts.env, opts);
  const cli = cliCommand(args, opts);
  if (!opts.measureRss) return spawnBytes(cli, opts, env);
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-rss-"));
  try {
    const out = join(dir, "peak");
    const result = await spawnBytes([process.execPath, join(import.meta.dir, "peak-rss.ts"), out, ...cli], opts, env);
    return { ...result, maxRss: Number(readFileSync(out, "utf8")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function spawnBytes(cmd: string[], opts: RunCliOptions, env: Record<string, string>): Promise<CliBytesResult> {
  const proc = Bun.spawn(cmd, { cwd: opts.cwd ?? ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).arrayBuffer(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout: Buffer.from(stdout), stderr, maxRss: 0 };
}

export interface CliReadsResult extends CliResult {
  /** Bytes the CLI process read through read(2) and friends (files, pipes, its own sources), from /proc. */
  readBytes: number;
}

/** Whether this kernel keeps per-process I/O counters (/proc/<pid>/io) that runCliCountingReads needs. */
export function canCountReads(): boolean {
  return Bun.spawnSync(["cat", "/proc/self/io"]).exitCode === 0;
}

/**
 * Runs the CLI and counts, from outside, the bytes it read (issue 14: a scan after a restore must
 * read no file content, whatever our own counters say). The CLI runs under bash; once it is reaped,
 * the kernel adds its counters to bash's, which bash then prints (`rchar`: every byte read(2)
 * returned, cached or not). Compare against a run that reads nothing of interest: the runtime's own
 * start-up reads are a constant.
 */
export async function runCliCountingReads(args: string[], opts: RunCliOptions = {}): Promise<CliReadsResult> {
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-reads-"));
  try {
    const io = join(dir, "io");
    const script = '"$@"; rc=$?; cat /proc/$$/io > "$IO_OUT" || exit 99; exit $rc';
    const result = await spawnBytes(["bash", "-c", script, "bash", ...cliCommand(args, opts)], opts, {
      ...cliEnv(opts.env, opts),
      IO_OUT: io,
    });
    const rchar = /^rchar:\s*(\d+)$/m.exec(readFileSync(io, "utf8"));
    if (!rchar) throw new Error(`no rchar in /proc/<pid>/io: ${readFileSync(io, "utf8")}`);
    return { code: result.code, stdout: result.stdout.toString("utf8"), stderr: result.stderr, readBytes: Number(rchar[1]) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
