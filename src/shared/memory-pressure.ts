/**
 * A loop over many records (a 100,000-record inventory read, rendered, written) makes garbage at
 * every step, and the engine lets it pile up: hundreds of MB before it collects on its own, more
 * than the records that are still live (issue 11, target 2: ≤ 300 MB for 100,000 records).
 * Measured on that inventory (`bun run bench scale-report`, JSON / CSV / Markdown peak):
 * - no collection of ours: 378 / 363 / 243 MB;
 * - a full collection every 1,000 records: half the speed; every 10,000: 246 MB for JSON;
 * - a full collection whenever resident memory had grown by 64 MB: 270 / 281 MB (freed memory is
 *   not given back, so the floor creeps up);
 * - a minor collection every 500 records and a full one every 5,000: 185 / 210 / 230 MB, for
 *   ~15 % more CPU. That is what this does; a loop shorter than 500 items pays nothing.
 */

const MINOR_EVERY = 500;
const FULL_EVERY = 5000;

/**
 * A function to call once per item of a long loop; it collects as said above. `full: false` for a
 * loop that runs beside a large live heap (a scan of 100,000 files holds ~130 MB of walk state
 * while it writes records): a full collection walks all of it every time, and at 100,000 files
 * that was half the scan's CPU (`bun --cpu-prof` of bench/scale-breakdown.ts). Minor collections
 * only visit what is new.
 */
export function memoryPressure(options: { full?: boolean } = {}): () => void {
  const bun = (globalThis as { Bun?: { gc(full: boolean): void } }).Bun;
  const full = options.full !== false;
  let calls = 0;
  return () => {
    if (++calls % MINOR_EVERY === 0) bun?.gc(full && calls % FULL_EVERY === 0);
  };
}

/**
 * The items of a long list, collecting between them as memoryPressure does: for a renderer's loop
 * over a list it already holds (the Markdown report's updates, gone files and copies). Without it,
 * the rows' garbage after the records of a 100,000-record inventory took the report from ~190 to
 * 230–265 MB peak.
 */
export function* collected<T>(items: Iterable<T>): Generator<T> {
  const collect = memoryPressure();
  for (const item of items) {
    yield item;
    collect();
  }
}

/**
 * For the end of each part of a long job whose garbage lives long enough to be old (scan's lookup
 * parts): a full collection, but only once resident memory has grown by `growthBytes` since the
 * last one. A full collection walks the whole live heap (~0.3 s beside a 100,000-file scan's walk
 * state), so one per part cost 6 s of a 24 s warm scan; none at all let it reach 851 MiB.
 */
export function collectWhenGrown(growthBytes: number): () => void {
  const bun = (globalThis as { Bun?: { gc(full: boolean): void } }).Bun;
  let floor = process.memoryUsage.rss();
  return () => {
    if (process.memoryUsage.rss() - floor < growthBytes) return;
    bun?.gc(true);
    floor = process.memoryUsage.rss();
  };
}
