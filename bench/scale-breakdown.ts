/**
 * A warm `scan -o inventory.json`, phase by phase, in one process: what `scan` does (the same
 * context and functions as src/commands/scan.ts), with the wall time of each phase and the RSS
 * after it. Run by `bun run bench scale-hash --breakdown`:
 *   bun bench/scale-breakdown.ts TREE CACHE_DIR API_URL OUTPUT
 * PART=n in the environment sets the lookup part size (LOOKUP_PART_SIZE), to measure its memory and CPU.
 */
import { createApiContext } from "../src/commands/_api.ts";
import { reportChunks } from "../src/report/render.ts";
import { prepareOutput, writeReportChunks } from "../src/report/report-output.ts";
import { runScan } from "../src/scan/scan.ts";
import { NAME, VERSION } from "../src/version.ts";

const [dir, cacheDir, apiUrl, output] = process.argv.slice(2);
if (!dir || !cacheDir || !apiUrl || !output) throw new Error("usage: scale-breakdown.ts TREE CACHE_DIR API_URL OUTPUT");

const MiB = 1024 ** 2;
const rows: string[] = [];
const rss = () => `${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`;
const note = (name: string, ms: number) => rows.push(`${name.padEnd(28)} ${(ms / 1000).toFixed(2).padStart(6)} s   RSS after ${rss()}`);

const started = performance.now();
const signal = new AbortController().signal;
const ctx = createApiContext({ "api-url": apiUrl, "cache-dir": cacheDir }, signal);
const result = await runScan({
  paths: [dir],
  extensions: [],
  exclude: [],
  hashCacheDir: ctx.cacheDir,
  api: ctx.client,
  metaCache: ctx.metaCache,
  hosts: { primary: ctx.settings.primary },
  details: true,
  offline: false,
  refresh: false,
  concurrency: ctx.concurrency,
  ...(process.env.PART ? { lookupPartSize: Number(process.env.PART) } : {}),
  // The binary's own name and version: the kept records' fingerprint holds them, so the packs the
  // binary built are the ones read here (and the other way round).
  tool: { name: NAME, version: VERSION },
  onWarning: (m) => rows.push(`warning: ${m}`),
  onPhase: (phase, ms) =>
    note(
      {
        walk: "walk + hash-cache reads",
        "header pass": "header pass (cached facts)",
        hashing: "hashing (none: all cached)",
        lookup: "lookup + records, in parts",
        records: "library facts",
      }[phase],
      ms,
    ),
});
const at = performance.now();
// As scan writes it: the records streamed through the JSON renderer into the file.
await writeReportChunks(reportChunks(result.source, "json", { excel: false }), prepareOutput(output));
result.close();
note("render + write JSON (streamed)", performance.now() - at);
rows.push(
  `${"total".padEnd(28)} ${((performance.now() - started) / 1000).toFixed(2).padStart(6)} s   (${result.counters.requests} requests, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB)`,
);
console.log(`breakdown of a warm scan (${result.source.count} records):\n${rows.join("\n")}`);
