/**
 * The checker behind test/unit/long-functions.test.ts: no function in src/ runs over
 * MAX_FUNCTION_LINES lines unless a comment right above it says why, starting "Long because".
 * A function is any function declaration, method, accessor, constructor, function expression or
 * arrow function; its lines run from its first line to its closing brace, nested functions
 * included. The comment is looked for in the comments just before the function or before the
 * statement, property or export that holds it (`const f = () => …`, `{ run() {…} }`).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

export const MAX_FUNCTION_LINES = 80;
const REASON_RE = /\bLong because\b/;

export interface FunctionSpan {
  /** The function's name, or how it is held (`const x`, `run`, `<anonymous>`). */
  name: string;
  line: number;
  lines: number;
  /** A "Long because …" comment stands right above it. */
  explained: boolean;
}

function nameOf(node: ts.Node): string {
  const named = node as { name?: ts.Node };
  if (named.name && (ts.isIdentifier(named.name) || ts.isPrivateIdentifier(named.name) || ts.isStringLiteral(named.name))) {
    return named.name.text;
  }
  if (ts.isConstructorDeclaration(node)) return "constructor";
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) {
    return ts.isIdentifier(parent.name) || ts.isStringLiteral(parent.name) ? parent.name.text : "<anonymous>";
  }
  return "<anonymous>";
}

/** The nodes whose leading comments may explain `fn`: itself, then what holds it, up to its statement. */
function holders(fn: ts.Node): ts.Node[] {
  const out: ts.Node[] = [fn];
  let node = fn.parent;
  while (
    node &&
    (ts.isVariableDeclaration(node) ||
      ts.isVariableDeclarationList(node) ||
      ts.isVariableStatement(node) ||
      ts.isPropertyAssignment(node) ||
      ts.isPropertyDeclaration(node) ||
      ts.isExportAssignment(node) ||
      ts.isParenthesizedExpression(node) ||
      ts.isAsExpression(node) ||
      ts.isSatisfiesExpression(node) ||
      ts.isCallExpression(node))
  ) {
    out.push(node);
    if (ts.isVariableStatement(node) || ts.isExportAssignment(node)) break;
    node = node.parent;
  }
  return out;
}

/** Every function in `text` with its length and whether a "Long because" comment explains it. */
export function functionSpans(fileName: string, text: string): FunctionSpan[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const spans: FunctionSpan[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
      const explained = holders(node).some((h) =>
        (ts.getLeadingCommentRanges(text, h.getFullStart()) ?? []).some((c) => REASON_RE.test(text.slice(c.pos, c.end))),
      );
      spans.push({ name: nameOf(node), line: start, lines: end - start + 1, explained });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return spans;
}

export interface LongFunction extends FunctionSpan {
  file: string;
}

/** The functions over `max` lines in every .ts file under `dir`, longest first. */
export function longFunctions(dir: string, max = MAX_FUNCTION_LINES): LongFunction[] {
  const out: LongFunction[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) {
        const file = relative(dir, path).replaceAll("\\", "/");
        for (const span of functionSpans(file, readFileSync(path, "utf8"))) if (span.lines > max) out.push({ file, ...span });
      }
    }
  };
  walk(dir);
  return out.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
}
