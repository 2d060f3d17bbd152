import { formatBytes, formatDuration } from "../shared/format.ts";

export interface ProgressState {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

/** One line: `hashing ███░░ 42% 1.2 GiB/2.9 GiB 310 MiB/s ETA 6.0 s 3/8 files`. Pure, for tests. */
export function renderProgressLine(label: string, state: ProgressState, elapsedMs: number, width = 20): string {
  const ratio =
    state.bytesTotal > 0 ? Math.min(1, state.bytesDone / state.bytesTotal) : state.filesTotal > 0 ? state.filesDone / state.filesTotal : 1;
  const filled = Math.round(ratio * width);
  const bar = "█".repeat(filled) + "░".repeat(width - filled);
  const rate = elapsedMs > 0 ? (state.bytesDone / elapsedMs) * 1000 : 0;
  const etaMs = rate > 0 ? ((state.bytesTotal - state.bytesDone) / rate) * 1000 : Number.NaN;
  return `${label} ${bar} ${String(Math.floor(ratio * 100)).padStart(3)}% ${formatBytes(state.bytesDone)}/${formatBytes(state.bytesTotal)} ${formatBytes(rate)}/s ETA ${formatDuration(etaMs)} ${state.filesDone}/${state.filesTotal} files`;
}

export interface ProgressReporter {
  update(state: ProgressState): void;
  done(): void;
}

const NOOP: ProgressReporter = { update() {}, done() {} };

/** A bar on stderr only when stderr is a TTY and not quiet; otherwise nothing (logs stay clean in CI). */
export function createProgress(label: string, opts: { enabled: boolean; stream?: NodeJS.WriteStream }): ProgressReporter {
  const stream = opts.stream ?? process.stderr;
  if (!opts.enabled || !stream.isTTY) return NOOP;
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
