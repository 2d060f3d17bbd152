/**
 * The binary starts with JavaScriptCore's tier-up thresholds scaled up (scripts/build-binary.ts
 * `JIT_POLICY`): every run first sets up its modules and checks its arguments, code that runs once
 * and that the JIT compiled for nothing (~15 % of the CPU of `--version`, ~7 % of a small scan's).
 * The command's own work gets the normal policy back before it starts (main.ts), and so does each
 * worker, so a long run's hot loops are compiled as early as ever. From source (`bun src/cli.ts`)
 * the policy is already normal and this changes nothing.
 */

/** Gives this thread's engine the normal JIT policy. */
export function normalJit(): void {
  (Bun.unsafe as { setJITPolicy?: (scale: number) => void }).setJITPolicy?.(1);
}
