/**
 * The layering of src/, as a test (the checker is test/helpers/architecture.ts):
 *
 * - Pure by default: a file in a domain folder imports nothing with side effects (node:fs, node:net,
 *   child_process, workers, unstorage, ofetch, bun:sqlite, bun:ffi, …), uses no I/O global (Bun.file,
 *   Bun.write, Bun.spawn, new Worker, fetch) and imports no I/O file, unless IO_FILES in the checker
 *   lists it with the reason. A new file is pure until it is listed on purpose. `import type` is
 *   erased and does not count.
 * - Imports point down: only commands/, main.ts and cli.ts import commands/ or ui/ (ui/ also itself).
 * - commands/, main.ts and cli.ts are the shell and may import anything.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { checkFiles, IO_FILES, isSideEffectModule, readFacts, readTree, type FileFacts } from "../helpers/architecture.ts";

const SRC = join(import.meta.dir, "../../src");

describe("the layering of src/", () => {
  test("no pure file does I/O and no domain imports commands/ or ui/", () => {
    const tree = readTree(SRC);
    expect(checkFiles(tree).map((p) => `src/${p.file}:${p.line}: ${p.message}`)).toEqual([]);
    // The checker must really see the tree, or an empty result would prove nothing.
    expect(tree.size).toBeGreaterThan(100);
    const pure = [...tree.keys()].filter((f) => !IO_FILES.has(f) && !f.startsWith("commands/"));
    expect(pure.length).toBeGreaterThan(IO_FILES.size);
    const fsImports = [...tree.values()].flatMap((f) => f.imports).filter((i) => i.specifier === "node:fs" && !i.typeOnly);
    expect(fsImports.length).toBeGreaterThan(5);
  });
});

/** Synthetic trees: each entry is a path under src/ and its source. */
function problemsOf(files: Record<string, string>, io: Record<string, string> = {}): string[] {
  const facts = new Map<string, FileFacts>(Object.entries(files).map(([name, text]) => [name, readFacts(name, text)]));
  return checkFiles(facts, new Map(Object.entries(io))).map((p) => `${p.file}:${p.line}: ${p.message}`);
}

describe("the checker fails on a planted violation", () => {
  test.each([
    ['import { readFileSync } from "node:fs";', "node:fs"],
    ['import { readFile } from "node:fs/promises";', "node:fs/promises"],
    ['import * as fs from "fs";', "fs"],
    ['import { mkdir } from "fs/promises";', "fs/promises"],
    ['import { createServer } from "node:net";', "node:net"],
    ['import { spawn } from "node:child_process";', "node:child_process"],
    ['import { Worker } from "node:worker_threads";', "node:worker_threads"],
    ['import { createStorage } from "unstorage";', "unstorage"],
    ['import memory from "unstorage/drivers/memory";', "unstorage/drivers/memory"],
    ['import { ofetch } from "ofetch";', "ofetch"],
    ['import { Database } from "bun:sqlite";', "bun:sqlite"],
    ['const { dlopen } = require("bun:ffi");', "bun:ffi"],
    ['const fs = await import("node:fs");', "node:fs"],
    ['export { readFileSync } from "node:fs";', "node:fs"],
    ['import { readFileSync, type Stats } from "node:fs";', "node:fs"],
  ])("%s", (src, specifier) => {
    expect(problemsOf({ "download/plan.ts": `// a rule\n${src}\nexport const x = 1;` })).toEqual([
      `download/plan.ts:2: a pure file imports ${specifier}, a module with side effects: move the I/O out, or list download/plan.ts in IO_FILES`,
    ]);
  });

  test.each([
    ['const f = Bun.file("x");', "Bun.file"],
    ['await Bun.write("x", "y");', "Bun.write"],
    ['Bun.spawn(["ls"]);', "Bun.spawn"],
    ["Bun.serve({ fetch: () => new Response() });", "Bun.serve"],
    ['const w = new Worker("x.ts");', "new Worker"],
    ['const r = await fetch("http://127.0.0.1/");', "fetch()"],
  ])("an I/O global: %s", (src, name) => {
    expect(problemsOf({ "report/render.ts": src })).toEqual([
      `report/render.ts:1: a pure file uses ${name}: move the I/O out, or list report/render.ts in IO_FILES`,
    ]);
  });

  test("a pure file that imports an I/O file is not pure", () => {
    const files = {
      "download/part.ts": 'import { open } from "node:fs/promises";\nexport const w = open;',
      "download/plan.ts": 'import { w } from "./part.ts";\nexport const x = w;',
    };
    expect(problemsOf(files, { "download/part.ts": "writes" })).toEqual([
      "download/plan.ts:1: a pure file imports download/part.ts, an I/O file: move the I/O out, or list download/plan.ts in IO_FILES",
    ]);
    // Listed, the importer is an I/O file too, and a type import of an I/O file is still pure.
    expect(problemsOf(files, { "download/part.ts": "writes", "download/plan.ts": "uses the part writer" })).toEqual([]);
    expect(problemsOf({ ...files, "download/plan.ts": 'import type { w } from "./part.ts";' }, { "download/part.ts": "writes" })).toEqual(
      [],
    );
  });

  test("a domain that imports ui/ or commands/, even for a type", () => {
    expect(
      problemsOf({
        "scan/scan.ts": 'import { logger } from "../ui/logger.ts";\nimport type { Flags } from "../commands/_shared.ts";',
        "shared/x.ts": 'import { run } from "../commands/index.ts";',
        "ui/progress.ts": 'import type { Ctx } from "../commands/_api.ts";',
      }),
    ).toEqual([
      "scan/scan.ts:1: imports ../ui/logger.ts: only the shell (commands/, main.ts, cli.ts) may import ui/",
      "scan/scan.ts:2: imports ../commands/_shared.ts: only the shell (commands/, main.ts, cli.ts) may import commands/",
      "shared/x.ts:1: imports ../commands/index.ts: only the shell (commands/, main.ts, cli.ts) may import commands/",
      "ui/progress.ts:1: imports ../commands/_api.ts: only the shell (commands/, main.ts, cli.ts) may import commands/",
    ]);
  });

  test("an IO_FILES entry that does no I/O, or names no file, is reported", () => {
    expect(problemsOf({ "local/gguf.ts": "export const x = 1;" }, { "local/gguf.ts": "reads", "local/gone.ts": "was here" })).toEqual([
      "local/gguf.ts:1: listed in IO_FILES but does no I/O: remove it from the list",
      "local/gone.ts:0: listed in IO_FILES but does not exist",
    ]);
  });
});

describe("the checker accepts what the rules allow", () => {
  test("type-only imports, pure modules and the shell", () => {
    expect(
      problemsOf({
        "scan/file-identity.ts": 'import type { BigIntStats } from "node:fs";\nimport { type Stats } from "node:fs";',
        "download/types.ts": 'export type { Storage } from "unstorage";\ntype F = typeof import("node:fs");',
        "report/render.ts": 'import { join } from "node:path";\nimport { createHash } from "node:crypto";\nimport pLimit from "p-limit";',
        "ui/progress.ts": 'import { logger } from "./logger.ts";',
        "commands/scan.ts": 'import { readFileSync } from "node:fs";\nimport { logger } from "../ui/logger.ts";',
        "main.ts": 'import { commands } from "./commands/index.ts";\nimport { logger } from "./ui/logger.ts";',
        "cli.ts": 'const { runCli } = await import("./main.ts");',
        "hash/hasher.ts": 'const w = new Worker("x");\nconst t = "fetch(x) in a string, Bun.file in a comment"; // Bun.file',
      }),
    ).toEqual(["hash/hasher.ts:1: a pure file uses new Worker: move the I/O out, or list hash/hasher.ts in IO_FILES"]);
  });

  test("isSideEffectModule matches the package and its subpaths, not look-alikes", () => {
    expect(["node:fs", "fs", "unstorage", "unstorage/drivers/fs", "ofetch", "node:child_process"].every(isSideEffectModule)).toBe(true);
    expect(["node:path", "node:crypto", "fsx", "unstorage-like", "p-limit", "./fs.ts", "citty"].some(isSideEffectModule)).toBe(false);
  });
});
