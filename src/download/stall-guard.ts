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
 * never the whole transfer, so a slow but steady download is never killed (A13).
 */
export function stallGuard(ms: number, outer?: AbortSignal): StallGuard {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const kick = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort(new StallError(`no data for ${Math.round(ms / 1000)} s`));
    }, ms);
  };
  kick();
  const signal = outer ? AbortSignal.any([outer, controller.signal]) : controller.signal;
  return { signal, kick, stop: () => timer && clearTimeout(timer), stalled: () => stalled };
}
