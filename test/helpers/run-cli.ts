import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");
export const CLI_ENTRY = join(ROOT, "src/cli.ts");
export const BINARY = join(ROOT, "dist/civitai-meta");
/** Preloaded into `bun src/cli.ts` children unless a test asks for real jitter (see no-jitter.ts). */
const NO_JITTER = join(import.meta.dir, "no-jitter.ts");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Run the compiled binary instead of `bun src/cli.ts`. */
  binary?: boolean;
  timeoutMs?: number;
  /**
   * Keep the HTTP engine's random backoff. By default `bun src/cli.ts` runs with no-jitter.ts
   * preloaded, so retries do not sleep for real (Retry-After is still honoured). The binary always
   * has its jitter.
   */
  jitter?: boolean;
}

/** The command line that runs the CLI with `args`: the binary, or `bun src/cli.ts` (see `jitter`). */
export function cliCommand(args: readonly string[], opts: Pick<RunCliOptions, "binary" | "jitter"> = {}): string[] {
  if (opts.binary) return [BINARY, ...args];
  return opts.jitter ? [process.execPath, CLI_ENTRY, ...args] : [process.execPath, "--preload", NO_JITTER, CLI_ENTRY, ...args];
}

/** Runs the CLI as a user would: a child process, checked by exit code, stdout and stderr. */
export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const cmd = cliCommand(args, opts);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
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
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  env.CLI_EXEC = opts.binary ? BINARY : process.execPath;
  env.CLI_ENTRY = opts.binary ? "" : CLI_ENTRY;
  const prelude = 'cli() { if [ -n "$CLI_ENTRY" ]; then "$CLI_EXEC" "$CLI_ENTRY" "$@"; else "$CLI_EXEC" "$@"; fi; }\n';
  return spawnBytes(["bash", "-c", prelude + script], opts, env);
}

/** runCli with stdout kept as bytes and, if asked, the CLI's peak memory. */
export async function runCliBytes(args: string[], opts: RunCliBytesOptions = {}): Promise<CliBytesResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
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
