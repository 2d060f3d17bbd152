import { afterEach, describe, expect, jest, test } from "bun:test";
import { stallGuard } from "../../../src/download/stall-guard.ts";

// Bun's fake timers drive setTimeout, Date.now and performance.now: the waits below take no real time.
afterEach(() => {
  jest.useRealTimers();
});

describe("stallGuard", () => {
  test("fires after the timeout without bytes, aborting its signal", () => {
    jest.useFakeTimers();
    const guard = stallGuard(40);
    jest.advanceTimersByTime(39);
    expect(guard.stalled()).toBe(false);
    jest.advanceTimersByTime(81);
    expect(guard.stalled()).toBe(true);
    expect(guard.signal.aborted).toBe(true);
    guard.stop();
  });

  test("each kick starts the wait again: steady bytes are never a stall", () => {
    jest.useFakeTimers();
    const guard = stallGuard(80);
    for (let i = 0; i < 6; i++) {
      jest.advanceTimersByTime(30);
      guard.kick();
    }
    expect(guard.stalled()).toBe(false);
    // …and once the bytes stop, the stall comes a full timeout after the last one.
    jest.advanceTimersByTime(79);
    expect(guard.stalled()).toBe(false);
    jest.advanceTimersByTime(2);
    expect(guard.stalled()).toBe(true);
    guard.stop();
  });

  test("T7: a timeout past 2^31−1 ms (30 days) does not fire at once (setTimeout overflows there)", async () => {
    // Real timers: the overflow is the runtime's own behaviour.
    const guard = stallGuard(30 * 24 * 3600 * 1000);
    await Bun.sleep(50);
    expect(guard.stalled()).toBe(false);
    expect(guard.signal.aborted).toBe(false);
    guard.stop();
  });

  test("T7: a 30-day timeout fires after 30 days, not before", () => {
    jest.useFakeTimers();
    const day = 24 * 3600 * 1000;
    const guard = stallGuard(30 * day);
    jest.advanceTimersByTime(30 * day - 1000);
    expect(guard.stalled()).toBe(false);
    jest.advanceTimersByTime(2000);
    expect(guard.stalled()).toBe(true);
    guard.stop();
  });

  test("stop ends the timer: no abort afterwards", () => {
    jest.useFakeTimers();
    const guard = stallGuard(30);
    guard.stop();
    jest.advanceTimersByTime(80);
    expect(guard.stalled()).toBe(false);
    expect(guard.signal.aborted).toBe(false);
  });
});
