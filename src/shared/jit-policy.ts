/**
 * The binary starts with JavaScriptCore's tier-up thresholds scaled up (scripts/build-binary.ts
 * `JIT_POLICY`): every run first sets up its modules and checks its arguments, code that runs once
 * and that the JIT compiled for nothing (~15 % of the CPU of `--version`). Most runs of a CLI are
 * short too (a scan of a few files, `report`, `diff`, `cache info`: 20–100 ms), and compiling their
 * code cost ~9 % more of a small scan's CPU than running it unoptimised. So the main thread keeps
 * the scaled policy for its first `NORMAL_JIT_AFTER_MS` and only a run that lasts longer gets the
 * normal one; each worker gets it at its start, since a worker exists only for long work. From
 * source (`bun src/cli.ts`) the policy is already normal and this changes nothing.
 */

/**
 * How long the main thread runs before it gets the normal policy. The warm scan of 100,000 files
 * took the same time restoring at once or after 100 ms (3.77 and 3.75 s, medians of five
 * interleaved runs) and 3.87 s never restoring, so a run that outlasts the delay loses at most
 * that while it waits; with 200 ms its bench stayed at 9.2–9.5× the floor of `find`.
 */
const NORMAL_JIT_AFTER_MS = 200;

/** Scales this thread's JIT tier-up thresholds (1: the normal policy); nothing where Bun lacks it. */
export function scaleJit(scale: number): void {
  (Bun.unsafe as { setJITPolicy?: (scale: number) => void }).setJITPolicy?.(scale);
}

/** Gives this thread's engine the normal JIT policy. */
export function normalJit(): void {
  scaleJit(1);
}

/** Gives the main thread the normal JIT policy once the run has lasted NORMAL_JIT_AFTER_MS (never keeps it alive). */
export function normalJitSoon(): void {
  setTimeout(normalJit, NORMAL_JIT_AFTER_MS).unref();
}
