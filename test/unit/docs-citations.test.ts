import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { anchorsOfMarkdown, checkSource, checkTree, splitSource, type DocAnchors } from "../helpers/doc-citations.ts";

const ROOT = join(import.meta.dir, "../..");

describe("the docs the code cites", () => {
  test("every case ID and section cited in src/ and test/ resolves to a heading in docs/", () => {
    const { problems, citations } = checkTree(ROOT);
    expect(problems.map((p) => `${p.file}:${p.line}: ${p.message}`)).toEqual([]);
    // The scan must really see the citations, or an empty result would prove nothing.
    const docs = new Set(citations.map((c) => c.doc));
    expect([...docs].sort()).toEqual(["docs/cases.md", "docs/civitai-api.md", "docs/reliability.md", "docs/sidecars.md"]);
    expect(citations.length).toBeGreaterThan(150);
  });

  test("docs/cases.md has a heading for every case: A1–A16, B1–B13, C1–C10, D1–D7, E1–E8, F1–F9, T1–T23", () => {
    const anchors = anchorsOfMarkdown(readFileSync(join(ROOT, "docs/cases.md"), "utf8"));
    const counts = { A: 16, B: 13, C: 10, D: 7, E: 8, F: 9, T: 23 };
    const expected = Object.entries(counts).flatMap(([letter, n]) => Array.from({ length: n }, (_, i) => `${letter}${i + 1}`));
    expect(expected.filter((id) => !anchors.has(id))).toEqual([]);
    expect([...anchors].filter((a) => !a.startsWith("§") && !expected.includes(a))).toEqual([]);
  });
});

/** A small docs/ of its own, so the checker's tests do not depend on the real docs. */
const DOCS: DocAnchors = new Map([
  [
    "docs/cases.md",
    anchorsOfMarkdown(
      "# Cases\n## A. Downloads\n### A1 one\n### A4 four\n### A11 eleven\n### D6 names\n### E1 e\n### E8 e\n### F2 md\n### T1 key\n",
    ),
  ],
  [
    "docs/api.md",
    anchorsOfMarkdown("# API\n## §1 by-hash\n### §1.4 drift\n## 2. Numbered without the sign\n```\n## §9 inside a fence\n```\n"),
  ],
]);

function problemsIn(src: string, isTestFile = false): string[] {
  return checkSource("x.ts", src, DOCS, isTestFile).problems.map((p) => `${p.line}: ${p.message}`);
}

describe("the checker fails on citations that do not resolve", () => {
  test.each([
    ["// see docs/cases.md A99", '1: docs/cases.md has no heading "A99"'],
    ["const a = 1;\n/** docs/cases.md A1–A14 */", '2: docs/cases.md has no heading "A14"'],
    ["// docs/cases.md A1, A4 and E9", '1: docs/cases.md has no heading "E9"'],
    ["// docs/api.md §1.5", '1: docs/api.md has no heading "§1.5"'],
    ["// docs/api.md §9", '1: docs/api.md has no heading "§9"'],
    ["// docs/api.md A1", '1: docs/api.md has no heading "A1"'],
    ["// docs/nope.md §1", "1: docs/nope.md does not exist"],
    ["// drifts (§1.4)", '1: "§1.4" names no document: write docs/<file>.md §1.4'],
    ["// reliability.md §4.7", '1: "reliability.md §4.7" cites reliability.md, which is not in docs/: cite the docs/ page instead'],
    ["// (reliability.md D6)", '1: "reliability.md D6" cites reliability.md, which is not in docs/: cite the docs/ page instead'],
    ["// left alone unless --force (A11)", "1: case IDs without their document: write docs/cases.md A11"],
    ["// splicing would corrupt (pip, A4)", "1: case IDs without their document: write docs/cases.md A4"],
    ["// the length is judged later (E1–E8)", "1: case IDs without their document: write docs/cases.md E1–E8"],
    ["// Markdown escaping, cases D6 and F2", "1: case IDs without their document: write docs/cases.md D6 and F2"],
    ["/**\n * header rule (docs/api.md §1.4,\n * docs/cases.md E1–E9)\n */", '3: docs/cases.md has no heading "E9"'],
  ])("%p", (src, expected) => {
    expect(problemsIn(src)).toEqual([expected]);
  });

  test("test titles that start with a case ID and a colon must name a case", () => {
    expect(problemsIn('test("A99: a case nobody wrote", () => {});', true)).toEqual([
      '1: test title cites "A99", which docs/cases.md has no heading for',
    ]);
    expect(problemsIn('describe("A1/T23: two at once", () => {});', true)).toEqual([
      '1: test title cites "T23", which docs/cases.md has no heading for',
    ]);
    expect(problemsIn('test.each([["x"]])("B12 (in-process): %s", () => {});', true)).toEqual([
      '1: test title cites "B12", which docs/cases.md has no heading for',
    ]);
    expect(problemsIn('test.skipIf(true)(\n  "F2: fine (docs/cases.md A15)",\n  () => {},\n);', true)).toEqual([
      '2: docs/cases.md has no heading "A15"',
    ]);
    expect(problemsIn('test("each string alone (F2)", () => {});', true)).toEqual([
      "1: case IDs without their document: write docs/cases.md F2",
    ]);
  });
});

describe("the checker accepts what resolves and ignores what is not a citation", () => {
  test("resolving citations, and what each one resolved to", () => {
    const src = [
      "// docs/cases.md A1–A4, A11/D6 and F2 (docs/api.md §1, §1.4, §2)",
      "/** see docs/api.md §1–§1.4 and docs/api.md §1–2 */",
      "// RFC 9110 §10.2.3 is an outside standard",
      'test("A1/T1: x", () => {}); test("D6 (in-process): y", () => {});',
      'test.each([["E8: row name", 1]])("%s", () => {});',
    ].join("\n");
    const result = checkSource("x.ts", src, DOCS, true);
    expect(result.problems).toEqual([]);
    expect(result.citations.map((c) => `${c.line} ${c.doc} ${c.anchor}`)).toEqual([
      "1 docs/cases.md A1",
      "1 docs/cases.md A4",
      "1 docs/cases.md A11",
      "1 docs/cases.md D6",
      "1 docs/cases.md F2",
      "1 docs/api.md §1",
      "1 docs/api.md §1.4",
      "1 docs/api.md §2",
      "2 docs/api.md §1",
      "2 docs/api.md §1.4",
      "2 docs/api.md §1",
      "2 docs/api.md §2",
      "4 docs/cases.md A1",
      "4 docs/cases.md T1",
      "4 docs/cases.md D6",
      "5 docs/cases.md E8",
    ]);
  });

  test.each([
    ["a spreadsheet formula in a string", 'const s = "=HYPERLINK(\\"http://x?\\"&A1)"; const t = "(A11)";'],
    ["a URL in a string is not a comment", 'const u = "http://x/(A11)"; // fine'],
    ["a regex literal is not a comment", "const re = /\\/\\/ (A11)/g; const q = a / b; // (docs/cases.md A11)"],
    ["a template with a nested template", "const t = `${`// (A11)`} §3 ${x}`; // ok"],
    ["hex, sha256, A1111, E4M3 and the C1 controls", "// sha256 e3b0c44298fc a1b2c3 A1111 E4M3; C0, DEL and C1 controls"],
    ["a dtype and a text encoder", '// F32/F16 and T5 weights\nt("w", "F4", [3]);'],
    ["a dtype at the start of a test title, without a colon", 'test("F4 with an odd element count is MisalignedSlice", () => {});'],
    ["an ID in backticks", "// the dtype (`F4`) and the section sign in code: `§1`"],
    ["a path without anchors is a mention", "// ggml docs/gguf.md describes the format; see README.md"],
  ])("%s", (_name, src) => {
    expect(problemsIn(src, true)).toEqual([]);
  });

  test("a string in src/ that starts like a title is data, not a citation", () => {
    expect(problemsIn('const s = "A99: not a test";', false)).toEqual([]);
    expect(problemsIn('const s = "A99: a test row";', true)).toEqual(['1: test title cites "A99", which docs/cases.md has no heading for']);
  });
});

describe("splitSource", () => {
  test("comments and strings, with comment markers inside strings, regexes and templates", () => {
    const src = [
      "const a = 'it\\'s' + \"//x\"; // one",
      "const r = /[/]\\/*/g.test(s) ? a / 2 : 0; /* two */",
      "const t = `a${f({ b: `c${d}e` })}g`;",
      "return /x/;",
    ].join("\n");
    expect(splitSource(src).map((p) => `${p.kind}:${p.text}`)).toEqual([
      "string:it\\'s",
      "string://x",
      "comment:// one",
      "comment:/* two */",
      "string:a",
      "string:c",
      "string:e",
      "string:g",
    ]);
  });

  test("marks test titles, including curried test.each and skipIf", () => {
    const src = 'describe("d", () => { test.each([["row"]])("each %s", f); test.skipIf(x)("skip", f); it(`tpl`, f); expect("no"); });';
    expect(splitSource(src, true).map((p) => `${p.title ? "T" : "-"}${p.text}`)).toEqual([
      "Td",
      "-row",
      "Teach %s",
      "Tskip",
      "Ttpl",
      "-no",
    ]);
  });

  test("its pieces start where they are in the source", () => {
    const src = "x = 1; // note\ny = 'str';";
    for (const piece of splitSource(src)) expect(src.slice(piece.start, piece.start + piece.text.length)).toBe(piece.text);
  });
});
