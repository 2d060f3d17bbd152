/**
 * Lists the functions in src/ longer than N lines (default 80), longest first, and whether a
 * "Long because …" comment explains each: `bun scripts/long-functions.ts [N]`. The rule itself is
 * checked by test/unit/long-functions.test.ts.
 */
import { join } from "node:path";
import { longFunctions } from "../test/helpers/long-functions.ts";

const max = Number(process.argv[2] ?? 80);
if (!Number.isInteger(max) || max < 1) throw new Error("usage: bun scripts/long-functions.ts [lines]");
for (const f of longFunctions(join(import.meta.dir, "../src"), max)) {
  console.log(`${String(f.lines).padStart(4)}  ${f.explained ? "explained" : "         "}  src/${f.file}:${f.line}  ${f.name}`);
}
