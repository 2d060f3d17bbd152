/**
 * The compiled binary the end-to-end tests run (run-cli.ts). A child `bun src/cli.ts` spends
 * ~0.25 s of CPU loading and compiling the sources before it does anything; the bytecode binary
 * starts in ~0.03–0.05 s. With ~400 CLI children in the suite that difference is most of `npm test`'s
 * time on two cores, so the suite runs the binary, rebuilt here whenever it is older than what it
 * is built from, and never a stale one (a test of yesterday's code passes for the wrong reason).
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");
export const BINARY = join(ROOT, "dist/civitai-meta");
/** Everything the binary is built from: a change to any of these makes it stale. */
const INPUTS = ["src", "package.json", "package-lock.json", "scripts/build-binary.ts"];
/** Two test workers may find the binary stale at once: one builds, the other waits for it. */
const LOCK = join(ROOT, "dist/.test-build-lock");
const LOCK_WAIT_MS = 180_000;

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path, { recursive: true }) as string[]) {
    newest = Math.max(newest, statSync(join(path, name)).mtimeMs);
  }
  return newest;
}

/** The newest modification time among the binary's inputs. */
export function newestInput(): number {
  return Math.max(...INPUTS.map((p) => newestMtime(join(ROOT, p))));
}

/** Whether dist/civitai-meta exists and is at least as new as everything it is built from. */
function binaryIsFresh(): boolean {
  return existsSync(BINARY) && statSync(BINARY).mtimeMs >= newestInput();
}

function takeLock(): boolean {
  mkdirSync(join(ROOT, "dist"), { recursive: true });
  try {
    mkdirSync(LOCK);
    return true;
  } catch {
    // A lock left by a build that was killed is older than any build takes.
    if (Date.now() - statSync(LOCK).mtimeMs > LOCK_WAIT_MS) {
      rmSync(LOCK, { recursive: true, force: true });
      return takeLock();
    }
    return false;
  }
}

/** Whether another worker holds the lock, building: the binary is written in place, new in mtime before it is whole. */
function buildRunning(): boolean {
  try {
    return Date.now() - statSync(LOCK).mtimeMs <= LOCK_WAIT_MS;
  } catch {
    return false;
  }
}

/**
 * Builds dist/civitai-meta (scripts/build-binary.ts, ~2 s) unless it is fresh; throws if the build
 * fails. A worker that finds another building waits for it to end, and does not take a binary
 * that looks fresh meanwhile (spawning one half-written fails with ETXTBSY).
 */
export function ensureFreshBinary(): void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    if (buildRunning()) {
      if (Date.now() > deadline) throw new Error(`another test worker holds ${LOCK}; remove it if no build is running`);
      Bun.sleepSync(100);
      continue;
    }
    if (binaryIsFresh() && !buildRunning()) return;
    if (!takeLock()) continue;
    try {
      if (binaryIsFresh()) return;
      const build = Bun.spawnSync([process.execPath, join(ROOT, "scripts/build-binary.ts")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      if (build.exitCode !== 0) throw new Error(`scripts/build-binary.ts failed:\n${build.stderr.toString()}${build.stdout.toString()}`);
    } finally {
      rmSync(LOCK, { recursive: true, force: true });
    }
    return;
  }
}
