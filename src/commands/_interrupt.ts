import { AppError, EXIT } from "../shared/errors.ts";

/**
 * Runs `fn` with a signal that Ctrl-C (or SIGTERM) aborts: in-flight requests and hash workers
 * stop, finished cache writes stay, and the run ends with exit 130 (143 for SIGTERM: 128 + the
 * signal, as shells and supervisors expect). A second Ctrl-C kills at once.
 */
export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    controller.abort(new AppError(`interrupted (${sig})`, { exitCode: sig === "SIGTERM" ? EXIT.terminated : EXIT.interrupted }));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await fn(controller.signal);
  } catch (error) {
    if (controller.signal.aborted) throw controller.signal.reason;
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
