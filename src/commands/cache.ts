import { lstatSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { escapeControl, formatBytes, plural } from "../shared/format.ts";
import { clearHashCache, hashCacheUsage, openHashCache } from "../hash/hash-cache.ts";
import { isOwnMetaFile, pruneMetaCache } from "../civitai/meta-cache-prune.ts";
import { IMAGE_CACHE_SUBDIR, isOwnImageFile, pruneImageCache } from "../preview/image-cache.ts";
import { resolveCacheDir } from "../config/paths.ts";
import { listNoFollow, removeEmptyDirs } from "../shared/no-follow.ts";
import { addLogSecret, logger } from "../ui/logger.ts";
import { loadConfig } from "../config/config-file.ts";
import { CacheUrlError, resolveCacheUrl, type CacheUrl } from "../config/cache-url.ts";
import { openSharedStore } from "../civitai/meta-cache-redis.ts";
import { ENTRY_VERSION } from "../civitai/meta-cache-entry.ts";
import { AppError, EXIT, UsageError } from "../shared/errors.ts";
import { apiArgs } from "./_api.ts";
import { configuredCacheDirArg, globalArgs } from "./_shared.ts";
import { writeStdout } from "../shared/stdio.ts";
import { isOwnPackFile, packsRoot, prunePacks } from "../scan/record-packs.ts";

const ACTIONS = ["info", "prune", "clear"] as const;

/** Files and bytes under a folder, links not followed (0 when it does not exist). */
function usage(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const file of listNoFollow(dir).files) {
    try {
      bytes += statSync(file).size;
      files++;
    } catch {
      /* removed meanwhile */
    }
  }
  return { files, bytes };
}

/**
 * A cache sub-folder we may work in: a real folder. We never create `hashes/` or `meta/` as links,
 * so a link there points somewhere else (a user's folder): it is not followed, and said so (docs/cases.md T11).
 */
function ownFolder(dir: string): boolean {
  try {
    if (lstatSync(dir).isSymbolicLink()) {
      logger.warn(`${escapeControl(dir)} is a symbolic link: not followed, nothing under it is touched`);
      return false;
    }
    return true;
  } catch {
    return false; // absent: nothing to do
  }
}

/** `cache clear --metadata|--images`: the files `isOwn` recognises only, then the folders left empty. */
function clearOwnFiles(dir: string, isOwn: (path: string) => boolean): number {
  const listing = listNoFollow(dir);
  let removed = 0;
  for (const file of listing.files) {
    if (!isOwn(file)) continue;
    try {
      unlinkSync(file);
      removed++;
    } catch {
      /* gone already */
    }
  }
  removeEmptyDirs([...listing.dirs, dir]);
  return removed;
}

/**
 * The caches as the other commands see them: the folder (--cache-dir, CIVITAI_META_CACHE_DIR, the
 * config's cache.dir, the XDG default, as scan resolves it, so `cache clear` empties the one scan
 * fills) and the shared cache named by --cache-url, CIVITAI_META_CACHE_URL or cache.url, if any.
 */
function configuredCaches(args: { "cache-dir"?: string; "cache-url"?: string; config?: string }): {
  dir: string;
  sharedUrl: CacheUrl | null;
} {
  const config = loadConfig(args.config);
  for (const w of config.warnings) logger.warn(w);
  const dir = resolveCacheDir(args["cache-dir"], config.config.cache?.dir);
  try {
    const sharedUrl = resolveCacheUrl(args["cache-url"], process.env, config.config.cache?.url);
    for (const secret of sharedUrl?.secrets ?? []) addLogSecret(secret);
    return { dir, sharedUrl };
  } catch (error) {
    if (error instanceof CacheUrlError) throw new UsageError(error.message);
    throw error;
  }
}

/** `cache info`'s line for the shared cache: reachable and how many of our entries, or why not (exit 1). */
async function sharedInfo(url: CacheUrl): Promise<void> {
  const store = openSharedStore({ url, onWarning: () => {} });
  try {
    const all = await store.count("");
    const current = await store.count(`v${ENTRY_VERSION}`);
    const older = all > current ? ` (${all - current} of other formats)` : "";
    writeStdout(`shared    ${url.redacted}: reachable, ${plural(current, "entry", "entries")}${older}\n`);
  } catch (error) {
    writeStdout(`shared    ${url.redacted}: unreachable\n`);
    throw new AppError(`the shared metadata cache ${url.redacted} cannot be reached: ${escapeControl((error as Error).message)}`, {
      exitCode: EXIT.failure,
    });
  } finally {
    await store.close();
  }
}

async function clearShared(url: CacheUrl): Promise<void> {
  const store = openSharedStore({ url, onWarning: () => {} });
  try {
    const n = await store.clear("");
    logger.success(`cleared the shared metadata cache: ${plural(n, "entry", "entries")} removed from ${url.redacted}`);
  } catch (error) {
    throw new AppError(`the shared metadata cache ${url.redacted} was not cleared: ${escapeControl((error as Error).message)}`, {
      exitCode: EXIT.failure,
    });
  } finally {
    await store.close();
  }
}

export default defineCommand({
  meta: {
    name: "cache",
    description:
      "Show, prune or clear the caches: info (where and how big), prune (drop entries that can never be used again), clear (remove them all). Links are never followed and files the caches did not write are left alone",
  },
  args: {
    ...globalArgs,
    action: { type: "positional", required: false, description: "info, prune or clear", valueHint: "info|prune|clear" },
    "cache-dir": configuredCacheDirArg,
    hashes: { type: "boolean", description: "clear: only the hash cache" },
    metadata: { type: "boolean", description: "clear: only the Civitai metadata cache" },
    images: { type: "boolean", description: "clear: only the preview image cache" },
    shared: {
      type: "boolean",
      description: "clear: the shared metadata cache (--cache-url) too: every entry of this tool in that Redis, for the whole team",
    },
    "cache-url": apiArgs["cache-url"],
    config: apiArgs.config,
  },
  async run({ args }) {
    const action = args._[0] ?? "info";
    if (!(ACTIONS as readonly string[]).includes(action) || args._.length > 1) {
      throw new UsageError(`cache takes one of ${ACTIONS.join(", ")} (got "${escapeControl(args._.join(" "))}")`);
    }
    const { dir, sharedUrl } = configuredCaches(args);
    const hashesDir = join(dir, "hashes");
    const metaDir = join(dir, "meta");
    const imagesDir = join(dir, IMAGE_CACHE_SUBDIR);
    const recordsDir = packsRoot(dir);
    if (action === "info") {
      const h = hashCacheUsage(dir);
      const m = usage(metaDir);
      const i = usage(imagesDir);
      const r = usage(recordsDir);
      writeStdout(
        `cache     ${escapeControl(dir)}\nhashes    ${plural(h.entries, "entry", "entries")}, ${formatBytes(h.bytes)}\nmetadata  ${plural(m.files, "entry", "entries")}, ${formatBytes(m.bytes)}\n` +
          `images    ${plural(i.files, "entry", "entries")}, ${formatBytes(i.bytes)}\nrecords   ${plural(r.files, "folder")}, ${formatBytes(r.bytes)}\n`,
      );
      if (sharedUrl) await sharedInfo(sharedUrl);
      return;
    }
    const doHashes = ownFolder(hashesDir);
    const doMeta = ownFolder(metaDir);
    const doImages = ownFolder(imagesDir);
    const doRecords = ownFolder(join(dir, "records")) && ownFolder(recordsDir);
    if (action === "prune") {
      let h = { checked: 0, removed: 0 };
      if (doHashes) {
        const { cache, warning } = await openHashCache(dir);
        if (warning) logger.warn(escapeControl(warning));
        if (cache) {
          h = cache.prune();
          cache.close();
        }
      }
      const m = doMeta ? pruneMetaCache(metaDir) : { checked: 0, removed: 0 };
      const i = doImages ? await pruneImageCache(dir) : { checked: 0, removed: 0 };
      const r = doRecords ? prunePacks(recordsDir) : { checked: 0, removed: 0 };
      logger.success(
        `pruned ${h.removed} of ${plural(h.checked, "hash entry", "hash entries")}, ${m.removed} of ${plural(m.checked, "metadata entry", "metadata entries")}, ${i.removed} of ${plural(i.checked, "image")} and ${r.removed} of ${plural(r.checked, "record pack")} in ${escapeControl(dir)}`,
      );
      return;
    }
    // No flag: every local cache; otherwise the caches named. The team's shared cache only when named.
    const all = args.hashes !== true && args.metadata !== true && args.images !== true && args.shared !== true;
    if (args.shared === true) {
      if (!sharedUrl)
        throw new UsageError(
          "cache clear --shared needs the shared cache: give --cache-url, CIVITAI_META_CACHE_URL or the config's cache.url",
        );
      await clearShared(sharedUrl);
    } else if (sharedUrl && (all || args.metadata === true)) {
      logger.info(`the shared metadata cache ${sharedUrl.redacted} is left as it is (add --shared to clear it for everyone who uses it)`);
    }
    let done = 0;
    if ((all || args.hashes === true) && doHashes) {
      const n = clearHashCache(dir);
      done++;
      logger.success(`cleared the hash cache: ${plural(n, "entry", "entries")} removed from ${escapeControl(hashesDir)}`);
    }
    if ((all || args.metadata === true) && doMeta) {
      const n = clearOwnFiles(metaDir, isOwnMetaFile);
      done++;
      logger.success(`cleared the metadata cache: ${plural(n, "file")} removed from ${escapeControl(metaDir)}`);
    }
    // Finished records are made from both the hashes and the metadata: they go with either.
    if ((all || args.hashes === true || args.metadata === true) && doRecords) {
      const n = clearOwnFiles(recordsDir, isOwnPackFile);
      done++;
      logger.success(`cleared the finished records: ${plural(n, "file")} removed from ${escapeControl(recordsDir)}`);
    }
    if ((all || args.images === true) && doImages) {
      const n = clearOwnFiles(imagesDir, isOwnImageFile);
      done++;
      logger.success(`cleared the image cache: ${plural(n, "file")} removed from ${escapeControl(imagesDir)}`);
    }
    // A folder that is not there (a fresh install, another --cache-dir) is said, not passed over in silence.
    if (done === 0 && args.shared !== true) logger.info(`nothing to clear in ${escapeControl(dir)}`);
  },
});
