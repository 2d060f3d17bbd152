/**
 * Where a JSON text first goes wrong, for a config error a person can fix: Bun's JSON.parse says
 * what is wrong but not where. Pure, and iterative (an explicit stack), so a hostile file nested a
 * million deep cannot overflow the call stack here.
 */

export interface JsonSyntaxError {
  /** 1-based, counted in lines (\n) and UTF-16 units, as editors show them. */
  line: number;
  column: number;
  /** `unexpected ","`, `unexpected end of file`, … */
  what: string;
}

type Expect = "value" | "valueOrClose" | "key" | "keyOrClose" | "colon" | "commaOrClose" | "end";

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const ESCAPES = new Set(['"', "\\", "/", "b", "f", "n", "r", "t"]);
const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4_RE = /^[0-9a-fA-F]{4}$/;

/** End offset of the string starting at `i` (a `"`), or the negated offset + 1 of its first error. */
function scanString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const ch = text[j]!;
    if (ch === '"') return j + 1;
    if (ch.charCodeAt(0) < 0x20) return -(j + 1);
    if (ch !== "\\") continue;
    const next = text[j + 1];
    if (next === "u") {
      if (!HEX4_RE.test(text.slice(j + 2, j + 6))) return -(j + 2);
      j += 5;
    } else if (next !== undefined && ESCAPES.has(next)) j += 1;
    else return -(j + 2);
  }
  return -(text.length + 1);
}

/** End offset of the number, literal or string value at `i`, or the negated offset + 1 of its error. */
function scanScalar(text: string, i: number): number {
  const c = text[i]!;
  if (c === '"') return scanString(text, i);
  for (const literal of ["true", "false", "null"]) if (text.startsWith(literal, i)) return i + literal.length;
  NUMBER_RE.lastIndex = i;
  const m = NUMBER_RE.exec(text);
  return m && m[0].length > 0 ? i + m[0].length : -(i + 1);
}

/** Offset of the first syntax error, `text.length` for a premature end, or -1 when the text is JSON. */
function jsonErrorOffset(text: string): number {
  const stack: string[] = [];
  let expect = "value" as Expect;
  let i = 0;
  const afterValue = () => {
    expect = stack.length > 0 ? "commaOrClose" : "end";
  };
  for (;;) {
    while (i < text.length && WHITESPACE.has(text[i]!)) i++;
    if (i >= text.length) return expect === "end" ? -1 : text.length;
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (expect === "end") return i;
    if (expect === "colon") {
      if (c !== ":") return i;
      expect = "value";
      i++;
    } else if (expect === "commaOrClose") {
      if (c === ",") expect = top === "{" ? "key" : "value";
      else if ((c === "}" && top === "{") || (c === "]" && top === "[")) {
        stack.pop();
        afterValue();
      } else return i;
      i++;
    } else if (expect === "key" || expect === "keyOrClose") {
      if (c === "}" && expect === "keyOrClose") {
        stack.pop();
        afterValue();
        i++;
      } else if (c === '"') {
        const end = scanString(text, i);
        if (end < 0) return -end - 1;
        i = end;
        expect = "colon";
      } else return i;
    } else if (c === "]" && expect === "valueOrClose") {
      stack.pop();
      afterValue();
      i++;
    } else if (c === "{" || c === "[") {
      stack.push(c);
      expect = c === "{" ? "keyOrClose" : "valueOrClose";
      i++;
    } else {
      const end = scanScalar(text, i);
      if (end < 0) return -end - 1;
      i = end;
      afterValue();
    }
  }
}

/** Line, column and a word about the first syntax error; null when `text` is valid JSON. */
export function locateJsonError(text: string): JsonSyntaxError | null {
  const offset = jsonErrorOffset(text);
  if (offset < 0) return null;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  const ch = text[offset];
  const what = ch === undefined ? "unexpected end of file" : `unexpected ${JSON.stringify(ch)}`;
  return { line, column, what };
}
