/**
 * Headless Chromium for the gallery tests: Debian's `chromium` package (installed by .ci/run),
 * driven by playwright-core; its own browser downloads do not work here and are never used.
 * Without a Chromium the tests skip visibly, except in CI (CI=true), where they must run.
 */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium"];

/** The Chromium binary, or null when none is installed. */
export function findChromium(): string | null {
  for (const path of CANDIDATES) if (path && existsSync(path)) return path;
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
export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
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
