import type { FileRecord, RecordStatus } from "./record-types.ts";
import type { ChangeSummary } from "./diff.ts";

/**
 * Bumped when a field changes meaning or is removed; additions keep the version.
 * 2: the status `gone`, `summary.duplicates` and `summary.changes`, the record fields `duplicate`
 * and `otherVersions` (docs/report-format.md lists them); inventory-read.ts migrates older ones.
 */
export const SCHEMA_VERSION = 2;

/** Copies and several versions of one model, over the whole inventory (library-facts.ts). */
export interface DuplicateSummary {
  /** Groups of two or more files with the same SHA-256. */
  sets: number;
  /** Files in those groups. */
  files: number;
  /** What deleting all but one file of each group would free. */
  reclaimableBytes: number;
  /** Civitai models of which the library holds two or more versions. */
  modelsWithSeveralVersions: number;
}

interface InventorySummary {
  files: number;
  byStatus: Record<RecordStatus, number>;
  /** Total size of every record with a size (paths skipped by the walk, e.g. FIFOs, have none). */
  bytes: number;
  durationMs: number;
  requests: number;
  /** `records`: records given as an earlier run built them (scan/record-cache.ts); absent before it existed. */
  cacheHits: { hashes: number; metadata: number; records?: number };
  /** Always written from version 2 on (recomputed from the records when a report is rendered). */
  duplicates?: DuplicateSummary;
  /** `scan --previous OLD.json`: what changed since that inventory (diff.ts). */
  changes?: ChangeSummary;
}

/** The options that shaped the result; never the API key. */
export interface InventoryOptions {
  apiUrl: string | null;
  fallbackUrl: string | null;
  offline: boolean;
  details: boolean;
  refresh: boolean;
  extensions: string[];
  exclude: string[];
  algos: string[];
  /** Absent in inventories written before these flags existed. */
  trustSidecars?: boolean;
  localMetadata?: boolean;
  /** `--use-index`: hashes were taken from a library index where size and mtime matched (see `hashSource`). */
  useIndex?: boolean;
  /** `--nsfw-level`: the highest rating `previewImageUrl` may have (preview/nsfw.ts names). */
  nsfwLevel?: string;
  /**
   * The shared metadata cache used (issue 14), as shown: scheme, host, port and db, `***@` where
   * its URL had credentials; null when none. Absent in older inventories.
   */
  sharedCache?: string | null;
}

/** What `scan` writes as JSON and `report` reads back. */
export interface Inventory {
  schemaVersion: number;
  generatedAt: string;
  tool: { name: string; version: string };
  roots: string[];
  options: InventoryOptions;
  summary: InventorySummary;
  /** Sorted by path (byte order). */
  records: FileRecord[];
}

/** Everything but the records: what a streamed inventory gives before its first record. */
export type InventoryHead = Omit<Inventory, "records">;
