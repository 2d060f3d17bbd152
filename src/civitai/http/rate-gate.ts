/**
 * The client-wide reaction to rate limits (docs/reliability.md §2.7): every request of one client passes
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
  /** Told when everyone pauses (or the pause grows): until when, per `now`, and who asked. */
  onPause?: (pause: RateLimitPause) => void;
}

export interface RateLimitPause {
  /** When requests resume, in `now()` time (epoch ms by default). */
  until: number;
  /** Who asked for the pause ("Civitai", or a host). */
  service: string;
}

/** How `wait()` ended: the gate is open, the client was aborted, or the gate closed for good. */
type GateState = "open" | "aborted" | "stopped";

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
  return new Gate(options);
}

class Gate implements RateGate {
  private readonly limit: ReturnType<typeof pLimit>;
  private successStreak = 0;
  /** Nobody starts a request before this time (per `now`). */
  private pausedUntil = 0;
  /** Set once a wait beyond maxWaitMs was required: every call fails fast from then on. */
  stoppedUntil: Date | undefined;
  stoppedBy: string | undefined;
  private readonly stop = new AbortController();
  private readonly gateSignal: AbortSignal;

  constructor(private readonly options: RateGateOptions) {
    this.limit = pLimit(options.maxConcurrency);
    this.gateSignal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal;
  }

  get concurrency(): number {
    return this.limit.concurrency;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    return this.limit(fn);
  }

  async wait(): Promise<GateState> {
    const { signal: clientSignal, sleep, now } = this.options;
    for (;;) {
      if (clientSignal?.aborted) return "aborted";
      if (this.stoppedUntil) return "stopped";
      const remaining = this.pausedUntil - now();
      if (remaining <= 0) return "open";
      try {
        await sleep(remaining, this.gateSignal);
      } catch {
        // The loop head tells a user abort from a closed gate.
        if (!clientSignal?.aborted && !this.stoppedUntil) return "aborted";
      }
    }
  }

  noteSuccess(): void {
    const { maxConcurrency, recoverAfter, log } = this.options;
    if (this.limit.concurrency >= maxConcurrency) return;
    this.successStreak += 1;
    if (this.successStreak < recoverAfter) return;
    this.successStreak = 0;
    this.limit.concurrency = increasedConcurrency(this.limit.concurrency, maxConcurrency);
    log.debug(`concurrency raised to ${this.limit.concurrency}`);
  }

  noteRateLimit(waitMs: number, lastAttempt: { attempts: number } | undefined, service: string): Date | undefined {
    const { maxWaitMs, log } = this.options;
    this.successStreak = 0;
    const lowered = decreasedConcurrency(this.limit.concurrency);
    if (lowered !== this.limit.concurrency) {
      log.debug(`concurrency lowered to ${lowered} after a 429`);
      this.limit.concurrency = lowered;
    }
    if (waitMs > maxWaitMs) {
      return this.close(waitMs, `asked to wait ${seconds(waitMs)}, more than the ${seconds(maxWaitMs)} allowed`, service);
    }
    // Repeated 429s mean "stop", not "fail this one call": the caller reports what was done.
    if (lastAttempt) return this.close(waitMs, `still 429 after ${lastAttempt.attempts} attempts`, service);
    this.pause(waitMs, service);
    return undefined;
  }

  private close(waitMs: number, why: string, service: string): Date {
    const retryAt = new Date(this.options.now() + waitMs);
    if (!this.stoppedUntil || retryAt > this.stoppedUntil) {
      this.stoppedUntil = retryAt;
      this.stoppedBy = service;
    }
    this.options.log.warn(`${service} rate limit: ${why}; stopping requests until ${this.stoppedUntil.toISOString()}`);
    this.stop.abort();
    return this.stoppedUntil;
  }

  private pause(waitMs: number, service: string): void {
    const { now, log } = this.options;
    const until = now() + waitMs;
    if (until <= this.pausedUntil) return;
    const alreadyPaused = this.pausedUntil > now();
    this.pausedUntil = until;
    // Before the log line: a progress bar clears its line so the warning prints cleanly.
    this.options.onPause?.({ until, service });
    if (alreadyPaused) log.debug(`pause extended to ${seconds(waitMs)}`);
    else log.warn(`${service} asked us to slow down; pausing ${seconds(waitMs)}`);
  }
}
