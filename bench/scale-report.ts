/**
 * `bun run bench scale-report` (issue 11 target 2, the report side): a 100,000-record inventory,
 * re-rendered by `report` to JSON, CSV, Markdown and JUnit, each run's peak memory measured by
 * test/helpers/peak-rss.ts (the launcher keeps this process's own memory out of the child's
 * figure). Targets, for each format: ≤ 300 MB peak, and ≤ 2 KB per record above what `report`
 * of an empty inventory takes (the runtime itself, measured in the same script). Medians of 3
 * runs, each after a run of the reference, `cat FILE > /dev/null` (what reading the file alone
 * costs), so the time is also given as a ratio to it.
 * The records are realistic in weight: Civitai's answer with a description, preview images and a
 * licence, the file's header facts, and for some an update, a copy, a gone status.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FactsBuilder } from "../src/report/library-facts.ts";
import type { InventorySource } from "../src/report/inventory-read.ts";
import { jsonChunks } from "../src/report/render-json.ts";
import { writeReportChunks } from "../src/report/report-output.ts";
import type { FileRecord } from "../src/report/record-types.ts";
import { makeCivitai, makeInventory, makeLocal, makeMatchedFile, makeRecord } from "../test/helpers/sample-inventory.ts";
import { check, cliCommand, median, timeCommand } from "./_util.ts";

const RECORDS = Number(process.env.SCALE_REPORT_RECORDS ?? 100_000);
const TARGET_BYTES = 300 * 1024 * 1024;
const TARGET_PER_RECORD = 2048;
const RUNS = 3;
const FORMATS = ["json", "csv", "md", "junit"] as const;
const PEAK_RSS = join(import.meta.dir, "..", "test", "helpers", "peak-rss.ts");
const TYPES = ["LORA", "LORA", "Checkpoint", "LoCon", "TextualInversion", "VAE"];
const BASES = ["SDXL 1.0", "SD 1.5", "Pony", "Illustrious", "Flux.1 D"];

/** The path of record `i`: in path order, 500 files per folder. */
function pathOf(i: number): string {
  return `/library/${String(Math.floor(i / 500)).padStart(4, "0")}/model-${String(i).padStart(6, "0")}.safetensors`;
}

/** Record `i` of the library, made on demand (the same each time). */
function record(i: number): FileRecord {
  const path = pathOf(i);
  if (i % 20 === 7) return makeRecord({ path, status: "not_found", local: makeLocal() });
  if (i % 97 === 13) return makeRecord({ path, status: "error" });
  const modelId = 100_000 + Math.floor(i / 2);
  const versionId = 1_000_000 + i;
  const civitai = makeCivitai({
    modelId,
    versionId,
    modelName: `Model ${modelId} ${"name ".repeat(i % 5)}`,
    versionName: `v${i % 7}.${i % 3}`,
    modelType: TYPES[i % TYPES.length]!,
    baseModel: BASES[(i * 7) % BASES.length]!,
    trainedWords: [`trigger${i}`, "style"],
    description: `A model for tests, number ${i}. `.repeat(8),
    matchedFile: makeMatchedFile({ id: versionId * 10 }),
    images: [
      { url: `https://image.civitai.com/x/${versionId}/a.jpeg`, nsfwLevel: 1, width: 832, height: 1216, type: "image" },
      { url: `https://image.civitai.com/x/${versionId}/b.jpeg`, nsfwLevel: 2, width: 832, height: 1216, type: "image" },
    ],
  });
  const out = makeRecord({ path, civitai, local: makeLocal(), knownFrom: "civitai" });
  // One copy in 50: the same bytes as the record before it.
  if (i % 50 === 1) out.hashes = record(i - 1).hashes;
  if (i % 10 === 3) {
    const newer = {
      versionId: versionId + 1,
      name: "v9",
      baseModel: civitai.baseModel,
      publishedAt: "2026-01-01T00:00:00.000Z",
      access: null,
      inLibrary: [],
      pageUrl: `https://civitai.com/models/${modelId}?modelVersionId=${versionId + 1}`,
    };
    out.update = { sameBaseModel: newer, newest: newer };
  }
  if (i % 50 === 9) return { ...out, status: "gone", gone: { reason: "not_found", lastSeenAt: "2026-01-01T00:00:00.000Z" } };
  return out;
}

/** Writes the inventory a record at a time (this process never holds it either). */
export async function writeInventory(path: string): Promise<void> {
  const builder = new FactsBuilder();
  for (let i = 0; i < RECORDS; i++) builder.add(record(i), i);
  const { records: _r, ...head } = makeInventory([]);
  const src: InventorySource = {
    head: { ...head, roots: ["/library"] },
    facts: builder.finish(pathOf),
    count: RECORDS,
    writtenAs: head.schemaVersion,
    *records() {
      for (let i = 0; i < RECORDS; i++) yield record(i);
    },
  };
  await writeReportChunks(jsonChunks(src), { kind: "atomic", path });
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;

/** One `report` run under the peak-RSS launcher: its time and its own peak memory. */
async function reportRun(inventory: string, format: string, out: string, dir: string): Promise<{ ms: number; rss: number }> {
  const rssFile = join(dir, "peak");
  const t = await timeCommand([
    process.execPath,
    PEAK_RSS,
    rssFile,
    ...cliCommand(),
    "report",
    inventory,
    "--format",
    format,
    "-o",
    out,
    "--quiet",
  ]);
  if (t.code !== 0) throw new Error(`report --format ${format} failed (${t.code}): ${t.stderr.slice(0, 500)}`);
  return { ms: t.ms, rss: Number(readFileSync(rssFile, "utf8")) };
}

export async function benchScaleReport(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-scale-report-"));
  try {
    const inventory = join(dir, "inventory.json");
    const started = performance.now();
    await writeInventory(inventory);
    const bytes = statSync(inventory).size;
    console.log(
      `scale-report: ${RECORDS.toLocaleString("en-US")} records, ${mb(bytes)} of JSON (written in ${((performance.now() - started) / 1000).toFixed(1)} s), ${RUNS} runs each, medians`,
    );
    const empty = join(dir, "empty.json");
    await writeFile(empty, `${JSON.stringify(makeInventory([]), null, 2)}\n`);
    let ok = true;
    for (const format of FORMATS) {
      const out = join(dir, `out.${format}`);
      const rss: number[] = [];
      const base: number[] = [];
      const ms: number[] = [];
      const cat: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        // Interleaved: the reference read of the same file, the runtime's own floor, then the report.
        cat.push((await timeCommand(["sh", "-c", 'cat "$0" > /dev/null', inventory])).ms);
        base.push((await reportRun(empty, format, join(dir, `empty.${format}`), dir)).rss);
        const r = await reportRun(inventory, format, out, dir);
        rss.push(r.rss);
        ms.push(r.ms);
      }
      const peak = median(rss);
      const perRecord = Math.round((peak - median(base)) / RECORDS);
      const pass = peak <= TARGET_BYTES && perRecord <= TARGET_PER_RECORD;
      const detail =
        `peak ${mb(peak)} (empty inventory: ${mb(median(base))}), ${perRecord} B per record; ` +
        `${(median(ms) / 1000).toFixed(1)} s = ${(median(ms) / median(cat)).toFixed(0)}× cat of the file (${median(cat).toFixed(0)} ms); ` +
        `output ${mb(statSync(out).size)}; limit ${mb(TARGET_BYTES)} and ${TARGET_PER_RECORD} B per record`;
      ok = check(`report --format ${format}`.padEnd(22), pass, detail) && ok;
    }
    return ok;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
