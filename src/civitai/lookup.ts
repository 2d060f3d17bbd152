import { ApiError, type ApiErrorKind, type CivitaiApi } from "./api-types.ts";
import { isCivitaiId, normalizeSha256, versionKeyByAutov3, versionKeyBySha256 } from "./cache-keys.ts";
import { findMatchedFile, isModel, isVersion, mapBulkAnswer, usableAutov3 } from "./civitai-record.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import { errorMessage } from "../shared/errors.ts";
import type { MatchedBy } from "../report/record-types.ts";
import type { CachedVersion, MetaCache } from "./meta-cache.ts";

/**
 * Identifies files on Civitai by hash with as few requests as possible (docs/civitai-api.md §3.3):
 *   1. metadata cache (per SHA-256, then per AutoV3);
 *   2. bulk POST by-hash, ≤ 100 SHA-256s per request;
 *   3. single GET by-hash for what the bulk left out (it drops edge cases silently), on the
 *      primary host, then the fallback host;
 *   4. single GET by AutoV3 (primary, then fallback) for files whose SHA-256 is unknown, accepted
 *      only when a file of the answer really has that AutoV3;
 *   5. model details, ≤ 100 ids per request, on the host that found the version.
 * Found and not-found answers are cached (not-found with the short TTL); errors never are.
 */

export const BULK_BATCH_SIZE = 100;
export const MODELS_BATCH_SIZE = 100;
/** In-flight requests from one lookup; the client may limit further. Small so a stop stops quickly. */
export const DEFAULT_LOOKUP_CONCURRENCY = 4;
const CACHE_READ_CONCURRENCY = 32;

/**
 * Errors after which no further request is sent: Civitai asked us to wait, the user pressed Ctrl-C,
 * or Civitai cannot be used from here at all (unreachable after every retry, region-blocked, key
 * refused, blocked by the WAF). Asking on would repeat the same error once per batch, and for a
 * large library turn a clear failure into minutes of waiting; what was done is still reported.
 */
const STOPPING_KINDS: ReadonlySet<ApiErrorKind> = new Set([
  "rate_limited",
  "aborted",
  "network",
  "region_blocked",
  "unauthorized",
  "forbidden",
]);

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

interface Work {
  sha256: string;
  autov3: string | null;
  /** Position in the caller's list: requests go out in that order. */
  order: number;
  entry: LookupEntry;
  done: boolean;
  /** The SHA-256 "not found" came from the cache: do not rewrite it (that would extend its TTL). */
  shaNotFoundCached: boolean;
}

export async function lookupFiles(items: readonly LookupItem[], deps: LookupDeps, options: LookupOptions): Promise<LookupResult> {
  const { api, cache, hosts } = deps;
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_LOOKUP_CONCURRENCY);
  const useCache = !options.refresh;
  const hostList = hosts.fallback && hosts.fallback !== hosts.primary ? [hosts.primary, hosts.fallback] : [hosts.primary];
  const counters: LookupCounters = { requests: { bulk: 0, single: 0, autov3: 0, models: 0 }, cacheHits: 0 };
  const entries = new Map<string, LookupEntry>();
  const works: Work[] = [];
  const workBySha = new Map<string, Work>();
  let stopped: LookupResult["stopped"];

  for (const item of items) {
    const sha256 = normalizeSha256(item.sha256);
    if (sha256 === null) {
      const key = String(item.sha256);
      if (!entries.has(key)) entries.set(key, { ...emptyEntry(), status: "error", error: "not a SHA-256 (64 hex digits)" });
      continue;
    }
    const autov3 = usableAutov3(item.autov3);
    const existing = workBySha.get(sha256);
    if (existing) {
      if (existing.autov3 === null) existing.autov3 = autov3;
      continue;
    }
    const work: Work = { sha256, autov3, order: works.length, entry: emptyEntry(), done: false, shaNotFoundCached: false };
    workBySha.set(sha256, work);
    entries.set(sha256, work.entry);
    works.push(work);
  }
  const byOrder = (a: Work, b: Work): number => a.order - b.order;

  const isStopped = (): boolean => {
    if (!stopped && options.signal?.aborted) stopped = { kind: "aborted", message: "lookup aborted" };
    return stopped !== undefined;
  };
  /** Records an error; a stopping one stops every later request. */
  const failure = (err: unknown): { message: string; kind?: ApiErrorKind } => {
    if (err instanceof ApiError) {
      if (STOPPING_KINDS.has(err.kind) && !stopped) {
        stopped = { kind: err.kind, message: err.message, ...(err.retryAt ? { retryAt: err.retryAt } : {}) };
      }
      return { message: err.message, kind: err.kind };
    }
    return { message: errorMessage(err) };
  };
  /**
   * The primary host, then the fallback for a miss. A fallback that fails (down, blocked) must not
   * stop lookups the primary can still answer: it is dropped for the rest of the run, and each miss
   * it could not check becomes an error that says so (it may be on the fallback, so not "not found").
   */
  let fallbackFailure: string | undefined;
  const askHosts = async <T>(ask: (host: string) => Promise<T | null>): Promise<{ version: T; host: string } | null | "stopped"> => {
    if (isStopped()) return "stopped";
    const first = await ask(hosts.primary);
    if (first !== null) return { version: first, host: hosts.primary };
    const fallback = hostList[1];
    if (fallback === undefined) return null;
    if (fallbackFailure === undefined) {
      if (isStopped()) return "stopped";
      try {
        const second = await ask(fallback);
        return second === null ? null : { version: second, host: fallback };
      } catch (err) {
        if (!(err instanceof ApiError) || err.kind === "aborted" || err.kind === "rate_limited") throw err;
        fallbackFailure ??= `${fallback} could not be asked: ${err.message}`;
      }
    }
    throw new ApiError(`not found on ${hosts.primary}; ${fallbackFailure}`, "fallback_unavailable");
  };
  const progress = (phase: LookupPhase, done: number, total: number): void => options.onProgress?.({ phase, done, total });

  const finish = (work: Work, patch: Partial<LookupEntry>): void => {
    Object.assign(work.entry, patch);
    work.done = true;
  };
  const fail = (work: Work, err: { message: string; kind?: ApiErrorKind }): void => {
    finish(work, { status: "error", error: err.message, ...(err.kind ? { errorKind: err.kind } : {}) });
  };
  const found = (work: Work, versions: ApiModelVersion[], host: string | undefined, matchedBy: MatchedBy, fromCache: boolean): void => {
    finish(work, { status: "found", versions, matchedBy, fromCache, ...(host ? { host } : {}) });
  };

  // ── 1. Cache by SHA-256 ──────────────────────────────────────────────────────────────────────
  const needsSha: Work[] = [];
  const needsAutov3: Work[] = [];
  const afterShaMiss = (work: Work): void => {
    if (work.autov3 !== null) needsAutov3.push(work);
    else finish(work, { status: "not_found" });
  };
  if (useCache) {
    let done = 0;
    await runLimited(works, CACHE_READ_CONCURRENCY, async (work) => {
      const cached = await cache.getVersion(versionKeyBySha256(work.sha256));
      progress("cache", ++done, works.length);
      if (cached === null) return void needsSha.push(work);
      counters.cacheHits++;
      if (cached.kind === "found") return found(work, cached.versions, cached.host, cached.matchedBy ?? "sha256", true);
      work.shaNotFoundCached = true;
      work.entry.fromCache = true;
      afterShaMiss(work);
    });
    // Keep the caller's order for requests (runLimited finishes in any order).
    needsSha.sort(byOrder);
  } else {
    needsSha.push(...works);
  }

  if (options.offline) {
    for (const work of needsSha) finish(work, { status: "offline" });
  } else {
    // ── 2. Bulk POST by SHA-256 ────────────────────────────────────────────────────────────────
    const leftOver: Work[] = [];
    const batches = chunk(needsSha, BULK_BATCH_SIZE);
    let batchesDone = 0;
    await runLimited(batches, concurrency, async (batch) => {
      if (isStopped()) return;
      const hashes = batch.map((w) => w.sha256);
      counters.requests.bulk++;
      try {
        const answer = await api.versionsByHashes(hosts.primary, hashes);
        const byHash = mapBulkAnswer(Array.isArray(answer) ? answer : [], hashes);
        const writes: Promise<void>[] = [];
        for (const work of batch) {
          const versions = byHash.get(work.sha256);
          if (versions && versions.length > 0) {
            found(work, versions, hosts.primary, "sha256", false);
            writes.push(cache.setVersion(versionKeyBySha256(work.sha256), versions, { host: hosts.primary, matchedBy: "sha256" }));
          } else {
            leftOver.push(work);
          }
        }
        await Promise.all(writes);
      } catch (err) {
        const f = failure(err);
        for (const work of batch) fail(work, f);
      }
      progress("bulk", ++batchesDone, batches.length);
    });
    leftOver.sort(byOrder);

    // ── 3. Single GET by SHA-256: primary, then fallback ───────────────────────────────────────
    let singlesDone = 0;
    await runLimited(leftOver, concurrency, async (work) => {
      if (isStopped()) return;
      try {
        const hit = await askHosts(async (host) => {
          counters.requests.single++;
          const answer = await api.versionByHash(host, work.sha256);
          return checkedVersion(answer);
        });
        if (hit === "stopped") return;
        if (hit) {
          found(work, [hit.version], hit.host, "sha256", false);
          await cache.setVersion(versionKeyBySha256(work.sha256), hit.version, { host: hit.host, matchedBy: "sha256" });
        } else {
          afterShaMiss(work);
          if (work.done) await cache.setVersion(versionKeyBySha256(work.sha256), null);
        }
      } catch (err) {
        fail(work, failure(err));
      }
      progress("single", ++singlesDone, leftOver.length);
    });
  }

  // ── 4. AutoV3: cache, then single GET (primary, then fallback), verified ─────────────────────
  const byAutov3 = new Map<string, Work[]>();
  for (const work of needsAutov3.sort(byOrder)) {
    if (work.done || work.autov3 === null) continue;
    byAutov3.set(work.autov3, [...(byAutov3.get(work.autov3) ?? []), work]);
  }
  const groups = [...byAutov3.entries()];
  let groupsDone = 0;
  await runLimited(groups, concurrency, async ([autov3, group]) => {
    const key = versionKeyByAutov3(autov3);
    let result: CachedVersion | null = useCache ? await cache.getVersion(key) : null;
    if (result !== null) counters.cacheHits++;
    const fromCache = result !== null;
    if (result === null) {
      if (options.offline) {
        for (const work of group) finish(work, { status: "offline" });
        return;
      }
      if (isStopped()) return;
      try {
        const hit = await askHosts(async (host) => {
          counters.requests.autov3++;
          const answer = checkedVersion(await api.versionByHash(host, autov3));
          // A 12-hex value only matches AutoV3 today, but the GET matches every hash type: check.
          return answer && findMatchedFile(answer, null, autov3)?.by === "autov3" ? answer : null;
        });
        if (hit === "stopped") return;
        result = hit ? { kind: "found", versions: [hit.version], host: hit.host, matchedBy: "autov3" } : { kind: "not_found" };
        if (hit) await cache.setVersion(key, hit.version, { host: hit.host, matchedBy: "autov3" });
        else await cache.setVersion(key, null);
      } catch (err) {
        const f = failure(err);
        for (const work of group) {
          // The SHA-256 part did finish: remember it so the next run only retries the AutoV3.
          if (!work.shaNotFoundCached) await cache.setVersion(versionKeyBySha256(work.sha256), null);
          fail(work, f);
        }
        return;
      }
    }
    for (const work of group) {
      if (result.kind === "found") {
        found(work, result.versions, result.host, "autov3", fromCache);
        await cache.setVersion(versionKeyBySha256(work.sha256), result.versions, {
          ...(result.host ? { host: result.host } : {}),
          matchedBy: "autov3",
        });
      } else {
        finish(work, { status: "not_found", fromCache: fromCache && work.shaNotFoundCached });
        if (!work.shaNotFoundCached) await cache.setVersion(versionKeyBySha256(work.sha256), null);
      }
    }
    progress("autov3", ++groupsDone, groups.length);
  });

  // ── 5. Model details ─────────────────────────────────────────────────────────────────────────
  if (options.details) {
    const models = new Map<number, ApiModel>();
    const detailsErrors = new Map<number, string>();
    const hostOfModel = new Map<number, string>();
    for (const work of works) {
      if (work.entry.status !== "found") continue;
      for (const version of work.entry.versions) {
        if (isCivitaiId(version.modelId) && !hostOfModel.has(version.modelId)) {
          hostOfModel.set(version.modelId, work.entry.host ?? hosts.primary);
        }
      }
    }
    const toFetch = new Map<string, number[]>();
    const ids = [...hostOfModel.keys()];
    let modelsRead = 0;
    const cachedModels = useCache
      ? await mapLimited(ids, CACHE_READ_CONCURRENCY, async (id) => {
          const cached = await cache.getModel(id);
          progress("cache", ++modelsRead, ids.length);
          return cached;
        })
      : ids.map(() => null);
    ids.forEach((id, i) => {
      const cached = cachedModels[i] ?? null;
      if (cached !== null) {
        counters.cacheHits++;
        if (cached.kind === "found") models.set(id, cached.model);
        return;
      }
      if (options.offline) return;
      const host = hostOfModel.get(id) ?? hosts.primary;
      toFetch.set(host, [...(toFetch.get(host) ?? []), id]);
    });
    const batches = [...toFetch.entries()].flatMap(([host, list]) => chunk(list, MODELS_BATCH_SIZE).map((batch) => ({ host, batch })));
    let batchesDone = 0;
    await runLimited(batches, concurrency, async ({ host, batch }) => {
      if (isStopped()) {
        for (const id of batch) detailsErrors.set(id, stopped?.message ?? "stopped");
        return;
      }
      counters.requests.models++;
      try {
        const answer = await api.modelsByIds(host, batch);
        const wanted = new Set(batch);
        for (const model of Array.isArray(answer) ? answer : []) {
          if (isModel(model) && wanted.has(model.id) && !models.has(model.id)) models.set(model.id, model);
        }
        // Civitai omits models it will not show (deleted, filtered): remember that briefly.
        await Promise.all(batch.map((id) => cache.setModel(id, models.get(id) ?? null)));
      } catch (err) {
        const f = failure(err);
        for (const id of batch) detailsErrors.set(id, f.message);
      }
      progress("models", ++batchesDone, batches.length);
    });
    for (const work of works) {
      if (work.entry.status !== "found") continue;
      for (const version of work.entry.versions) {
        if (!isCivitaiId(version.modelId)) continue;
        const model = models.get(version.modelId);
        if (model) work.entry.models.set(version.modelId, model);
        const detailsError = detailsErrors.get(version.modelId);
        if (detailsError !== undefined && work.entry.detailsError === undefined) work.entry.detailsError = detailsError;
      }
    }
  }

  // Whatever a stop left unfinished carries the stop's message.
  isStopped();
  for (const work of works) {
    if (work.done) continue;
    if (stopped) fail(work, { message: stopped.message, kind: stopped.kind });
    else fail(work, { message: "lookup did not finish" });
  }

  return { entries, counters, ...(stopped ? { stopped } : {}), ...(fallbackFailure ? { fallbackFailure } : {}) };
}

function emptyEntry(): LookupEntry {
  return { status: "error", versions: [], models: new Map(), fromCache: false };
}

/** A non-null answer must look like a version; the client validates, this guards what we cache. */
function checkedVersion(answer: unknown): ApiModelVersion | null {
  if (answer === null || answer === undefined) return null;
  if (!isVersion(answer)) throw new ApiError("unexpected answer from Civitai (not a model version)", "bad_response");
  return answer;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `task` over `items` with at most `limit` at once; `task` must not throw. */
async function runLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function mapLimited<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out = Array.from<R>({ length: items.length });
  const indexed = items.map((item, index) => ({ item, index }));
  await runLimited(indexed, limit, async ({ item, index }) => {
    out[index] = await task(item);
  });
  return out;
}
