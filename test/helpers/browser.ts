/**
 * Headless Chromium for the gallery tests: Debian's `chromium-headless-shell` package when installed,
 * else its `chromium` (.ci/run installs both), driven by playwright-core; its own browser downloads do
 * not work here and are never used. Without a Chromium the tests skip visibly, except in CI (CI=true),
 * where they must run.
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";

const BROWSERS = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium"];
/**
 * Chromium's headless shell: the same Blink and V8 without the desktop browser around them (what
 * playwright itself runs for headless tests). On this 2-core machine it opens a page in 60–130 ms
 * where the full browser takes 300–850 ms, and the gallery tests run in about half the time.
 */
const SHELLS = ["/usr/bin/chromium-headless-shell"];

/**
 * The Chromium binary, or null when none is installed: CHROMIUM_PATH, else the headless shell when
 * `shell` (the tests), else the full browser. The benchmark and the example screenshot ask for the
 * full browser, whose paint times users see.
 */
export function findChromium(options: { shell?: boolean } = {}): string | null {
  const candidates = [process.env.CHROMIUM_PATH, ...(options.shell ? SHELLS : []), ...BROWSERS];
  for (const path of candidates) if (path && existsSync(path)) return path;
  return null;
}

/** Flags that keep a test browser quiet: no background traffic of its own, no GPU, no sandbox (root in CI). */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--disable-extensions",
];

/** Launches headless Chromium with a fresh profile (playwright makes a temp --user-data-dir per launch). */
export async function launchChromium(options: { shell?: boolean } = {}): Promise<Browser> {
  const executablePath = findChromium(options);
  if (!executablePath) throw new Error("no Chromium found: apt-get install -y chromium (or set CHROMIUM_PATH)");
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/** Where test runs leave screenshots: $ARTIFACTS_DIR, else <tmp>/civitai-meta-artifacts. */
export function artifactsDir(): string {
  const dir = process.env.ARTIFACTS_DIR || join(tmpdir(), "civitai-meta-artifacts");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** True when browser tests must run (CI), so a missing Chromium fails instead of skipping. */
export const BROWSER_REQUIRED = process.env.CI === "true";
