/**
 * What a Redis server sends us, bounded before ioredis parses it. The shared cache may be any
 * server at the URL given (a broken proxy, something that is not Redis, a hostile host), and
 * ioredis's parser trusts it in two ways that cost the whole run:
 * - a reply of arrays nested a hundred thousand deep overflows the parser's recursion: a
 *   RangeError thrown from the socket's data event, printed with its stack, and the run exited 1;
 * - a bulk string declared at 2 GB is buffered as it comes: 1.5 GB of memory within the 3 s
 *   command timeout over loopback.
 * So the socket's data listeners (the parser's) are wrapped: a chunk the parser throws on, or more
 * than `budgetBytes` received since a reply last completed, closes the connection; the caller's
 * calls then fail as for a server that went away, and `onBad` gives the reason for the one warning.
 *
 * It also keeps the parser from holding the process open. redis-parser copies a bulk string that
 * spans three socket reads or more (an entry over ~130 KB: a model with a few hundred versions)
 * into a pool it shrinks with its own `setInterval` every 50 ms until the pool is under 50 KB:
 * a timer that keeps the event loop alive, so a run that read one such entry stayed up 1-4 s
 * after its last line. Timers made while the parser runs are unref'd: the pool still shrinks
 * while the run lasts, and the run ends when its work does.
 */
import type { Redis } from "ioredis";

/**
 * Far beyond one reply of ours: an MGET of 500 entries of a few KB each is a few MB, and even 500
 * models of 1,000 versions (~300 KB each) stay under it. A longer reply is not an answer to us.
 */
export const REPLY_BUDGET_BYTES = 128 * 1024 * 1024;

type DataListener = (chunk: Buffer) => void;

export function guardReplies(redis: Redis, budgetBytes: number, onBad: (reason: string) => void): void {
  // ioredis makes its parser's data listener in its connect handler and emits "connect" on the next
  // tick: the listener is there then, and no data has been read yet.
  redis.on("connect", () => {
    const stream = redis.stream;
    const listeners = stream.listeners("data") as DataListener[];
    stream.removeAllListeners("data");
    let received = 0;
    let stopped = false;
    const stop = (reason: string) => {
      if (stopped) return;
      stopped = true;
      onBad(reason);
      stream.destroy();
    };
    stream.on("data", (chunk: Buffer) => {
      if (stopped) return;
      received += chunk.length;
      if (received > budgetBytes) return stop(`an answer larger than ${Math.round(budgetBytes / 1048576)} MiB`);
      const waiting = redis.commandQueue.length;
      try {
        withUnrefIntervals(() => {
          for (const listener of listeners) listener.call(stream, chunk);
        });
      } catch (err) {
        return stop(`an answer that cannot be read: ${err instanceof Error ? err.message.split("\n")[0]!.slice(0, 200) : String(err)}`);
      }
      // A reply completed: what the parser still holds is at most this chunk's tail. Bytes no
      // command waits for (a server talking unasked) keep counting.
      if (redis.commandQueue.length < waiting) received = 0;
    });
  });
}

/** Runs `work` (synchronous) with every interval it starts unref'd: see the file's comment. */
function withUnrefIntervals(work: () => void): void {
  const original = globalThis.setInterval;
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    const timer = original(...args);
    timer.unref?.();
    return timer;
  }) as typeof setInterval;
  try {
    work();
  } finally {
    globalThis.setInterval = original;
  }
}
