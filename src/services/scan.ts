import { resolve } from "node:path";
import { buildRecords } from "../core/build-records.ts";
import { defaultAlgosFor } from "../core/hash-algos.ts";
import { SCHEMA_VERSION, type Inventory, type InventoryOptions } from "../core/inventory-types.ts";
import type { RecordStatus } from "../core/record-types.ts";
import type { CivitaiApi } from "../core/api-types.ts";
import type { HashProgress } from "./hasher.ts";
import { collectFiles } from "./collect.ts";
import { lookupFiles, type LookupItem, type LookupProgress, type LookupResult } from "./lookup.ts";
import type { MetaCache } from "./meta-cache.ts";

export interface ScanOptions {
  paths: string[];
  extensions: string[];
  exclude: string[];
  jobs?: number;
  hashCacheDir: string | false;
  api: CivitaiApi & { stats?: { requests: number } };
  metaCache: MetaCache;
  hosts: { primary: string; fallback?: string };
  details: boolean;
  offline: boolean;
  refresh: boolean;
  concurrency: number;
  signal?: AbortSignal;
  tool: { name: string; version: string };
  onWarning: (message: string) => void;
  onHashProgress?: (p: HashProgress) => void;
  onLookupProgress?: (p: LookupProgress) => void;
  now?: () => number;
}

export interface ScanResult {
  inventory: Inventory;
  missing: string[];
  /** Why lookups stopped early (rate limit, Ctrl-C), when they did. */
  stopped?: LookupResult["stopped"];
  counters: { hashed: number; hashCacheHits: number; bytesRead: number; requests: number; metadataCacheHits: number };
}

/** The main job: walk, hash (cached), look up (cached), and build the inventory. No output here. */
export async function runScan(options: ScanOptions): Promise<ScanResult> {
  const now = options.now ?? Date.now;
  const started = now();
  const collected = await collectFiles({
    paths: options.paths,
    extensions: options.extensions,
    exclude: options.exclude,
    algos: (file) => defaultAlgosFor(file.path),
    jobs: options.jobs,
    cacheDir: options.hashCacheDir,
    signal: options.signal,
    onWarning: options.onWarning,
    onHashProgress: options.onHashProgress,
  });
  options.signal?.throwIfAborted();

  const items: LookupItem[] = [];
  for (const h of collected.hashes) {
    if (!h.error && h.hashes.sha256) items.push({ sha256: h.hashes.sha256, ...(h.hashes.autov3 ? { autov3: h.hashes.autov3 } : {}) });
  }
  const requestsBefore = options.api.stats?.requests ?? 0;
  const lookup = await lookupFiles(
    items,
    { api: options.api, cache: options.metaCache, hosts: options.hosts },
    {
      details: options.details,
      offline: options.offline,
      refresh: options.refresh,
      concurrency: options.concurrency,
      signal: options.signal,
      onProgress: options.onLookupProgress,
    },
  );
  if (lookup.stopped?.kind === "aborted") options.signal?.throwIfAborted();
  const requests = (options.api.stats?.requests ?? requestsBefore) - requestsBefore;

  const records = buildRecords({ hashes: collected.hashes, skipped: collected.walk.skipped, lookups: lookup.entries, now: now() });
  const byStatus: Record<RecordStatus, number> = { found: 0, not_found: 0, error: 0, skipped: 0 };
  let bytes = 0;
  for (const r of records) {
    byStatus[r.status]++;
    if (r.status !== "skipped" && r.size !== null) bytes += r.size;
  }
  const inventoryOptions: InventoryOptions = {
    apiUrl: options.offline ? null : options.hosts.primary,
    fallbackUrl: options.offline ? null : (options.hosts.fallback ?? null),
    offline: options.offline,
    details: options.details,
    refresh: options.refresh,
    extensions: options.extensions,
    exclude: options.exclude,
    algos: ["sha256", "autov2", "autov3"],
  };
  const inventory: Inventory = {
    schemaVersion: SCHEMA_VERSION,
    generatedAt: new Date(now()).toISOString(),
    tool: options.tool,
    roots: options.paths.map((p) => resolve(p)),
    options: inventoryOptions,
    summary: {
      files: records.length,
      byStatus,
      bytes,
      durationMs: Math.round(now() - started),
      requests,
      cacheHits: { hashes: collected.stats.filesCached, metadata: lookup.counters.cacheHits },
    },
    records,
  };
  return {
    inventory,
    missing: collected.walk.missing,
    ...(lookup.stopped ? { stopped: lookup.stopped } : {}),
    counters: {
      hashed: collected.stats.filesHashed,
      hashCacheHits: collected.stats.filesCached,
      bytesRead: collected.stats.bytesRead,
      requests,
      metadataCacheHits: lookup.counters.cacheHits,
    },
  };
}
