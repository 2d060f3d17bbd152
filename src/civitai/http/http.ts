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
 * What an answer means is decided by the pure classifier (classify.ts); the shared 429 pause and
 * the adaptive concurrency live in the rate gate (rate-gate.ts).
 */
import { ofetch, type $Fetch, type FetchResponse } from "ofetch";
import { BodyTooLargeError, readCappedText } from "../../shared/read-capped.ts";
import { sleep as defaultSleep } from "../../shared/sleep.ts";
import { ApiError } from "../api-types.ts";
import { BACKOFF_CAP_MS, retryWait } from "./backoff.ts";
import {
  classifyAnswer,
  describeNetworkError,
  genericStatusError,
  redirectRefusal,
  seconds,
  type AttemptOutcome,
  type JsonRequest,
  type StatusContext,
} from "./classify.ts";
import { createRateGate, type GateLogger, type RateGate, type RateLimitPause, type SleepFn } from "./rate-gate.ts";
import { createRedactor, scrubSecrets, type Redactor } from "../../shared/redact.ts";
import { truncateText } from "../../shared/format.ts";

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_MAX_RATE_LIMIT_WAIT_MS = 10 * 60_000;
const DEFAULT_CONCURRENCY = 4;
/** Consecutive successes before the concurrency, lowered by a 429, grows by one. */
const DEFAULT_CONCURRENCY_RECOVER_AFTER = 10;
/**
 * The most one API answer may be (issue 9, docs/cases.md T4): bytes are counted as they stream and the request
 * fails past it, so an endless body or a claimed 5 GB cannot fill memory. Real answers are far
 * smaller: a 100-version by-hash answer with 10 images each is ~1 MB with A1111 parameters
 * (fixtures), and even a 60 KB ComfyUI workflow on every one of its 1,000 images stays under it.
 */
export const MAX_API_BODY_BYTES = 64 * 1024 * 1024;
const MAX_API_BODY_TEXT = "64 MiB";
/** An error answer is only quoted (200 characters) or sniffed for HTML: its first 64 KiB will do. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_REDIRECTS = 5;
/** URLs in messages are cut: a /models?ids=… URL with 100 ids is ~1 KB of noise. */
const MAX_URL_IN_MESSAGE = 160;
/** A reason phrase ("Not Found") in a message: a server may send tens of KB, copied into every record. */
const MAX_STATUS_TEXT = 100;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The part of a consola instance we use; consola itself fits. */
type HttpLogger = GateLogger;

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
  /** How messages name the server a URL goes to ("Civitai", or the host of a mirror). */
  serviceName: (url: string) => string;
  /** Per attempt, fresh for every retry. Default 30 000. */
  timeoutMs?: number;
  /** Default 5. */
  maxAttempts?: number;
  /**
   * A 429 asking for longer than this stops every call with kind "rate_limited"; a longer
   * Retry-After on another retryable status (503) fails that call at once. Default 10 min.
   */
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
  /** The most a 2xx answer may be; default MAX_API_BODY_BYTES (tests lower it). */
  maxBodyBytes?: number;
  /** Told when a 429 pauses every request of this client (for a progress display). */
  onRateLimitPause?: (pause: RateLimitPause) => void;
}

export interface HttpEngine {
  request<T>(req: JsonRequest<T>): Promise<T>;
  readonly stats: HttpStats;
  /** The current (adaptive) concurrency. */
  readonly concurrency: number;
  /** The redactor every message goes through; callers building messages use it too. */
  readonly redact: Redactor;
}

const NOOP_LOGGER: HttpLogger = { debug() {}, warn() {} };

function normalizeOrigin(host: string): string | undefined {
  try {
    return new URL(host).origin;
  } catch {
    return undefined;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "the host";
  }
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
  return new Engine(options);
}

/**
 * One client's engine. A class so each step (headers, one attempt, the reaction to it, the retry
 * loop) is a method of its own over the shared settings.
 */
class Engine implements HttpEngine {
  readonly stats: HttpStats = { requests: 0, retries: 0 };
  readonly redact: Redactor;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly random: () => number;
  private readonly sleep: SleepFn;
  private readonly now: () => number;
  private readonly clientSignal: AbortSignal | undefined;
  private readonly serviceOf: (url: string) => string;
  private readonly log: HttpLogger;
  private readonly trusted: ReadonlySet<string>;
  private readonly authorization: string | undefined;
  private readonly statusError: (ctx: StatusContext) => ApiError;
  private readonly gate: RateGate;
  private readonly $fetch: $Fetch;
  private readonly maxBodyBytes: number;
  private readonly maxWaitMs: number;

  constructor(private readonly options: HttpEngineOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxBodyBytes = options.maxBodyBytes ?? MAX_API_BODY_BYTES;
    this.maxWaitMs = options.maxRateLimitWaitMs ?? DEFAULT_MAX_RATE_LIMIT_WAIT_MS;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? defaultSleep;
    this.now = options.now ?? Date.now;
    this.clientSignal = options.signal;
    this.serviceOf = options.serviceName;
    const redact = createRedactor([options.apiKey]);
    this.redact = redact;
    const logger = options.logger ?? NOOP_LOGGER;
    // Every line is redacted here, whatever the caller built, so a slip cannot leak the key.
    this.log = { debug: (message) => logger.debug(redact(message)), warn: (message) => logger.warn(redact(message)) };
    this.trusted = new Set(options.trustedOrigins.map(normalizeOrigin).filter((o): o is string => o !== undefined));
    this.authorization = options.apiKey ? `Bearer ${options.apiKey}` : undefined;
    this.statusError = options.statusError ?? genericStatusError;
    this.gate = createRateGate({
      maxConcurrency: Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY),
      recoverAfter: Math.max(1, options.concurrencyRecoverAfter ?? DEFAULT_CONCURRENCY_RECOVER_AFTER),
      maxWaitMs: this.maxWaitMs,
      signal: this.clientSignal,
      sleep: this.sleep,
      now: this.now,
      log: this.log,
      onPause: options.onRateLimitPause,
    });
    this.$fetch = ofetch.create(
      { retry: 0, ignoreResponseError: true, redirect: "manual" },
      options.fetch ? { fetch: options.fetch } : undefined,
    );
  }

  get concurrency(): number {
    return this.gate.concurrency;
  }

  private displayUrl(url: string): string {
    return truncateText(this.redact(url), MAX_URL_IN_MESSAGE);
  }

  private rateLimitedError(retryAt: Date): ApiError {
    const by = this.gate.stoppedBy ?? "the API host";
    return new ApiError(`rate limited by ${by}; retry after ${retryAt.toISOString()}`, "rate_limited", 429, retryAt);
  }

  private abortedError(method: string, url: string): ApiError {
    return new ApiError(`${method} ${this.displayUrl(url)}: aborted`, "aborted");
  }

  private headersFor(url: string, hasBody: boolean): Headers {
    const headers = new Headers({ accept: "application/json", "user-agent": this.options.userAgent });
    if (hasBody) headers.set("content-type", "application/json");
    const origin = normalizeOrigin(url);
    if (this.authorization && origin && this.trusted.has(origin)) headers.set("authorization", this.authorization);
    return headers;
  }

  /** A request that got no answer: aborted by the user, timed out, or a network failure. */
  private noAnswer<T>(err: unknown, method: string, url: string, timeout: AbortSignal, started: number): AttemptOutcome<T> {
    const { timeoutMs } = this;
    const ms = Math.round(performance.now() - started);
    const shown = this.displayUrl(url);
    if (this.clientSignal?.aborted) {
      this.log.debug(`${method} ${shown} -> aborted (${ms} ms)`);
      return { type: "fatal", error: this.abortedError(method, url) };
    }
    if (timeout.aborted) {
      this.log.debug(`${method} ${shown} -> no answer within ${seconds(timeoutMs)} (${ms} ms)`);
      return {
        type: "retry",
        reason: `no answer within ${seconds(timeoutMs)}`,
        final: new ApiError(
          `${method} ${shown}: no answer from ${hostOf(url)} within ${seconds(timeoutMs)}; it may be slow or unreachable`,
          "network",
        ),
      };
    }
    const what = describeNetworkError(err);
    this.log.debug(`${method} ${shown} -> ${what} (${ms} ms)`);
    return {
      type: "retry",
      reason: what,
      final: new ApiError(
        `${method} ${shown}: cannot reach ${hostOf(url)} (${what}); check the network connection and the API host setting (--api-url)`,
        "network",
      ),
    };
  }

  /** A redirect's fate: refused (fatal), or the next hop's method, URL and body. */
  private redirect(
    status: number,
    location: string,
    hop: { url: string; method: string; body: string | undefined; n: number },
  ): { type: "fatal"; error: ApiError } | { type: "follow"; url: string; method: string; body: string | undefined } {
    const { url, method } = hop;
    const refusal = hop.n >= MAX_REDIRECTS ? `more than ${MAX_REDIRECTS} redirects` : redirectRefusal(url, location, this.trusted);
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
          `${method} ${this.displayUrl(url)}: refused to follow a ${status} redirect to ${this.displayUrl(target)}: ${refusal}`,
          "http",
          status,
        ),
      };
    }
    // 301/302/303 turn a POST into a GET, as browsers do; 307/308 keep method and body.
    const toGet = status === 303 || ((status === 301 || status === 302) && method === "POST");
    return { type: "follow", url: new URL(location, url).href, method: toGet ? "GET" : method, body: toGet ? undefined : hop.body };
  }

  /**
   * The body as text, counted as it streams (docs/cases.md T4): a 2xx answer past the cap fails the request
   * (retrying would read it again); an error answer is cut to its first 64 KiB, since only its
   * status and a quote matter. A read that fails (reset, timeout) is handed back as `error`.
   */
  private async readBody(
    res: Response,
    method: string,
    url: string,
    signal: AbortSignal,
  ): Promise<string | { type: "fatal"; error: ApiError } | { type: "failed"; error: unknown }> {
    const success = res.status >= 200 && res.status < 300;
    try {
      return await raceAbort(readCappedText(res, success ? this.maxBodyBytes : MAX_ERROR_BODY_BYTES), signal);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) return { type: "failed", error: err };
      if (!success) return "";
      const limit = this.maxBodyBytes === MAX_API_BODY_BYTES ? MAX_API_BODY_TEXT : `${this.maxBodyBytes} bytes`;
      const what =
        err.declared !== null && err.declared > err.limit
          ? `the answer declares ${err.declared} bytes, more than ${limit}, the most one API answer may be; it was not read`
          : `the answer is larger than ${limit}, the most one API answer may be; reading stopped there`;
      this.log.debug(`${method} ${this.displayUrl(url)} -> ${what}`);
      return {
        type: "fatal",
        error: new ApiError(`${method} ${this.displayUrl(url)}: ${this.serviceOf(url)} sent too much: ${what}`, "bad_response", res.status),
      };
    }
  }

  /** One attempt: the request and any redirects it is allowed to follow, classified. */
  private async attempt<T>(req: JsonRequest<T>): Promise<AttemptOutcome<T>> {
    const state = await this.gate.wait();
    if (state === "aborted") throw this.abortedError(req.method, req.url);
    if (state === "stopped") throw this.rateLimitedError(this.gate.stoppedUntil as Date);
    // Bun's AbortSignal.timeout holds any duration we accept (≤ 365d, docs/cases.md T7), unlike setTimeout.
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = this.clientSignal ? AbortSignal.any([this.clientSignal, timeout]) : timeout;
    let url = req.url;
    let method: string = req.method;
    let body = req.body === undefined ? undefined : JSON.stringify(req.body);

    for (let n = 0; ; n++) {
      const started = performance.now();
      const shown = this.displayUrl(url);
      this.stats.requests += 1;
      let res: FetchResponse<unknown>;
      try {
        const headers = this.headersFor(url, body !== undefined);
        res = await raceAbort(this.$fetch.raw(url, { method, headers, body, signal, responseType: "stream" }), signal);
      } catch (err) {
        return this.noAnswer(err, method, url, timeout, started);
      }
      this.log.debug(`${method} ${shown} -> ${res.status} (${Math.round(performance.now() - started)} ms)`);

      const location = res.headers.get("location");
      if (!REDIRECT_STATUSES.has(res.status) || !location) {
        const text = await this.readBody(res, method, url, signal);
        if (typeof text !== "string") return text.type === "fatal" ? text : this.noAnswer(text.error, method, url, timeout, started);
        // The reason phrase is the server's text, quoted in messages that become records' errors:
        // redacted before it is cut (a server may echo the key there), and short (docs/cases.md F6).
        const statusText = truncateText(this.redact(res.statusText), MAX_STATUS_TEXT);
        const answer = { status: res.status, statusText, headers: res.headers, body: text };
        const { redact, statusError } = this;
        const service = this.serviceOf(url);
        return classifyAnswer(req, answer, {
          service,
          userAgent: this.options.userAgent,
          redact,
          scrub: (data) => scrubSecrets(data, [this.options.apiKey]),
          displayUrl: shown,
          now: this.now(),
          statusError,
        });
      }
      void res.body?.cancel().catch(() => {});
      const next = this.redirect(res.status, location, { url, method, body, n });
      if (next.type === "fatal") return next;
      ({ url, method, body } = next);
    }
  }

  /**
   * One attempt plus the client-wide reaction to it. The 429 bookkeeping (pause, concurrency, stop)
   * happens here, while the limiter slot is still held, so no queued request can slip through
   * before the pause is in place.
   */
  private async attemptWithPolicy<T>(req: JsonRequest<T>, n: number): Promise<AttemptOutcome<T> & { wait?: number }> {
    const outcome = await this.attempt(req);
    if (outcome.type === "done") {
      this.gate.noteSuccess();
      return outcome;
    }
    if (outcome.type === "fatal") return outcome;
    const wait = retryWait(n - 1, outcome.retryAfterMs, this.random);
    if (outcome.rateLimited) {
      const last = n >= this.maxAttempts ? { attempts: this.maxAttempts } : undefined;
      const stoppedUntil = this.gate.noteRateLimit(wait, last, outcome.service ?? this.serviceOf(req.url));
      if (stoppedUntil) return { type: "fatal", error: this.rateLimitedError(stoppedUntil) };
    }
    return { ...outcome, wait };
  }

  async request<T>(req: JsonRequest<T>): Promise<T> {
    const { maxAttempts, clientSignal } = this;
    for (let n = 1; ; n++) {
      if (clientSignal?.aborted) throw this.abortedError(req.method, req.url);
      if (this.gate.stoppedUntil) throw this.rateLimitedError(this.gate.stoppedUntil);
      const outcome = await this.gate.run(() => this.attemptWithPolicy(req, n));
      if (outcome.type === "done") return outcome.value;
      if (outcome.type === "fatal") throw outcome.error;
      if (n >= maxAttempts) {
        const e = outcome.final;
        throw new ApiError(`${e.message} (${maxAttempts} attempts)`, e.kind, e.status, e.retryAt);
      }
      const wait = outcome.wait ?? 0;
      // A Retry-After on a 503 (or any non-429) is held to the same limit as a 429's: never an hour's silent sleep.
      if (!outcome.rateLimited && wait > this.maxWaitMs) {
        const e = outcome.final;
        const retryAt = new Date(this.now() + wait);
        throw new ApiError(
          `${e.message}; it asks to be retried after ${retryAt.toISOString()}, later than the ${seconds(this.maxWaitMs)} allowed (--max-wait)`,
          e.kind,
          e.status,
          retryAt,
        );
      }
      this.stats.retries += 1;
      this.log.debug(`retry ${n + 1}/${maxAttempts} of ${req.method} ${this.displayUrl(req.url)} in ${seconds(wait)}: ${outcome.reason}`);
      // After a 429 the shared gate does the waiting, for everyone at once.
      if (outcome.rateLimited) continue;
      if (wait > BACKOFF_CAP_MS) this.log.warn(`${outcome.final.message}; retrying in ${seconds(wait)} as it asks`);
      try {
        await this.sleep(wait, clientSignal);
      } catch {
        throw this.abortedError(req.method, req.url);
      }
    }
  }
}
