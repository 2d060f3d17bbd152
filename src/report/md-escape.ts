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

// What has a meaning inside a line of CommonMark, GFM and GitHub (docs/reliability.md §4.4):
// `\` first (else an input `\|` would come out as an escaped backslash then a live pipe), then
// code spans, emphasis, links and images (`[` `]`: no `](` can form, so `(` `)` `!` need nothing),
// raw HTML and autolinks (`<` `>`), table cells (`|`), entities (`&`), strikethrough (`~`),
// GitHub math (`$`), URL autolinks (`:`, so no `https://`), e-mail autolinks and mentions (`@`),
// issue references (`#`). `_` only where it could open or close emphasis (not between two
// letters or digits, as in `sdxl_base_v1`), `.` only after `www` (GFM's `www.` autolinks).
// Characters that only mean something at the start of a line are escaped there (see mdText).
const MD_SPECIAL_RE = /[\\`*[\]<>|&~$:@#_.]/g;
const WORD_CHAR_RE = /[\p{L}\p{N}]/u;
const LINE_START_RE = /^(?:[-+=]|\d{1,9}(?=[.)]))/;

function escapeSpecial(ch: string, i: number, text: string): string {
  if (ch === "_") return WORD_CHAR_RE.test(text[i - 1] ?? "") && WORD_CHAR_RE.test(text[i + 1] ?? "") ? "_" : "\\_";
  if (ch === ".") return /www$/i.test(text.slice(Math.max(0, i - 3), i)) ? "\\." : ".";
  return `\\${ch}`;
}

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
 * (after {@link toSingleLine}), never as markup, wherever it stands in a line: at a line's start a
 * list marker (`-`, `+`, `1.`) or setext underline (`=`) is escaped too. Null, undefined and blank
 * text give `—`.
 */
export function mdText(text: string | null | undefined): string {
  if (text === null || text === undefined) return MD_EMPTY;
  const line = toSingleLine(text).trim();
  if (line === "") return MD_EMPTY;
  const escaped = line.replace(MD_SPECIAL_RE, escapeSpecial);
  const start = LINE_START_RE.exec(escaped);
  if (!start) return escaped;
  // `1.` → `1\.`; `-x` → `\-x`.
  return /\d/.test(start[0]) ? `${start[0]}\\${escaped.slice(start[0].length)}` : `\\${escaped}`;
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

/**
 * GitHub's anchor for a heading (github-slugger): the text in lower case, every character that is
 * not a letter, mark, digit, connector, space or hyphen dropped, spaces made hyphens. `Slugger`
 * adds GitHub's `-1`, `-2` for repeats.
 */
export function githubSlug(text: string): string {
  return toSingleLine(text)
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a document's headings, in order, as GitHub numbers repeated ones. */
export class Slugger {
  private readonly seen = new Map<string, number>();

  slug(text: string): string {
    const base = githubSlug(text);
    let slug = base;
    let n = this.seen.get(base) ?? 0;
    while (this.seen.has(slug)) slug = `${base}-${++n}`;
    if (slug !== base) this.seen.set(base, n);
    this.seen.set(slug, 0);
    return slug;
  }
}

/** A link to a heading of the same document: escaped text, a fragment from {@link githubSlug} (percent-encoded). */
export function mdAnchor(text: string, slug: string): string {
  return `[${mdText(text)}](#${encodeURIComponent(slug)})`;
}

/** One GFM table row from already-escaped cells. */
function mdRow(cells: readonly string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** A GFM table: header, delimiter row (`---`, or `--:` for the columns in `right`), body rows; every cell already escaped. */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string {
  const lines = [mdTableHead(header, right)];
  for (const row of rows) lines.push(mdRow(row));
  return lines.join("\n");
}

/** A GFM table's header and delimiter rows, for a table whose rows are written one at a time ({@link mdRow}). */
export function mdTableHead(header: readonly string[], right: readonly number[] = []): string {
  return `${mdRow(header)}\n${mdRow(header.map((_, i) => (right.includes(i) ? "--:" : "---")))}`;
}

export { mdRow };
