/**
 * Reading src/ as syntax, for the checks that hold the house rules (architecture.ts,
 * long-functions.ts). oxc-parser (the parser behind oxlint; knip brings the same version) reads
 * all of src/ in about a tenth of the time TypeScript's parser takes on a cold start, which keeps
 * `npm run test:unit` fast. Offsets are UTF-16, as in JS strings.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseSync, type Comment } from "oxc-parser";

/** An ESTree / TS-ESTree node as oxc gives it: a `type`, a span and named children. */
export interface AstNode {
  type: string;
  start: number;
  end: number;
  [key: string]: unknown;
}

export interface ParsedSource {
  file: string;
  text: string;
  program: AstNode;
  comments: Comment[];
  /** The comment that ends at an offset, for {@link leadingComments}. */
  commentEndingAt: Map<number, Comment>;
  /** 1-based line of a UTF-16 offset. */
  lineOf(offset: number): number;
}

export function parseSource(file: string, text: string): ParsedSource {
  const result = parseSync(file, text, { lang: "ts", sourceType: "module" });
  if (result.errors.length > 0) throw new Error(`${file}: ${result.errors[0]!.message}`);
  const lineStarts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lineStarts.push(i + 1);
  const lineOf = (offset: number): number => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const commentEndingAt = new Map(result.comments.map((c) => [c.end, c]));
  return { file, text, program: result.program as unknown as AstNode, comments: result.comments, commentEndingAt, lineOf };
}

function isNode(value: unknown): value is AstNode {
  return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string";
}

/** Visits every node depth-first, with the chain of its ancestors (nearest last). */
export function walk(node: AstNode, visit: (node: AstNode, ancestors: readonly AstNode[]) => void, ancestors: AstNode[] = []): void {
  visit(node, ancestors);
  ancestors.push(node);
  for (const [key, value] of Object.entries(node)) {
    if (key === "type" || key === "start" || key === "end") continue;
    if (Array.isArray(value)) {
      for (const item of value) if (isNode(item)) walk(item, visit, ancestors);
    } else if (isNode(value)) walk(value, visit, ancestors);
  }
  ancestors.pop();
}

/**
 * The comments right before `offset`: the last one ends there (white space between allowed),
 * the one before it ends right before that, and so on.
 */
export function leadingComments(src: ParsedSource, offset: number): Comment[] {
  const out: Comment[] = [];
  let at = offset;
  for (;;) {
    while (at > 0 && /\s/.test(src.text[at - 1]!)) at--;
    const comment = src.commentEndingAt.get(at);
    if (!comment) return out;
    out.unshift(comment);
    at = comment.start;
  }
}

/** Every .ts file under `dir`, parsed, keyed by its path relative to `dir` with `/` separators. */
export function parseTree(dir: string): Map<string, ParsedSource> {
  const files = new Map<string, ParsedSource>();
  const visit = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith(".ts")) {
        const key = relative(dir, path).replaceAll("\\", "/");
        files.set(key, parseSource(key, readFileSync(path, "utf8")));
      }
    }
  };
  visit(dir);
  return files;
}
