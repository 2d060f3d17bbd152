import { mkdirSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import pLimit from "p-limit";
import { parsePositiveInt } from "../shared/cli-args.ts";
import {
  buildPlan,
  EMIT_FORMATS,
  renderDryRun,
  renderEmit,
  type DryRunEntry,
  type EmitFormat,
  type PlanItem,
} from "../download/download-plan.ts";
import { parseDownloadSource } from "../download/download-sources.ts";
import { EXIT, UsageError } from "../shared/errors.ts";
import { createRedactor, type Redactor } from "../shared/redact.ts";
import type { ApiSettings } from "../config/settings.ts";
import { writeFileAtomic } from "../shared/atomic-write.ts";
import type { DownloadApi } from "../civitai/api-types.ts";
import { downloadFile, isPlainFile, type DownloadResult } from "../download/transfer.ts";
import { escapeControl, formatBytes } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { VERSION } from "../version.ts";
import { withInterrupt } from "./_interrupt.ts";
import { checkTotalSpace, resolveSources } from "../download/download-resolve.ts";
import { createDownloadDisplay } from "../ui/download-display.ts";
import { globalArgs } from "./_shared.ts";
import { apiArgs, createApiContext, durationArg } from "./_api.ts";

const {
  "api-url": apiUrlArg,
  "fallback-url": fallbackUrlArg,
  fallback: fallbackArg,
  "api-key": apiKeyArg,
  config: configArg,
  timeout: timeoutArg,
} = apiArgs;

export default defineCommand({
  meta: {
    name: "download",
    description:
      "Download model files from Civitai, resumable and verified by SHA-256. A source is an inventory JSON from scan (every found model missing under --dest, at its relative path), a SHA-256, a version id, a Civitai model or version URL, or an AIR.",
  },
  args: {
    ...globalArgs,
    sources: { type: "positional", required: false, description: "Sources", valueHint: "source..." },
    dest: { type: "string", alias: "d", valueHint: "dir", description: "Destination folder (required)" },
    "dry-run": { type: "boolean", description: "List what would be fetched, with sizes and the total; download nothing" },
    emit: {
      type: "string",
      valueHint: "aria2|sh|urls",
      description: "Write a download list for another tool instead of downloading (the key stays a ${CIVITAI_API_KEY} placeholder)",
    },
    output: { type: "string", alias: "o", valueHint: "file", description: "With --emit: write the list here instead of stdout" },
    jobs: { type: "string", alias: "j", valueHint: "n", description: "Files downloaded at once (default 2)" },
    force: { type: "boolean", description: "Replace an existing file whose hash differs (only once the new one is verified)" },
    "stall-timeout": {
      type: "string",
      valueHint: "duration",
      description: "Give up on a connection that sends nothing for this long, then resume (default 60s)",
    },
    retries: { type: "string", valueHint: "n", description: "Attempts in a row without progress before a file fails (default 5)" },
    "api-url": apiUrlArg,
    "fallback-url": fallbackUrlArg,
    fallback: fallbackArg,
    "api-key": apiKeyArg,
    config: configArg,
    timeout: timeoutArg,
  },
  async run({ args }) {
    const sourcesArgs = args._.map(String);
    if (sourcesArgs.length === 0)
      throw new UsageError("download needs at least one source, e.g. civitai-meta download inventory.json --dest ~/models");
    const emit = args.emit === undefined ? null : String(args.emit);
    if (emit !== null && !EMIT_FORMATS.includes(emit as EmitFormat))
      throw new UsageError(`--emit takes one of ${EMIT_FORMATS.join(", ")} (got "${escapeControl(emit)}")`);
    if (args.output !== undefined && emit === null) throw new UsageError("--output only goes with --emit");
    if (!args.dest) throw new UsageError("download needs --dest DIR: the folder to restore into");
    const jobs = args.jobs === undefined ? 2 : parsePositiveInt(args.jobs, "jobs", 16);
    if (typeof jobs === "string") throw new UsageError(jobs);
    const retries = args.retries === undefined ? 5 : parsePositiveInt(args.retries, "retries", 100);
    if (typeof retries === "string") throw new UsageError(retries);
    const stallMs = durationArg(args["stall-timeout"], "stall-timeout", 60_000);
    const sources = sourcesArgs.map(parseDownloadSource);

    await withInterrupt(async (signal) => {
      // Config, key, hosts and the shared client (retries, Retry-After, redaction, the key only for Civitai origins).
      const { settings, client } = createApiContext(args, signal);
      const redact = createRedactor([settings.apiKey]);
      const destDir = resolve(String(args.dest));
      const writing = !args["dry-run"] && emit === null;
      if (writing) mkdirSync(destDir, { recursive: true });
      let realDest = destDir;
      try {
        realDest = realpathSync(destDir);
      } catch {
        /* a dry run or list for a folder that does not exist yet */
      }
      const api: DownloadApi = { versionById: client.versionById, versionByHash: client.versionByHash, modelById: client.model };
      const { wanted, problems, notes } = await resolveSources(sources, api, settings, redact);
      for (const n of notes) logger.info(n);
      const plan = buildPlan(wanted, realDest);
      for (const c of plan.conflicts) problems.push(`${escapeControl(c.wanted.relPath)}: ${escapeControl(c.reason)}`);
      for (const p of problems) logger.error(p);

      if (emit !== null) {
        const text = renderEmit(plan.items, emit as EmitFormat, VERSION);
        if (args.output) writeFileAtomic(resolve(String(args.output)), text, { mode: emit === "sh" ? 0o755 : undefined });
        else process.stdout.write(text);
        process.exitCode = problems.length > 0 ? EXIT.failure : EXIT.ok;
        return;
      }
      if (args["dry-run"]) {
        const entries: DryRunEntry[] = plan.items.map((item) =>
          isPlainFile(item.dest) ? { item, note: "exists: will be verified, not fetched" } : { item },
        );
        process.stdout.write(renderDryRun(entries, escapeControl));
        process.exitCode = problems.length > 0 ? EXIT.failure : EXIT.ok;
        return;
      }

      await checkTotalSpace(plan.items, realDest);
      const results = await runDownloads(plan.items, {
        jobs,
        settings,
        force: args.force === true,
        stallMs,
        retries,
        signal,
        root: realDest,
        quiet: args.quiet === true,
        redact,
      });
      const failed = results.filter((r) => r.status === "failed" || r.status === "exists" || r.status === "locked");
      const done = results.filter((r) => r.status === "downloaded").length;
      const present = results.filter((r) => r.status === "present").length;
      const bytes = results.reduce((n, r) => n + r.bytesReceived, 0);
      logger.info(
        `${done} downloaded (${formatBytes(bytes)}), ${present} already present, ${failed.length + problems.length} failed or skipped`,
      );
      process.exitCode = failed.length > 0 || problems.length > 0 ? EXIT.failure : EXIT.ok;
    });
  },
});

interface RunOptions {
  jobs: number;
  settings: ApiSettings;
  force: boolean;
  stallMs: number;
  retries: number;
  signal: AbortSignal;
  root: string;
  quiet: boolean;
  redact: Redactor;
}

async function runDownloads(items: readonly PlanItem[], opts: RunOptions): Promise<DownloadResult[]> {
  const limit = pLimit(opts.jobs);
  const display = createDownloadDisplay(items, !opts.quiet && process.stderr.isTTY === true);
  try {
    return await Promise.all(
      items.map((item) =>
        limit(async () => {
          display.start(item);
          const result = await downloadFile(item, {
            apiHost: opts.settings.primary,
            apiKey: opts.settings.apiKey,
            keyHosts: [opts.settings.primary, ...(opts.settings.fallback ? [opts.settings.fallback] : [])],
            userAgent: `civitai-meta/${VERSION}`,
            stallTimeoutMs: opts.stallMs,
            maxRetries: opts.retries,
            force: opts.force,
            root: opts.root,
            signal: opts.signal,
            onProgress: (p) => display.progress(p),
            onWarning: (m) => display.log(() => logger.warn(escapeControl(opts.redact(m)))),
          });
          display.finish(item);
          display.log(() => report(result));
          return result;
        }),
      ),
    );
  } finally {
    display.done();
  }
}

function report(result: DownloadResult): void {
  const name = escapeControl(result.task.dest);
  const msg = result.message ? escapeControl(result.message) : "";
  switch (result.status) {
    case "downloaded":
      logger.success(`${name}: downloaded and verified`);
      break;
    case "present":
      logger.info(`${name}: ${msg || "already present, verified"}`);
      break;
    case "exists":
    case "locked":
      logger.warn(msg);
      break;
    case "failed":
      logger.error(msg);
      break;
  }
}
