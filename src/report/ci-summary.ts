/**
 * The short Markdown a CI job shows after `scan` (GITHUB_STEP_SUMMARY): counts, what to act on,
 * changes since the previous inventory, what `--fail-on` matched, and the failing files (the
 * first 50). Small by design (a step summary is read on a run's page), every text escaped. Pure.
 */
import type { InventoryHead } from "./inventory-types.ts";
import type { LibraryFacts } from "./library-facts.ts";
import type { FileRecord } from "./record-types.ts";
import { MD_EMPTY, mdRow, mdTable, mdTableHead, mdText } from "./md-escape.ts";
import { shownPath } from "./md-cells.ts";
import { formatBytes, plural, truncateText } from "../shared/format.ts";
import { diffHeadline } from "./render-diff.ts";
import { dateOnly } from "./access-text.ts";

/** Failing files listed at most; the inventory has them all. */
const MAX_FAILURES = 50;

const WHY: Readonly<Record<string, string>> = { not_found: "not found on Civitai", gone: "gone from Civitai", error: "error" };

/**
 * `failing`: the records that make a CI job look (not found, gone, errors), in path order; the
 * first 50 suffice (the caller need not hold them all), their number is the facts' count.
 */
export function scanStepSummary(
  head: InventoryHead,
  facts: LibraryFacts,
  failing: readonly FileRecord[],
  failOnHits: readonly string[],
): string {
  const s = facts.byStatus;
  const lines = [
    `### civitai-meta scan: ${plural(facts.files, "file")}, ${formatBytes(facts.bytes)}`,
    "",
    mdTable(
      ["Found", "Gone", "Not found", "Errors", "Skipped"],
      [[s.found, s.gone, s.not_found, s.error, s.skipped].map(String)],
      [0, 1, 2, 3, 4],
    ),
    "",
  ];
  if (facts.updates.length > 0)
    lines.push(`- **Updates to fetch:** ${facts.updatesToFetch} (of ${plural(facts.updates.length, "file")} with a newer version)`);
  const d = facts.duplicates;
  if (d.sets > 0)
    lines.push(`- **Copies:** ${plural(d.sets, "set")} of identical files; ${formatBytes(d.reclaimableBytes)} could be freed`);
  const ch = head.summary.changes;
  if (ch) lines.push(`- **Since the inventory of ${mdText(dateOnly(ch.previous.generatedAt))}:** ${diffHeadline(ch)}`);
  if (failOnHits.length > 0) lines.push(`- **--fail-on matched:** ${mdText(failOnHits.join(", "))} (exit 3)`);
  const failingTotal = s.not_found + s.gone + s.error;
  if (failing.length > 0) {
    const roots = head.roots;
    lines.push(
      "",
      "<details>",
      `<summary>${plural(failingTotal, "file")} to look at</summary>`,
      "",
      mdTableHead(["File", "Status", "Why"]),
    );
    for (const r of failing.slice(0, MAX_FAILURES)) {
      const why = r.status === "error" ? (r.error ?? "unknown error") : (WHY[r.status] ?? r.status);
      lines.push(
        mdRow([
          mdText(truncateText(shownPath(r.path, roots), 160)),
          mdText(r.status.replace("_", " ")),
          mdText(truncateText(why, 200)) || MD_EMPTY,
        ]),
      );
    }
    const listed = Math.min(failing.length, MAX_FAILURES);
    if (failingTotal > listed) lines.push("", `…and ${failingTotal - listed} more (see the inventory).`);
    lines.push("", "</details>");
  }
  return `${lines.join("\n")}\n`;
}
