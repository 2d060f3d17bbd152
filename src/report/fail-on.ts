import { UsageError } from "../shared/errors.ts";
import { escapeControl, plural } from "../shared/format.ts";
import type { RecordStatus } from "./record-types.ts";

const NAMES: Record<string, RecordStatus> = { "not-found": "not_found", not_found: "not_found", error: "error", skipped: "skipped" };

/** `--fail-on not-found,error,skipped` (any subset, repeatable) → the statuses that make exit 3. */
export function parseFailOn(values: readonly string[]): Set<RecordStatus> {
  const out = new Set<RecordStatus>();
  for (const value of values) {
    for (const part of value.split(",")) {
      const name = part.trim().toLowerCase();
      if (name === "") continue;
      const status = Object.hasOwn(NAMES, name) ? NAMES[name] : undefined;
      if (!status)
        throw new UsageError(`--fail-on takes not-found, error and/or skipped, comma-separated (got "${escapeControl(part.trim())}")`);
      out.add(status);
    }
  }
  return out;
}

/** The statuses among `failOn` that some record has, with counts, for the closing message. */
export function failOnHits(failOn: ReadonlySet<RecordStatus>, byStatus: Readonly<Record<RecordStatus, number>>): string[] {
  return [...failOn]
    .filter((s) => byStatus[s] > 0)
    .map((s) => (s === "error" ? plural(byStatus[s], "error") : `${byStatus[s]} ${s.replace("_", " ")}`));
}
