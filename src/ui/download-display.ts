import { escapeControl, formatBytes, formatDuration } from "../shared/format.ts";
import { showRawBytes } from "../shared/fs-path.ts";
import { INVISIBLE_RE } from "../download/file-name.ts";
import type { PlanItem } from "../download/download-plan.ts";
import type { DownloadProgress } from "../download/download-task.ts";

/**
 * A name or message made safe for the terminal: control characters and the escaped raw bytes of a
 * name that is not valid UTF-8 both shown as `\xNN` (the form reports use), bidi controls and
 * invisible characters as `\uNNNN` (U+202E would reorder the rest of the line), never sent raw.
 */
export function printable(text: string): string {
  return escapeControl(showRawBytes(text)).replace(INVISIBLE_RE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export interface DownloadDisplay {
  start(item: PlanItem): void;
  progress(p: DownloadProgress): void;
  finish(item: PlanItem): void;
  /** Prints a log line without tearing the display. */
  log(print: () => void): void;
  done(): void;
}

/** On a TTY: an overall line (bytes, rate, ETA) and one line per active file, redrawn in place on stderr. */
export function createDownloadDisplay(items: readonly PlanItem[], enabled: boolean): DownloadDisplay {
  if (!enabled) return { start() {}, progress() {}, finish() {}, log: (p) => p(), done() {} };
  const stream = process.stderr;
  const total = items.reduce((n, i) => n + (i.size ?? 0), 0);
  const active = new Map<PlanItem["dest"], { item: PlanItem; received: number; total: number | null }>();
  const doneBytes = new Map<string, number>();
  const started = performance.now();
  let startBytes: number | null = null;
  let lines = 0;
  let last = 0;
  const clear = () => {
    if (lines > 0) stream.write(`\x1b[${lines}A\r\x1b[J`);
    lines = 0;
  };
  const draw = (force = false) => {
    const now = performance.now();
    if (!force && now - last < 150) return;
    last = now;
    let received = 0;
    for (const v of doneBytes.values()) received += v;
    for (const a of active.values()) received += a.received;
    startBytes ??= received;
    const elapsed = now - started;
    const rate = elapsed > 0 ? ((received - startBytes) / elapsed) * 1000 : 0;
    const eta = rate > 0 ? ((total - received) / rate) * 1000 : Number.NaN;
    const columns = (stream.columns || 100) - 1;
    const out = [
      `downloading ${formatBytes(received)}/${formatBytes(total)} ${formatBytes(rate)}/s ETA ${formatDuration(eta)} ${doneBytes.size}/${items.length} files`,
    ];
    for (const a of active.values()) {
      const pct = a.total ? `${Math.floor((a.received / a.total) * 100)}%` : formatBytes(a.received);
      out.push(`  ${pct.padStart(4)} ${printable(a.item.relPath)}`);
    }
    clear();
    stream.write(`${out.map((l) => l.slice(0, columns)).join("\n")}\n`);
    lines = out.length;
  };
  return {
    start(item) {
      active.set(item.dest, { item, received: 0, total: item.size });
      draw(true);
    },
    progress(p) {
      const a = active.get(p.task.dest);
      if (a) {
        a.received = p.received;
        a.total = p.total ?? a.total;
      }
      draw();
    },
    finish(item) {
      const a = active.get(item.dest);
      active.delete(item.dest);
      doneBytes.set(item.dest, a?.received ?? 0);
      draw(true);
    },
    log(print) {
      clear();
      print();
      draw(true);
    },
    done() {
      clear();
    },
  };
}
