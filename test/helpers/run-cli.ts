import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");
export const CLI_ENTRY = join(ROOT, "src/cli.ts");
export const BINARY = join(ROOT, "dist/civitai-meta");

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
}

/** Runs the CLI as a user would: a child process, checked by exit code, stdout and stderr. */
export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const cmd = opts.binary ? [BINARY, ...args] : [process.execPath, CLI_ENTRY, ...args];
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
  /** Peak resident memory of the child, in bytes (getrusage ru_maxrss). */
  maxRss: number;
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

/** runCli with stdout kept as bytes and the child's peak memory. */
export async function runCliBytes(args: string[], opts: RunCliOptions = {}): Promise<CliBytesResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  const cmd = opts.binary ? [BINARY, ...args] : [process.execPath, CLI_ENTRY, ...args];
  return spawnBytes(cmd, opts, env);
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
  return { code, stdout: Buffer.from(stdout), stderr, maxRss: proc.resourceUsage()?.maxRSS ?? 0 };
}
