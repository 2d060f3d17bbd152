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

// Control characters from decoded entities (&#27; …) must not survive into plain text; keep \n.
const CONTROL_EXCEPT_NEWLINE_RE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;

/**
 * Civitai HTML (descriptions) to plain text: no link targets, no images, runs of blanks collapsed,
 * at most one empty line between paragraphs, cut at `maxChars` (mark included) with "…".
 * Returns null for null/blank input or input that has no text.
 */
export function htmlToPlainText(html: string | null | undefined, maxChars = DESCRIPTION_MAX_CHARS): string | null {
  if (typeof html !== "string" || html.trim() === "") return null;
  let text: string;
  try {
    text = converter()(html.length > MAX_INPUT_CHARS ? html.slice(0, MAX_INPUT_CHARS) : html);
  } catch {
    return null;
  }
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
