/**
 * Escaping for untrusted text in the HTML gallery (docs/cases.md F2). Names, descriptions, tags
 * and file names come from Civitai, from sidecars and from the disk: all attacker-controlled. They
 * enter the page only as escaped text (element content or quoted attribute values) or as JSON in
 * a `<script type="application/json">` block that no `</script>` can close, and the page's script
 * only ever sets `textContent`. Controls and bidi overrides are shown visibly, as in Markdown.
 */
import { escapeControlKeepBreaks } from "../shared/format.ts";
import { toSingleLine } from "./md-escape.ts";

const HTML_SPECIAL: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text (already made visible) escaped for element content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => HTML_SPECIAL[ch]!);
}

/** One line of untrusted text, escaped; `fallback` (trusted) when blank or absent. */
export function htmlText(text: string | null | undefined, fallback = "—"): string {
  if (text === null || text === undefined) return fallback;
  const line = toSingleLine(text).trim();
  return line === "" ? fallback : escapeHtml(line);
}

/** Untrusted text that keeps its line breaks (shown with `white-space: pre-line`), escaped. */
export function htmlMultiline(text: string): string {
  return escapeHtml(escapeControlKeepBreaks(text.replace(/\r\n?|[\u2028\u2029]/g, "\n")));
}

/**
 * JSON for a `<script type="application/json">` block: `<`, `>` and `&` as `\u003c`… so no
 * `</script>` or `<!--` can appear, U+2028/2029 escaped too. JSON.parse reads it back unchanged.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
