import { formatBytes, formatDuration } from "../shared/format.ts";
import { isTerminal } from "../shared/stdio.ts";

interface ProgressState {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  /** More files may still come (`hash` reads while the walk goes on): the totals are so far. */
  growing?: boolean;
}

/**
 * One line: `hashing ███░░ 42% 1.2 GiB/2.9 GiB 310 MiB/s ETA 6.0 s 3/8 files`. While the totals
 * still grow, they are marked `+` and no ETA is claimed: the bar would otherwise run backwards
 * as the walk finds more files. Pure (exported for tests).
 */
export function renderProgressLine(label: string, state: ProgressState, elapsedMs: number, width = 20): string {
  const ratio =
    state.bytesTotal > 0 ? Math.min(1, state.bytesDone / state.bytesTotal) : state.filesTotal > 0 ? state.filesDone / state.filesTotal : 1;
  const filled = Math.round(ratio * width);
  const bar = "█".repeat(filled) + "░".repeat(width - filled);
  const rate = elapsedMs > 0 ? (state.bytesDone / elapsedMs) * 1000 : 0;
  const more = state.growing ? "+" : "";
  const eta = state.growing
    ? "still finding files"
    : `ETA ${formatDuration(rate > 0 ? ((state.bytesTotal - state.bytesDone) / rate) * 1000 : Number.NaN)}`;
  return `${label} ${bar} ${String(Math.floor(ratio * 100)).padStart(3)}%${more} ${formatBytes(state.bytesDone)}/${formatBytes(state.bytesTotal)}${more} ${formatBytes(rate)}/s ${eta} ${state.filesDone}/${state.filesTotal}${more} files`;
}

export interface ProgressReporter {
  update(state: ProgressState): void;
  done(): void;
}

const NOOP: ProgressReporter = { update() {}, done() {} };

/** A bar on stderr only when stderr is a TTY and not quiet; otherwise nothing (logs stay clean in CI). */
export function createProgress(label: string, opts: { enabled: boolean; stream?: NodeJS.WriteStream }): ProgressReporter {
  // process.stderr is built only on a terminal (shared/stdio.ts).
  if (!opts.enabled || (!opts.stream && !isTerminal(2))) return NOOP;
  const stream = opts.stream ?? process.stderr;
  if (!stream.isTTY) return NOOP;
  const started = performance.now();
  let last = 0;
  let drawn = false;
  return {
    update(state) {
      const now = performance.now();
      if (now - last < 100 && state.filesDone < state.filesTotal) return;
      last = now;
      const columns = stream.columns || 100;
      stream.write(`\r${renderProgressLine(label, state, now - started).slice(0, columns - 1)}\x1b[K`);
      drawn = true;
    },
    done() {
      if (drawn) stream.write("\r\x1b[K");
    },
  };
}

/** A rate-limit pause as the count bar shows it: time left, and who asked. */
export interface PauseState {
  leftMs: number;
  by: string;
}

/** `2 s`, `59 s`, then formatDuration (`1m05s`, `3h20m`), then `25d11h`: a countdown. */
function countdown(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 48 * 3600) return formatDuration(s * 1000);
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

/**
 * One line for work counted in items, never bytes: `looking up ███░░ 42% 420/1000 files 35 files/s
 * ETA 17 s`. While a rate limit holds everything the pause comes first, so a narrow terminal cuts
 * the counts rather than the reason: `looking up · paused: rate limited by Civitai, resuming in
 * 42 s · 420/1000 files (42%)`. Pure, for tests.
 */
export function renderCountLine(label: string, done: number, total: number, elapsedMs: number, pause?: PauseState, width = 20): string {
  const ratio = total > 0 ? Math.min(1, done / total) : 1;
  const percent = Math.floor(ratio * 100);
  if (pause && pause.leftMs > 0) {
    return `${label} · paused: rate limited by ${pause.by}, resuming in ${countdown(pause.leftMs)} · ${done}/${total} files (${percent}%)`;
  }
  const filled = Math.round(ratio * width);
  const bar = "█".repeat(filled) + "░".repeat(width - filled);
  const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
  const etaMs = rate > 0 ? ((total - done) / rate) * 1000 : Number.NaN;
  return `${label} ${bar} ${String(percent).padStart(3)}% ${done}/${total} files ${rate.toFixed(1)} files/s ETA ${formatDuration(etaMs)}`;
}

export interface CountProgress {
  update(done: number, total: number): void;
  /** Everything waits until `until` (epoch ms) because `by` asked: shown with a countdown. */
  pause(until: number, by: string): void;
  done(): void;
}

const NOOP_COUNT: CountProgress = { update() {}, pause() {}, done() {} };

/**
 * A bar counting files on stderr, only when stderr is a TTY and not quiet. While paused it redraws
 * every second so the countdown moves even though no file finishes.
 */
export function createCountProgress(
  label: string,
  opts: { enabled: boolean; stream?: NodeJS.WriteStream; /** Redraw period while paused; default 1 s. */ tickMs?: number },
): CountProgress {
  if (!opts.enabled || (!opts.stream && !isTerminal(2))) return NOOP_COUNT;
  const stream = opts.stream ?? process.stderr;
  if (!stream.isTTY) return NOOP_COUNT;
  const started = performance.now();
  let state = { done: 0, total: 0 };
  let pausedUntil = 0;
  let pausedBy = "";
  let last = 0;
  let drawn = false;
  let finished = false;
  let ticker: ReturnType<typeof setInterval> | undefined;
  const draw = () => {
    if (finished) return;
    const left = pausedUntil - Date.now();
    const pause = left > 0 ? { leftMs: left, by: pausedBy } : undefined;
    const columns = stream.columns || 100;
    const line = renderCountLine(label, state.done, state.total, performance.now() - started, pause);
    stream.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
    drawn = true;
    if (!pause && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
  return {
    update(done, total) {
      state = { done, total };
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      draw();
    },
    pause(until, by) {
      pausedUntil = until;
      pausedBy = by;
      // The pause is also logged: clear the bar so that line starts clean, then draw below it.
      if (drawn) stream.write("\r\x1b[K");
      setTimeout(draw, 20).unref?.();
      if (!ticker) {
        ticker = setInterval(draw, opts.tickMs ?? 1000);
        ticker.unref?.();
      }
    },
    done() {
      finished = true;
      if (ticker) clearInterval(ticker);
      ticker = undefined;
      if (drawn) stream.write("\r\x1b[K");
      drawn = false;
    },
  };
}
