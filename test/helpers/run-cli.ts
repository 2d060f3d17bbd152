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
