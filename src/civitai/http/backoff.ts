/**
 * Retry timing for Civitai calls (docs/reliability.md §2.7): exponential backoff with full jitter,
 * Retry-After parsing, which statuses are transient, and the additive-increase /
 * multiplicative-decrease rule for the client's concurrency. Pure: callers pass `random` and `now`.
 */

/** Civitai's docs: "apply exponential backoff starting at ~1 second and cap at ~30 seconds". */
const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_CAP_MS = 30_000;

/** Transient statuses: the Cloudflare 52x family included, 409 excluded (Civitai's reads never conflict). */
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524]);

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.has(status);
}

export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
}

/** Upper bound of the wait before retry number `retry` (0 = the first retry). */
export function backoffCeiling(retry: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? BACKOFF_BASE_MS;
  const cap = options.capMs ?? BACKOFF_CAP_MS;
  // 2 ** 40 already dwarfs any cap; clamping the exponent avoids Infinity for absurd inputs.
  return Math.min(cap, base * 2 ** Math.min(Math.max(retry, 0), 40));
}

/**
 * Full jitter (AWS "Exponential Backoff and Jitter"): uniform in [0, ceiling). Spreads a crowd of
 * clients that failed together better than equal or partial jitter.
 */
export function backoffDelay(retry: number, random: () => number, options: BackoffOptions = {}): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffCeiling(retry, options));
}

/**
 * The longest Retry-After we take literally: a year and a day, past the longest --max-wait (365d),
 * so a longer one always stops the run. Beyond it a server's number (10^20 s) would make a retry
 * date JavaScript cannot represent (issue 9, docs/cases.md T7).
 */
export const MAX_RETRY_AFTER_MS = 366 * 24 * 60 * 60 * 1000;

/**
 * `Retry-After` as milliseconds from `nowMs`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * A date in the past gives 0; an absent or unparsable value gives undefined (so the caller uses its
 * own backoff instead of trusting garbage).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) {
    const seconds = Number(text);
    return Number.isFinite(seconds) ? Math.min(MAX_RETRY_AFTER_MS, Math.ceil(seconds * 1000)) : undefined;
  }
  // Only date-looking strings: Date.parse accepts things like "1" or "-5" as years.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - nowMs));
}

/** RFC 9110 treats Retry-After as a minimum, so wait the longer of it and our own backoff. */
export function retryWait(retry: number, retryAfterMs: number | undefined, random: () => number, options: BackoffOptions = {}): number {
  return Math.max(retryAfterMs ?? 0, backoffDelay(retry, random, options));
}

/** Concurrency after a 429: halve, never below 1. */
export function decreasedConcurrency(current: number): number {
  return Math.max(1, Math.floor(current / 2));
}

/** Concurrency after `recoverAfter` consecutive successes: one more, up to the configured maximum. */
export function increasedConcurrency(current: number, max: number): number {
  return Math.min(max, current + 1);
}
