/** setTimeout's largest delay (2^31 − 1 ms, ~24.8 days); a longer one fires at once with a warning. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Waits `ms` (any length), or rejects with the signal's reason when it aborts. Long waits are slept
 * in slices below the timer's limit: a longer setTimeout overflows, fires at once and prints a
 * TimeoutOverflowWarning, which turned a 30-day rate-limit wait into a busy loop.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const endsAt = Date.now() + Math.max(0, ms);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const arm = () => {
      const left = endsAt - Date.now();
      if (left <= 0) {
        signal?.removeEventListener("abort", onAbort);
        resolve();
        return;
      }
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    if (ms <= 0) timer = setTimeout(arm, 0);
    else arm();
  });
}
