/**
 * The JSON request engine behind the Civitai client: one ofetch instance with ofetch's own retry
 * switched off, and our loop around it (docs/reliability.md §2.1, §2.7). Why we drive the retries:
 * - ofetch 1.5.1 reuses an already-aborted timeout signal on retry, ignores Retry-After, does not
 *   retry POST, reads the body outside its retry loop and parses with destr (a truncated body comes
 *   back as a string). Here every attempt gets a fresh AbortSignal.timeout, and the body read, JSON
 *   parse and shape check happen inside the attempt, so they are retried like any transient failure.
 * - Errors are our own ApiError with a redacted URL; ofetch's FetchError is never attached as a
 *   cause, because its `.options.headers` holds the Authorization header.
 * - Redirects are followed by hand (`redirect: "manual"`): only to the same origin or another
 *   configured Civitai origin, never from https to http. A JSON API call has no business being
 *   sent elsewhere, and refusing (rather than following without the key) also keeps a foreign
 *   host's JSON out of our metadata cache.
 * A 429 pauses every request of the client (a shared gate) and halves its concurrency, which then
 * grows back by one per run of successes (AIMD, like TCP).
 */
import { ofetch, type FetchResponse } from "ofetch";
import pLimit from "p-limit";
import { sleep as defaultSleep } from "../../shared/sleep.ts";
import { ApiError } from "../api-types.ts";
import type { ValidationResult } from "../api-validate.ts";
import { classifyHtml, looksLikeHtml } from "../api-validate.ts";
import { decreasedConcurrency, increasedConcurrency, isRetryableStatus, parseRetryAfter, retryWait } from "./backoff.ts";
import { createRedactor, truncateText, type Redactor } from "../../shared/redact.ts";

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEFAULT_MAX_RATE_LIMIT_WAIT_MS = 10 * 60_000;
export const DEFAULT_CONCURRENCY = 4;
/** Consecutive successes before the concurrency, lowered by a 429, grows by one. */
export const DEFAULT_CONCURRENCY_RECOVER_AFTER = 10;
const MAX_REDIRECTS = 5;
/** URLs in messages are cut: a /models?ids=… URL with 100 ids is ~1 KB of noise. */
const MAX_URL_IN_MESSAGE = 160;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The part of a consola instance we use; consola itself fits. */
export interface HttpLogger {
  debug(message: string): void;
  warn(message: string): void;
}

export type SleepFn = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface HttpStats {
  /** HTTP requests sent, redirect hops included. */
  requests: number;
  /** Attempts beyond the first, over all calls. */
  retries: number;
}

export interface HttpEngineOptions {
  userAgent: string;
  /** Origins that may receive the Authorization header. */
  trustedOrigins: readonly string[];
  apiKey?: string;
  /** Name used in messages ("Civitai"). */
  serviceName: string;
  /** Per attempt, fresh for every retry. Default 30 000. */
  timeoutMs?: number;
  /** Default 5. */
  maxAttempts?: number;
  /** A 429 asking for longer than this stops every call with kind "rate_limited". Default 10 min. */
  maxRateLimitWaitMs?: number;
  /** Default 4; halved by a 429, grows back by one per `concurrencyRecoverAfter` successes. */
  concurrency?: number;
  /** Default 10. */
  concurrencyRecoverAfter?: number;
  signal?: AbortSignal;
  /** consola-like; default silent. Every line is redacted before it gets here. */
  logger?: HttpLogger;
  random?: () => number;
  sleep?: SleepFn;
  now?: () => number;
  /** The fetch ofetch calls; tests pass one that trusts a self-signed certificate. */
  fetch?: typeof globalThis.fetch;
  /** Error for a final status no request handled; defaults to a generic "answered <status>". */
  statusError?: (ctx: StatusContext) => ApiError;
}

/** What the engine knows about a final (non-2xx, non-retryable) answer. */
export interface StatusContext {
  method: string;
  /** Redacted and shortened, ready for a message. */
  displayUrl: string;
  status: number;
  statusText: string;
  contentType: string | null;
  body: string;
}

export interface JsonRequest<T> {
  method: "GET" | "POST";
  url: string;
  /** Sent as JSON. */
  body?: unknown;
  validate: (data: unknown) => ValidationResult<T>;
  /** Turns a final status into a result (e.g. 404 → null); undefined → `statusError`. */
  onStatus?: (ctx: StatusContext) => { value: T } | undefined;
}

export interface HttpEngine {
  request<T>(req: JsonRequest<T>): Promise<T>;
  readonly stats: HttpStats;
  /** The current (adaptive) concurrency. */
  readonly concurrency: number;
  /** The redactor every message goes through; callers building messages use it too. */
  readonly redact: Redactor;
}

type AttemptOutcome<T> =
  | { type: "done"; value: T }
  | { type: "fatal"; error: ApiError }
  | {
      type: "retry";
      /** For the debug line. */
      reason: string;
      /** Thrown when no attempt is left; " after N attempts" is appended. */
      final: ApiError;
      rateLimited?: boolean;
      retryAfterMs?: number;
    };

const NOOP_LOGGER: HttpLogger = { debug() {}, warn() {} };

/** Why a redirect must not be followed, or undefined when it may. */
export function redirectRefusal(from: string, to: string, trustedOrigins: ReadonlySet<string>): string | undefined {
  let source: URL;
  let target: URL;
  try {
    source = new URL(from);
    target = new URL(to, from);
  } catch {
    return "the redirect target is not a valid URL";
  }
  if (target.protocol !== "http:" && target.protocol !== "https:") return `the redirect uses ${target.protocol}`;
  if (source.protocol === "https:" && target.protocol === "http:") return "the redirect downgrades https to http";
  if (target.origin !== source.origin && !trustedOrigins.has(target.origin)) return `the redirect leads to another host (${target.host})`;
  return undefined;
}

/** One human phrase per network failure class, from the error code only (messages may hold URLs). */
export function describeNetworkError(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown; name?: unknown } } | undefined;
  const code = String(e?.cause?.code ?? e?.code ?? e?.cause?.name ?? e?.name ?? "unknown");
  if (/ECONNREFUSED|ConnectionRefused/i.test(code)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN|DNS|getaddrinfo/i.test(code)) return "host name not found (DNS)";
  if (/ECONNRESET|EPIPE|ConnectionClosed|terminated|ERR_STREAM_PREMATURE_CLOSE/i.test(code))
    return "connection closed before the answer was complete";
  if (/CERT|TLS|SSL/i.test(code)) return `TLS error (${code})`;
  if (/ETIMEDOUT|Timeout/i.test(code)) return "connection timed out";
  return `network error (${code.replace(/[^\w.-]/g, "").slice(0, 40) || "unknown"})`;
}

function normalizeOrigin(host: string): string | undefined {
  try {
    return new URL(host).origin;
  } catch {
    return undefined;
  }
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return s >= 10 ? `${Math.round(s)} s` : `${Math.round(s * 10) / 10} s`;
}

/** Rejects as soon as `signal` aborts, even if the wrapped work ignores it. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

export function createHttpEngine(options: HttpEngineOptions): HttpEngine {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
  const maxRateLimitWaitMs = options.maxRateLimitWaitMs ?? DEFAULT_MAX_RATE_LIMIT_WAIT_MS;
  const maxConcurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  const recoverAfter = Math.max(1, options.concurrencyRecoverAfter ?? DEFAULT_CONCURRENCY_RECOVER_AFTER);
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? Date.now;
  const clientSignal = options.signal;
  const service = options.serviceName;
  const redact = createRedactor([options.apiKey]);
  const logger = options.logger ?? NOOP_LOGGER;
  // Every line is redacted here, whatever the caller built, so a slip cannot leak the key.
  const log = {
    debug: (message: string) => logger.debug(redact(message)),
    warn: (message: string) => logger.warn(redact(message)),
  };
  const trusted = new Set(options.trustedOrigins.map(normalizeOrigin).filter((o): o is string => o !== undefined));
  const authorization = options.apiKey ? `Bearer ${options.apiKey}` : undefined;

  const $fetch = ofetch.create(
    { retry: 0, ignoreResponseError: true, redirect: "manual" },
    options.fetch ? { fetch: options.fetch } : undefined,
  );

  const stats: HttpStats = { requests: 0, retries: 0 };
  const limit = pLimit(maxConcurrency);
  let successStreak = 0;
  /** The shared 429 gate: nobody starts a request before this time (per `now`). */
  let pausedUntil = 0;
  /** Set once a wait beyond maxRateLimitWaitMs was required: every call fails fast from then on. */
  let rateLimitedAt: Date | undefined;
  const rateLimitStop = new AbortController();
  const gateSignal = clientSignal ? AbortSignal.any([clientSignal, rateLimitStop.signal]) : rateLimitStop.signal;

  const displayUrl = (url: string) => truncateText(redact(url), MAX_URL_IN_MESSAGE);
  const hostOf = (url: string) => {
    try {
      return new URL(url).host;
    } catch {
      return "the host";
    }
  };

  function rateLimitedError(retryAt: Date): ApiError {
    return new ApiError(`rate limited by ${service}; retry after ${retryAt.toISOString()}`, "rate_limited", 429, retryAt);
  }

  function abortedError(method: string, url: string): ApiError {
    return new ApiError(`${method} ${displayUrl(url)}: aborted`, "aborted");
  }

  function stopForRateLimit(waitMs: number, why: string): ApiError {
    const retryAt = new Date(now() + waitMs);
    if (!rateLimitedAt || retryAt > rateLimitedAt) rateLimitedAt = retryAt;
    log.warn(`${service} rate limit: ${why}; stopping requests until ${rateLimitedAt.toISOString()}`);
    rateLimitStop.abort();
    return rateLimitedError(rateLimitedAt);
  }

  function pauseEveryone(waitMs: number): void {
    const until = now() + waitMs;
    if (until <= pausedUntil) return;
    const alreadyPaused = pausedUntil > now();
    pausedUntil = until;
    if (alreadyPaused) log.debug(`pause extended to ${seconds(waitMs)}`);
    else log.warn(`${service} asked us to slow down; pausing ${seconds(waitMs)}`);
  }

  function noteRateLimit(): void {
    successStreak = 0;
    const lowered = decreasedConcurrency(limit.concurrency);
    if (lowered !== limit.concurrency) {
      log.debug(`concurrency lowered to ${lowered} after a 429`);
      limit.concurrency = lowered;
    }
  }

  function noteSuccess(): void {
    if (limit.concurrency >= maxConcurrency) return;
    successStreak += 1;
    if (successStreak < recoverAfter) return;
    successStreak = 0;
    limit.concurrency = increasedConcurrency(limit.concurrency, maxConcurrency);
    log.debug(`concurrency raised to ${limit.concurrency}`);
  }

  /** Waits for the shared gate; throws when aborted or when the client has been stopped by a 429. */
  async function passGate(method: string, url: string): Promise<void> {
    for (;;) {
      if (clientSignal?.aborted) throw abortedError(method, url);
      if (rateLimitedAt) throw rateLimitedError(rateLimitedAt);
      const remaining = pausedUntil - now();
      if (remaining <= 0) return;
      try {
        await sleep(remaining, gateSignal);
      } catch {
        // The loop head turns the abort into the right error.
        if (!clientSignal?.aborted && !rateLimitedAt) throw abortedError(method, url);
      }
    }
  }

  function headersFor(url: string, hasBody: boolean): Headers {
    const headers = new Headers({ accept: "application/json", "user-agent": options.userAgent });
    if (hasBody) headers.set("content-type", "application/json");
    const origin = normalizeOrigin(url);
    if (authorization && origin && trusted.has(origin)) headers.set("authorization", authorization);
    return headers;
  }

  function classify<T>(req: JsonRequest<T>, res: FetchResponse<string>, url: string): AttemptOutcome<T> {
    const method = req.method;
    const shown = displayUrl(url);
    const status = res.status;
    const body = typeof res._data === "string" ? res._data : "";
    const contentType = res.headers.get("content-type");

    if (status >= 200 && status < 300) {
      if (looksLikeHtml(contentType, body)) {
        const kind = classifyHtml(body);
        const what =
          kind === "cloudflare-challenge" ? "a Cloudflare challenge page" : kind === "maintenance" ? "a maintenance page" : "an HTML page";
        return {
          type: "retry",
          reason: `HTML instead of JSON (${what})`,
          final: new ApiError(
            `${method} ${shown}: ${service} answered with ${what} instead of JSON. The request may be blocked or challenged by Cloudflare (check your network/VPN; User-Agent sent: "${options.userAgent}"), or ${service} may be under maintenance`,
            "bad_response",
            status,
          ),
        };
      }
      let data: unknown;
      try {
        data = JSON.parse(body);
      } catch {
        return {
          type: "retry",
          reason: `invalid or truncated JSON (${body.length} bytes)`,
          final: new ApiError(
            `${method} ${shown}: ${service} sent invalid or truncated JSON (${body.length} bytes)`,
            "bad_response",
            status,
          ),
        };
      }
      const checked = req.validate(data);
      if (checked.ok) return { type: "done", value: checked.value };
      const reason = redact(truncateText(checked.reason, 200));
      return {
        type: "retry",
        reason: `unexpected JSON: ${reason}`,
        final: new ApiError(`${method} ${shown}: ${service} sent JSON of an unexpected shape: ${reason}`, "bad_response", status),
      };
    }

    if (isRetryableStatus(status)) {
      const rateLimited = status === 429;
      const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"), now());
      const label = `${status}${res.statusText ? ` ${res.statusText}` : ""}`;
      return {
        type: "retry",
        reason: rateLimited ? `429 Too Many Requests${retryAfterMs !== undefined ? ` (Retry-After ${seconds(retryAfterMs)})` : ""}` : label,
        rateLimited,
        retryAfterMs,
        final: new ApiError(
          status >= 500
            ? `${method} ${shown}: ${service} answered ${label}; it may be down or overloaded, try again later`
            : `${method} ${shown}: ${service} answered ${label}`,
          "http",
          status,
        ),
      };
    }

    const ctx: StatusContext = { method, displayUrl: shown, status, statusText: res.statusText, contentType, body };
    const handled = req.onStatus?.(ctx);
    if (handled) return { type: "done", value: handled.value };
    return { type: "fatal", error: (options.statusError ?? statusError)(ctx) };
  }

  /** Generic final-status error; the Civitai client maps its known statuses before this. */
  function statusError(ctx: StatusContext): ApiError {
    return new ApiError(
      `${ctx.method} ${ctx.displayUrl}: ${service} answered ${ctx.status}${ctx.statusText ? ` ${ctx.statusText}` : ""}`,
      "http",
      ctx.status,
    );
  }

  async function attempt<T>(req: JsonRequest<T>): Promise<AttemptOutcome<T>> {
    await passGate(req.method, req.url);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = clientSignal ? AbortSignal.any([clientSignal, timeout]) : timeout;
    let url = req.url;
    let method: string = req.method;
    let body = req.body === undefined ? undefined : JSON.stringify(req.body);

    for (let hop = 0; ; hop++) {
      const started = performance.now();
      const shown = displayUrl(url);
      stats.requests += 1;
      let res: FetchResponse<string>;
      try {
        res = await raceAbort(
          $fetch.raw(url, { method, headers: headersFor(url, body !== undefined), body, signal, responseType: "text" }),
          signal,
        );
      } catch (err) {
        const ms = Math.round(performance.now() - started);
        if (clientSignal?.aborted) {
          log.debug(`${method} ${shown} -> aborted (${ms} ms)`);
          return { type: "fatal", error: abortedError(method, url) };
        }
        if (timeout.aborted) {
          log.debug(`${method} ${shown} -> no answer within ${seconds(timeoutMs)} (${ms} ms)`);
          return {
            type: "retry",
            reason: `no answer within ${seconds(timeoutMs)}`,
            final: new ApiError(
              `${method} ${shown}: no answer from ${hostOf(url)} within ${seconds(timeoutMs)}; ${service} may be slow or unreachable`,
              "network",
            ),
          };
        }
        const what = describeNetworkError(err);
        log.debug(`${method} ${shown} -> ${what} (${ms} ms)`);
        return {
          type: "retry",
          reason: what,
          final: new ApiError(
            `${method} ${shown}: cannot reach ${hostOf(url)} (${what}); check the network connection and the ${service} host setting`,
            "network",
          ),
        };
      }
      log.debug(`${method} ${shown} -> ${res.status} (${Math.round(performance.now() - started)} ms)`);

      const location = res.headers.get("location");
      if (!REDIRECT_STATUSES.has(res.status) || !location) return classify(req, res, url);
      const refusal = hop >= MAX_REDIRECTS ? `more than ${MAX_REDIRECTS} redirects` : redirectRefusal(url, location, trusted);
      if (refusal) {
        let target = location;
        try {
          target = new URL(location, url).href;
        } catch {
          // Shown as sent; displayUrl still redacts it.
        }
        return {
          type: "fatal",
          error: new ApiError(
            `${method} ${shown}: refused to follow a ${res.status} redirect to ${displayUrl(target)}: ${refusal}`,
            "http",
            res.status,
          ),
        };
      }
      url = new URL(location, url).href;
      // 301/302/303 turn a POST into a GET, as browsers do; 307/308 keep method and body.
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
        method = "GET";
        body = undefined;
      }
    }
  }

  /**
   * One attempt plus the client-wide reaction to it. The 429 bookkeeping (pause, concurrency, stop)
   * happens here, while the limiter slot is still held, so no queued request can slip through
   * before the pause is in place.
   */
  async function attemptWithPolicy<T>(req: JsonRequest<T>, n: number): Promise<AttemptOutcome<T> & { wait?: number }> {
    const outcome = await attempt(req);
    if (outcome.type === "done") {
      noteSuccess();
      return outcome;
    }
    if (outcome.type === "fatal") return outcome;
    const wait = retryWait(n - 1, outcome.retryAfterMs, random);
    if (outcome.rateLimited) {
      noteRateLimit();
      if (wait > maxRateLimitWaitMs) {
        return {
          type: "fatal",
          error: stopForRateLimit(wait, `asked to wait ${seconds(wait)}, more than the ${seconds(maxRateLimitWaitMs)} allowed`),
        };
      }
      // Repeated 429s mean "stop", not "fail this one call": the caller reports what was done.
      if (n >= maxAttempts) return { type: "fatal", error: stopForRateLimit(wait, `still 429 after ${maxAttempts} attempts`) };
      pauseEveryone(wait);
    }
    return { ...outcome, wait };
  }

  async function request<T>(req: JsonRequest<T>): Promise<T> {
    for (let n = 1; ; n++) {
      if (clientSignal?.aborted) throw abortedError(req.method, req.url);
      if (rateLimitedAt) throw rateLimitedError(rateLimitedAt);
      const outcome = await limit(() => attemptWithPolicy(req, n));
      if (outcome.type === "done") return outcome.value;
      if (outcome.type === "fatal") throw outcome.error;
      if (n >= maxAttempts) {
        const e = outcome.final;
        throw new ApiError(`${e.message} (${maxAttempts} attempts)`, e.kind, e.status, e.retryAt);
      }
      const wait = outcome.wait ?? 0;
      stats.retries += 1;
      log.debug(`retry ${n + 1}/${maxAttempts} of ${req.method} ${displayUrl(req.url)} in ${seconds(wait)}: ${outcome.reason}`);
      // After a 429 the shared gate does the waiting, for everyone at once.
      if (outcome.rateLimited) continue;
      try {
        await sleep(wait, clientSignal);
      } catch {
        throw abortedError(req.method, req.url);
      }
    }
  }

  return {
    request,
    stats,
    get concurrency() {
      return limit.concurrency;
    },
    redact,
  };
}
