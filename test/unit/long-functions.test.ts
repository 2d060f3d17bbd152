/**
 * No function in src/ over 80 lines without a comment right above it that says why ("// Long
 * because …"). Where a seam is obvious, split the function instead. The checker is
 * test/helpers/long-functions.ts; `bun scripts/long-functions.ts [N]` lists the longest.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { functionSpans, longFunctions, MAX_FUNCTION_LINES } from "../helpers/long-functions.ts";

const SRC = join(import.meta.dir, "../../src");

describe("function length", () => {
  test(`every function in src/ over ${MAX_FUNCTION_LINES} lines says why it is long`, () => {
    const long = longFunctions(SRC);
    const unexplained = long.filter((f) => !f.explained);
    expect(unexplained.map((f) => `src/${f.file}:${f.line} ${f.name}: ${f.lines} lines`)).toEqual([]);
    // The walk must really see functions, or an empty result would prove nothing.
    expect(long.filter((f) => f.explained).length).toBeGreaterThan(0);
  });
});

/** `n` statements, one a line. */
const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};`).join("\n");

describe("the checker", () => {
  test("measures each kind of function, from its first line to its closing brace", () => {
    const src = [
      `function decl() {\n${body(3)}\n}`,
      `const arrow = () => {\n${body(2)}\n};`,
      `class C {\n  method() {\n${body(1)}\n  }\n  constructor() {}\n  get size() { return 1; }\n}`,
      `export default defineCommand({\n  async run({ args }) {\n${body(2)}\n  },\n});`,
      `const expr = function named() {};`,
      `declare function overload(): void;`,
    ].join("\n");
    expect(functionSpans("x.ts", src).map((f) => `${f.name}:${f.line}:${f.lines}`)).toEqual([
      "decl:1:5",
      "arrow:6:4",
      "method:11:3",
      "constructor:14:1",
      "size:15:1",
      "run:18:4",
      "named:23:1",
    ]);
  });

  test("a long function without a reason is reported; the reason may sit above the function or what holds it", () => {
    const long = body(MAX_FUNCTION_LINES);
    const cases: [string, boolean][] = [
      [`function f() {\n${long}\n}`, false],
      [`// Some other comment\nfunction f() {\n${long}\n}`, false],
      [`// Long because it is one state machine.\nfunction f() {\n${long}\n}`, true],
      [`/**\n * Does f.\n */\n// Long because the table is one piece.\nexport function f() {\n${long}\n}`, true],
      [`/** Long because one loop. */\nexport const f = async () => {\n${long}\n};`, true],
      [`export default defineCommand({\n  // Long because …\n  async run() {\n${long}\n  },\n});`, true],
      [`// Long because of the next one\nfunction g() {}\nfunction f() {\n${long}\n}`, false],
    ];
    for (const [src, explained] of cases) {
      const f = functionSpans("x.ts", src).find((s) => s.lines > MAX_FUNCTION_LINES);
      expect({ src: src.slice(0, 60), explained: f?.explained }).toEqual({ src: src.slice(0, 60), explained });
    }
  });
});
