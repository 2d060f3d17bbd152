import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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

const GNU_TIME = "/usr/bin/time";

export interface TimeCommandOptions {
  env?: Record<string, string>;
  /** Where stdout goes: captured (default) or discarded (a 100,000-line output would fill the bench's memory). */
  stdout?: "pipe" | "ignore";
  /**
   * Measure the command's own peak RSS through GNU time (fork + exec from a small process). Read
   * from this process, a child's ru_maxrss starts at this process's size (Linux keeps the pre-exec
   * high-water mark), which a benchmark holding a fake server of 100,000 models would inflate.
   */
  peakRss?: boolean;
}

/** Runs a command and times it from spawn to exit (GNU time, when asked for peak RSS, adds ~1 ms). */
export async function timeCommand(cmd: string[], opts: TimeCommandOptions = {}): Promise<Timed> {
  const rssDir = opts.peakRss && existsSync(GNU_TIME) ? mkdtempSync(join(tmpdir(), "civitai-meta-rss-")) : null;
  const rssFile = rssDir ? join(rssDir, "rss") : null;
  const argv = rssFile ? [GNU_TIME, "-f", "%M", "-o", rssFile, ...cmd] : cmd;
  const started = performance.now();
  const proc = Bun.spawn(argv, {
    stdout: opts.stdout ?? "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env } as Record<string, string>,
  });
  const [stdout, stderr, code] = await Promise.all([
    proc.stdout ? new Response(proc.stdout).text() : Promise.resolve(""),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const ms = performance.now() - started;
  let maxRssBytes = proc.resourceUsage()?.maxRSS;
  if (rssFile) {
    try {
      // GNU time prints KiB; a "Command exited with non-zero status" line may come first.
      maxRssBytes = Number(readFileSync(rssFile, "utf8").trim().split("\n").at(-1)) * 1024;
    } finally {
      rmSync(rssDir!, { recursive: true, force: true });
    }
  }
  return { ms, stdout, stderr, code, maxRssBytes };
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

/** Every verdict printed in this process, so `bun run bench scale` can end with one summary of the targets. */
export const verdicts: { label: string; pass: boolean; detail: string }[] = [];

export function check(label: string, ok: boolean, detail: string): boolean {
  console.log(`${ok ? "PASS" : "MISS"}  ${label}: ${detail}`);
  verdicts.push({ label: label.trim(), pass: ok, detail });
  return ok;
}
