import { mkdirSync, realpathSync, statSync, type Stats } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import pLimit from "p-limit";
import { parseWholeNumber } from "../shared/cli-args.ts";
import {
  buildPlan,
  EMIT_FORMATS,
  renderDryRun,
  onApiHost,
  renderEmit,
  type DryRunEntry,
  type EmitFormat,
  type PlanItem,
} from "../download/download-plan.ts";
import { parseDownloadSource } from "../download/download-sources.ts";
import { AppError, EXIT, UsageError, errnoCode, errorMessage, isInterruption } from "../shared/errors.ts";
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
import { createDownloadDisplay, printable } from "../ui/download-display.ts";
import { restoreAlias, type AliasResult } from "../download/aliases.ts";
import { encodeFsName } from "../shared/fs-path.ts";
import { configuredCacheDirArg, globalArgs, hashingArgs } from "./_shared.ts";
import { openVerifiedHashes, type VerifiedHashRecorder } from "../hash/verified-hash.ts";
import { createApiContext, durationArg, someApiArgs } from "./_api.ts";
import { isTerminal, writeStdout } from "../shared/stdio.ts";

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
      description: "Give up on a connection that sends nothing for this long, then resume (default 60s, at least 1s)",
    },
    retries: {
      type: "string",
      valueHint: "n",
      description: "Attempts in a row without progress before a file fails (default 5; 0: one attempt, no retry)",
    },
    ...someApiArgs("api-url", "fallback-url", "fallback", "api-key", "config", "timeout"),
    "cache-dir": {
      ...configuredCacheDirArg,
      description: `${configuredCacheDirArg.description}; each file verified is recorded in its hash cache, so a scan after a restore reads nothing`,
    },
    cache: hashingArgs.cache,
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
    const jobs = args.jobs === undefined ? 2 : parseWholeNumber(args.jobs, "jobs", 16);
    if (typeof jobs === "string") throw new UsageError(jobs);
    const retries = args.retries === undefined ? 5 : parseWholeNumber(args.retries, "retries", 100, 0);
    if (typeof retries === "string") throw new UsageError(retries);
    const stallMs = durationArg(args["stall-timeout"], "stall-timeout", 60_000, true);
    const sources = sourcesArgs.map(parseDownloadSource);

    const destDir = resolve(String(args.dest));
    const writing = !args["dry-run"] && emit === null;
    // Checked before any request; created only once there is something to download into it.
    const checkedDest = prepareDest(destDir, false);
    // A list names the destination in every line: `$` or a backtick there would be expanded by the
    // shell or envsubst the list goes through (names from the API or an inventory never hold them).
    if (emit !== null && [destDir, checkedDest].some((d) => /[$`]/.test(d))) {
      throw new UsageError(
        `--dest ${printable(destDir)} holds $ or a backtick, which a shell or envsubst would expand in the list; choose a folder without them`,
      );
    }

    let downloading = false;
    await withInterrupt(async (signal) => {
      // Config, key, hosts and the shared client (retries, Retry-After, redaction, the key only for Civitai origins).
      const { settings, client, cacheDir } = createApiContext(args, signal);
      const redact = createRedactor([settings.apiKey]);
      const api: DownloadApi = { versionById: client.versionById, versionByHash: client.versionByHash, modelById: client.model };
      const { wanted, problems, notes, warnings } = await resolveSources(sources, api, settings, redact);
      for (const n of notes) logger.info(printable(n));
      for (const w of warnings) logger.warn(printable(w));
      const realDest = writing && wanted.length > 0 ? prepareDest(destDir, true) : checkedDest;
      const plan = buildPlan(wanted, realDest);
      for (const c of plan.conflicts) problems.push(`${c.wanted.relPath}: ${c.reason}`);
      for (const p of problems) logger.error(printable(p));

      // Lists and the dry run point where this tool would ask: the API host chosen, not civitai.com.
      const listed = plan.items.map((item) => ({ ...item, url: onApiHost(item.url, settings.primary) }));
      if (emit !== null) {
        writeList(listed, emit as EmitFormat, args.output === undefined ? null : String(args.output));
        process.exitCode = problems.length > 0 ? EXIT.failure : EXIT.ok;
        return;
      }
      if (args["dry-run"]) {
        const entries: DryRunEntry[] = listed.map((item) =>
          isPlainFile(item.dest) ? { item, note: "exists: will be verified, not fetched" } : { item },
        );
        writeStdout(renderDryRun(entries, printable));
        process.exitCode = problems.length > 0 ? EXIT.failure : EXIT.ok;
        return;
      }

      await checkTotalSpace(plan.items, realDest);
      downloading = true;
      const results = await runDownloads(plan.items, {
        cacheDir,
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
      process.exitCode = summarise(results, problems.length);
    }).catch((err: unknown) => {
      throw withResumeAdvice(err, downloading);
    });
  },
});

/** `--emit`: the list on stdout or in `-o FILE`, with a warning for the other names it cannot hold. */
function writeList(items: readonly PlanItem[], emit: EmitFormat, output: string | null): void {
  const links = items.reduce((n, i) => n + i.aliases.length, 0);
  if (links > 0 && emit !== "sh") {
    logger.warn(
      `${links} other name(s) of listed files (hard or soft links where they were scanned) are not in the ${emit} list: it cannot make links; use --emit sh or civitai-meta download for them`,
    );
  }
  // Bytes, not UTF-8: a path that was not valid UTF-8 where it was scanned keeps its exact bytes.
  const bytes = encodeFsName(renderEmit(items, emit, VERSION));
  if (output !== null) writeFileAtomic(resolve(output), bytes, { mode: emit === "sh" ? 0o755 : undefined });
  else writeStdout(bytes);
}

/** Ctrl-C mid-download: the message says what is kept and how to go on, as aria2 and wget -c users expect. */
function withResumeAdvice(err: unknown, downloading: boolean): unknown {
  if (!downloading || !(err instanceof AppError) || !isInterruption(err.exitCode)) return err;
  return new AppError(
    `${err.message}: files already verified are in place, the others' bytes are kept in .part files; run the same command again to resume`,
    { exitCode: err.exitCode },
  );
}

/** One summary line on stderr; the exit code (1 when anything failed, was skipped or left alone). */
function summarise(results: readonly ItemResult[], problems: number): number {
  const files = results.map((r) => r.file);
  const aliases = results.flatMap((r) => r.aliases);
  const failed =
    files.filter((r) => r.status === "failed" || r.status === "exists" || r.status === "locked").length +
    aliases.filter((a) => a.status === "failed" || a.status === "exists").length +
    results.reduce((n, r) => n + r.skippedAliases, 0);
  const done = files.filter((r) => r.status === "downloaded").length;
  const present = files.filter((r) => r.status === "present").length + aliases.filter((a) => a.status === "present").length;
  const restored = aliases.filter((a) => a.status === "linked" || a.status === "copied").length;
  const bytes = files.reduce((n, r) => n + r.bytesReceived, 0);
  logger.info(
    `${done} downloaded, ${formatBytes(bytes)} received, ${restored > 0 ? `${restored} other name(s) restored, ` : ""}${present} already present, ${failed + problems} failed or skipped`,
  );
  return failed > 0 || problems > 0 ? EXIT.failure : EXIT.ok;
}

/**
 * The destination: a file (or anything but a folder) there is one clear usage error (checked
 * before any request); a missing folder is created when `create` (once files will be written).
 * Returns its real path (the plan is made inside it), or the path itself while it does not exist.
 */
function prepareDest(destDir: string, create: boolean): string {
  const shown = printable(destDir);
  let st: Stats | undefined;
  try {
    st = statSync(destDir, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === "ENOTDIR") throw new UsageError(`--dest ${shown}: a part of that path is a file, not a folder`);
    throw new AppError(`cannot use --dest ${shown}: ${errnoCode(err) ?? errorMessage(err)}`);
  }
  if (st && !st.isDirectory()) {
    throw new UsageError(
      `--dest ${shown} is ${st.isFile() ? "a file" : "something else"}, not a folder: give the folder to restore into (it is created when missing)`,
    );
  }
  if (!st && create) {
    try {
      mkdirSync(destDir, { recursive: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOTDIR" || code === "EEXIST") throw new UsageError(`--dest ${shown}: a part of that path is a file, not a folder`);
      const why =
        code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : code === "EROFS"
            ? "the filesystem is read-only"
            : (code ?? errorMessage(err));
      throw new AppError(`cannot create --dest ${shown}: ${why}`);
    }
  }
  try {
    return realpathSync(destDir);
  } catch {
    return destDir; // a dry run or list for a folder that does not exist yet
  }
}

interface RunOptions {
  /** The cache folder whose hash cache records each verified file (false with --no-cache). */
  cacheDir: string | false;
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

interface ItemResult {
  file: DownloadResult;
  aliases: AliasResult[];
  /** Other names not restored because their file is not in place. */
  skippedAliases: number;
}

/** Downloads every item (`jobs` at once), then restores its other names once the file is verified. */
async function runDownloads(items: readonly PlanItem[], opts: RunOptions): Promise<ItemResult[]> {
  const limit = pLimit(opts.jobs);
  const display = createDownloadDisplay(items, !opts.quiet && isTerminal(2));
  const hashes = await openVerifiedHashes(opts.cacheDir, (m) => display.log(() => logger.warn(escapeControl(m))));
  // One for the run: after a quota 429 the other files are not asked for.
  const quota: { reached: string | null } = { reached: null };
  try {
    return await Promise.all(
      items.map((item) =>
        limit(async (): Promise<ItemResult> => {
          display.start(item);
          const file = await downloadFile(item, {
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
            onWarning: (m) => display.log(() => logger.warn(printable(opts.redact(m)))),
            quota,
          });
          display.finish(item);
          display.log(() => report(file));
          if (item.aliases.length === 0) {
            await recordHashes(hashes, file, []);
            return { file, aliases: [], skippedAliases: 0 };
          }
          if (file.status !== "downloaded" && file.status !== "present") {
            display.log(() =>
              logger.warn(
                `${printable(item.dest)}: not in place, so its ${item.aliases.length} other name(s) were not restored: ${item.aliases.map((a) => printable(a.relPath)).join(", ")}`,
              ),
            );
            return { file, aliases: [], skippedAliases: item.aliases.length };
          }
          const aliases: AliasResult[] = [];
          for (const alias of item.aliases) {
            const result = await restoreAlias(item, alias, { force: opts.force, root: opts.root });
            display.log(() => reportAlias(result));
            aliases.push(result);
          }
          await recordHashes(hashes, file, aliases);
          return { file, aliases, skippedAliases: 0 };
        }),
      ),
    );
  } finally {
    hashes?.close();
    display.done();
  }
}

/**
 * The verified hashes of a file in place, for the file and each other name restored (or found) with
 * the same bytes; after the links, whose making changes the file's ctime.
 */
async function recordHashes(recorder: VerifiedHashRecorder | null, file: DownloadResult, aliases: readonly AliasResult[]): Promise<void> {
  const verified = file.verified;
  if (recorder === null || verified === undefined) return;
  const placed = aliases.filter((a) => a.status === "linked" || a.status === "copied" || a.status === "present");
  for (const path of [file.task.dest, ...placed.map((a) => a.alias.dest)]) await recorder.record(path, verified);
}

function report(result: DownloadResult): void {
  const name = printable(result.task.dest);
  const msg = result.message ? printable(result.message) : "";
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

function reportAlias(result: AliasResult): void {
  const msg = printable(result.message);
  if (result.status === "linked" || result.status === "copied") logger.success(msg);
  else if (result.status === "present") logger.info(msg);
  else if (result.status === "exists") logger.warn(msg);
  else logger.error(msg);
}
