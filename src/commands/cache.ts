import { lstatSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { UsageError } from "../shared/errors.ts";
import { escapeControl, formatBytes, plural } from "../shared/format.ts";
import { clearHashCache, hashCacheUsage, openHashCache } from "../hash/hash-cache.ts";
import { isOwnMetaFile, pruneMetaCache } from "../civitai/meta-cache-prune.ts";
import { IMAGE_CACHE_SUBDIR, isOwnImageFile, pruneImageCache } from "../preview/image-cache.ts";
import { getCacheDir } from "../config/paths.ts";
import { listNoFollow, removeEmptyDirs } from "../shared/no-follow.ts";
import { logger } from "../ui/logger.ts";
import { globalArgs } from "./_shared.ts";

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

export default defineCommand({
  meta: {
    name: "cache",
    description:
      "Show, prune or clear the caches: info (where and how big), prune (drop entries that can never be used again), clear (remove them all). Links are never followed and files the caches did not write are left alone",
  },
  args: {
    ...globalArgs,
    action: { type: "positional", required: false, description: "info, prune or clear", valueHint: "info|prune|clear" },
    "cache-dir": {
      type: "string",
      valueHint: "dir",
      description: "Cache folder (default: $CIVITAI_META_CACHE_DIR or $XDG_CACHE_HOME/civitai-meta)",
    },
    hashes: { type: "boolean", description: "clear: only the hash cache" },
    metadata: { type: "boolean", description: "clear: only the Civitai metadata cache" },
    images: { type: "boolean", description: "clear: only the preview image cache" },
  },
  async run({ args }) {
    const action = args._[0] ?? "info";
    if (!(ACTIONS as readonly string[]).includes(action) || args._.length > 1) {
      throw new UsageError(`cache takes one of ${ACTIONS.join(", ")} (got "${escapeControl(args._.join(" "))}")`);
    }
    const dir = args["cache-dir"] ?? getCacheDir();
    const hashesDir = join(dir, "hashes");
    const metaDir = join(dir, "meta");
    const imagesDir = join(dir, IMAGE_CACHE_SUBDIR);
    if (action === "info") {
      const h = hashCacheUsage(dir);
      const m = usage(metaDir);
      const i = usage(imagesDir);
      process.stdout.write(
        `cache     ${escapeControl(dir)}\nhashes    ${plural(h.entries, "entry", "entries")}, ${formatBytes(h.bytes)}\nmetadata  ${plural(m.files, "entry", "entries")}, ${formatBytes(m.bytes)}\n` +
          `images    ${plural(i.files, "entry", "entries")}, ${formatBytes(i.bytes)}\n`,
      );
      return;
    }
    const doHashes = ownFolder(hashesDir);
    const doMeta = ownFolder(metaDir);
    const doImages = ownFolder(imagesDir);
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
      logger.success(
        `pruned ${h.removed} of ${plural(h.checked, "hash entry", "hash entries")}, ${m.removed} of ${plural(m.checked, "metadata entry", "metadata entries")} and ${i.removed} of ${plural(i.checked, "image")} in ${escapeControl(dir)}`,
      );
      return;
    }
    // No flag: everything; otherwise the caches named.
    const all = args.hashes !== true && args.metadata !== true && args.images !== true;
    if ((all || args.hashes === true) && doHashes) {
      const n = clearHashCache(dir);
      logger.success(`cleared the hash cache: ${plural(n, "entry", "entries")} removed from ${escapeControl(hashesDir)}`);
    }
    if ((all || args.metadata === true) && doMeta) {
      const n = clearOwnFiles(metaDir, isOwnMetaFile);
      logger.success(`cleared the metadata cache: ${plural(n, "file")} removed from ${escapeControl(metaDir)}`);
    }
    if ((all || args.images === true) && doImages) {
      const n = clearOwnFiles(imagesDir, isOwnImageFile);
      logger.success(`cleared the image cache: ${plural(n, "file")} removed from ${escapeControl(imagesDir)}`);
    }
  },
});
