import { homedir } from "node:os";
import { defineCommand } from "citty";
import { collectRepeated, parsePositiveInt } from "../shared/cli-args.ts";
import { AppError, EXIT, UsageError } from "../shared/errors.ts";
import { failOnHits, parseFailOn } from "../report/fail-on.ts";
import { normaliseExtensions } from "../scan/path-filter.ts";
import { chooseFormat, writeReport } from "../report/report-output.ts";
import { runScan } from "../scan/scan.ts";
import { escapeControl, formatBytes, formatDuration } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { createProgress } from "../ui/progress.ts";
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
    "fail-on": {
      type: "string",
      valueHint: "statuses",
      description: "Exit 3 if any file is not-found, error and/or skipped (comma-separated)",
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
      const ctx = createApiContext(args, signal);
      // The shell expands ~ in arguments but not inside a JSON config file.
      const paths = args._.length > 0 ? args._ : (ctx.config.config.modelDirectories ?? []).map((p) => p.replace(/^~(?=$|\/)/, homedir()));
      if (paths.length === 0) {
        throw new UsageError(`scan needs a folder, e.g. ${NAME} scan ~/ComfyUI/models (or set "modelDirectories" in the config file)`);
      }
      const format = chooseFormat(args.format, args.output, ctx.config.config.outputFormat);
      const hashBar = createProgress("hashing", { enabled: !args.quiet });
      const lookupBar = createProgress("looking up", { enabled: !args.quiet });

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
        onLookupProgress: (p) => lookupBar.update({ bytesDone: 0, bytesTotal: 0, filesDone: p.done, filesTotal: p.total }),
      });
      hashBar.done();
      lookupBar.done();

      const inv = result.inventory;
      const images: ImageContext = {
        cacheRoot: ctx.cacheDir,
        offline: args.offline === true,
        apiUrl: ctx.settings.primary,
        timeoutMs: durationArg(args.timeout, "timeout", 30_000),
        quiet: args.quiet === true,
        signal,
      };
      writeReport(await renderReportText(inv, format, args, images), args.output);
      if (args.output)
        logger.success(
          `Wrote ${format === "html" ? "HTML gallery" : `${format.toUpperCase()} inventory`} to ${escapeControl(args.output)}`,
        );
      if (args["write-previews"] === true) await writePreviews(inv.records, images, args["nsfw-level"]);

      for (const m of result.missing) logger.error(`${escapeControl(m)}: no such file or folder`);
      const s = inv.summary;
      const c = result.counters;
      const sidecarNotes = [
        c.knownFromSidecars > 0 ? `${c.knownFromSidecars} known only from sidecars` : null,
        c.fromSidecars > 0 ? `${c.fromSidecars} SHA-256 taken from sidecars` : null,
      ].filter((x) => x !== null);
      logger.info(
        `${s.files} files (${formatBytes(s.bytes)}): ${s.byStatus.found} found, ${s.byStatus.not_found} not found, ${s.byStatus.error} errors, ${s.byStatus.skipped} skipped; ` +
          `${c.hashed} hashed, ${c.requests} requests, cache hits ${c.hashCacheHits} hashes / ${c.metadataCacheHits} metadata` +
          `${sidecarNotes.length > 0 ? `; ${sidecarNotes.join(", ")}` : ""}; ${formatDuration(s.durationMs)}`,
      );
      if (args["write-sidecars"] === true) {
        const n = (status: string) => result.sidecarWrites.filter((w) => w.status === status).length;
        logger.info(`.civitai.info: ${n("written")} written, ${n("unchanged")} unchanged, ${n("refused") + n("failed")} left alone`);
      }
      if (inv.records.length === 0) logger.info(`No model files found under ${paths.map(escapeControl).join(", ")}`);
      if (result.stopped && result.stopped.kind !== "aborted") {
        throw new AppError(`${result.stopped.message}. The inventory written holds what was done so far.`, { exitCode: EXIT.failure });
      }
      const hits = failOnHits(failOn, s.byStatus);
      if (hits.length > 0) {
        logger.warn(`--fail-on: ${hits.join(", ")}`);
        process.exitCode = EXIT.failOn;
        return;
      }
      if (result.missing.length > 0 || s.byStatus.error > 0) {
        if (s.byStatus.error > 0)
          logger.error(`${s.byStatus.error} file(s) could not be hashed or looked up; see their "error" in the inventory`);
        process.exitCode = EXIT.failure;
        return;
      }
      process.exitCode = EXIT.ok;
    });
  },
});
