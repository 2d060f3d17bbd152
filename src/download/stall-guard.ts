import { MAX_TIMER_MS } from "../shared/sleep.ts";
import { StallError } from "./download-errors.ts";

export interface StallGuard {
  /** Aborts the request when the stall timer fires (or when the run's own signal aborts). */
  signal: AbortSignal;
  /** Bytes arrived: the wait starts again. */
  kick(): void;
  stop(): void;
  /** True once the timer fired. */
  stalled(): boolean;
}

/**
 * The stall timer of one request: it covers the wait for headers and each wait for the next bytes,
 * never the whole transfer, so a slow but steady download is never killed (docs/cases.md A13).
 *
 * A kick only notes the time (it runs once per network chunk, thousands of times a second); the
 * timer, when it fires, checks how long the connection has really been idle and re-arms for the
 * rest. It is armed in slices below setTimeout's 2^31−1 ms limit: a longer delay fires at once, which
 * made `--stall-timeout 30d` fail every download immediately.
 */
export function stallGuard(ms: number, outer?: AbortSignal): StallGuard {
  const controller = new AbortController();
  let last = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  let stopped = false;
  const arm = (wait: number) => {
    timer = setTimeout(check, Math.min(Math.max(1, Math.ceil(wait)), MAX_TIMER_MS));
  };
  const check = () => {
    if (stopped) return;
    const idle = performance.now() - last;
    if (idle < ms) return arm(ms - idle);
    stalled = true;
    controller.abort(new StallError(`no data for ${Math.round(ms / 1000)} s`));
  };
  arm(ms);
  const signal = outer ? AbortSignal.any([outer, controller.signal]) : controller.signal;
  return {
    signal,
    kick: () => {
      last = performance.now();
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
    stalled: () => stalled,
  };
}
