import { redact } from "../shared/redact.ts";
import { buildRecords, trustedSidecarHash } from "./build-records.ts";
import { cutText } from "../shared/json-guard.ts";
import type { LocalInfo } from "../local/local-types.ts";
import type { FileHashes, FoundFile, HashAlgo, HashResult } from "./types.ts";
import { isSafetensorsPath } from "../hash/hash-algos.ts";
import { isRacy, isRacyState } from "../hash/hash-entry.ts";
import { hashFiles } from "../hash/hasher.ts";
import type { HashCache } from "../hash/hash-cache.ts";
import { factsVersion } from "../local/local-cache.ts";
import { SCHEMA_VERSION, type Inventory, type InventoryHead, type InventoryOptions } from "../report/inventory-types.ts";
import type { InventorySource } from "../report/inventory-read.ts";
import { RecordSpill } from "../report/record-spill.ts";
import type { FileRecord, HashSource, RecordStatus } from "../report/record-types.ts";
import type { CivitaiApi } from "../civitai/api-types.ts";
import type { HashProgress } from "../hash/hasher.ts";
import { collectFiles, type CollectResult } from "./collect.ts";
import { LocalSections } from "./local-sections.ts";
import { RecordCache } from "./record-cache.ts";
import { packsRoot, RecordPacks } from "./record-packs.ts";
import { recordFingerprint } from "./record-cache-rules.ts";
import {
  LOOKUP_PART_SIZE,
  lookupFiles,
  type LookupItem,
  type LookupOptions,
  type LookupProgress,
  type LookupResult,
} from "../civitai/lookup.ts";
import { pathRanks } from "./path-ranks.ts";
import { collectWhenGrown } from "../shared/memory-pressure.ts";
import { readLocalFacts } from "../local/local-reader.ts";
import type { MetaCache } from "../civitai/meta-cache.ts";
import { civitaiInfoPath, writeCivitaiInfo, type SidecarWriteResult } from "../local/sidecar-writer.ts";
import { basenamePath, resolvePath } from "../shared/fs-path.ts";
import { plural } from "../shared/format.ts";
import { indexedHashes, relativeToRoot, type IndexEntry } from "./library-index.ts";
import { DEFAULT_NSFW_LIMIT, nsfwMask, type NsfwLimitName } from "../preview/nsfw.ts";

/**
 * Garbage the lookup parts may leave before a full collection. Measured on a warm 100,000-file
 * scan (bench/scale-breakdown.ts, two interleaved pairs on a quiet machine): a full collection
 * after every part took 24.9–25.5 s (23 s of CPU) and peaked at 439–466 MiB; after each 128 MiB of
 * growth 20.7–24.2 s (17.5–20.8 s of CPU) and 598–628 MiB; none at all 18.4 s and 851 MiB. The
 * middle way: no slower than holding everything was (21.8 s, 1,107 MiB), with half its memory.
 */
const PART_GARBAGE_BYTES = 128 * 1024 * 1024;

/** From this many files a scan collects its garbage once after the walk (lookUpAndBuild). */
const LARGE_SCAN_FILES = 10_000;

/** Sidecar descriptions (HTML, up to 10,000 characters) are cut like Civitai's in records. */
const RECORD_SIDECAR_DESCRIPTION_MAX_CHARS = 2000;

export interface ScanOptions {
  paths: string[];
  extensions: string[];
  exclude: string[];
  jobs?: number;
  hashCacheDir: string | false;
  api: CivitaiApi & { stats?: { requests: number } };
  metaCache: MetaCache;
  /** The shared metadata cache as shown (no password), recorded in the inventory's options. */
  sharedCache?: string | null;
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
  /**
   * A library index read for this scan's one root (--use-index): a file whose relative path, size and
   * mtime match an entry is not hashed; its record says `hashSource: "index"`.
   */
  libraryIndex?: ReadonlyMap<string, IndexEntry>;
  /** Collect the entries of a library index for this scan's one root (--index): `ScanResult.indexEntries`. */
  buildIndex?: boolean;
  /** The highest rating a record's `previewImageUrl` may have (--nsfw-level); default pg13. */
  nsfwLimit?: NsfwLimitName;
  /** Distinct SHA-256s looked up at a time (lookUpAndBuild); default LOOKUP_PART_SIZE. Tests use a few. */
  lookupPartSize?: number;
  /** Files read at once by the local pass; default LOCAL_PASS_CONCURRENCY. */
  localConcurrency?: number;
  signal?: AbortSignal;
  tool: { name: string; version: string };
  onWarning: (message: string) => void;
  onHashProgress?: (p: HashProgress) => void;
  onLookupProgress?: (p: LookupProgress) => void;
  /** Each phase as it ends, with its wall time (for --verbose and the scale benchmark). */
  onPhase?: (phase: ScanPhase, ms: number) => void;
  now?: () => number;
}

interface DetailsFailure {
  files: number;
  message: string;
}

export interface ScanResult {
  /**
   * The inventory, its records read back one at a time from a temporary file (record-spill.ts):
   * what the reports render. Valid until `close()`.
   */
  source: InventorySource;
  /** The whole inventory in memory (tests, --previous, the gallery): every record read back once, on first use. */
  readonly inventory: Inventory;
  /** Removes the records' temporary file. */
  close(): void;
  missing: string[];
  /** Why lookups stopped early (rate limit, Ctrl-C), when they did. */
  stopped?: LookupResult["stopped"];
  /** Found files whose model details (updates, licence, tags, creator) could not be fetched, and the first reason. */
  detailsFailure?: DetailsFailure;
  counters: {
    hashed: number;
    hashCacheHits: number;
    bytesRead: number;
    requests: number;
    metadataCacheHits: number;
    /** Of those, answers from the shared cache (issue 14). */
    sharedCacheHits: number;
    /** Files whose SHA-256 came from a sidecar (--trust-sidecars), not hashed. */
    fromSidecars: number;
    /** Files whose hashes came from the library index (--use-index), not hashed. */
    fromIndex: number;
    /** Header bytes read by the local pass. */
    localBytesRead: number;
    /** Records identified only by a sidecar (`knownFrom: "sidecar:…"`). */
    knownFromSidecars: number;
  };
  /** One per found file with --write-sidecars. */
  sidecarWrites: SidecarWriteResult[];
  /** With `buildIndex`: every file under the root with hashes we computed (now or for the index read). */
  indexEntries?: IndexEntry[];
}

/**
 * What `scan` hashes every file with. AutoV3 (a second SHA-256 over nearly the whole file) is left
 * out: it is computed for the files Civitai does not know by SHA-256 (`autov3`), then cached.
 * Measured on a 2 GiB safetensors: 1.87x `openssl dgst -sha256` with it, ~1.0x without.
 */
const SCAN_ALGOS: readonly HashAlgo[] = ["sha256", "autov2"];

/**
 * The main job: walk, hash (cached), look up (cached), and build the inventory. No output here.
 * Long because the local pass is a closure inside the collect call because it needs the walk's listings and
 * the open cache, and hands the preset hashes back; lookUpAndBuild does the rest.
 */
export async function runScan(options: ScanOptions): Promise<ScanResult> {
  const now = options.now ?? Date.now;
  const started = now();
  let phaseStart = performance.now();
  const phase = (name: ScanPhase) => {
    const at = performance.now();
    options.onPhase?.(name, at - phaseStart);
    phaseStart = at;
  };
  let locals = new LocalSections(null);
  const hashSources = new Map<string, HashSource>();
  // An index describes one root: the scan has exactly one when it reads or writes one (the command checks).
  const indexRoot = options.libraryIndex || options.buildIndex ? resolvePath(options.paths[0]!) : null;
  // Per file whose header facts the cache holds for its state: their version and whether sidecars
  // were recorded. The text stays in the cache until a record needs it (LocalSections).
  const cachedLocal = new Map<FoundFile, { version: number; sidecars: boolean }>();
  let localBytesRead = 0;
  const records = openRecordCache(options, { now, started, hashSources });
  // Records are claimed before the hash cache is read (record-cache.ts claimAll), except for
  // --index, whose entries want every hash the cache holds.
  const claims =
    records && !options.buildIndex
      ? {
          prepareClaims: async (walk: { names?: ReadonlyMap<string, readonly string[]>; files: readonly FoundFile[] }) => {
            records.cache.useListing(walk.names);
            await records.cache.claimAll(walk.files);
          },
          // Its SHA-256 alone: nothing else is read of a claimed file's hashes (its record has them all).
          claim: (file: FoundFile) => {
            const sha = records.cache.claimedSha(file);
            return sha === undefined ? null : { sha256: sha };
          },
        }
      : undefined;
  let collected: CollectResult;
  try {
    collected = await collectFiles({
      paths: distinctRoots(options.paths),
      extensions: options.extensions,
      exclude: options.exclude,
      algos: () => SCAN_ALGOS,
      jobs: options.jobs,
      cacheDir: options.hashCacheDir,
      withLocal: true,
      keepCacheOpen: true,
      keepName: isSidecarName,
      signal: options.signal,
      onWarning: options.onWarning,
      onHashProgress: options.onHashProgress,
      onCacheEntry: (file, entry) => {
        if (entry?.local) cachedLocal.set(file, { version: entry.local.version, sidecars: entry.local.sidecars !== null });
      },
      ...claims,
      // The local pass runs between walk and hash so --trust-sidecars can spare files from hashing.
      presetHashes: async (found, { cache, walk }) => {
        phase("walk");
        // A claimed file's record is given whole: its header and sidecars are not looked at.
        const files = claims ? found.filter((f) => records!.cache.claimedSha(f) === undefined) : found;
        locals = new LocalSections(cache);
        const pass = await readLocalFacts(
          files.map((f) => ({ path: f.path, size: f.identity.size, cached: cachedLocal.get(f) ?? null })),
          {
            includeMetadata: options.localMetadata === true,
            ...(walk.names ? { names: walk.names } : {}),
            prepareSidecar: (s) =>
              s.description === null ? s : { ...s, description: cutText(s.description, RECORD_SIDECAR_DESCRIPTION_MAX_CHARS) },
            loadCached: (i) => cache?.peekLocal(files[i]!.realPath, files[i]!.identity) ?? null,
            concurrency: options.localConcurrency,
            signal: options.signal,
          },
        );
        cachedLocal.clear();
        for (const w of pass.warnings) options.onWarning(w);
        localBytesRead = pass.bytesRead;
        const preset = new Map<FoundFile, FileHashes>();
        files.forEach((file, i) => {
          const sidecars = pass.sidecars[i];
          const store = pass.store[i];
          if (store) cache?.setLocal(file.realPath, file.identity, store);
          locals.set(file, pass.facts[i] ?? null, sidecars, store !== null && cache?.writable === true);
          // Header facts and sidecars as the hash cache holds them: a stored record may stand (record-cache.ts).
          if (store === null && cache) locals.unchanged.add(file);
          const fromIndex = options.libraryIndex && indexRoot !== null ? indexHit(options.libraryIndex, indexRoot, file) : null;
          if (fromIndex) {
            preset.set(file, fromIndex);
            hashSources.set(file.path, "index");
            return;
          }
          if (!options.trustSidecars) return;
          const trusted = trustedSidecarHash(sidecars, basenamePath(file.path), file.identity.size);
          if (!trusted) return;
          preset.set(file, { sha256: trusted.sha256, autov2: trusted.sha256.slice(0, 10) });
          hashSources.set(file.path, trusted.label);
        });
        if (options.libraryIndex && indexRoot !== null) {
          const foreign = foreignIndexWarning(options.libraryIndex, indexRoot, files);
          if (foreign) options.onWarning(foreign);
        }
        phase("header pass");
        return preset;
      },
    });
  } catch (error) {
    records?.cache.close();
    throw error;
  }
  const cache = collected.cache;
  try {
    phase("hashing");
    options.signal?.throwIfAborted();
    const extraReads = { files: 0, bytes: 0 };
    const result = await lookUpAndBuild(options, collected, {
      cache,
      // Without the hash cache nothing was claimed, and no record is given or kept.
      records: cache ? records : null,
      extraReads,
      locals,
      hashSources,
      indexRoot,
      localBytesRead,
      started,
      now,
      phase,
    });
    if (locals.lost > 0) {
      options.onWarning(
        `${plural(locals.lost, "file")}: header facts lost with the damaged hash cache; their records have no local section (run scan again)`,
      );
    }
    return result;
  } finally {
    records?.cache.close();
    cache?.close();
  }
}

type ScanPhase = "walk" | "header pass" | "hashing" | "lookup" | "records";

interface BuildContext {
  cache: HashCache | null;
  /** The record cache (openRecordCache), with the records claimed during the collect. */
  records: OpenRecordCache | null;
  /** Files read for their AutoV3 only (their SHA-256 came from the cache), and the bytes of every AutoV3 read. */
  extraReads: { files: number; bytes: number };
  locals: LocalSections;
  hashSources: Map<string, HashSource>;
  /** The one root scanned, when an index is read or written (relative paths are to it). */
  indexRoot: string | null;
  localBytesRead: number;
  started: number;
  now: () => number;
  phase: (name: ScanPhase) => void;
}

/**
 * Lookups (with AutoV3 on demand), then the records and the inventory. Distinct SHA-256s are looked
 * up LOOKUP_PART_SIZE at a time, and each part's records are built and handed to the spill
 * (report/record-spill.ts) before the next part: only one part's Civitai answers and no records
 * are held, so memory does not grow with the library (issue 11, target 2). What parts cost in
 * requests and CPU: see LOOKUP_PART_SIZE.
 */
async function lookUpAndBuild(options: ScanOptions, collected: CollectResult, ctx: BuildContext): Promise<ScanResult> {
  const { hashSources, indexRoot, localBytesRead, started, now, phase } = ctx;
  const ranks = pathRanks(
    collected.hashes.map((h) => h.file.path),
    collected.walk.skipped.map((x) => x.path),
  );
  const spill = new RecordSpill(ranks.paths.length, (rank) => ranks.paths[rank]!);
  // A path listed twice (the walker lists each once) would get the next rank, not fail the scan.
  const free = (rank: number) => {
    while (spill.taken(rank)) rank++;
    return rank;
  };
  try {
    const records = ctx.records;
    // The walk and the header pass leave ~100 MB of garbage the engine has not collected yet: one
    // full collection here, before records pile more on, took a warm 100,000-file scan's peak from
    // 455 to 414–425 MiB (bench/scale-breakdown.ts, two runs each) for ~0.1 s. Not worth it for a
    // small library (a few ms of every run).
    if (collected.hashes.length >= LARGE_SCAN_FILES) Bun.gc(true);
    const hashes = records ? giveKeptRecords(records.cache, collected, ctx, spill, (i) => free(ranks.hashRank[i]!)) : collected.hashes;
    // The kept records' facts and the packs' indexes are garbage now, old enough that only a full
    // collection frees them: one more here took a warm 100,000-file scan's peak from 299–302 to
    // 278–280 MiB (bench/scale-breakdown.ts and a phase-by-phase RSS probe, two runs each).
    if (collected.hashes.length - hashes.length >= LARGE_SCAN_FILES) Bun.gc(true);
    const built = await lookUpInParts(options, { hashes, skipped: collected.walk.skipped }, ctx, records, (record) =>
      spill.add(record, free(ranks.rankOf(record.path))),
    );
    phase("lookup");
    const inventoryOptions = inventoryOptionsOf(options);
    const byStatus: Record<RecordStatus, number> = { found: 0, gone: 0, not_found: 0, error: 0, skipped: 0 };
    const head: InventoryHead = {
      schemaVersion: SCHEMA_VERSION,
      generatedAt: new Date(now()).toISOString(),
      tool: options.tool,
      roots: distinctRoots(options.paths).map((p) => resolvePath(p)),
      options: inventoryOptions,
      // Counts (files, byStatus, bytes, duplicates) are the spill's, from the records themselves.
      summary: {
        files: 0,
        byStatus,
        bytes: 0,
        durationMs: Math.round(now() - started),
        requests: built.requests,
        cacheHits: { hashes: collected.stats.filesCached, metadata: built.cacheHits, records: built.recordsServed },
      },
    };
    const source = spill.source(head);
    phase("records");
    let inventory: Inventory | undefined;
    return {
      source,
      get inventory() {
        return (inventory ??= { ...source.head, records: [...source.records("path")] });
      },
      close: () => spill.close(),
      missing: collected.walk.missing,
      ...(built.stopped ? { stopped: built.stopped } : {}),
      ...(built.detailsFailure ? { detailsFailure: built.detailsFailure } : {}),
      counters: {
        hashed: collected.stats.filesHashed + ctx.extraReads.files,
        hashCacheHits: collected.stats.filesCached,
        bytesRead: collected.stats.bytesRead + ctx.extraReads.bytes,
        requests: built.requests,
        metadataCacheHits: built.cacheHits,
        sharedCacheHits: options.metaCache.stats.sharedHits,
        fromSidecars: [...hashSources.values()].filter((from) => from !== "index").length,
        fromIndex: [...hashSources.values()].filter((from) => from === "index").length,
        localBytesRead,
        knownFromSidecars: built.knownFromSidecars,
      },
      sidecarWrites: built.sidecarWrites,
      ...(options.buildIndex && indexRoot !== null
        ? { indexEntries: indexEntries(collected.hashes, hashSources, indexRoot, started) }
        : {}),
    };
  } catch (error) {
    spill.close();
    throw error;
  }
}

/** What the inventory says the scan was run with. */
function inventoryOptionsOf(options: ScanOptions): InventoryOptions {
  return {
    // A host URL may carry a proxy's user and password: the report shows it as messages do.
    apiUrl: options.offline ? null : redact(options.hosts.primary),
    fallbackUrl: options.offline || !options.hosts.fallback ? null : redact(options.hosts.fallback),
    offline: options.offline,
    details: options.details,
    refresh: options.refresh,
    extensions: options.extensions,
    exclude: options.exclude,
    algos: [...SCAN_ALGOS],
    trustSidecars: options.trustSidecars === true,
    useIndex: options.libraryIndex !== undefined,
    localMetadata: options.localMetadata === true,
    nsfwLevel: options.nsfwLimit ?? DEFAULT_NSFW_LIMIT,
    sharedCache: options.offline ? null : (options.sharedCache ?? null),
  };
}

/** The paths given, each folder once (`scan m ./m/` walked and listed `m` twice), in the order given. */
function distinctRoots(paths: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const p of paths) if (!seen.has(resolvePath(p))) seen.set(resolvePath(p), p);
  return [...seen.values()];
}

interface PartsResult {
  requests: number;
  cacheHits: number;
  /** Records given from the record cache, not built (record-cache.ts). */
  recordsServed: number;
  stopped?: LookupResult["stopped"];
  detailsFailure?: DetailsFailure;
  sidecarWrites: SidecarWriteResult[];
  knownFromSidecars: number;
}

/**
 * The lookups, part by part (lookUpAndBuild), each part's records given to `emit` as soon as they
 * are built; then the records of files without a SHA-256 (unreadable) and of skipped paths. A stop
 * (rate limit) in one part carries over: later parts ask nothing, only the cache answers.
 */
async function lookUpInParts(
  options: ScanOptions,
  collected: { hashes: readonly HashResult[]; skipped: CollectResult["walk"]["skipped"] },
  ctx: BuildContext,
  records: OpenRecordCache | null,
  emit: (record: FileRecord) => string,
): Promise<PartsResult> {
  const bySha = new Map<string, HashResult[]>();
  const without: HashResult[] = [];
  for (const h of collected.hashes) {
    const sha = !h.error ? h.hashes.sha256 : undefined;
    if (sha === undefined) {
      without.push(h);
      continue;
    }
    const group = bySha.get(sha);
    if (group) group.push(h);
    else bySha.set(sha, [h]);
  }
  const shas = [...bySha.keys()];
  const requestsBefore = options.api.stats?.requests ?? 0;
  const out: PartsResult = {
    requests: 0,
    cacheHits: 0,
    sidecarWrites: [],
    knownFromSidecars: records?.cache.knownFromSidecars ?? 0,
    recordsServed: records?.cache.served ?? 0,
  };
  // One reference time for every record (early access "still running" is judged against it).
  const inputs = recordInputs(ctx, options);
  let carry: LookupOptions["carry"] = {};
  const take = (built: readonly FileRecord[]) => {
    const texts: string[] = [];
    for (const r of built) {
      if (r.knownFrom?.startsWith("sidecar:")) out.knownFromSidecars++;
      texts.push(emit(r));
    }
    return texts;
  };
  const partSize = Math.max(1, options.lookupPartSize ?? LOOKUP_PART_SIZE);
  const collect = collectWhenGrown(PART_GARBAGE_BYTES);
  for (let at = 0; at < shas.length; at += partSize) {
    const part = shas.slice(at, at + partSize).flatMap((sha) => bySha.get(sha)!);
    const lookup = await lookUpPart(part, options, ctx, carry, { done: at, total: shas.length });
    out.cacheHits += lookup.counters.cacheHits;
    if (lookup.fallbackFailure && !carry.fallbackFailure)
      options.onWarning(`fallback host dropped for this run: ${lookup.fallbackFailure}`);
    carry = {
      ...(lookup.stopped ? { stopped: lookup.stopped } : {}),
      ...(lookup.fallbackFailure ? { fallbackFailure: lookup.fallbackFailure } : {}),
    };
    if (lookup.stopped) out.stopped = lookup.stopped;
    // Found files whose model details could not be fetched lack their update, licence, tags and
    // creator: the caller must say so, or `--fail-on update` passes on an outage (docs/cases.md B12).
    for (const [sha, entry] of lookup.entries) {
      if (entry.status !== "found" || entry.detailsError === undefined) continue;
      out.detailsFailure ??= { files: 0, message: entry.detailsError };
      out.detailsFailure.files += bySha.get(sha)?.length ?? 0;
    }
    const built = buildRecords({ ...inputs, hashes: part, skipped: [], lookups: lookup.entries });
    if (options.writeSidecars) out.sidecarWrites.push(...(await writeSidecars(built, lookup.entries, options.onWarning)));
    const texts = take(built);
    if (records) {
      const byPath = new Map(part.map((h) => [h.file.path, h]));
      records.cache.store(
        built.map((record, i) => ({ record, text: texts[i]!, h: byPath.get(record.path)! })),
        lookup.entries,
        records.storable,
      );
    }
    // The part's answers and records are garbage now. They lived through the whole part, so the
    // engine holds them as old objects, which only a full collection frees (collectWhenGrown).
    collect();
  }
  records?.cache.finish();
  take(buildRecords({ ...inputs, hashes: without, skipped: collected.skipped, lookups: null }));
  out.requests = (options.api.stats?.requests ?? requestsBefore) - requestsBefore;
  return out;
}

/**
 * The records kept from an earlier run that still hold, into the spill (record-cache.ts); returns
 * the files left to look up. Only files whose hashes and header facts came unchanged from the hash
 * cache, hashed by us (not from a sidecar or an index), can have one.
 */
function giveKeptRecords(
  cache: RecordCache,
  collected: CollectResult,
  ctx: BuildContext,
  spill: RecordSpill,
  /** The rank of `collected.hashes[i]`'s record. */
  rankAt: (i: number) => number,
): readonly HashResult[] {
  const hashes = collected.hashes;
  cache.useListing(collected.walk.names);
  const eligible = (h: HashResult) => h.cached && !h.error && ctx.locals.unchanged.has(h.file) && !ctx.hashSources.has(h.file.path);
  const rest = cache.serve(hashes, eligible, {
    adopt: (fd) => spill.adopt(fd),
    at: (facts, source, offset, length, i) => spill.addAt(facts, source, offset, length, rankAt(i)),
    bytes: (facts, body, i) => spill.addText(facts, body, rankAt(i)),
  });
  // From here the lookups read the metadata cache: what `store` judges the folders by.
  cache.begin(rest);
  return rest;
}

interface OpenRecordCache {
  cache: RecordCache;
  /** Whether a record built now for this file may be stored. */
  storable: (h: HashResult) => boolean;
}

/**
 * The record cache of this scan (record-cache.ts), or null when records are neither given nor kept:
 * no hash cache or no fs metadata cache, and under options whose records depend on more than the
 * file, the options and the cache (--refresh, --offline, --trust-sidecars, --use-index, --write-sidecars).
 */
function openRecordCache(
  options: ScanOptions,
  ctx: { now: () => number; started: number; hashSources: ReadonlyMap<string, HashSource> },
): OpenRecordCache | null {
  if (
    options.hashCacheDir === false ||
    options.refresh ||
    options.offline ||
    options.trustSidecars ||
    options.libraryIndex ||
    options.writeSidecars
  )
    return null;
  if (options.metaCache.folderStamps([]) === null) return null;
  const fp = recordFingerprint({
    tool: `${options.tool.name}@${options.tool.version}`,
    schemaVersion: SCHEMA_VERSION,
    primary: options.hosts.primary,
    fallback: options.hosts.fallback ?? null,
    details: options.details,
    nsfwLevel: options.nsfwLimit ?? DEFAULT_NSFW_LIMIT,
    localMetadata: options.localMetadata === true,
    factsVersion: factsVersion(options.localMetadata === true),
  });
  const cache = new RecordCache(
    new RecordPacks(packsRoot(options.hashCacheDir)),
    options.metaCache,
    fp,
    ctx.now,
    options.details,
    ctx.started,
  );
  // The hash cache's racy rule: a file changed within 2 s of this run's start may change again unseen.
  const storable = (h: HashResult) => !h.error && !ctx.hashSources.has(h.file.path) && !isRacyState(h.file.identity, ctx.started);
  return { cache, storable };
}

/** What buildRecords needs besides the hashes and lookups of a part. */
function recordInputs(ctx: BuildContext, options: ScanOptions) {
  return { locals: ctx.locals, hashSources: ctx.hashSources, now: ctx.now(), nsfwMask: nsfwMask(options.nsfwLimit ?? DEFAULT_NSFW_LIMIT) };
}

/** One part's lookups (lookupFiles), then the AutoV3 its records show (see below). */
async function lookUpPart(
  part: readonly HashResult[],
  options: ScanOptions,
  ctx: BuildContext,
  carry: LookupOptions["carry"],
  progress: { done: number; total: number },
): Promise<LookupResult> {
  const items: LookupItem[] = part.map((h) => ({ sha256: h.hashes.sha256!, ...(h.hashes.autov3 ? { autov3: h.hashes.autov3 } : {}) }));
  const onProgress = options.onLookupProgress;
  const lookup = await lookupFiles(
    items,
    {
      api: options.api,
      cache: options.metaCache,
      hosts: options.hosts,
      autov3: (sha256s) => autov3Of(sha256s, part, ctx, options),
    },
    {
      details: options.details,
      offline: options.offline,
      refresh: options.refresh,
      concurrency: options.concurrency,
      signal: options.signal,
      carry,
      ...(onProgress ? { onProgress: (p) => onProgress({ ...p, done: progress.done + p.done, total: progress.total }) } : {}),
    },
  );
  if (lookup.stopped?.kind === "aborted") options.signal?.throwIfAborted();
  // A file found by its AutoV3 on an earlier run is found by its SHA-256 from the cache now, and the
  // lookup asks no AutoV3: its record needs it still (to name the matched file), from the hash cache.
  // So does a file not found by either (the cache kept its AutoV3 with the miss): its record shows
  // the AutoV3 that was asked, as on the first run.
  const autov3Asked = [...lookup.entries]
    .filter(([, e]) => (e.status === "found" && e.matchedBy === "autov3") || e.status === "not_found")
    .map(([sha]) => sha);
  const lacking = new Set(part.filter((h) => h.hashes.autov3 === undefined).map((h) => h.hashes.sha256));
  const wanted = autov3Asked.filter((sha) => lacking.has(sha));
  if (wanted.length > 0) await autov3Of(wanted, part, ctx, options);
  return lookup;
}

/** The index's hashes for `file` when its entry matches (relative path, size, mtime, every hash needed). */
function indexHit(index: ReadonlyMap<string, IndexEntry>, root: string, file: FoundFile): FileHashes | null {
  const rel = relativeToRoot(file.path, root);
  if (rel === null) return null;
  const entry = index.get(rel);
  // What the scan hashes every file with; AutoV3 is read only for files Civitai does not know by
  // SHA-256 (autov3Of), so it is taken from the entry too when it has one.
  const algos: HashAlgo[] = entry?.hashes.autov3 !== undefined ? [...SCAN_ALGOS, "autov3"] : [...SCAN_ALGOS];
  return indexedHashes(entry, file.identity.size, file.identity.mtimeNs, algos);
}

/** One warning when an index shares no path with the files found: it was written for another folder. */
function foreignIndexWarning(index: ReadonlyMap<string, IndexEntry>, root: string, files: readonly FoundFile[]): string | null {
  if (index.size === 0 || files.length === 0) return null;
  if (files.some((f) => index.has(relativeToRoot(f.path, root) ?? ""))) return null;
  return `the library index names none of the ${files.length} files under ${root} (written for another folder?); every file is hashed`;
}

/**
 * The index entries of this scan: hashes we computed, now or on the machine that wrote the index
 * read (never a sidecar's). Never one of a file whose mtime is not clearly older than the scan
 * (`started`, before any hashing): the racy rule of the hash cache (docs/reliability.md §3.4). A
 * write in the same tick of a coarse clock keeps size and mtime, and the index would then give
 * every other machine the old bytes' hashes; such a file is hashed by the next index writer.
 */
function indexEntries(
  hashes: readonly HashResult[],
  sources: ReadonlyMap<string, HashSource>,
  root: string,
  started: number,
): IndexEntry[] {
  const out: IndexEntry[] = [];
  for (const h of hashes) {
    const source = sources.get(h.file.path);
    if (h.error || !h.hashes.sha256 || (source !== undefined && source !== "index")) continue;
    if (isRacy(h.file.identity.mtimeNs, started)) continue;
    const path = relativeToRoot(h.file.path, root);
    if (path === null) continue;
    out.push({ path, size: h.file.identity.size, mtimeNs: h.file.identity.mtimeNs, hashes: { ...h.hashes } });
  }
  return out;
}

/** `.civitai.info` for every found file, from the version Civitai matched (never from a sidecar). */
async function writeSidecars(
  records: readonly FileRecord[],
  lookups: LookupResult["entries"],
  onWarning: (message: string) => void,
): Promise<SidecarWriteResult[]> {
  const results: SidecarWriteResult[] = [];
  let unread = 0;
  for (const record of records) {
    if (record.status !== "found" || !record.civitai || !record.hashes.sha256) continue;
    // Other tools take a .civitai.info as fact: one is written only for a file whose SHA-256 we
    // read from it, never from a claim taken on trust (--trust-sidecars, --use-index).
    if (record.hashSource !== undefined) {
      results.push({ path: civitaiInfoPath(record.path), status: "refused", reason: "its SHA-256 was not read from the file" });
      unread++;
      continue;
    }
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
  if (unread > 0) {
    onWarning(
      `${unread} .civitai.info not written: the file's SHA-256 was taken from a sidecar or the library index (--trust-sidecars, --use-index), not read from it; scan without those flags to write them`,
    );
  }
  return results;
}

/**
 * The AutoV3 of files Civitai does not know by SHA-256 (LookupDeps.autov3): from the hash cache
 * when it holds it, else read now (only the safetensors among them; others have none) and cached.
 * The results also go into those files' hashes, so their records show the AutoV3 that was asked.
 */
async function autov3Of(
  sha256s: readonly string[],
  results: readonly HashResult[],
  ctx: BuildContext,
  options: ScanOptions,
): Promise<Map<string, string>> {
  const wanted = new Set(sha256s);
  // Only a file with a safetensors header has an AutoV3 (the header pass knows; a file named so
  // that is not one is not read again). A file whose SHA-256 a sidecar gave (--trust-sidecars) is
  // not read at all, so it has none either.
  const targets = results.filter(
    (r) =>
      !r.error &&
      r.hashes.sha256 !== undefined &&
      wanted.has(r.hashes.sha256) &&
      isSafetensorsPath(r.file.path) &&
      !ctx.hashSources.has(r.file.path) &&
      hasSafetensorsHeader(ctx.locals.get(r.file.path)),
  );
  const out = new Map<string, string>();
  if (targets.length === 0) return out;
  const hashed = await hashFiles(
    targets.map((r) => r.file),
    { algos: ["autov3"], jobs: options.jobs, cache: ctx.cache, signal: options.signal },
  );
  hashed.forEach((h, i) => {
    const target = targets[i]!;
    const autov3 = h.hashes.autov3;
    if (!h.cached && !h.error) {
      // Counted once per file: one read already for its SHA-256 in this run is not a second file hashed.
      if (target.cached) ctx.extraReads.files++;
      ctx.extraReads.bytes += h.file.identity.size;
    }
    if (h.error) options.onWarning(`${target.file.path}: AutoV3 not computed: ${h.error}`);
    if (autov3 === undefined) return;
    target.hashes.autov3 = autov3;
    out.set(target.hashes.sha256!, autov3);
  });
  return out;
}

/** The header pass found a valid safetensors header (no local section: not known, so try). */
function hasSafetensorsHeader(local: LocalInfo | undefined): boolean {
  return local === undefined || (local.format === "safetensors" && local.header !== undefined);
}

function isSidecarName(name: string): boolean {
  return SIDECAR_NAME_RE.test(name);
}

/** Every sidecar name ends so (sidecars.ts SIDECAR_SUFFIXES; `.json` covers the three JSON kinds). */
const SIDECAR_NAME_RE = /\.(civitai\.info|json)$/i;
