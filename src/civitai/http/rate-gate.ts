/**
 * The client-wide reaction to rate limits (reliability.md §2.7): every request of one client passes
 * this gate. A 429 pauses everyone until its Retry-After (or our backoff), halves the concurrency,
 * which grows back by one per run of successes (AIMD, like TCP); a wait longer than the user allows,
 * or 429s that do not stop, close the gate for good: every call fails fast with the time to retry.
 */
import pLimit from "p-limit";
import { decreasedConcurrency, increasedConcurrency } from "./backoff.ts";
import { seconds } from "./classify.ts";

export type SleepFn = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface GateLogger {
  debug(message: string): void;
  warn(message: string): void;
}

export interface RateGateOptions {
  /** The configured concurrency: the most requests in flight, and the ceiling it grows back to. */
  maxConcurrency: number;
  /** Consecutive successes before a lowered concurrency grows by one. */
  recoverAfter: number;
  /** A wait longer than this closes the gate. */
  maxWaitMs: number;
  signal?: AbortSignal;
  sleep: SleepFn;
  now: () => number;
  log: GateLogger;
}

/** How `wait()` ended: the gate is open, the client was aborted, or the gate closed for good. */
export type GateState = "open" | "aborted" | "stopped";

export interface RateGate {
  /** Runs `fn` in one of the (adaptive) concurrency slots. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Waits out a shared pause; never throws. */
  wait(): Promise<GateState>;
  /** When the gate closed for good: the time the server said we may try again. */
  readonly stoppedUntil: Date | undefined;
  /** The server whose 429 closed the gate ("Civitai", or a host), for messages. */
  readonly stoppedBy: string | undefined;
  /** The current (adaptive) concurrency. */
  readonly concurrency: number;
  noteSuccess(): void;
  /**
   * A 429 from `service` asking for `waitMs`: lowers the concurrency and pauses everyone, or closes
   * the gate when the wait is too long or `lastAttempt` is set. Returns the retry time when it
   * closed the gate.
   */
  noteRateLimit(waitMs: number, lastAttempt: { attempts: number } | undefined, service: string): Date | undefined;
}

export function createRateGate(options: RateGateOptions): RateGate {
  const { maxConcurrency, recoverAfter, maxWaitMs, signal: clientSignal, sleep, now, log } = options;
  const limit = pLimit(maxConcurrency);
  let successStreak = 0;
  /** Nobody starts a request before this time (per `now`). */
  let pausedUntil = 0;
  /** Set once a wait beyond maxWaitMs was required: every call fails fast from then on. */
  let stoppedUntil: Date | undefined;
  let stoppedBy: string | undefined;
  const stop = new AbortController();
  const gateSignal = clientSignal ? AbortSignal.any([clientSignal, stop.signal]) : stop.signal;

  function close(waitMs: number, why: string, service: string): Date {
    const retryAt = new Date(now() + waitMs);
    if (!stoppedUntil || retryAt > stoppedUntil) {
      stoppedUntil = retryAt;
      stoppedBy = service;
    }
    log.warn(`${service} rate limit: ${why}; stopping requests until ${stoppedUntil.toISOString()}`);
    stop.abort();
    return stoppedUntil;
  }

  function pause(waitMs: number, service: string): void {
    const until = now() + waitMs;
    if (until <= pausedUntil) return;
    const alreadyPaused = pausedUntil > now();
    pausedUntil = until;
    if (alreadyPaused) log.debug(`pause extended to ${seconds(waitMs)}`);
    else log.warn(`${service} asked us to slow down; pausing ${seconds(waitMs)}`);
  }

  return {
    run: (fn) => limit(fn),
    get stoppedUntil() {
      return stoppedUntil;
    },
    get stoppedBy() {
      return stoppedBy;
    },
    get concurrency() {
      return limit.concurrency;
    },
    async wait() {
      for (;;) {
        if (clientSignal?.aborted) return "aborted";
        if (stoppedUntil) return "stopped";
        const remaining = pausedUntil - now();
        if (remaining <= 0) return "open";
        try {
          await sleep(remaining, gateSignal);
        } catch {
          // The loop head tells a user abort from a closed gate.
          if (!clientSignal?.aborted && !stoppedUntil) return "aborted";
        }
      }
    },
    noteSuccess() {
      if (limit.concurrency >= maxConcurrency) return;
      successStreak += 1;
      if (successStreak < recoverAfter) return;
      successStreak = 0;
      limit.concurrency = increasedConcurrency(limit.concurrency, maxConcurrency);
      log.debug(`concurrency raised to ${limit.concurrency}`);
    },
    noteRateLimit(waitMs, lastAttempt, service) {
      successStreak = 0;
      const lowered = decreasedConcurrency(limit.concurrency);
      if (lowered !== limit.concurrency) {
        log.debug(`concurrency lowered to ${lowered} after a 429`);
        limit.concurrency = lowered;
      }
      if (waitMs > maxWaitMs) {
        return close(waitMs, `asked to wait ${seconds(waitMs)}, more than the ${seconds(maxWaitMs)} allowed`, service);
      }
      // Repeated 429s mean "stop", not "fail this one call": the caller reports what was done.
      if (lastAttempt) return close(waitMs, `still 429 after ${lastAttempt.attempts} attempts`, service);
      pause(waitMs, service);
      return undefined;
    },
  };
}
