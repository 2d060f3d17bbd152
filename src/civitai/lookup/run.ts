/**
 * The state one lookup shares between its phases (lookup.ts): one Work per distinct SHA-256, the
 * entries handed back, the counters, and the stop rule. Each phase reads and settles Works through
 * this object, so the order of phases and the stop rule live in one place.
 */
import pLimit from "p-limit";
import { ApiError, type ApiErrorKind, type CivitaiApi } from "../api-types.ts";
import { normalizeSha256, versionKeyBySha256 } from "../cache-keys.ts";
import { usableAutov3 } from "../civitai-record.ts";
import { SHA256_OF_EMPTY } from "../../hash/hash-algos.ts";
import { errorMessage } from "../../shared/errors.ts";
import { redact } from "../../shared/redact.ts";
import type { LastFound, MetaCache, ModelWrite, ReadOptions, VersionAnswer, VersionWrite } from "../meta-cache.ts";
import type { LookupCounters, LookupDeps, LookupEntry, LookupItem, LookupOptions, LookupPhase, LookupResult } from "../lookup.ts";

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
  /** The file's usable AutoV3; null = it has none (or it is the placeholder); undefined = not known yet (deps.autov3 may tell). */
  autov3: string | null | undefined;
  /** Position in the caller's list: requests go out in that order. */
  order: number;
  entry: LookupEntry;
  done: boolean;
  /** The SHA-256 "not found" came from the cache: do not rewrite it (that would extend its TTL). */
  shaNotFoundCached: boolean;
  /** Counted in the progress (settled, and its details are in when asked for). */
  complete: boolean;
  /** From a cached not-found: the last found answer it keeps. */
  lastFound?: LastFound;
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
  readonly counters: LookupCounters = { requests: { ids: 0, bulk: 0, autov3: 0, models: 0 }, cacheHits: 0 };
  /** Works whose SHA-256 is not on Civitai (or not cached) but whose AutoV3 may be. */
  readonly needsAutov3: Work[] = [];
  readonly concurrency: number;
  /** --refresh: the cache serves nothing, but still tells each key's history. */
  readonly readOptions: ReadOptions;
  /** The primary host, then the fallback (when there is one and it differs). */
  readonly hostList: readonly string[];
  stopped: LookupResult["stopped"];
  /** Set when the fallback host failed; it is not asked again in this run. */
  fallbackFailure: string | undefined;
  /** Hosts whose by-hash/ids endpoint failed in a way that says "not here" (a mirror without it). */
  readonly idsUnsupported = new Set<string>();
  /** Works counted as complete, for the progress. */
  private completed = 0;
  /** Cache writes under way (see `write`). */
  private readonly pendingWrites: Promise<void>[] = [];
  private writeFailure: unknown;
  private phase: LookupPhase = "cache";

  readonly api: CivitaiApi;
  readonly cache: MetaCache;
  readonly hosts: { primary: string; fallback?: string };

  constructor(
    items: readonly LookupItem[],
    readonly deps: LookupDeps,
    readonly options: LookupOptions,
  ) {
    this.api = deps.api;
    this.cache = deps.cache;
    this.hosts = deps.hosts;
    this.readOptions = { refresh: options.refresh };
    this.stopped = options.carry?.stopped;
    this.fallbackFailure = options.carry?.fallbackFailure;
    const hosts = deps.hosts;
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
      // Given (even the unusable placeholder): that is the answer; absent: not known yet.
      const autov3 = item.autov3 === undefined ? undefined : usableAutov3(item.autov3);
      const existing = bySha.get(sha256);
      if (existing) {
        if (autov3 && !existing.autov3) existing.autov3 = autov3;
        else if (autov3 === null && existing.autov3 === undefined) existing.autov3 = null;
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
      // An empty file: what Civitai holds under this hash is a broken upload, not this file's model;
      // never asked, never served from the cache (docs/civitai-api.md §5).
      if (sha256 === SHA256_OF_EMPTY) this.finish(work, { status: "not_found", fromCache: false });
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
        if (!this.fallbackFailed(fallback, err)) throw err;
      }
    }
    const f = this.fallbackUnavailable();
    throw new ApiError(f.message, "fallback_unavailable");
  }

  /**
   * A request to the fallback host failed: true when that drops the fallback for the rest of the
   * run (down, blocked, refused); false for what must stop or fail as usual (Ctrl-C, a 429).
   */
  fallbackFailed(host: string, err: unknown): boolean {
    if (!(err instanceof ApiError) || err.kind === "aborted" || err.kind === "rate_limited") return false;
    // Redacted: a host URL may hold a proxy's password, and this text reaches records (stdout, inventories).
    this.fallbackFailure ??= redact(`${host} could not be asked: ${err.message}`);
    return true;
  }

  /** What a miss the dropped fallback could not check becomes: an error, never "not found". */
  fallbackUnavailable(): Failure {
    return {
      message: redact(`not found on ${this.hosts.primary}; ${this.fallbackFailure ?? "the fallback host was not asked"}`),
      kind: "fallback_unavailable",
    };
  }

  /**
   * Queues cache writes: they go on while the next requests do (the driver writes asynchronously),
   * and `flushWrites` waits for them before the lookup returns. The entries themselves (repeat
   * counts, last found answers) are decided now, in call order.
   */
  write(writes: readonly VersionWrite[]): void {
    if (writes.length > 0) this.track(this.cache.writeVersions(writes));
  }

  writeModels(writes: readonly ModelWrite[]): void {
    if (writes.length > 0) this.track(this.cache.writeModels(writes));
  }

  private track(promise: Promise<void>): void {
    this.pendingWrites.push(promise.catch((err) => void (this.writeFailure ??= err)));
  }

  /** Waits for every queued cache write; rethrows a programming error one of them hit. */
  async flushWrites(): Promise<void> {
    await Promise.all(this.pendingWrites);
    if (this.writeFailure !== undefined) throw this.writeFailure;
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

  found(work: Work, answer: VersionAnswer, fromCache: boolean): void {
    this.finish(work, {
      status: "found",
      versions: answer.versions,
      matchedBy: answer.matchedBy,
      fromCache,
      ...(answer.host ? { host: answer.host } : {}),
      ...(answer.unlisted ? { unlisted: true } : {}),
    });
  }

  /** Not on Civitai: settled, with the last found answer the cache keeps for it, if any. */
  notFound(work: Work, fromCache: boolean): void {
    const lastFound = work.lastFound ?? this.cache.lastFound(versionKeyBySha256(work.sha256));
    this.finish(work, { status: "not_found", fromCache, ...(lastFound ? { lastFound } : {}) });
  }

  /** The file has an AutoV3 to try, or deps.autov3 may compute one. */
  mayHaveAutov3(work: Work): boolean {
    return work.autov3 !== null && (work.autov3 !== undefined || this.deps.autov3 !== undefined);
  }

  /**
   * The SHA-256 is not on Civitai (asked now): try the AutoV3 when the file may have one, else it is
   * not found, and that is cached. `autov3` null means the file has none, recorded so the next run
   * does not ask again.
   */
  afterShaMiss(work: Work, writes: VersionWrite[]): void {
    if (this.mayHaveAutov3(work)) {
      this.needsAutov3.push(work);
      return;
    }
    writes.push({ key: versionKeyBySha256(work.sha256), notFound: work.autov3 === null ? { autov3: null } : {} });
    this.notFound(work, false);
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
