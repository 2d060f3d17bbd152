/**
 * The checker behind test/unit/long-functions.test.ts: no function in src/ runs over
 * MAX_FUNCTION_LINES lines unless a comment right above it says why, starting "Long because".
 * A function is any function declaration, method, accessor, constructor, function expression or
 * arrow function with a body; its lines run from its first line to its closing brace, nested
 * functions included. The comment is looked for in the comments just before the function or
 * before what holds it (`const f = () => …`, `{ run() {…} }`, `export default defineCommand({…})`),
 * up to the statement.
 */
import { leadingComments, parseSource, parseTree, walk, type AstNode, type ParsedSource } from "./source-tree.ts";

export const MAX_FUNCTION_LINES = 80;
const REASON_RE = /\bLong because\b/;

export interface FunctionSpan {
  /** The function's name, or how it is held (`x` for `const x = …`, `run` for a method), else `<anonymous>`. */
  name: string;
  line: number;
  lines: number;
  /** A "Long because …" comment stands right above it. */
  explained: boolean;
}

const FUNCTIONS = new Set(["FunctionDeclaration", "FunctionExpression", "ArrowFunctionExpression"]);
/** Nodes that hold a function without being a statement of their own: the comment may sit above them. */
const HOLDERS = new Set([
  "MethodDefinition",
  "Property",
  "PropertyDefinition",
  "VariableDeclarator",
  "VariableDeclaration",
  "ExportNamedDeclaration",
  "ExportDefaultDeclaration",
  "CallExpression",
  "AwaitExpression",
  "TSAsExpression",
  "TSSatisfiesExpression",
  "ParenthesizedExpression",
  "ObjectExpression",
]);
const STATEMENT_ENDS = new Set(["VariableDeclaration", "ExportNamedDeclaration", "ExportDefaultDeclaration"]);

function keyName(key: unknown): string | undefined {
  const k = key as { type?: string; name?: unknown; value?: unknown } | undefined;
  if (k?.type === "Identifier" || k?.type === "PrivateIdentifier") return String(k.name);
  if (k?.type === "Literal" && typeof k.value === "string") return k.value;
  return undefined;
}

function nameOf(fn: AstNode, parent: AstNode | undefined): string {
  const own = keyName(fn.id);
  if (own !== undefined) return own;
  if (parent && (parent.type === "MethodDefinition" || parent.type === "Property" || parent.type === "PropertyDefinition")) {
    return keyName(parent.key) ?? "<anonymous>";
  }
  if (parent?.type === "VariableDeclarator") return keyName(parent.id) ?? "<anonymous>";
  return "<anonymous>";
}

function spansOf(src: ParsedSource): FunctionSpan[] {
  const spans: FunctionSpan[] = [];
  walk(src.program, (node, ancestors) => {
    if (!FUNCTIONS.has(node.type) || !node.body) return;
    const parent = ancestors.at(-1);
    // A method's function starts at its parameters; the method (with its name) is where it starts.
    const first = parent?.type === "MethodDefinition" ? parent : node;
    // The function itself, then what holds it, up to and including its statement.
    const candidates: AstNode[] = [first];
    for (let i = ancestors.length - 1; i >= 0; i--) {
      const holder = ancestors[i]!;
      if (!HOLDERS.has(holder.type)) break;
      candidates.push(holder);
      if (STATEMENT_ENDS.has(holder.type)) {
        // `export const f = …`: the comment sits above `export`.
        const outer = ancestors[i - 1];
        if (holder.type === "VariableDeclaration" && outer?.type === "ExportNamedDeclaration") candidates.push(outer);
        break;
      }
    }
    const explained = candidates.some((c) => leadingComments(src, c.start).some((comment) => REASON_RE.test(comment.value)));
    const line = src.lineOf(first.start);
    spans.push({ name: nameOf(node, parent), line, lines: src.lineOf(node.end) - line + 1, explained });
  });
  return spans;
}

/** Every function in `text` with its length and whether a "Long because" comment explains it. */
export function functionSpans(fileName: string, text: string): FunctionSpan[] {
  return spansOf(parseSource(fileName, text));
}

export interface LongFunction extends FunctionSpan {
  file: string;
}

/** The functions over `max` lines in every .ts file under `dir`, longest first. */
export function longFunctions(dir: string, max = MAX_FUNCTION_LINES): LongFunction[] {
  const out: LongFunction[] = [];
  for (const [file, src] of parseTree(dir)) {
    for (const span of spansOf(src)) if (span.lines > max) out.push({ file, ...span });
  }
  return out.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
}
