/** import.meta.url inside `bun build --compile` output: every bundled module gets the entry's. */
const STANDALONE_URL_RE = /\$bunfs|~BUN/;

/**
 * Where a worker entry in src/hash/ is. From source it sits beside this file. In a compiled
 * binary the module URL is the entry's (src/cli.ts, at the bundle root), and each worker, given to
 * the build as an extra entrypoint, keeps its path relative to src/.
 */
export function serviceWorkerUrl(file: string, moduleUrl: string = import.meta.url): string {
  return new URL(STANDALONE_URL_RE.test(moduleUrl) ? `./hash/${file}` : `./${file}`, moduleUrl).href;
}
