// Runs before any test file imports src/: isolate the user's dirs and secrets, and fix colours/levels.
import { mkdtempSync, readdirSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { scaleJit } from "../src/shared/jit-policy.ts";

/**
 * The suite's temporary files go on a RAM disk when the machine has one with room (Linux's /dev/shm):
 * the tests write thousands of small files, caches that fsync and files of hundreds of MB, and on a
 * shared VM disk the fsyncs and write-back cost a third of the suite's system time. Nothing tested
 * depends on the disk (the read-only and full-disk cases mount their own tmpfs).
 * CIVITAI_META_TEST_TMPDIR=<folder> chooses another place; `=keep` keeps $TMPDIR as it is.
 */
function chooseTmpdir(): void {
  const chosen = process.env.CIVITAI_META_TEST_TMPDIR;
  if (chosen === "keep") return;
  if (chosen) {
    process.env.TMPDIR = chosen;
    return;
  }
  try {
    const fs = statfsSync("/dev/shm");
    if (fs.bavail * fs.bsize >= 4 * 2 ** 30) process.env.TMPDIR = "/dev/shm";
  } catch {
    // No /dev/shm: the usual temporary folder.
  }
}
chooseTmpdir();

/** Each test file's own home, named for this process so that homes left by ended runs can be found. */
const HOME_PREFIX = "civitai-meta-test-home-";
const home = mkdtempSync(join(tmpdir(), `${HOME_PREFIX}${process.pid}-`));
// Homes are not removed at the end of a file (Bun runs no hook of ours then); on a RAM disk they
// would stay until reboot. Each file removes those of test processes that have ended.
for (const name of readdirSync(tmpdir())) {
  const pid = name.startsWith(HOME_PREFIX) ? Number(name.slice(HOME_PREFIX.length).split("-")[0]) : 0;
  if (pid && pid !== process.pid && !alive(pid)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

process.env.NO_COLOR = "1";
process.env.XDG_CACHE_HOME = join(home, "cache");
process.env.XDG_CONFIG_HOME = join(home, "config");
process.env.XDG_DATA_HOME = join(home, "data");
process.env.XDG_STATE_HOME = join(home, "state");
process.env.CONSOLA_LEVEL = "3";
// consola writes plain `[warn]` lines in tests (std-env's isTest) and badges elsewhere off CI. In
// `bun src/cli.ts` children it learns it is a test from NODE_ENV=test, which the bundler inlines as
// "production" in the binary; TEST=1 tells both the same, so the suite sees one format either way.
process.env.TEST = "1";
// Bun's transpiler cache lives under XDG_CACHE_HOME, which is a fresh folder per test file here:
// every file's first `bun src/cli.ts` child (and its hash workers) transpiled all of src/ again.
// One cache for every run keeps that to the first; it holds Bun's output only, never ours.
process.env.BUN_RUNTIME_TRANSPILER_CACHE_PATH ??= join(tmpdir(), "civitai-meta-test-bun-transpiler-cache");
for (const key of ["CIVITAI_API_KEY", "CIVITAI_TOKEN", "CIVITAI_API_URL", "CIVITAI_META_CACHE_DIR", "CIVITAI_META_CONFIG"]) {
  delete process.env[key];
}

// The test processes run most of their code a few times (set-up, assertions, fake servers that
// answer a handful of requests), and JavaScriptCore compiled much of it for nothing: with its tier-up
// thresholds scaled by 10 (as the binary starts, scripts/build-binary.ts) the integration files that
// use the most CPU of their own took ~6 % less. It changes no result, and no CLI child: each child
// starts its own engine. Workers started from a test file keep the normal policy.
scaleJit(10);

// bunfig's [test] timeout is not applied by this Bun; set it here so a loaded machine (CI, two
// cores shared with builds) does not fail tests that are merely slow.
import { setDefaultTimeout } from "bun:test";
setDefaultTimeout(30_000);
