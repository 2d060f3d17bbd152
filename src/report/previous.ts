/**
 * `scan --previous OLD.json`: what the inventory from before adds to this one (issue 12, points 3
 * and 5). Pure, over an inventory source read a record at a time.
 * - A file found before whose hash Civitai no longer finds is `gone`, not "never known": it keeps
 *   what was known then (`civitai`), and `gone.lastSeenAt` says when (the old inventory's date, or
 *   the date it already carried if it was gone then too).
 * - The changes since then (diff.ts) go into `summary.changes`.
 */
import type { Inventory } from "./inventory-types.ts";
import type { InventorySource } from "./inventory-read.ts";
import type { FileRecord, RecordStatus } from "./record-types.ts";
import { changeSummary, diffRecords, toDiffRecords, type DiffRecord, type InventoryDiff } from "./diff.ts";
import { RECORD_STATUSES } from "./record-types.ts";
import { factsOf } from "./library-facts.ts";

interface Known {
  record: FileRecord;
  seenAt: string;
}

/** `record` (not found now) as gone, from what the old inventory knew of the same bytes. */
function asGone(record: FileRecord, known: Known): FileRecord {
  const old = known.record;
  const lastSeenAt = old.status === "gone" ? (old.gone?.lastSeenAt ?? null) : known.seenAt;
  const out: FileRecord = {
    ...record,
    status: "gone",
    civitai: old.civitai!,
    knownFrom: "civitai",
    gone: { reason: old.status === "gone" ? (old.gone?.reason ?? "not_found") : "not_found", lastSeenAt },
  };
  if (old.ambiguous) out.ambiguous = old.ambiguous;
  delete out.sidecar;
  return out;
}

export interface WithPrevious {
  inventory: Inventory;
  diff: InventoryDiff;
}

/**
 * `inventory` (just scanned) with what `previous` knew: files gone since, and `summary.changes`.
 * The input is not modified. `previous` is read once, a record at a time.
 */
export function applyPrevious(inventory: Inventory, previous: InventorySource): WithPrevious {
  const notFound = new Set<string>();
  for (const r of inventory.records) if (r.status === "not_found" && r.hashes.sha256) notFound.add(r.hashes.sha256);
  const oldRecords: DiffRecord[] = [];
  const known = new Map<string, Known>();
  const seenAt = previous.head.generatedAt;
  for (const r of previous.records("path")) {
    oldRecords.push(...toDiffRecords(r));
    const sha = r.hashes?.sha256;
    if (sha && notFound.has(sha) && (r.status === "found" || r.status === "gone") && r.civitai && !known.has(sha)) {
      known.set(sha, { record: r, seenAt });
    }
  }
  const records = inventory.records.map((r) => {
    const k = r.status === "not_found" && r.hashes.sha256 ? known.get(r.hashes.sha256) : undefined;
    return k ? asGone(r, k) : r;
  });
  // Compared as written: with this library's facts (an update the library holds is none to fetch).
  const facts = factsOf(records);
  const diff = diffRecords(
    oldRecords,
    records.flatMap((r) => toDiffRecords(facts.decorate(r))),
    { old: previous.head.roots, new: inventory.roots },
  );
  const byStatus = Object.fromEntries(RECORD_STATUSES.map((s) => [s, 0])) as Record<RecordStatus, number>;
  for (const r of records) byStatus[r.status]++;
  const changes = changeSummary(diff, { generatedAt: seenAt, files: previous.count });
  return { inventory: { ...inventory, records, summary: { ...inventory.summary, byStatus, changes } }, diff };
}
