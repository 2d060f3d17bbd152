/**
 * What changed between two inventories of the same library (`civitai-meta diff OLD NEW`, and
 * `scan --previous OLD`): pure rules over the few fields of each record that matter here.
 *
 * - moved: the same SHA-256 under a new path (the old path is gone, the new one is new);
 * - changed: the same path with another SHA-256 (the file was replaced or edited);
 * - added / removed: a path on one side only, once moves are paired off;
 * - status changes: the same bytes (same path and SHA-256, or a move) whose status differs; among
 *   them `gone` (it was found, now Civitai no longer serves it) and `found` (it was not found or
 *   gone, now it is found);
 * - updates: a newer version to fetch that the old inventory did not announce for that file.
 * Records without a SHA-256 (skipped, not hashed) are compared by path only.
 */
import { compareByteOrder } from "../scan/path-filter.ts";
import { relativeToRoot } from "../scan/library-index.ts";
import type { FileRecord, RecordStatus } from "./record-types.ts";
import { updateToFetch } from "./updates.ts";

/** The fields of a record a diff reads (kept small: a diff holds both inventories' records). */
export interface DiffRecord {
  path: string;
  sha256: string | null;
  size: number | null;
  status: RecordStatus;
  modelId: number | null;
  modelName: string | null;
  versionId: number | null;
  versionName: string | null;
  /** The newer version to fetch that the record announces (updates.ts), else null. */
  update: { versionId: number; name: string | null } | null;
  /** For another name of a linked file (toDiffRecords): the path of its record. Absent on the record's own path. */
  aliasOf?: string;
}

export interface DiffPair {
  old: DiffRecord;
  new: DiffRecord;
}

export interface InventoryDiff {
  added: DiffRecord[];
  removed: DiffRecord[];
  moved: DiffPair[];
  changed: DiffPair[];
  statusChanged: DiffPair[];
  /** Records (new side) with an update to fetch that the old side did not announce. */
  updates: DiffRecord[];
  unchanged: number;
}

/** The counts of a diff; `scan --previous` writes them as `summary.changes`. */
export interface ChangeSummary {
  previous: { generatedAt: string; files: number };
  added: number;
  removed: number;
  moved: number;
  changed: number;
  statusChanged: number;
  /** Status changes from found to gone or not found (same bytes). */
  gone: number;
  /** Status changes from not found or gone to found. */
  found: number;
  updates: number;
  unchanged: number;
}

/** The kinds `--fail-on` takes for a diff, in the order messages list them. */
export const CHANGE_KINDS = ["added", "removed", "moved", "changed", "gone", "found", "update"] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function id(value: unknown): number | null {
  return typeof value === "number" && Number.isSafeInteger(value) ? value : null;
}

/**
 * A record cut to what a diff compares, once for each of its names: a file with hard or soft links
 * is one record whose other paths are `aliases`, and which name a scan calls the record's path
 * follows byte order. Compared by `path` alone, a link added beside a file looked like the file
 * moved to the link, and one name of two deleted like the other name moved.
 */
export function toDiffRecords(record: FileRecord): DiffRecord[] {
  const first = toDiffRecord(record);
  const aliases = Array.isArray(record.aliases) ? record.aliases : [];
  const others = aliases.filter((p) => typeof p === "string" && p !== first.path);
  return [first, ...others.map((path) => ({ ...first, path, aliasOf: first.path }))];
}

/** A record cut to what a diff compares (its own path only). */
function toDiffRecord(record: FileRecord): DiffRecord {
  const c = record.civitai;
  const sha = str(record.hashes?.sha256);
  return {
    path: record.path,
    sha256: sha === null ? null : sha.toLowerCase(),
    size: typeof record.size === "number" ? record.size : null,
    status: record.status,
    modelId: id(c?.modelId) ?? id(record.sidecar?.modelId),
    modelName: str(c?.modelName) ?? str(record.sidecar?.modelName),
    versionId: id(c?.versionId) ?? id(record.sidecar?.versionId),
    versionName: str(c?.versionName) ?? str(record.sidecar?.versionName),
    update: updateToFetch(record),
  };
}

const byPath = (a: DiffRecord, b: DiffRecord) => compareByteOrder(a.path, b.path);

function isGoneChange(oldStatus: RecordStatus, newStatus: RecordStatus): boolean {
  return oldStatus === "found" && (newStatus === "gone" || newStatus === "not_found");
}

function isFoundChange(oldStatus: RecordStatus, newStatus: RecordStatus): boolean {
  return newStatus === "found" && (oldStatus === "not_found" || oldStatus === "gone");
}

/** Each inventory's roots (`roots` of its head). */
export interface DiffRoots {
  old: readonly string[];
  new: readonly string[];
}

/**
 * What a record is matched by across the two sides: its path, or, when each inventory has one root
 * and the roots differ (the library scanned again at another mount point, drive or CI workspace),
 * its path under its root. Matched by absolute path, every file of a library that moved whole was
 * "moved", and `--fail-on moved` fired on a job that changed nothing. A path outside its root keeps
 * its absolute form, marked so that it never equals a relative one.
 */
function matchKeys(roots: DiffRoots | undefined): { old: (r: DiffRecord) => string; new: (r: DiffRecord) => string } {
  const asIs = (r: DiffRecord) => r.path;
  if (!roots || roots.old.length !== 1 || roots.new.length !== 1 || roots.old[0] === roots.new[0]) return { old: asIs, new: asIs };
  const under = (root: string) => (r: DiffRecord) => relativeToRoot(r.path, root) ?? `\0${r.path}`;
  return { old: under(roots.old[0]!), new: under(roots.new[0]!) };
}

/**
 * The diff of two inventories' records (each side: one entry per path, a record's aliases
 * included, toDiffRecords; the reader refuses an inventory that lists a path twice), matched by
 * path, or by path under the root when the two were scanned from different roots (matchKeys).
 * Deterministic: every list is in path order (moves by their new path), pairs of a move chosen in
 * path order on both sides.
 */
export function diffRecords(oldRecords: readonly DiffRecord[], newRecords: readonly DiffRecord[], roots?: DiffRoots): InventoryDiff {
  const key = matchKeys(roots);
  const oldByPath = new Map(oldRecords.map((r) => [key.old(r), r]));
  const newPaths = new Set(newRecords.map((r) => key.new(r)));
  const out: InventoryDiff = { added: [], removed: [], moved: [], changed: [], statusChanged: [], updates: [], unchanged: 0 };
  const onlyNew: DiffRecord[] = [];
  const samePairs: DiffPair[] = [];
  for (const n of [...newRecords].sort(byPath)) {
    const o = oldByPath.get(key.new(n));
    if (!o) onlyNew.push(n);
    else if (o.sha256 !== null && n.sha256 !== null && o.sha256 !== n.sha256) out.changed.push({ old: o, new: n });
    else samePairs.push({ old: o, new: n });
  }
  // Old paths that vanished, by SHA-256: a new path with the same bytes is the same file moved.
  // Each list is appended to and taken from its front by a cursor: copying it per path, and
  // shift(), made 30,000 copies of one file moved quadratic (6 s).
  const vanished = new Map<string, { list: DiffRecord[]; next: number }>();
  const removedNoHash: DiffRecord[] = [];
  for (const o of [...oldRecords].sort(byPath)) {
    if (newPaths.has(key.old(o))) continue;
    if (o.sha256 === null) removedNoHash.push(o);
    else {
      const same = vanished.get(o.sha256);
      if (same) same.list.push(o);
      else vanished.set(o.sha256, { list: [o], next: 0 });
    }
  }
  for (const n of onlyNew) {
    const same = n.sha256 === null ? undefined : vanished.get(n.sha256);
    const from = same && same.next < same.list.length ? same.list[same.next++] : undefined;
    if (from) {
      out.moved.push({ old: from, new: n });
      samePairs.push({ old: from, new: n });
    } else out.added.push(n);
  }
  // Not push(...list): a list of a million is more arguments than a call takes (RangeError).
  for (const same of vanished.values()) for (let i = same.next; i < same.list.length; i++) out.removed.push(same.list[i]!);
  for (const o of removedNoHash) out.removed.push(o);
  out.removed.sort(byPath);
  samePairs.sort((a, b) => byPath(a.new, b.new));
  // Paths are added, removed or moved name by name; a status, an update or being unchanged is the
  // file's, counted once for all its names (at the first of them still paired, in path order).
  const counted = new Set<string>();
  for (const pair of samePairs) {
    const file = fileOf(pair.new);
    if (counted.has(file)) continue;
    counted.add(file);
    if (pair.old.status !== pair.new.status) out.statusChanged.push(pair);
    else if (key.old(pair.old) === key.new(pair.new)) out.unchanged++;
    const update = pair.new.update;
    if (update && pair.old.update?.versionId !== update.versionId) out.updates.push(pair.new);
  }
  // A file that is new (or replaced) and already has an update to fetch is news too.
  for (const n of [...out.added, ...out.changed.map((p) => p.new)]) {
    const file = fileOf(n);
    if (!n.update || counted.has(file)) continue;
    counted.add(file);
    out.updates.push(n);
  }
  out.updates.sort(byPath);
  return out;
}

/** The file an entry names: its record's path. */
function fileOf(r: DiffRecord): string {
  return r.aliasOf ?? r.path;
}

/** The counts of a diff, as `summary.changes` and the diff's own summary. */
export function changeSummary(diff: InventoryDiff, previous: { generatedAt: string; files: number }): ChangeSummary {
  return {
    previous,
    added: diff.added.length,
    removed: diff.removed.length,
    moved: diff.moved.length,
    changed: diff.changed.length,
    statusChanged: diff.statusChanged.length,
    gone: diff.statusChanged.filter((p) => isGoneChange(p.old.status, p.new.status)).length,
    found: diff.statusChanged.filter((p) => isFoundChange(p.old.status, p.new.status)).length,
    updates: diff.updates.length,
    unchanged: diff.unchanged,
  };
}

/** How many changes of `kind` the summary counts (`update` is the summary's `updates`). */
export function changeCount(summary: Omit<ChangeSummary, "previous">, kind: ChangeKind): number {
  return kind === "update" ? summary.updates : summary[kind];
}
