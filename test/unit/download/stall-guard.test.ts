import { describe, expect, test } from "bun:test";
import { stallGuard } from "../../../src/download/stall-guard.ts";

describe("stallGuard", () => {
  test("fires after the timeout without bytes, aborting its signal", async () => {
    const guard = stallGuard(40);
    await Bun.sleep(120);
    expect(guard.stalled()).toBe(true);
    expect(guard.signal.aborted).toBe(true);
    guard.stop();
  });

  test("each kick starts the wait again: steady bytes are never a stall", async () => {
    const guard = stallGuard(80);
    for (let i = 0; i < 6; i++) {
      await Bun.sleep(30);
      guard.kick();
    }
    expect(guard.stalled()).toBe(false);
    guard.stop();
  });

  test("T7: a timeout past 2^31−1 ms (30 days) does not fire at once (setTimeout overflows there)", async () => {
    const guard = stallGuard(30 * 24 * 3600 * 1000);
    await Bun.sleep(50);
    expect(guard.stalled()).toBe(false);
    expect(guard.signal.aborted).toBe(false);
    guard.stop();
  });

  test("stop ends the timer: no abort afterwards", async () => {
    const guard = stallGuard(30);
    guard.stop();
    await Bun.sleep(80);
    expect(guard.stalled()).toBe(false);
  });
});
