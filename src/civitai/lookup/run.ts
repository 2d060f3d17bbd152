/**
 * The state one lookup shares between its phases (lookup.ts): one Work per distinct SHA-256, the
 * entries handed back, the counters, and the stop rule. Each phase reads and settles Works through
 * this object, so the order of phases and the stop rule live in one place.
 */
import pLimit from "p-limit";
import { ApiError, type ApiErrorKind, type CivitaiApi } from "../api-types.ts";
import { normalizeSha256 } from "../cache-keys.ts";
import { usableAutov3 } from "../civitai-record.ts";
import type { ApiModelVersion } from "../civitai-types.ts";
import { errorMessage } from "../../shared/errors.ts";
import type { MatchedBy } from "../../report/record-types.ts";
import type { MetaCache } from "../meta-cache.ts";
import type { LookupCounters, LookupEntry, LookupItem, LookupOptions, LookupPhase, LookupResult } from "../lookup.ts";

/** In-flight requests from one lookup; the client may limit further. Small so a stop stops quickly. */
const DEFAULT_LOOKUP_CONCURRENCY = 4;

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

export interface Work {
  sha256: string;
  autov3: string | null;
  /** Position in the caller's list: requests go out in that order. */
  order: number;
  entry: LookupEntry;
  done: boolean;
  /** The SHA-256 "not found" came from the cache: do not rewrite it (that would extend its TTL). */
  shaNotFoundCached: boolean;
  /** Counted in the progress (settled, and its details are in when asked for). */
  complete: boolean;
}

export interface Failure {
  message: string;
  kind?: ApiErrorKind;
}

export const byOrder = (a: Work, b: Work): number => a.order - b.order;

function emptyEntry(): LookupEntry {
  return { status: "error", versions: [], models: new Map(), fromCache: false };
}

export class LookupRun {
  readonly entries = new Map<string, LookupEntry>();
  readonly works: Work[] = [];
  readonly counters: LookupCounters = { requests: { bulk: 0, single: 0, autov3: 0, models: 0 }, cacheHits: 0 };
  /** Works whose SHA-256 is not on Civitai (or not cached) but whose AutoV3 may be. */
  readonly needsAutov3: Work[] = [];
  /** AutoV3s are computed on demand (LookupDeps.autov3For): a SHA-256 miss without one may still get one. */
  lazyAutov3 = false;
  readonly useCache: boolean;
  readonly concurrency: number;
  /** The primary host, then the fallback (when there is one and it differs). */
  readonly hostList: readonly string[];
  stopped: LookupResult["stopped"];
  /** Set when the fallback host failed; it is not asked again in this run. */
  fallbackFailure: string | undefined;
  /** Works counted as complete, for the progress. */
  private completed = 0;
  private phase: LookupPhase = "cache";

  constructor(
    items: readonly LookupItem[],
    readonly api: CivitaiApi,
    readonly cache: MetaCache,
    readonly hosts: { primary: string; fallback?: string },
    readonly options: LookupOptions,
  ) {
    this.useCache = !options.refresh;
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_LOOKUP_CONCURRENCY);
    this.hostList = hosts.fallback && hosts.fallback !== hosts.primary ? [hosts.primary, hosts.fallback] : [hosts.primary];
    const bySha = new Map<string, Work>();
    for (const item of items) {
      const sha256 = normalizeSha256(item.sha256);
      if (sha256 === null) {
        const key = String(item.sha256);
        if (!this.entries.has(key)) this.entries.set(key, { ...emptyEntry(), status: "error", error: "not a SHA-256 (64 hex digits)" });
        continue;
      }
      const autov3 = usableAutov3(item.autov3);
      const existing = bySha.get(sha256);
      if (existing) {
        if (existing.autov3 === null) existing.autov3 = autov3;
        continue;
      }
      const work: Work = {
        sha256,
        autov3,
        order: this.works.length,
        entry: emptyEntry(),
        done: false,
        shaNotFoundCached: false,
        complete: false,
      };
      bySha.set(sha256, work);
      this.entries.set(sha256, work.entry);
      this.works.push(work);
    }
  }

  /** Runs `task` over `items`, `limit` at a time, started in order; results in the items' order. */
  each<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
    return pLimit(limit).map(items, (item) => task(item));
  }

  isStopped(): boolean {
    if (!this.stopped && this.options.signal?.aborted) this.stopped = { kind: "aborted", message: "lookup aborted" };
    return this.stopped !== undefined;
  }

  /** Records an error; a stopping one stops every later request. */
  failure(err: unknown): Failure {
    if (err instanceof ApiError) {
      if (STOPPING_KINDS.has(err.kind) && !this.stopped) {
        this.stopped = { kind: err.kind, message: err.message, ...(err.retryAt ? { retryAt: err.retryAt } : {}) };
      }
      return { message: err.message, kind: err.kind };
    }
    return { message: errorMessage(err) };
  }

  /**
   * The primary host, then the fallback for a miss. A fallback that fails (down, blocked) must not
   * stop lookups the primary can still answer: it is dropped for the rest of the run, and each miss
   * it could not check becomes an error that says so (it may be on the fallback, so not "not found").
   */
  async askHosts<T>(ask: (host: string) => Promise<T | null>): Promise<{ version: T; host: string } | null | "stopped"> {
    if (this.isStopped()) return "stopped";
    const first = await ask(this.hosts.primary);
    if (first !== null) return { version: first, host: this.hosts.primary };
    const fallback = this.hostList[1];
    if (fallback === undefined) return null;
    if (this.fallbackFailure === undefined) {
      if (this.isStopped()) return "stopped";
      try {
        const second = await ask(fallback);
        return second === null ? null : { version: second, host: fallback };
      } catch (err) {
        if (!(err instanceof ApiError) || err.kind === "aborted" || err.kind === "rate_limited") throw err;
        this.fallbackFailure ??= `${fallback} could not be asked: ${err.message}`;
      }
    }
    throw new ApiError(`not found on ${this.hosts.primary}; ${this.fallbackFailure}`, "fallback_unavailable");
  }

  /** Tells the caller how far the whole lookup is (see LookupProgress); `phase` is what runs now. */
  report(phase: LookupPhase): void {
    this.phase = phase;
    this.options.onProgress?.({ phase, done: this.completed, total: this.works.length });
  }

  /** Counts `work` as complete (once) and reports it. */
  complete(work: Work): void {
    if (work.complete) return;
    work.complete = true;
    this.completed++;
    this.report(this.phase);
  }

  /**
   * Settles `work`. A found file is complete only once its details are in when details are asked
   * for (the details phase completes it); anything else is complete now.
   */
  finish(work: Work, patch: Partial<LookupEntry>): void {
    Object.assign(work.entry, patch);
    work.done = true;
    if (!this.options.details || work.entry.status !== "found") this.complete(work);
  }

  fail(work: Work, err: Failure): void {
    this.finish(work, { status: "error", error: err.message, ...(err.kind ? { errorKind: err.kind } : {}) });
  }

  found(work: Work, versions: ApiModelVersion[], host: string | undefined, matchedBy: MatchedBy, fromCache: boolean): void {
    this.finish(work, { status: "found", versions, matchedBy, fromCache, ...(host ? { host } : {}) });
  }

  /** The SHA-256 is not on Civitai: try the AutoV3 when there is one, else it is not found. */
  afterShaMiss(work: Work): void {
    if (work.autov3 !== null || this.lazyAutov3) this.needsAutov3.push(work);
    else this.finish(work, { status: "not_found" });
  }

  /** Whatever a stop left unfinished carries the stop's message; every file ends complete. */
  settleUnfinished(): void {
    this.isStopped();
    for (const work of this.works) {
      if (!work.done) {
        if (this.stopped) this.fail(work, { message: this.stopped.message, kind: this.stopped.kind });
        else this.fail(work, { message: "lookup did not finish" });
      }
      this.complete(work);
    }
  }

  result(): LookupResult {
    return {
      entries: this.entries,
      counters: this.counters,
      ...(this.stopped ? { stopped: this.stopped } : {}),
      ...(this.fallbackFailure ? { fallbackFailure: this.fallbackFailure } : {}),
    };
  }
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
