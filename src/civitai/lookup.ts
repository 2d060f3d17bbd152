import type { ApiErrorKind, CivitaiApi } from "./api-types.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import type { MatchedBy } from "../report/record-types.ts";
import type { MetaCache } from "./meta-cache.ts";
import { autov3Phase, type Autov3Source } from "./lookup/autov3-phase.ts";
import { bulkPhase } from "./lookup/bulk-phase.ts";
import { cachePhase } from "./lookup/cache-phase.ts";
import { detailsPhase } from "./lookup/details-phase.ts";
import { LookupRun } from "./lookup/run.ts";
import { singlePhase } from "./lookup/single-phase.ts";

/**
 * Identifies files on Civitai by hash with as few requests as possible (docs/civitai-api.md §3.3),
 * in five phases (one module each under lookup/):
 *   1. metadata cache (per SHA-256, then per AutoV3);
 *   2. bulk POST by-hash, ≤ 100 SHA-256s per request;
 *   3. single GET by-hash for what the bulk left out (it drops edge cases silently), on the
 *      primary host, then the fallback host;
 *   4. single GET by AutoV3 (primary, then fallback) for files whose SHA-256 is unknown, accepted
 *      only when a file of the answer really has that AutoV3;
 *   5. model details, ≤ 100 ids per request, on the host that found the version.
 * Found and not-found answers are cached (not-found with the short TTL); errors never are.
 */

export interface LookupItem {
  sha256: string;
  autov3?: string;
}

/**
 * `offline`: not in the cache and the run is offline, so nothing was asked. Not an error and not
 * "not on Civitai": the caller shows it as unchecked (e.g. FileRecord status "skipped").
 */
export type LookupStatus = "found" | "not_found" | "error" | "offline";

export interface LookupEntry {
  status: LookupStatus;
  matchedBy?: MatchedBy;
  /** Origin that answered (cached answers keep theirs). */
  host?: string;
  /** Candidates, Civitai's own order (oldest published, then lowest id): first = the match; several = ambiguous. */
  versions: ApiModelVersion[];
  /** Details of the candidates' models that we have (empty without `details`). */
  models: Map<number, ApiModel>;
  /** Safe to print (ApiError messages carry no secret). */
  error?: string;
  errorKind?: ApiErrorKind;
  /** Set when details were asked for but some could not be fetched. */
  detailsError?: string;
  /** The answer came from the cache without a request. */
  fromCache: boolean;
}

export type LookupPhase = "cache" | "bulk" | "single" | "autov3" | "models";

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
  requests: { bulk: number; single: number; autov3: number; models: number };
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
   * AutoV3 on demand: called once, before the AutoV3 phase, with the SHA-256s that Civitai does
   * not know and whose item gave no AutoV3; answers the AutoV3 of those it can (safetensors files),
   * computing and caching them. Without it, only the AutoV3s given in the items are tried.
   */
  autov3For?: Autov3Source;
}

export interface LookupOptions {
  details: boolean;
  offline: boolean;
  /** Ignore cached answers (they are still rewritten). */
  refresh: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (progress: LookupProgress) => void;
}

export async function lookupFiles(items: readonly LookupItem[], deps: LookupDeps, options: LookupOptions): Promise<LookupResult> {
  const run = new LookupRun(items, deps.api, deps.cache, deps.hosts, options);
  run.lazyAutov3 = deps.autov3For !== undefined;
  const needsSha = await cachePhase(run);
  if (options.offline) {
    for (const work of needsSha) run.finish(work, { status: "offline" });
  } else {
    const leftOver = await bulkPhase(run, needsSha);
    await singlePhase(run, leftOver);
  }
  await autov3Phase(run, deps.autov3For);
  if (options.details) await detailsPhase(run);
  run.settleUnfinished();
  run.report("models");
  return run.result();
}
