import type { FileRecord, RecordStatus } from "./record-types.ts";

/** Bumped when a field changes meaning or is removed; additions keep the version. */
export const SCHEMA_VERSION = 1;

interface InventorySummary {
  files: number;
  byStatus: Record<RecordStatus, number>;
  /** Total size of every record with a size (paths skipped by the walk, e.g. FIFOs, have none). */
  bytes: number;
  durationMs: number;
  requests: number;
  cacheHits: { hashes: number; metadata: number };
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
  /** `--nsfw-level`: the highest rating `previewImageUrl` may have (preview/nsfw.ts names). */
  nsfwLevel?: string;
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
