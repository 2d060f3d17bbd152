import { describe, expect, test } from "bun:test";
import {
  BACKOFF_CAP_MS,
  backoffCeiling,
  backoffDelay,
  decreasedConcurrency,
  increasedConcurrency,
  isRetryableStatus,
  parseRetryAfter,
  retryWait,
} from "../../../src/civitai/http/backoff.ts";

describe("backoffCeiling", () => {
  test("doubles from 1 s and stops at the 30 s cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffCeiling(n))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });
  test("absurd inputs stay finite and bounded", () => {
    expect(backoffCeiling(10_000)).toBe(BACKOFF_CAP_MS);
    expect(backoffCeiling(-3)).toBe(1000);
  });
  test("honours custom base and cap", () => {
    expect(backoffCeiling(3, { baseMs: 10, capMs: 50 })).toBe(50);
    expect(backoffCeiling(1, { baseMs: 10, capMs: 50 })).toBe(20);
  });
});

describe("backoffDelay (full jitter)", () => {
  test("is random × ceiling", () => {
    expect(backoffDelay(0, () => 0.5)).toBe(500);
    expect(backoffDelay(3, () => 0.25)).toBe(2000);
    expect(backoffDelay(2, () => 0)).toBe(0);
  });
  test("stays below the ceiling and clamps a misbehaving random", () => {
    expect(backoffDelay(4, () => 0.999999)).toBeLessThan(16000);
    expect(backoffDelay(1, () => 7)).toBe(2000);
    expect(backoffDelay(1, () => -1)).toBe(0);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-08-20T12:00:00Z");
  test("delta-seconds", () => {
    expect(parseRetryAfter("2", now)).toBe(2000);
    expect(parseRetryAfter(" 3 ", now)).toBe(3000);
    expect(parseRetryAfter("0", now)).toBe(0);
    expect(parseRetryAfter("1.5", now)).toBe(1500);
    expect(parseRetryAfter("3600", now)).toBe(3_600_000);
  });
  test("HTTP-date, relative to now; a past date is 0", () => {
    expect(parseRetryAfter(new Date(now + 3_600_000).toUTCString(), now)).toBe(3_600_000);
    expect(parseRetryAfter("Thu, 20 Aug 2026 12:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Wed, 19 Aug 2026 12:00:00 GMT", now)).toBe(0);
  });
  test("absent or garbage gives undefined", () => {
    for (const v of [undefined, null, "", "soon", "-5", "1e3", "12:00"]) expect(parseRetryAfter(v, now)).toBeUndefined();
  });
});

describe("retryWait", () => {
  test("takes the longer of Retry-After and the own backoff", () => {
    expect(retryWait(0, 2000, () => 0.5)).toBe(2000);
    expect(retryWait(4, 2000, () => 0.5)).toBe(8000);
    expect(retryWait(1, undefined, () => 0.5)).toBe(1000);
  });
});

describe("isRetryableStatus", () => {
  test("transient statuses, Cloudflare 52x included", () => {
    for (const s of [408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524]) expect(isRetryableStatus(s)).toBe(true);
  });
  test("final statuses", () => {
    for (const s of [200, 301, 400, 401, 403, 404, 409, 410, 451, 501, 505, 525]) expect(isRetryableStatus(s)).toBe(false);
  });
});

describe("adaptive concurrency", () => {
  test("halves down to 1", () => {
    expect(decreasedConcurrency(4)).toBe(2);
    expect(decreasedConcurrency(3)).toBe(1);
    expect(decreasedConcurrency(1)).toBe(1);
  });
  test("grows by one up to the maximum", () => {
    expect(increasedConcurrency(1, 4)).toBe(2);
    expect(increasedConcurrency(4, 4)).toBe(4);
  });
});
