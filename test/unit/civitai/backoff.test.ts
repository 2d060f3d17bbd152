import { describe, expect, test } from "bun:test";
import {
  BACKOFF_CAP_MS,
  backoffCeiling,
  backoffDelay,
  decreasedConcurrency,
  increasedConcurrency,
  isRetryableStatus,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  retryWait,
} from "../../../src/civitai/http/backoff.ts";
import { seconds } from "../../../src/civitai/http/classify.ts";
import { serviceNameFor } from "../../../src/civitai/hosts.ts";

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

describe("T7: absurd waits stay representable", () => {
  test("T7: a Retry-After beyond a year is taken as a year and a day, past any --max-wait", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("99999999999999999999", now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter("Fri, 01 Jan 9999 00:00:00 GMT", now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter("2200000", now)).toBe(2_200_000_000);
    expect(new Date(now + MAX_RETRY_AFTER_MS).toISOString()).toBe("2027-01-02T00:00:00.000Z");
  });

  test("T7: long waits read in days, not millions of seconds", () => {
    expect(seconds(2_200_000_000)).toBe("25.5 days");
    expect(seconds(3 * 3_600_000)).toBe("3 h");
    expect(seconds(15 * 60_000)).toBe("15 min");
    expect(seconds(42_000)).toBe("42 s");
    expect(seconds(2_500)).toBe("2.5 s");
  });
});

describe("T21: messages name the server they are about", () => {
  test("T21: Civitai's own hosts are 'Civitai'; any other host is named as itself", () => {
    expect(serviceNameFor("https://civitai.com/api/v1/models?ids=1")).toBe("Civitai");
    expect(serviceNameFor("https://civitai.red/api/v1/model-versions/by-hash/AB")).toBe("Civitai");
    expect(serviceNameFor("http://civitai.com/api")).toBe("civitai.com");
    expect(serviceNameFor("http://127.0.0.1:8080/api")).toBe("127.0.0.1:8080");
    expect(serviceNameFor("https://mirror.example/civitai/api")).toBe("mirror.example");
    expect(serviceNameFor("https://civitai.com.evil.example/api")).toBe("civitai.com.evil.example");
  });
});
