import { homedir } from "node:os";
import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { collectRepeated, parseWholeNumber } from "../shared/cli-args.ts";
import { AppError, EXIT, UsageError } from "../shared/errors.ts";
import { failOnHits, parseFailOn, SCAN_FAIL_ON, type FailOnName } from "../report/fail-on.ts";
import { normaliseExtensions } from "../scan/path-filter.ts";
import {
  chooseFormat,
  partialBeside,
  prepareOutput,
  refuseOverInput,
  writeReport,
  writeReportChunks,
  type OutputTarget,
  type ReportFormat,
} from "../report/report-output.ts";
import { memorySource, type InventorySource } from "../report/inventory-read.ts";
import { openInventory, type OpenedInventory } from "../report/inventory-file.ts";
import { applyPrevious } from "../report/previous.ts";
import { reportChunks } from "../report/render.ts";
import { scanStepSummary } from "../report/ci-summary.ts";
import { appendStepSummary, stepSummaryPath } from "../report/step-summary.ts";
import { missingPaths } from "../scan/missing-paths.ts";
import { runScan, type ScanResult } from "../scan/scan.ts";
import {
  checkIndexTarget,
  readLibraryIndex,
  refuseIndexClash,
  writeLibraryIndex,
  type IndexRead,
  type NamedFile,
} from "../scan/library-index-io.ts";
import { escapeControl, formatBytes, formatDuration, plural } from "../shared/format.ts";
import { fsPath, resolvePath } from "../shared/fs-path.ts";
import { logger } from "../ui/logger.ts";
import { createCountProgress, createProgress } from "../ui/progress.ts";
import { NAME, VERSION } from "../version.ts";
import { apiArgs, createApiContext, durationArg, type ApiContext } from "./_api.ts";
import { galleryArgs, parseNsfwArg, renderGallery, writePreviews, type ImageContext } from "./_gallery.ts";
import { withInterrupt } from "./_interrupt.ts";
import { diffHeadline } from "../report/render-diff.ts";
import { configuredCacheDirArg, globalArgs, reportArgs, hashingArgs, walkArgs } from "./_shared.ts";

export default defineCommand({
  meta: {
    name: "scan",
    description: "Walk, hash and identify model files on Civitai; write an inventory (JSON, CSV, Markdown or an HTML gallery)",
  },
  args: {
    ...globalArgs,
    paths: {
      type: "positional",
      required: false,
      description: "Files or folders (default: modelDirectories from the config)",
      valueHint: "paths...",
    },
    ...reportArgs,
    format: {
      ...reportArgs.format,
      description:
        "Report format (default: from -o's extension .json, .csv, .md, .html or .xml for JUnit, else outputFormat from the config, else json)",
    },
    "allow-missing": {
      type: "boolean",
      description:
        "A path that does not exist is a warning and the inventory is written for the others (for jobs whose roots may be absent, such as a disk not mounted; when none exists it is still an error); without it, no inventory is written and the exit code is 1",
    },
    "fail-on": {
      type: "string",
      valueHint: SCAN_FAIL_ON.join(","),
      description:
        "Exit 3 if any file is not found, in error, skipped or gone, has an update to fetch, or (with --previous) was added, removed, moved or changed (comma-separated)",
    },
    previous: {
      type: "string",
      valueHint: "old.json",
      description:
        "An earlier inventory of the same folders: files found then and not found now are reported gone, and the changes since go into the summary",
    },
    "local-metadata": {
      type: "boolean",
      description:
        "Keep every safetensors __metadata__ value (cut) in each record's local.header.metadata; off by default to keep reports compact",
    },
    "trust-sidecars": {
      type: "boolean",
      description:
        "Do not hash a file when another tool's sidecar (.civitai.info, .metadata.json, .cm-info.json, .json) records its SHA-256 and a size equal to the file's; use that SHA-256 (marked hashSource in the record)",
    },
    "write-sidecars": {
      type: "boolean",
      description:
        "Write <base>.civitai.info (the Civitai Helper format A1111/Forge read) beside each found file; never replaces one that names another model",
    },
    "write-previews": {
      type: "boolean",
      description:
        "Write <base>.preview.<ext> (the name A1111, Forge and ComfyUI tools read) beside each found file; never replaces an existing preview",
    },
    index: {
      type: "string",
      valueHint: "file",
      description:
        "Write a library index of the one folder scanned (relative paths, sizes, mtimes, hashes) to FILE, for other machines that mount the same folder (--use-index)",
    },
    "use-index": {
      type: "string",
      valueHint: "file",
      description:
        "Do not hash a file whose relative path, size and mtime (to the nanosecond) match an entry of this library index; use its hashes (marked hashSource in the record)",
    },
    ...galleryArgs,
    ...apiArgs,
    ...walkArgs,
    ...hashingArgs,
    "cache-dir": configuredCacheDirArg,
  },
  // Long because it is the command's one sequence: every check before the walk (so a bad flag costs
  // nothing), the scan, then each output, over resources closed in one place.
  async run({ args, rawArgs }) {
    const failOn = parseFailOn(collectRepeated(rawArgs, ["fail-on"]), SCAN_FAIL_ON);
    const changeKinds = [...failOn].filter((n) => ["added", "removed", "moved", "changed"].includes(n));
    if (changeKinds.length > 0 && args.previous === undefined) {
      throw new UsageError(`--fail-on ${changeKinds.join(",")} compares with an earlier inventory: add --previous OLD.json`);
    }
    const jobs = args.jobs === undefined ? undefined : parseWholeNumber(args.jobs, "jobs", 256);
    if (typeof jobs === "string") throw new UsageError(jobs);
    const nsfwLimit = parseNsfwArg(args["nsfw-level"]);

    // Closed whatever happens: the --previous inventory, the context's shared-cache connection, the scan's records file.
    const held: { previous: OpenedInventory | null; ctx: ApiContext | null; result: ScanResult | null } = {
      previous: null,
      ctx: null,
      result: null,
    };
    try {
      await withInterrupt(async (signal) => {
        // One bar for the whole lookup, in files; a rate-limit pause shows on it with its countdown.
        const lookupBar = createCountProgress("looking up", { enabled: !args.quiet });
        const ctx = (held.ctx = createApiContext(args, signal, { onRateLimitPause: (p) => lookupBar.pause(p.until, p.service) }));
        const paths = scanRoots(args._, ctx.config.config.modelDirectories);
        const format = chooseFormat(args.format, args.output, ctx.config.config.outputFormat);
        // Before the walk (docs/cases.md T10): a bad -o must not cost minutes of hashing.
        const target = prepareOutput(args.output);
        if (format !== "json") refuseOverInput(target, [args.previous], formatName(format, "inventory"));
        const allowMissing = args["allow-missing"] === true;
        const index = prepareIndex(args.index, args["use-index"], paths, {
          output: { flag: "-o", path: args.output },
          previous: { flag: "--previous", path: args.previous },
        });
        const absent = await checkRoots(paths, allowMissing, args.output);
        // Read and checked before the walk too: a bad --previous must not cost the scan.
        held.previous = args.previous === undefined ? null : openInventory(args.previous);
        const previous = held.previous;
        const hashBar = createProgress("hashing", { enabled: !args.quiet });

        const result = (held.result = await runScan({
          paths,
          extensions: normaliseExtensions(collectRepeated(rawArgs, ["ext"])),
          exclude: collectRepeated(rawArgs, ["exclude"]),
          jobs,
          hashCacheDir: ctx.cacheDir,
          api: ctx.client,
          metaCache: ctx.metaCache,
          sharedCache: ctx.sharedCache,
          hosts: { primary: ctx.settings.primary, ...(ctx.settings.fallback ? { fallback: ctx.settings.fallback } : {}) },
          details: args.details !== false,
          offline: args.offline === true,
          refresh: args.refresh === true,
          concurrency: ctx.concurrency,
          localMetadata: args["local-metadata"] === true,
          trustSidecars: args["trust-sidecars"] === true,
          writeSidecars: args["write-sidecars"] === true,
          ...(index.entries ? { libraryIndex: index.entries } : {}),
          buildIndex: args.index !== undefined,
          nsfwLimit,
          signal,
          tool: { name: NAME, version: VERSION },
          onWarning: (m) => logger.warn(escapeControl(m)),
          onHashProgress: (p) => (p.filesDone >= p.filesTotal ? hashBar.done() : hashBar.update(p)),
          onLookupProgress: (p) => lookupBar.update(p.done, p.total),
        }));
        hashBar.done();
        lookupBar.done();

        // A root that vanished during the walk: the same rule as one missing from the start.
        const vanished = result.missing.filter((m) => !absent.includes(m));
        if (vanished.length > 0 && !allowMissing) throw missingRootsError(vanished, args.output);
        // With --previous the records are compared whole, in memory; otherwise they stream from the scan's records file.
        const src = previous ? memorySource(applyPrevious(result.inventory, previous.source).inventory) : result.source;
        const images: ImageContext = {
          cacheRoot: ctx.cacheDir,
          offline: args.offline === true,
          apiUrl: ctx.settings.primary,
          timeoutMs: durationArg(args.timeout, "timeout", 30_000, true),
          quiet: args.quiet === true,
          signal,
        };
        // Lookups stopped: a good inventory already at -o is not replaced by this one (docs/cases.md T23).
        const partial = result.stopped ? partialBeside(target) : null;
        await writeInventory(src, format, partial ?? target, { args, images, signal });
        const written = partial ? partial.path : (args.output ?? "");
        if (target.kind !== "stdout") logger.success(`Wrote ${formatName(format, "inventory")} to ${escapeControl(written)}`);
        if (args["write-previews"] === true) await writePreviews([...src.records("path")], images, args["nsfw-level"]);
        if (args.index !== undefined) writeIndex(args.index, result, src.head.generatedAt);

        logSummary(result, src, args["write-sidecars"] === true, paths);
        const counts = failOnCounts(src);
        const hits = failOnHits(failOn, counts);
        stepSummary(src, hits);
        process.exitCode = exitCodeOf(result, src, hits, partial ? { kept: args.output ?? "", partial: partial.path } : null);
      });
    } finally {
      held.previous?.close();
      held.result?.close();
      await held.ctx?.close();
    }
  },
});

/** The library index of the folder scanned (--index); a failed write throws, after the inventory. */
function writeIndex(file: string, result: ScanResult, generatedAt: string): void {
  if (!result.indexEntries) return;
  writeLibraryIndex(file, result.indexEntries, { name: NAME, version: VERSION }, generatedAt);
  logger.success(`Wrote the library index (${plural(result.indexEntries.length, "file")}) to ${escapeControl(file)}`);
}

/**
 * --index and --use-index, checked before any work: one folder (an index holds paths relative to
 * it), a writable place for the index; the index to use read now (a bad one is one warning).
 */
function prepareIndex(
  write: string | undefined,
  use: string | undefined,
  paths: readonly string[],
  inventories: { output: NamedFile; previous: NamedFile },
): { entries: IndexRead["entries"] } {
  if (write === undefined && use === undefined) return { entries: null };
  const flag = write !== undefined ? "--index" : "--use-index";
  if (paths.length !== 1) throw new UsageError(`${flag} takes one folder to scan (its paths are relative to it); got ${paths.length}`);
  if (write === "-" || use === "-") throw new UsageError(`${flag} takes a file, not - (the inventory goes to stdout)`);
  if (write !== undefined) {
    refuseIndexClash({ flag: "--index", path: write }, [inventories.output, inventories.previous]);
    checkIndexTarget(write);
  }
  if (use !== undefined) refuseIndexClash({ flag: "--use-index", path: use }, [inventories.output]);
  if (use === undefined) return { entries: null };
  const read = readLibraryIndex(use);
  if (read.entries === null) logger.warn(read.warning);
  else logger.debug(`library index ${escapeControl(use)}: ${plural(read.entries.size, "entry", "entries")}`);
  return { entries: read.entries };
}

/** "JSON inventory", "HTML gallery", "JUnit report", … for the closing message. */
function formatName(format: ReportFormat, what: string): string {
  return format === "html" ? "HTML gallery" : format === "junit" ? "JUnit report" : `${format.toUpperCase()} ${what}`;
}

/** The report in `format`: streamed a record at a time, but the gallery (its images need the whole). */
async function writeInventory(
  src: InventorySource,
  format: ReportFormat,
  target: OutputTarget,
  opts: { args: { excel?: boolean; images?: boolean; "nsfw-level"?: string }; images: ImageContext; signal: AbortSignal },
): Promise<void> {
  if (format === "html") {
    const inventory = { ...src.head, records: [...src.records("path")] };
    writeReport(await renderGallery(inventory, opts.args, opts.images), target);
    return;
  }
  await writeReportChunks(reportChunks(src, format, { excel: opts.args.excel === true }), target, { signal: opts.signal });
}

/** How many of each `--fail-on` kind this scan has. */
function failOnCounts(src: InventorySource): Partial<Record<FailOnName, number>> {
  const s = src.facts.facts.byStatus;
  const ch = src.head.summary.changes;
  return {
    "not-found": s.not_found,
    error: s.error,
    skipped: s.skipped,
    gone: s.gone,
    update: src.facts.facts.updatesToFetch,
    ...(ch ? { added: ch.added, removed: ch.removed, moved: ch.moved, changed: ch.changed } : {}),
  };
}

/** GITHUB_STEP_SUMMARY: the counts, changes, what --fail-on matched, and the failing files. */
function stepSummary(src: InventorySource, hits: readonly string[]): void {
  const path = stepSummaryPath(process.env);
  if (!path) return;
  // The first 50 are listed; the summary counts them all from the facts.
  const failing = [...src.records("path")]
    .filter((r) => r.status === "not_found" || r.status === "gone" || r.status === "error")
    .slice(0, 50);
  const why = appendStepSummary(path, scanStepSummary(src.head, src.facts.facts, failing, hits));
  if (why) logger.warn(`Could not append to GITHUB_STEP_SUMMARY (${escapeControl(path)}): ${escapeControl(why)}`);
}

/** The roots to scan: the arguments, else the config's modelDirectories (with ~ expanded). */
function scanRoots(args: readonly string[], modelDirectories: readonly string[] | undefined): string[] {
  // The shell expands ~ in arguments but not inside a JSON config file.
  const paths = args.length > 0 ? [...args] : (modelDirectories ?? []).map((p) => p.replace(/^~(?=$|\/)/, homedir()));
  if (paths.length === 0) {
    throw new UsageError(`scan needs a folder, e.g. ${NAME} scan ~/ComfyUI/models (or set "modelDirectories" in the config file)`);
  }
  return paths;
}

/**
 * The roots that do not exist, once --allow-missing allows them (each then warned about). A
 * mistyped root must not replace a good inventory with an empty one (docs/cases.md T9).
 */
async function checkRoots(paths: readonly string[], allowMissing: boolean, output: string | undefined): Promise<string[]> {
  const absent = await missingPaths([...paths]);
  // Even with --allow-missing, no root at all is not an inventory of nothing: it is a mistake.
  if (absent.length > 0 && (!allowMissing || absent.length === paths.length)) {
    throw missingRootsError(absent, output, allowMissing);
  }
  for (const m of absent) logger.warn(`${escapeControl(m)}: no such file or folder; left out (--allow-missing)`);
  return absent;
}

/** The run in one line (counts, requests, cache hits, time), and what --write-sidecars did. */
function logSummary(result: ScanResult, src: InventorySource, wroteSidecars: boolean, paths: readonly string[]): void {
  const s = src.head.summary;
  const c = result.counters;
  const sidecarNotes = [
    c.knownFromSidecars > 0 ? `${c.knownFromSidecars} known only from sidecars` : null,
    c.fromSidecars > 0 ? `${c.fromSidecars} SHA-256 taken from sidecars` : null,
    c.fromIndex > 0 ? `${c.fromIndex} taken from the library index` : null,
  ].filter((x) => x !== null);
  const gone = s.byStatus.gone > 0 ? `${s.byStatus.gone} gone, ` : "";
  const shared = src.head.options.sharedCache ? ` (${c.sharedCacheHits} from the shared cache)` : "";
  const records = s.cacheHits.records ? `${s.cacheHits.records} records / ` : "";
  logger.info(
    `${plural(s.files, "file")} (${formatBytes(s.bytes)}): ${s.byStatus.found} found, ${gone}${s.byStatus.not_found} not found, ${plural(s.byStatus.error, "error")}, ${s.byStatus.skipped} skipped; ` +
      `${c.hashed} hashed (${formatBytes(c.bytesRead)} read), ${plural(c.requests, "request")}, cache hits ${records}${c.hashCacheHits} hashes / ${c.metadataCacheHits} metadata${shared}` +
      `${sidecarNotes.length > 0 ? `; ${sidecarNotes.join(", ")}` : ""}; ${formatDuration(s.durationMs)}`,
  );
  if (s.changes) logger.info(`Since the inventory of ${s.changes.previous.generatedAt.slice(0, 10)}: ${diffHeadline(s.changes)}`);
  if (wroteSidecars) {
    const n = (status: string) => result.sidecarWrites.filter((w) => w.status === status).length;
    logger.info(`.civitai.info: ${n("written")} written, ${n("unchanged")} unchanged, ${n("refused") + n("failed")} left alone`);
  }
  if (src.count === 0) logger.info(`No model files found under ${paths.map(escapeControl).join(", ")}`);
}

/** 3 for a --fail-on hit, else 1 when the run was stopped (throws) or a file failed, else 0; says why on stderr. */
function exitCodeOf(
  result: ScanResult,
  src: InventorySource,
  hits: readonly string[],
  partial: { kept: string; partial: string } | null,
): number {
  if (result.stopped && result.stopped.kind !== "aborted") {
    const where = partial
      ? `${escapeControl(partial.kept)} is left as it was; what this run did is in ${escapeControl(partial.partial)}. Run again when Civitai answers`
      : "The inventory written holds what was done so far";
    throw new AppError(`${result.stopped.message}. ${where}.`, { exitCode: EXIT.failure });
  }
  const s = src.head.summary;
  const details = result.detailsFailure;
  // docs/cases.md B12: a record without its details must not pass for a complete one.
  if (details) {
    logger.error(
      `model details could not be fetched for ${plural(details.files, "file")} (${details.message}): their updates, licence, tags and creator are missing from the inventory. Run again later, or pass --no-details to go without them`,
    );
  }
  // Said whatever the exit code: a --fail-on match (3) wins over failures (1), but never hides them.
  if (s.byStatus.error > 0) {
    logger.error(
      `${plural(s.byStatus.error, "file")} could not be hashed or looked up; see ${s.byStatus.error === 1 ? "its" : "their"} "error" in the inventory`,
    );
  }
  if (hits.length > 0) {
    logger.warn(`--fail-on: ${hits.join(", ")}`);
    return EXIT.failOn;
  }
  return details || s.byStatus.error > 0 ? EXIT.failure : EXIT.ok;
}

/** T9: one error naming every missing root; nothing was written, so the old inventory is intact. */
function missingRootsError(missing: readonly string[], output: string | undefined, all = false): AppError {
  // Only a file that is there is "left as it was" (stdout, a new name: nothing to keep).
  const kept = output && output !== "-" && existsSync(fsPath(resolvePath(output))) ? `; ${escapeControl(output)} is left as it was` : "";
  const advice = all
    ? "None of the paths exists, so there is nothing to inventory, even with --allow-missing"
    : "Check the path, or add --allow-missing when some paths may be absent (a disk not mounted)";
  return new AppError(`${missing.map(escapeControl).join(", ")}: no such file or folder. No inventory written${kept}. ${advice}.`, {
    exitCode: EXIT.failure,
  });
}
