import { homedir } from "node:os";
import { defineCommand } from "citty";
import { collectRepeated, parsePositiveInt } from "../shared/cli-args.ts";
import { AppError, EXIT, UsageError } from "../shared/errors.ts";
import { failOnHits, parseFailOn } from "../report/fail-on.ts";
import { normaliseExtensions } from "../scan/path-filter.ts";
import { chooseFormat, prepareOutput, writeReport } from "../report/report-output.ts";
import { missingPaths } from "../scan/missing-paths.ts";
import { runScan, type ScanResult } from "../scan/scan.ts";
import type { RecordStatus } from "../report/record-types.ts";
import { escapeControl, formatBytes, formatDuration, plural } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { createCountProgress, createProgress } from "../ui/progress.ts";
import { NAME, VERSION } from "../version.ts";
import { apiArgs, createApiContext, durationArg } from "./_api.ts";
import { galleryArgs, parseNsfwArg, renderReportText, writePreviews, type ImageContext } from "./_gallery.ts";
import { withInterrupt } from "./_interrupt.ts";
import { globalArgs, reportArgs, hashingArgs, walkArgs } from "./_shared.ts";

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
    "allow-missing": {
      type: "boolean",
      description:
        "A path that does not exist is a warning and the inventory is written for the others (for jobs whose roots may be absent, such as a disk not mounted; when none exists it is still an error); without it, no inventory is written and the exit code is 1",
    },
    "fail-on": {
      type: "string",
      valueHint: "not-found,error,skipped",
      description: "Exit 3 if any file has one of these statuses (comma-separated)",
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
    ...galleryArgs,
    ...apiArgs,
    ...walkArgs,
    ...hashingArgs,
  },
  async run({ args, rawArgs }) {
    const failOn = parseFailOn(collectRepeated(rawArgs, ["fail-on"]));
    const jobs = args.jobs === undefined ? undefined : parsePositiveInt(args.jobs, "jobs", 256);
    if (typeof jobs === "string") throw new UsageError(jobs);
    const nsfwLimit = parseNsfwArg(args["nsfw-level"]);

    await withInterrupt(async (signal) => {
      // One bar for the whole lookup, in files; a rate-limit pause shows on it with its countdown.
      const lookupBar = createCountProgress("looking up", { enabled: !args.quiet });
      const ctx = createApiContext(args, signal, { onRateLimitPause: (p) => lookupBar.pause(p.until, p.service) });
      const paths = scanRoots(args._, ctx.config.config.modelDirectories);
      const format = chooseFormat(args.format, args.output, ctx.config.config.outputFormat);
      // Before the walk (docs/cases.md T10): a bad -o must not cost minutes of hashing.
      const target = prepareOutput(args.output);
      const allowMissing = args["allow-missing"] === true;
      const absent = await checkRoots(paths, allowMissing, args.output);
      const hashBar = createProgress("hashing", { enabled: !args.quiet });

      const result = await runScan({
        paths,
        extensions: normaliseExtensions(collectRepeated(rawArgs, ["ext"])),
        exclude: collectRepeated(rawArgs, ["exclude"]),
        jobs,
        hashCacheDir: ctx.cacheDir,
        api: ctx.client,
        metaCache: ctx.metaCache,
        hosts: { primary: ctx.settings.primary, ...(ctx.settings.fallback ? { fallback: ctx.settings.fallback } : {}) },
        details: args.details !== false,
        offline: args.offline === true,
        refresh: args.refresh === true,
        concurrency: ctx.concurrency,
        localMetadata: args["local-metadata"] === true,
        trustSidecars: args["trust-sidecars"] === true,
        writeSidecars: args["write-sidecars"] === true,
        nsfwLimit,
        signal,
        tool: { name: NAME, version: VERSION },
        onWarning: (m) => logger.warn(escapeControl(m)),
        onHashProgress: (p) => (p.filesDone >= p.filesTotal ? hashBar.done() : hashBar.update(p)),
        onLookupProgress: (p) => lookupBar.update(p.done, p.total),
      });
      hashBar.done();
      lookupBar.done();

      const inv = result.inventory;
      // A root that vanished during the walk: the same rule as one missing from the start.
      const vanished = result.missing.filter((m) => !absent.includes(m));
      if (vanished.length > 0 && !allowMissing) throw missingRootsError(vanished, args.output);
      const images: ImageContext = {
        cacheRoot: ctx.cacheDir,
        offline: args.offline === true,
        apiUrl: ctx.settings.primary,
        timeoutMs: durationArg(args.timeout, "timeout", 30_000),
        quiet: args.quiet === true,
        signal,
      };
      writeReport(await renderReportText(inv, format, args, images), target);
      if (target.kind !== "stdout")
        logger.success(
          `Wrote ${format === "html" ? "HTML gallery" : `${format.toUpperCase()} inventory`} to ${escapeControl(args.output ?? "")}`,
        );
      if (args["write-previews"] === true) await writePreviews(inv.records, images, args["nsfw-level"]);

      logSummary(result, args["write-sidecars"] === true, paths);
      process.exitCode = exitCodeOf(result, failOn);
    });
  },
});

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
function logSummary(result: ScanResult, wroteSidecars: boolean, paths: readonly string[]): void {
  const s = result.inventory.summary;
  const c = result.counters;
  const sidecarNotes = [
    c.knownFromSidecars > 0 ? `${c.knownFromSidecars} known only from sidecars` : null,
    c.fromSidecars > 0 ? `${c.fromSidecars} SHA-256 taken from sidecars` : null,
  ].filter((x) => x !== null);
  logger.info(
    `${plural(s.files, "file")} (${formatBytes(s.bytes)}): ${s.byStatus.found} found, ${s.byStatus.not_found} not found, ${plural(s.byStatus.error, "error")}, ${s.byStatus.skipped} skipped; ` +
      `${c.hashed} hashed, ${plural(c.requests, "request")}, cache hits ${c.hashCacheHits} hashes / ${c.metadataCacheHits} metadata` +
      `${sidecarNotes.length > 0 ? `; ${sidecarNotes.join(", ")}` : ""}; ${formatDuration(s.durationMs)}`,
  );
  if (wroteSidecars) {
    const n = (status: string) => result.sidecarWrites.filter((w) => w.status === status).length;
    logger.info(`.civitai.info: ${n("written")} written, ${n("unchanged")} unchanged, ${n("refused") + n("failed")} left alone`);
  }
  if (result.inventory.records.length === 0) logger.info(`No model files found under ${paths.map(escapeControl).join(", ")}`);
}

/** 1 when the run was stopped (throws) or a file failed, 3 for a --fail-on hit, else 0; says why on stderr. */
function exitCodeOf(result: ScanResult, failOn: ReadonlySet<RecordStatus>): number {
  if (result.stopped && result.stopped.kind !== "aborted") {
    throw new AppError(`${result.stopped.message}. The inventory written holds what was done so far.`, { exitCode: EXIT.failure });
  }
  const s = result.inventory.summary;
  const hits = failOnHits(failOn, s.byStatus);
  if (hits.length > 0) {
    logger.warn(`--fail-on: ${hits.join(", ")}`);
    return EXIT.failOn;
  }
  if (s.byStatus.error > 0) {
    logger.error(
      `${plural(s.byStatus.error, "file")} could not be hashed or looked up; see ${s.byStatus.error === 1 ? "its" : "their"} "error" in the inventory`,
    );
    return EXIT.failure;
  }
  return EXIT.ok;
}

/** T9: one error naming every missing root; nothing was written, so the old inventory is intact. */
function missingRootsError(missing: readonly string[], output: string | undefined, all = false): AppError {
  const kept = output && output !== "-" ? `; ${escapeControl(output)} is left as it was` : "";
  const advice = all
    ? "None of the paths exists, so there is nothing to inventory, even with --allow-missing"
    : "Check the path, or add --allow-missing when some paths may be absent (a disk not mounted)";
  return new AppError(`${missing.map(escapeControl).join(", ")}: no such file or folder. No inventory written${kept}. ${advice}.`, {
    exitCode: EXIT.failure,
  });
}
