import { buildRecords, trustedSidecarHash } from "./build-records.ts";
import { cutText } from "../shared/json-guard.ts";
import type { LocalInfo } from "../local/local-types.ts";
import type { FileHashes, FoundFile } from "./types.ts";
import { defaultAlgosFor } from "../hash/hash-algos.ts";
import { SCHEMA_VERSION, type Inventory, type InventoryOptions } from "../report/inventory-types.ts";
import type { FileRecord, RecordStatus, SidecarLabel } from "../report/record-types.ts";
import type { CivitaiApi } from "../civitai/api-types.ts";
import type { HashProgress } from "../hash/hasher.ts";
import { collectFiles } from "./collect.ts";
import { lookupFiles, type LookupItem, type LookupProgress, type LookupResult } from "../civitai/lookup.ts";
import { readLocalPass } from "../local/local-reader.ts";
import type { MetaCache } from "../civitai/meta-cache.ts";
import { writeCivitaiInfo, type SidecarWriteResult } from "../local/sidecar-writer.ts";
import { basenamePath, resolvePath } from "../shared/fs-path.ts";
import { DEFAULT_NSFW_LIMIT, nsfwMask, type NsfwLimitName } from "../preview/nsfw.ts";

/** Sidecar descriptions (HTML, up to 10,000 characters) are cut like Civitai's in records. */
export const RECORD_SIDECAR_DESCRIPTION_MAX_CHARS = 2000;

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
  /** Keep the (cut) safetensors `__metadata__` values in `local.header.metadata` (--local-metadata). */
  localMetadata?: boolean;
  /** Do not hash files whose size matches a sidecar's SHA-256 claim; use the claim (--trust-sidecars). */
  trustSidecars?: boolean;
  /** Write `<base>.civitai.info` beside found files (--write-sidecars). */
  writeSidecars?: boolean;
  /** The highest rating a record's `previewImageUrl` may have (--nsfw-level); default pg13. */
  nsfwLimit?: NsfwLimitName;
  /** Files read at once by the local pass; default LOCAL_PASS_CONCURRENCY. */
  localConcurrency?: number;
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
  counters: {
    hashed: number;
    hashCacheHits: number;
    bytesRead: number;
    requests: number;
    metadataCacheHits: number;
    /** Files whose SHA-256 came from a sidecar (--trust-sidecars), not hashed. */
    fromSidecars: number;
    /** Header bytes read by the local pass. */
    localBytesRead: number;
    /** Records identified only by a sidecar (`knownFrom: "sidecar:…"`). */
    knownFromSidecars: number;
  };
  /** One per found file with --write-sidecars. */
  sidecarWrites: SidecarWriteResult[];
}

/** The main job: walk, hash (cached), look up (cached), and build the inventory. No output here. */
export async function runScan(options: ScanOptions): Promise<ScanResult> {
  const now = options.now ?? Date.now;
  const started = now();
  const locals = new Map<string, LocalInfo>();
  const hashSources = new Map<string, SidecarLabel>();
  let localBytesRead = 0;
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
    // The local pass runs between walk and hash so --trust-sidecars can spare files from hashing.
    presetHashes: async (files) => {
      const pass = await readLocalPass(
        files.map((f) => ({ path: f.path, size: f.identity.size })),
        { includeMetadata: options.localMetadata === true, concurrency: options.localConcurrency, signal: options.signal },
      );
      for (const w of pass.warnings) options.onWarning(w);
      localBytesRead = pass.bytesRead;
      const preset = new Map<FoundFile, FileHashes>();
      files.forEach((file, i) => {
        const info = pass.infos[i]!;
        for (const s of info.sidecars ?? []) {
          if (s.description !== null) s.description = cutText(s.description, RECORD_SIDECAR_DESCRIPTION_MAX_CHARS);
        }
        locals.set(file.path, info);
        if (!options.trustSidecars) return;
        const trusted = trustedSidecarHash(info.sidecars, basenamePath(file.path), file.identity.size);
        if (!trusted) return;
        preset.set(file, { sha256: trusted.sha256, autov2: trusted.sha256.slice(0, 10) });
        hashSources.set(file.path, trusted.label);
      });
      return preset;
    },
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
  if (lookup.fallbackFailure) options.onWarning(`fallback host dropped for this run: ${lookup.fallbackFailure}`);
  const requests = (options.api.stats?.requests ?? requestsBefore) - requestsBefore;

  const records = buildRecords({
    hashes: collected.hashes,
    skipped: collected.walk.skipped,
    lookups: lookup.entries,
    locals,
    hashSources,
    now: now(),
    nsfwMask: nsfwMask(options.nsfwLimit ?? DEFAULT_NSFW_LIMIT),
  });
  const sidecarWrites = options.writeSidecars ? await writeSidecars(records, lookup.entries, options.onWarning) : [];
  const byStatus: Record<RecordStatus, number> = { found: 0, gone: 0, not_found: 0, error: 0, skipped: 0 };
  let bytes = 0;
  for (const r of records) {
    byStatus[r.status]++;
    if (r.size !== null) bytes += r.size;
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
    trustSidecars: options.trustSidecars === true,
    localMetadata: options.localMetadata === true,
    nsfwLevel: options.nsfwLimit ?? DEFAULT_NSFW_LIMIT,
  };
  const inventory: Inventory = {
    schemaVersion: SCHEMA_VERSION,
    generatedAt: new Date(now()).toISOString(),
    tool: options.tool,
    roots: options.paths.map((p) => resolvePath(p)),
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
      fromSidecars: collected.stats.filesPreset ?? 0,
      localBytesRead,
      knownFromSidecars: records.filter((r) => r.knownFrom?.startsWith("sidecar:")).length,
    },
    sidecarWrites,
  };
}

/** `.civitai.info` for every found file, from the version Civitai matched (never from a sidecar). */
async function writeSidecars(
  records: readonly FileRecord[],
  lookups: LookupResult["entries"],
  onWarning: (message: string) => void,
): Promise<SidecarWriteResult[]> {
  const results: SidecarWriteResult[] = [];
  for (const record of records) {
    if (record.status !== "found" || !record.civitai || !record.hashes.sha256) continue;
    const entry = lookups.get(record.hashes.sha256);
    const version = entry?.versions.find((v) => v.id === record.civitai!.versionId);
    if (!entry || !version) continue;
    const model = version.modelId !== null ? (entry.models.get(version.modelId) ?? null) : null;
    const result = await writeCivitaiInfo(record.path, version, model);
    if (result.status === "refused" || result.status === "failed") {
      onWarning(`${result.path}: not written: ${result.reason ?? result.status}`);
    }
    results.push(result);
  }
  return results;
}
