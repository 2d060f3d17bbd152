import { existsSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");
const BINARY = join(ROOT, "dist/civitai-meta");

/** The compiled binary when built (what users run), else the sources under Bun. */
export function cliCommand(): string[] {
  return existsSync(BINARY) ? [BINARY] : [process.execPath, join(ROOT, "src/cli.ts")];
}

export interface Timed {
  ms: number;
  stdout: string;
  stderr: string;
  code: number;
  /** Peak resident memory of the child in bytes (from /usr/bin/time when available). */
  maxRssBytes?: number;
}

/** Runs a command and times it from spawn to exit; peak RSS comes from the child's rusage. */
export async function timeCommand(cmd: string[], opts: { env?: Record<string, string> } = {}): Promise<Timed> {
  const started = performance.now();
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env } as Record<string, string> });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const ms = performance.now() - started;
  return { ms, stdout, stderr, code, maxRssBytes: proc.resourceUsage()?.maxRSS };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export async function medianOf(runs: number, fn: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await fn());
  return median(values);
}

export function check(label: string, ok: boolean, detail: string): boolean {
  console.log(`${ok ? "PASS" : "MISS"}  ${label}: ${detail}`);
  return ok;
}
