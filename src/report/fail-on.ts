import { UsageError } from "../shared/errors.ts";
import { escapeControl, plural } from "../shared/format.ts";

/**
 * `--fail-on` (exit 3 when something of these kinds is there), for `scan` and `diff`. Names are
 * given comma-separated, the flag repeatable; `not_found` is accepted for `not-found`.
 */

/** What `scan --fail-on` takes: statuses, updates to fetch, and (with --previous) changes. */
export const SCAN_FAIL_ON = ["not-found", "error", "skipped", "gone", "update", "added", "removed", "moved", "changed"] as const;
/** What `diff --fail-on` takes: the changes between two inventories. */
export const DIFF_FAIL_ON = ["added", "removed", "moved", "changed", "gone", "found", "update"] as const;

export type FailOnName = (typeof SCAN_FAIL_ON)[number] | (typeof DIFF_FAIL_ON)[number];

/** The names in `values` (each comma-separated), all among `allowed`; a usage error names the accepted ones. */
export function parseFailOn(values: readonly string[], allowed: readonly FailOnName[]): Set<FailOnName> {
  const out = new Set<FailOnName>();
  for (const value of values) {
    for (const part of value.split(",")) {
      const name = part.trim().toLowerCase().replace("not_found", "not-found");
      if (name === "") continue;
      const known = allowed.find((a) => a === name);
      if (!known) throw new UsageError(`--fail-on takes ${allowed.join(", ")}, comma-separated (got "${escapeControl(part.trim())}")`);
      out.add(known);
    }
  }
  return out;
}

const WORDS: Readonly<Record<FailOnName, (n: number) => string>> = {
  "not-found": (n) => `${n} not found`,
  error: (n) => plural(n, "error"),
  skipped: (n) => `${n} skipped`,
  gone: (n) => `${n} gone from Civitai`,
  update: (n) => plural(n, "update"),
  added: (n) => `${n} added`,
  removed: (n) => `${n} removed`,
  moved: (n) => `${n} moved`,
  changed: (n) => `${n} changed`,
  found: (n) => `${n} found again`,
};

/** The kinds among `failOn` that occurred, with their counts, for the closing message (empty: none). */
export function failOnHits(failOn: ReadonlySet<FailOnName>, counts: Readonly<Partial<Record<FailOnName, number>>>): string[] {
  return [...failOn].filter((name) => (counts[name] ?? 0) > 0).map((name) => WORDS[name](counts[name]!));
}
