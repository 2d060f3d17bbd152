/**
 * Escaping for untrusted text in Markdown reports (docs/reliability.md §4.4, docs/cases.md D6 and F2).
 *
 * Everything that reaches a report from Civitai or from a file name is attacker-controlled, and
 * GitHub, VS Code and markdown-it all render it: one unescaped `|` adds a table column, one `[`…`](`
 * makes a link, one `<` may open raw HTML. So untrusted text only ever enters through these
 * functions, and links only through {@link mdLink}, which accepts our own civitai.com URLs alone.
 */

import { escapeControl } from "../shared/format.ts";

/** Empty cells and absent values. */
export const MD_EMPTY = "—";

// CR, LF, CRLF, and the Unicode line/paragraph separators: a newline would end a table row or
// start a new block, so a line break inside a name becomes a space.
const LINE_BREAK_RE = /\r\n|[\r\n\u2028\u2029]/g;

// The docs/reliability.md §4.4 set `` \ ` * _ { } [ ] ( ) # + - . ! | < > `` plus what GFM and GitHub also give meaning to:
// `&` (entities), `~` (strikethrough), `$` (GitHub math), `:` and `@` (GFM autolinks of bare URLs and
// e-mail addresses, which would otherwise be the only links we did not build). Backslash first:
// escaping `|` alone would let an input `\|` through as `\\|`, an escaped backslash then a live pipe.
const MD_SPECIAL_RE = /[\\`*_{}[\]()#+\-.!|<>&~$:@]/g;

/** A strict check of the links we build: https, host exactly civitai.com, a plain path and query. */
const CIVITAI_URL_RE = /^https:\/\/civitai\.com\/[A-Za-z0-9\-._~/?=&%]*$/;

/**
 * One line of plain text: line breaks and tabs to a space; other C0, DEL and C1 controls, the bidi
 * controls that reorder what a reader sees (Trojan Source, CVE-2021-42574) and the raw bytes of a
 * name that is not UTF-8 shown as `\x1b`, `\u202e`, `\xff` (decision for D6: visible rather than
 * removed, so a hostile name is noticed, as the terminal shows it).
 */
export function toSingleLine(text: string): string {
  return escapeControl(text.replace(LINE_BREAK_RE, " ").replace(/\t/g, " "));
}

/**
 * Untrusted text for inline Markdown and GFM table cells: renders as exactly the input's characters
 * (after {@link toSingleLine}), never as markup. Null, undefined and blank text give `—`.
 */
export function mdText(text: string | null | undefined): string {
  if (text === null || text === undefined) return MD_EMPTY;
  const line = toSingleLine(text).trim();
  if (line === "") return MD_EMPTY;
  return line.replace(MD_SPECIAL_RE, (ch) => `\\${ch}`);
}

/**
 * Untrusted text as an inline code span, for hashes and paths outside tables (inside a GFM table a
 * `|` would still split the cell: use {@link mdText} there). Code spans take no backslash escapes, so
 * backticks are replaced by `'` (the only character that could close the span) and the text is
 * made one line. Blank text gives `—`.
 */
export function mdCode(text: string | null | undefined): string {
  if (text === null || text === undefined) return MD_EMPTY;
  const line = toSingleLine(text).replace(/`/g, "'");
  if (line.trim() === "") return MD_EMPTY;
  // CommonMark strips one space on each side when both are present: pad so the text shows as is.
  const padded = line.startsWith(" ") && line.endsWith(" ") ? ` ${line} ` : line;
  return `\`${padded}\``;
}

/** True for a URL we may link to: built by us on https://civitai.com, nothing else. */
export function isCivitaiUrl(url: unknown): url is string {
  return typeof url === "string" && url.length <= 2048 && CIVITAI_URL_RE.test(url);
}

/**
 * A link whose text is escaped and whose target passed {@link isCivitaiUrl}; otherwise the escaped
 * text alone (or `—` when `textWhenNoLink` is absent), so a bad URL is never printed as a link.
 */
export function mdLink(text: string, url: string | null | undefined, textWhenNoLink: string = MD_EMPTY): string {
  if (!isCivitaiUrl(url)) return textWhenNoLink;
  return `[${mdText(text)}](${url})`;
}

/** One GFM table row from already-escaped cells. */
function mdRow(cells: readonly string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** A GFM table: header, delimiter row, body rows; every cell already escaped. */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const lines = [mdRow(header), mdRow(header.map(() => "---"))];
  for (const row of rows) lines.push(mdRow(row));
  return lines.join("\n");
}
