/**
 * `bun run bench scale`: issue 11's eight targets in one run — hashing and walking (targets 1, 3,
 * 4, 6: scale-hash.ts), the inventory re-rendered at 100,000 records (target 2: scale-report.ts),
 * the metadata cache and requests (targets 5, 7, 8: scale-lookup.ts) — then one summary of every
 * verdict, ordered by target. Each part prints its own table as it goes; it takes a while (it
 * writes 100,000 files and runs each measurement three times against its reference).
 */
import { verdicts } from "./_util.ts";
import { benchScaleHash } from "./scale-hash.ts";
import { benchScaleLookup } from "./scale-lookup.ts";
import { benchScaleReport } from "./scale-report.ts";

/** The target number a verdict names ("target 7: …"); report rows name none and are target 2. */
function targetOf(label: string): number {
  const m = /target (\d)/.exec(label);
  return m ? Number(m[1]) : 2;
}

export async function benchScale(): Promise<boolean> {
  let ok = await benchScaleHash();
  ok = (await benchScaleReport()) && ok;
  ok = (await benchScaleLookup()) && ok;
  const rows = [...verdicts].sort((a, b) => targetOf(a.label) - targetOf(b.label));
  console.log("\n# issue 11 targets, all parts");
  for (const v of rows)
    console.log(`${v.pass ? "PASS" : "MISS"}  ${v.label.startsWith("target") ? "" : "target 2: "}${v.label}: ${v.detail}`);
  return ok;
}
