// Runs before any test file imports src/: isolate the user's dirs and secrets, and fix colours/levels.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const home = mkdtempSync(join(tmpdir(), "civitai-meta-test-home-"));
process.env.NO_COLOR = "1";
process.env.XDG_CACHE_HOME = join(home, "cache");
process.env.XDG_CONFIG_HOME = join(home, "config");
process.env.XDG_DATA_HOME = join(home, "data");
process.env.XDG_STATE_HOME = join(home, "state");
process.env.CONSOLA_LEVEL = "3";
// Bun's transpiler cache lives under XDG_CACHE_HOME, which is a fresh folder per test file here:
// every file's first `bun src/cli.ts` child (and its hash workers) transpiled all of src/ again.
// One cache for every run keeps that to the first; it holds Bun's output only, never ours.
process.env.BUN_RUNTIME_TRANSPILER_CACHE_PATH ??= join(tmpdir(), "civitai-meta-test-bun-transpiler-cache");
for (const key of ["CIVITAI_API_KEY", "CIVITAI_TOKEN", "CIVITAI_API_URL", "CIVITAI_META_CACHE_DIR", "CIVITAI_META_CONFIG"]) {
  delete process.env[key];
}

// bunfig's [test] timeout is not applied by this Bun; set it here so a loaded machine (CI, two
// cores shared with builds) does not fail tests that are merely slow.
import { setDefaultTimeout } from "bun:test";
setDefaultTimeout(30_000);
