// C0 controls, DEL and C1 controls: ESC sequences in file or model names must not reach a TTY (CWE-150).
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/g;

/** Makes untrusted text safe to print: control characters become visible `\xNN` escapes. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL_RE, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s % 60);
  if (m < 60) return `${m}m${String(rest).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
