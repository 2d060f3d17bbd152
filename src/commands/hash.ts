import { defineCommand } from "citty";
import { collectRepeated, parseWholeNumber } from "../shared/cli-args.ts";
import { AppError, EXIT, UsageError } from "../shared/errors.ts";
import { DEFAULT_ALGOS, parseAlgos } from "../hash/hash-algos.ts";
import { normaliseExtensions } from "../scan/path-filter.ts";
import { HASH_ALGOS, type HashAlgo, type HashResult } from "../scan/types.ts";
import { collectFiles } from "../scan/collect.ts";
import { resolveCacheDir } from "../config/paths.ts";
import { checksumLine, escapeControl, escapeJsonControls, formatBytes, formatDuration, plural } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { createProgress } from "../ui/progress.ts";
import { globalArgs, hashingArgs, walkArgs } from "./_shared.ts";
import { isTerminal, writeStdout } from "../shared/stdio.ts";

export default defineCommand({
  meta: {
    name: "hash",
    description:
      "Hash model files: sha256sum-style lines (hashes in a fixed order, '-' where one does not apply, then the path), or --json",
  },
  args: {
    ...globalArgs,
    paths: { type: "positional", required: false, description: "Files or folders (recursive)", valueHint: "paths..." },
    algo: {
      type: "string",
      // "a,b,c": the values, comma-separated; help shows them and shell completion offers them.
      valueHint: HASH_ALGOS.join(","),
      description: "Hashes to compute, comma-separated (default: sha256,autov2; autov3 only when named, as it reads the file twice over)",
    },
    json: { type: "boolean", description: "Print JSON instead of lines" },
    rehash: { type: "boolean", description: "Ignore cached hashes (still refreshes the cache)" },
    ...walkArgs,
    ...hashingArgs,
  },
  async run({ args, rawArgs }) {
    const paths = args._;
    if (paths.length === 0) throw new UsageError("hash needs at least one file or folder, e.g. civitai-meta hash ~/ComfyUI/models");
    const jobs = args.jobs === undefined ? undefined : parseWholeNumber(args.jobs, "jobs", 256);
    if (typeof jobs === "string") throw new UsageError(jobs);
    const algoSpec = collectRepeated(rawArgs, ["algo"]);
    const fixedAlgos = algoSpec.length > 0 ? parseAlgos(algoSpec) : null;
    const columns: HashAlgo[] = fixedAlgos ?? [...DEFAULT_ALGOS];
    const progress = createProgress("hashing", { enabled: !args.quiet });

    const result = await collectFiles({
      paths,
      extensions: normaliseExtensions(collectRepeated(rawArgs, ["ext"])),
      exclude: collectRepeated(rawArgs, ["exclude"]),
      algos: () => fixedAlgos ?? DEFAULT_ALGOS,
      jobs,
      cacheDir: args.cache === false ? false : resolveCacheDir(args["cache-dir"], undefined),
      rehash: args.rehash,
      // A file named on the command line is hashed whatever its name, as sha256sum would.
      namedFilesAnyName: true,
      onWarning: (m) => logger.warn(escapeControl(m)),
      onHashProgress: (p) => progress.update(p),
    });
    progress.done();

    const { walk, hashes, stats } = result;
    for (const s of walk.skipped) logger.info(`skipped ${escapeControl(s.path)}: ${s.reason}`);
    const failed = hashes.filter((h) => h.error);
    for (const h of failed) logger.error(`${escapeControl(h.file.path)}: ${h.error}`);
    // Nothing but missing paths: one error says so (below), not one per path and a summary of zeros.
    const onlyMissing = walk.missing.length > 0 && walk.files.length === 0 && failed.length === 0;
    if (!onlyMissing) for (const m of walk.missing) logger.error(`${escapeControl(m)}: no such file or folder`);

    if (args.json) writeStdout(`${escapeJsonControls(JSON.stringify(toJson(hashes, walk.skipped, walk.missing), null, 2))}\n`);
    else for (const chunk of formatLines(hashes, columns, isTerminal(1))) writeStdout(chunk);

    if (walk.files.length === 0 && walk.missing.length === 0)
      logger.info(`No model files found under ${paths.map(escapeControl).join(", ")}`);
    if (onlyMissing) {
      const named = walk.missing.map(escapeControl).join(", ");
      throw new AppError(`${named}: no such file or folder. Nothing hashed; check the path.`, { exitCode: EXIT.failure });
    }
    logger.info(
      `${plural(hashes.length, "file")}: ${stats.filesHashed} hashed (${formatBytes(stats.bytesRead)} read), ${stats.filesCached} from cache, ${failed.length} failed, ${walk.skipped.length} skipped in ${formatDuration(stats.durationMs)}`,
    );
    process.exitCode = failed.length > 0 || walk.missing.length > 0 ? EXIT.failure : EXIT.ok;
  },
});

/**
 * One line per path (links included), so `sha256sum -c` can check every name the file has. Piped
 * or redirected, names are written as GNU coreutils does (their bytes; `\\`, LF and CR escaped
 * behind a leading `\`), so the output checks with `sha256sum -c` whatever the names. On a
 * terminal they are shown with escapeControl instead: a name must not drive the terminal.
 */
function formatLines(hashes: readonly HashResult[], columns: HashAlgo[], terminal: boolean): (string | Buffer)[] {
  // Plain names go out as text, a megabyte at a time: a Buffer per line cost more than the
  // hashing of a warm 100,000-file run. Names needing the GNU escape or holding raw bytes use checksumLine.
  const chunks: (string | Buffer)[] = [];
  let text = "";
  for (const h of hashes) {
    if (h.error) continue;
    // Joined by hand: a list and a join per file cost a tenth of a warm 100,000-file run.
    let cells = columns.length === 0 ? "" : (h.hashes[columns[0]!] ?? "-");
    for (let i = 1; i < columns.length; i++) cells += ` ${h.hashes[columns[i]!] ?? "-"}`;
    for (const path of h.file.paths) {
      if (terminal) text += `${cells}  ${escapeControl(path)}\n`;
      else if (NOT_PLAIN_NAME_RE.test(path)) {
        if (text) chunks.push(text);
        text = "";
        chunks.push(checksumLine(cells, path));
      } else text += `${cells}  ${path}\n`;
      if (text.length > 1 << 20) {
        chunks.push(text);
        text = "";
      }
    }
  }
  if (text) chunks.push(text);
  return chunks;
}

/**
 * A name sha256sum does not print as it is (a `\\`, LF or CR to escape), or that may hold raw bytes:
 * one test per path. Without the `u` flag the half of an emoji's surrogate pair matches too, and
 * such a name just takes checksumLine's way, which writes it right.
 */
const NOT_PLAIN_NAME_RE = /[\\\n\r\udc80-\udcff]/;

function toJson(hashes: HashResult[], skipped: { path: string; reason: string }[], missing: string[]) {
  return {
    files: hashes.map((h) => ({
      path: h.file.path,
      aliases: h.file.paths.filter((p) => p !== h.file.path),
      size: h.file.identity.size,
      hashes: h.hashes,
      cached: h.cached,
      ...(h.error ? { error: h.error } : {}),
    })),
    skipped,
    missing,
  };
}
