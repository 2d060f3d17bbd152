import type { ApiErrorKind, CivitaiApi } from "./api-types.ts";
import type { LeanModel, LeanVersion } from "./lean.ts";
import type { MatchedBy } from "../report/record-types.ts";
import type { LastFound, MetaCache } from "./meta-cache.ts";
import { autov3Phase } from "./lookup/autov3-phase.ts";
import { bulkPhase, IDS_BATCH_SIZE } from "./lookup/bulk-phase.ts";
import { cachePhase } from "./lookup/cache-phase.ts";
import { detailsPhase } from "./lookup/details-phase.ts";
import { LookupRun } from "./lookup/run.ts";

/**
 * Identifies files on Civitai by hash with as few requests as possible (docs/civitai-api.md §3.3),
 * in four phases (one module each under lookup/):
 *   1. metadata cache by SHA-256, read in batches;
 *   2. by SHA-256 in bulk, on the primary host, then the fallback host for what it does not know:
 *      by-hash/ids (10,000 a request) to learn which hashes a host knows when there is more than
 *      one batch, then POST by-hash (≤ 100 a request) for the known ones. Never one GET per file;
 *   3. by AutoV3 for files whose SHA-256 is unknown (computed now through `deps.autov3` when the
 *      caller did not have it): the cache, then one GET per AutoV3 (primary, then fallback),
 *      accepted only when a file of the answer really has that AutoV3;
 *   4. model details, ≤ 100 ids per request, on the host that found the version.
 * Answers are kept in their lean form (lean.ts). Found and not-found answers are cached, not-found
 * ones longer each time they repeat; errors never are.
 */

/**
 * How many distinct SHA-256s a caller that looks up in parts (scan) asks at a time, so that only
 * one part's answers are held in memory. A multiple of POST by-hash's 100 and half a by-hash/ids
 * batch: parts cost at most one more by-hash/ids request per host for every 5,000 unknown files.
 * Measured on a warm 100,000-file scan with a full collection after each part
 * (bench/scale-breakdown.ts, PART=n): peak 645 MiB with parts of 10,000, 453 with 5,000, 408 with
 * 2,500, for ~15 % and ~25 % more CPU (scan now collects less often: PART_GARBAGE_BYTES).
 */
export const LOOKUP_PART_SIZE = IDS_BATCH_SIZE / 2;

export interface LookupItem {
  sha256: string;
  /** The file's AutoV3 when known; absent = not computed (deps.autov3 may compute it if needed). */
  autov3?: string;
}

/**
 * `offline`: not in the cache and the run is offline, so nothing was asked. Not an error and not
 * "not on Civitai": the caller shows it as unchecked (e.g. FileRecord status "skipped").
 */
type LookupStatus = "found" | "not_found" | "error" | "offline";

export interface LookupEntry {
  status: LookupStatus;
  matchedBy?: MatchedBy;
  /** Origin that answered (cached answers keep theirs). */
  host?: string;
  /** Candidates, Civitai's own order (oldest published, then lowest id): first = the match; several = ambiguous. */
  versions: LeanVersion[];
  /** Details of the candidates' models that we have (empty without `details`). */
  models: Map<number, LeanModel>;
  /**
   * Found, but the version's file list does not show this file: Civitai tied the hash to the
   * version (by-hash/ids) while listing no file (an archived model) or not this one (not public).
   */
  unlisted?: boolean;
  /** Not found now, but found before: the last found answer and when it was seen (epoch ms). */
  lastFound?: LastFound;
  /** Safe to print (ApiError messages carry no secret). */
  error?: string;
  errorKind?: ApiErrorKind;
  /** Set when details were asked for but some could not be fetched. */
  detailsError?: string;
  /** The answer came from the cache without a request. */
  fromCache: boolean;
}

export type LookupPhase = "cache" | "bulk" | "autov3" | "models";

/**
 * How far the whole lookup is, in files (distinct SHA-256s): `done` only grows, and a found file
 * counts as done once its model details are in (when asked for). `phase` is what is running now.
 */
export interface LookupProgress {
  phase: LookupPhase;
  done: number;
  total: number;
}

export interface LookupCounters {
  /** `ids`: POST by-hash/ids; `bulk`: POST by-hash; `autov3`: GET by-hash of an AutoV3; `models`: GET /models?ids=. */
  requests: { ids: number; bulk: number; autov3: number; models: number };
  cacheHits: number;
}

export interface LookupResult {
  /** By lower-case SHA-256 (invalid inputs keep their given text, with status "error"). */
  entries: Map<string, LookupEntry>;
  counters: LookupCounters;
  /** Why requests stopped early (rate limit, Ctrl-C); unfinished entries carry the same message. */
  stopped?: { kind: ApiErrorKind; message: string; retryAt?: Date };
  /** Set when the fallback host failed and was not asked again; the files it could not answer are errors. */
  fallbackFailure?: string;
}

export interface LookupDeps {
  api: CivitaiApi;
  cache: MetaCache;
  hosts: { primary: string; fallback?: string };
  /**
   * Computes the AutoV3 of files whose SHA-256 Civitai does not know and that came without one,
   * by SHA-256 (null: not a safetensors, or not computable). Called once, for those files only.
   */
  autov3?: (sha256s: readonly string[]) => Promise<Map<string, string | null>>;
}

export interface LookupOptions {
  details: boolean;
  offline: boolean;
  /** Ignore cached answers (they are still rewritten, and not-found repeat counts start over). */
  refresh: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (progress: LookupProgress) => void;
  /**
   * What an earlier lookup of the same run ended with, when a caller looks up in parts (scan does,
   * 5,000 files at a time): stopped (a rate limit, Ctrl-C) means nothing is asked, only the cache
   * answers; a failed fallback host is not asked again.
   */
  carry?: Pick<LookupResult, "stopped" | "fallbackFailure">;
}

export async function lookupFiles(items: readonly LookupItem[], deps: LookupDeps, options: LookupOptions): Promise<LookupResult> {
  const run = new LookupRun(items, deps, options);
  const needsSha = await cachePhase(run);
  if (options.offline) {
    for (const work of needsSha) run.finish(work, { status: "offline" });
  } else {
    await bulkPhase(run, needsSha);
  }
  await autov3Phase(run);
  if (options.details) await detailsPhase(run);
  run.settleUnfinished();
  await run.flushWrites();
  run.report("models");
  return run.result();
}
