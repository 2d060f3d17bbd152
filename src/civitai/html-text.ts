import type { compile } from "html-to-text";
import { truncateText } from "../shared/format.ts";

/** Descriptions are for a glance in a report; the full text stays on the model page. */
export const DESCRIPTION_MAX_CHARS = 2000;

// html-to-text truncates over-long input itself but says so with console.warn; cut first, silently.
// Civitai descriptions are a few KB; this bound only guards CPU against hostile input.
const MAX_INPUT_CHARS = 200_000;

const PLAIN_HEADING = { options: { uppercase: false } } as const;

/**
 * Loaded and compiled on first use: most runs meet no new description (warm, offline, hash), and
 * loading html-to-text costs ~4 ms of every start, compiling ~10 ms. With require, not import:
 * the binary evaluates a module imported at start, even dynamically (Bun 1.4.5).
 */
let convert: ReturnType<typeof compile> | undefined;
const converter = (): ReturnType<typeof compile> => (convert ??= compileConverter());

const compileConverter = (): ReturnType<typeof compile> =>
  (require("html-to-text") as typeof import("html-to-text")).compile({
    wordwrap: false,
    limits: { maxDepth: 64, maxChildNodes: 2000, ellipsis: "" },
    selectors: [
      // Inline hrefs ("text [https://…]") are noise in a report cell; the page URL is in the record.
      { selector: "a", options: { ignoreHref: true } },
      { selector: "img", format: "skip" },
      { selector: "picture", format: "skip" },
      { selector: "video", format: "skip" },
      { selector: "iframe", format: "skip" },
      { selector: "script", format: "skip" },
      { selector: "style", format: "skip" },
      ...(["h1", "h2", "h3", "h4", "h5", "h6"] as const).map((selector) => ({ selector, ...PLAIN_HEADING })),
      { selector: "table", format: "dataTable", options: { uppercaseHeaderCells: false } },
    ],
  });

/** What html-to-text makes of `html`, before our cleaning (`finishText`). */
export function convertedText(html: string): string {
  return converter()(html);
}

/**
 * One token of a simple description: a run of text without markup, entities or the characters
 * html-to-text counts as whitespace and JavaScript does not (form feed, zero-width space); or a
 * paragraph tag, a bold or italic tag, or a line break, lowercase and without attributes.
 */
const SIMPLE_TOKEN_RE = /[^<>&\f\u200b]+|<\/?(?:p|strong|b|em|i)>|<br ?\/?>/y;
/**
 * At most this many tags: html-to-text stops at depth 64 and at 2,000 children per element
 * (`limits`), and 60 tags can reach neither, however they nest or fail to close.
 */
const SIMPLE_MAX_TAGS = 60;
const HTML_SPACE_RE = /[ \t\r\n]+/g;

/**
 * The text html-to-text would give for a simple description, or null when `html` is anything
 * else. Simple: text, paragraphs at the top level, bold and italic closed in the order opened,
 * line breaks anywhere (see SIMPLE_TOKEN_RE); a tag that closes something else (which the HTML
 * parser mends its own way) is not simple. Loading and compiling html-to-text costs ~35 ms of CPU
 * in the binary, more than looking up a few files costs in all, and short version notes are often
 * this simple. Each paragraph tag is a blank line and each <br> a line break (what html-to-text's
 * paragraph and line-break formats leave once `finishText` has collapsed the runs), and its
 * whitespace (space, tab, CR, LF) collapses to one space. The unit test checks it against
 * html-to-text on generated descriptions.
 */
export function simpleHtmlText(html: string): string | null {
  let out = "";
  let tags = 0;
  const open: string[] = [];
  SIMPLE_TOKEN_RE.lastIndex = 0;
  while (SIMPLE_TOKEN_RE.lastIndex < html.length) {
    const m = SIMPLE_TOKEN_RE.exec(html);
    if (!m) return null;
    const token = m[0];
    if (token[0] !== "<") {
      out += token.replace(HTML_SPACE_RE, " ");
      continue;
    }
    if (++tags > SIMPLE_MAX_TAGS) return null;
    if (token.startsWith("<br")) {
      out += "\n";
    } else if (token[1] !== "/") {
      const name = token.slice(1, -1);
      if (name === "p") {
        if (open.length > 0) return null;
        out += "\n\n";
      }
      open.push(name);
    } else {
      if (open.pop() !== token.slice(2, -1)) return null;
      if (token === "</p>") out += "\n\n";
    }
  }
  return open.length === 0 ? out : null;
}

// Control characters from decoded entities (&#27; …) must not survive into plain text; keep \n.
const CONTROL_EXCEPT_NEWLINE_RE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;

/**
 * Civitai HTML (descriptions) to plain text: no link targets, no images, runs of blanks collapsed,
 * at most one empty line between paragraphs, cut at `maxChars` (mark included) with "…".
 * Returns null for null/blank input or input that has no text.
 */
export function htmlToPlainText(html: string | null | undefined, maxChars = DESCRIPTION_MAX_CHARS): string | null {
  if (typeof html !== "string" || html.trim() === "") return null;
  const input = html.length > MAX_INPUT_CHARS ? html.slice(0, MAX_INPUT_CHARS) : html;
  let text: string;
  try {
    text = simpleHtmlText(input) ?? converter()(input);
  } catch {
    return null;
  }
  return finishText(text, maxChars);
}

/** Converted text to what records keep: no control characters, whitespace collapsed, cut; null when empty. */
export function finishText(text: string, maxChars = DESCRIPTION_MAX_CHARS): string | null {
  const cleaned = collapseWhitespace(text.replace(CONTROL_EXCEPT_NEWLINE_RE, " "));
  if (cleaned === "") return null;
  return truncateText(cleaned, maxChars);
}

function collapseWhitespace(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .replace(/[^\S\n]+/g, " ")
    .replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}
