/**
 * The checker behind test/unit/docs-citations.test.ts: every citation of a case or a section in
 * src/ and test/ must resolve to a heading in docs/. The citation syntax it enforces is written
 * down at the top of docs/cases.md ("How to cite"); this file is its one implementation.
 *
 * Only comments and test titles are read as prose: a string such as `'=HYPERLINK(…&A1)'` or the
 * dtype `"F4"` is data, never a citation. So the source is first split into comments and string
 * literals by a small lexer (strings, templates with `${}`, regex literals), which is what keeps
 * `//` inside a URL string or a regex from being taken for a comment.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

export interface Piece {
  kind: "comment" | "string";
  /** The raw source text of the piece (without quotes for strings), offsets as in the file. */
  text: string;
  start: number;
  /** A string that is the first argument of test(), it(), describe() or a curried test.each()(). */
  title: boolean;
}

/** After these words a `/` starts a regex literal, not a division. */
const REGEX_AFTER_WORDS = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);
/** Code right before a test title: `test(`, `describe.skip(`, `test.each([…])(`, `test.skipIf(x)(`. */
const TITLE_BEFORE = /(?:\b(?:test|it|describe)(?:\s*\.\s*\w+)*|\))\s*\(\s*$/;

/** `[A-Za-z0-9_$]`, or any non-ASCII character (identifiers may hold letters of any script). */
function isWordChar(code: number): boolean {
  return (
    (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 95 || code === 36 || code > 127
  );
}

/**
 * Splits TypeScript/JavaScript source into comments and string literals (template chunks
 * separately). One pass with a stack of open template expressions; everything else is code.
 * Long because it is one state machine: splitting it would scatter the shared cursor.
 */
export function splitSource(src: string, detectTitles = false): Piece[] {
  const pieces: Piece[] = [];
  const templates: number[] = []; // brace depth inside each open `${`
  let i = 0;
  let codeFrom = 0;
  let prev = ""; // last significant code character
  let prevWord = "";
  const push = (kind: Piece["kind"], start: number, end: number, title = false) => {
    pieces.push({ kind, text: src.slice(start, end), start, title });
  };
  // The last 200 characters of code are plenty to see `test.each(…)(` and keep the regex cheap.
  const isTitle = () => detectTitles && TITLE_BEFORE.test(src.slice(Math.max(codeFrom, i - 200), i));
  // Reads one template chunk from i (just after the backtick or the `}` of `${}`) to the next `${` or the end.
  const templateChunk = (title: boolean): void => {
    const start = i;
    while (i < src.length) {
      const c = src[i];
      if (c === "\\") i += 2;
      else if (c === "`") {
        push("string", start, i, title);
        i++;
        prev = "`";
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        push("string", start, i, title);
        i += 2;
        templates.push(0);
        prev = "{";
        return;
      } else i++;
    }
    push("string", start, i, title);
  };
  while (i < src.length) {
    const c = src[i]!;
    const next = src[i + 1];
    if (c === "/" && next === "/") {
      const end = src.indexOf("\n", i);
      const stop = end === -1 ? src.length : end;
      push("comment", i, stop);
      i = stop;
      codeFrom = i;
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end === -1 ? src.length : end + 2;
      push("comment", i, stop);
      i = stop;
      codeFrom = i;
    } else if (c === '"' || c === "'") {
      const title = isTitle();
      const start = ++i;
      while (i < src.length && src[i] !== c && src[i] !== "\n") i += src[i] === "\\" ? 2 : 1;
      push("string", start, i, title);
      i++;
      prev = c;
      codeFrom = i;
    } else if (c === "`") {
      const title = isTitle();
      i++;
      templateChunk(title);
      codeFrom = i;
    } else if (c === "/") {
      const regexAllowed = prev === "" || "(,=:[!&|?{};+-*%<>~^}".includes(prev) || REGEX_AFTER_WORDS.has(prevWord);
      i++;
      if (regexAllowed) {
        let inClass = false;
        while (i < src.length && src[i] !== "\n") {
          const r = src[i];
          if (r === "\\") i++;
          else if (r === "[") inClass = true;
          else if (r === "]") inClass = false;
          else if (r === "/" && !inClass) break;
          i++;
        }
        i++;
        while (i < src.length && /[a-z]/i.test(src[i]!)) i++;
        prev = ")"; // a regex is a value: a `/` after it divides
        prevWord = "";
      } else {
        prev = "/";
        prevWord = "";
      }
    } else if (c === "{" && templates.length > 0) {
      templates[templates.length - 1]!++;
      prev = c;
      prevWord = "";
      i++;
    } else if (c === "}" && templates.length > 0 && templates[templates.length - 1] === 0) {
      templates.pop();
      i++;
      templateChunk(false);
      codeFrom = i;
    } else {
      if (c === "}" && templates.length > 0) templates[templates.length - 1]!--;
      if (isWordChar(src.charCodeAt(i))) {
        let j = i + 1;
        while (j < src.length && isWordChar(src.charCodeAt(j))) j++;
        prevWord = src.slice(i, j);
        prev = "a";
        i = j;
        continue;
      }
      if (c !== " " && c !== "\n" && c !== "\t" && c !== "\r") {
        prev = c;
        prevWord = "";
      }
      i++;
    }
  }
  return pieces;
}

/** Headings of each doc: `§1.4` / `1.4` section numbers and case IDs such as `A12`. */
export type DocAnchors = Map<string, Set<string>>;

export function anchorsOfMarkdown(text: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const heading = /^#{1,6}\s+(.*)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const section = /^§?\s*(\d+(?:\.\d+)*)(?=[.\s:]|$)/.exec(heading)?.[1];
    if (section !== undefined) anchors.add(`§${section}`);
    const caseId = /^([A-Z]\d{1,2})(?=[\s.:]|$)/.exec(heading)?.[1];
    if (caseId !== undefined) anchors.add(caseId);
  }
  return anchors;
}

/** `docs/<name>.md` → its anchors, for every Markdown file directly in `docsDir`. */
function loadDocAnchors(docsDir: string): DocAnchors {
  const docs: DocAnchors = new Map();
  for (const name of readdirSync(docsDir)) {
    if (name.endsWith(".md")) docs.set(`docs/${name}`, anchorsOfMarkdown(readFileSync(join(docsDir, name), "utf8")));
  }
  return docs;
}

interface CitationProblem {
  file: string;
  line: number;
  message: string;
}

/** One anchor a citation resolved to, e.g. `{ doc: "docs/cases.md", anchor: "A12" }`. */
interface Citation {
  file: string;
  line: number;
  doc: string;
  anchor: string;
}

export interface CheckResult {
  problems: CitationProblem[];
  citations: Citation[];
}

/** Where one piece's findings go; `at` is an offset in the piece. */
interface Sink {
  problem(at: number, message: string): void;
  cited(at: number, doc: string, anchor: string): void;
}

const ID = String.raw`[A-FT][1-9]\d?`;
const SECTION = String.raw`§\d+(?:\.\d+)*`;
const ANCHOR = `(?:${SECTION}|${ID})`;
/**
 * A Markdown path and the anchors after it: `docs/x.md §1.2, §3`, `docs/cases.md A1–A14`, `B5/B6`,
 * `D6 and F2`. A path without anchors is a mention, not a citation (`ggml docs/gguf.md`).
 */
const CITATION = new RegExp(
  String.raw`(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md)\`?((?:\s+${ANCHOR}(?:\s*[–-]\s*(?:${ANCHOR}|\d+(?:\.\d+)*))?(?:(?:\s*[,/]\s*|\s+and\s+)${ANCHOR}(?:\s*[–-]\s*(?:${ANCHOR}|\d+(?:\.\d+)*))?)*)?)`,
  "g",
);
const ANCHOR_OR_RANGE = new RegExp(String.raw`(${ANCHOR})(?:\s*[–-]\s*(${ANCHOR}|\d+(?:\.\d+)*))?`, "g");
/** `RFC 9110 §10.2.3`: a section of an outside standard. */
const RFC_BEFORE = /RFC\s*\d+\s*$/;
/** `(A11)`, `(pip, A4)`, `(E1–E4)`, `(C6, C7, C9)`: case IDs alone at the end of parentheses. */
const PAREN_IDS = new RegExp(String.raw`\((?:[^()]*?[,;]\s+)??(${ID}(?:\s*(?:,|/|–|-)\s*${ID})*)\s*\)`, "g");
/** `cases D6 and F2`, `case A12`. */
const CASE_WORD_IDS = new RegExp(String.raw`\bcases?\s+(${ID}(?:(?:\s*[,/–-]\s*|\s+and\s+)${ID})*)\b`, "g");
/**
 * A test title (or `test.each` row name) that starts with case IDs and a colon: `A12: …`,
 * `A7/F6: …`, `A2 (in-process): …`. The colon is what tells `F4: …` the case from `F4 with …` the dtype.
 */
const LEADING_IDS = new RegExp(String.raw`^\s*(${ID}(?:\s*/\s*${ID})*)(?:\s*\([^()]*\))?:`);

/** Code spans in prose (`` `F4` ``) are blanked, length kept, so their text is never a citation. */
function blankCodeSpans(text: string): string {
  // The ` * ` that starts each line of a block comment is not prose: a list may run across lines.
  text = text.replace(/\n[ \t]*\*(?!\/)/g, (m) => `\n${" ".repeat(m.length - 1)}`);
  return text.replace(/(`+)([^`\n]|[^`\n][\s\S]*?[^`])\1(?!`)/g, (m) => " ".repeat(m.length));
}

/** offset → 1-based line number, by binary search over the offsets of the newlines. */
function lineFinder(src: string): (offset: number) => number {
  const newlines: number[] = [];
  for (let k = src.indexOf("\n"); k !== -1; k = src.indexOf("\n", k + 1)) newlines.push(k);
  return (offset) => {
    let lo = 0;
    let hi = newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (newlines[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

function splitRange(anchor: string, end: string | undefined): string[] {
  if (end === undefined) return [anchor];
  // A range may repeat the section sign at its end or not: both ends are checked.
  return [anchor, anchor.startsWith("§") && !end.startsWith("§") ? `§${end}` : end];
}

/** Checks one piece of prose (a comment or a test title). */
function checkProse(text: string, docs: DocAnchors, sink: Sink): void {
  const prose = blankCodeSpans(text);
  const cited = new Set<number>(); // offsets of anchors consumed by a docs/ citation
  for (const m of prose.matchAll(CITATION)) {
    const list = m[2] ?? "";
    if (list === "") continue;
    const listStart = m.index + m[0].length - list.length;
    const anchors = m[1]!.startsWith("docs/") && !m[1]!.slice(5).includes("/") ? docs.get(m[1]!) : undefined;
    const ranges = [...list.matchAll(ANCHOR_OR_RANGE)];
    for (const a of ranges) for (const k of [a.index, a.index + a[0].length - (a[2]?.length ?? 0)]) cited.add(listStart + k);
    if (anchors === undefined) {
      const why = m[1]!.startsWith("docs/")
        ? `${m[1]} does not exist`
        : `"${m[0].trim()}" cites ${m[1]}, which is not in docs/: cite the docs/ page instead`;
      sink.problem(m.index, why);
      continue;
    }
    for (const a of ranges) {
      for (const anchor of splitRange(a[1]!, a[2])) {
        if (anchors.has(anchor)) sink.cited(listStart + a.index, m[1]!, anchor);
        else sink.problem(listStart + a.index, `${m[1]} has no heading "${anchor}"`);
      }
    }
  }
  for (const m of prose.matchAll(/§\s*\d+(?:\.\d+)*/g)) {
    if (cited.has(m.index) || RFC_BEFORE.test(prose.slice(0, m.index))) continue;
    sink.problem(m.index, `"${m[0]}" names no document: write docs/<file>.md ${m[0]}`);
  }
  for (const pattern of [PAREN_IDS, CASE_WORD_IDS]) {
    for (const m of prose.matchAll(pattern)) {
      const listAt = m.index + m[0].lastIndexOf(m[1]!);
      const bare = [...m[1]!.matchAll(new RegExp(ID, "g"))].filter((id) => !cited.has(listAt + id.index));
      if (bare.length > 0) sink.problem(listAt, `case IDs without their document: write docs/cases.md ${m[1]}`);
    }
  }
}

function checkLeadingIds(text: string, docs: DocAnchors, sink: Sink): void {
  const m = LEADING_IDS.exec(text);
  if (!m) return;
  const cases = docs.get("docs/cases.md") ?? new Set<string>();
  for (const id of m[1]!.split("/").map((s) => s.trim())) {
    const at = m.index + m[0].indexOf(id);
    if (cases.has(id)) sink.cited(at, "docs/cases.md", id);
    else sink.problem(at, `test title cites "${id}", which docs/cases.md has no heading for`);
  }
}

/** Every citation in one source file, resolved or not; `file` is only used in the report. */
export function checkSource(file: string, src: string, docs: DocAnchors, isTestFile: boolean): CheckResult {
  const result: CheckResult = { problems: [], citations: [] };
  const lineAt = lineFinder(src);
  for (const piece of splitSource(src, isTestFile)) {
    const sink: Sink = {
      problem: (at, message) => result.problems.push({ file, line: lineAt(piece.start + at), message }),
      cited: (at, doc, anchor) => result.citations.push({ file, line: lineAt(piece.start + at), doc, anchor }),
    };
    if (piece.kind === "comment" || piece.title) checkProse(piece.text, docs, sink);
    if (piece.kind === "string" && isTestFile) checkLeadingIds(piece.text, docs, sink);
  }
  return result;
}

const SOURCE_FILE = /\.(?:[cm]?[jt]s|tsx)$/;

/** Source files under `dirs` (relative to `root`), fixtures left out: they are data. */
function sourceFiles(root: string, dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "fixtures" && entry.name !== "node_modules") walk(path);
      } else if (entry.isFile() && SOURCE_FILE.test(entry.name)) out.push(relative(root, path));
    }
  };
  for (const dir of dirs) walk(join(root, dir));
  return out.sort();
}

/** Checks every source file of `dirs` against the docs in `<root>/docs`. */
export function checkTree(root: string, dirs: readonly string[] = ["src", "test"]): CheckResult {
  const docs = loadDocAnchors(join(root, "docs"));
  const result: CheckResult = { problems: [], citations: [] };
  for (const file of sourceFiles(root, dirs)) {
    const one = checkSource(file, readFileSync(join(root, file), "utf8"), docs, file.startsWith("test/"));
    result.problems.push(...one.problems);
    result.citations.push(...one.citations);
  }
  return result;
}
