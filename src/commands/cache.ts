import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { UsageError } from "../shared/errors.ts";
import { escapeControl, formatBytes } from "../shared/format.ts";
import { openHashCache } from "../hash/hash-cache.ts";
import { pruneMetaCache } from "../civitai/meta-cache.ts";
import { IMAGE_CACHE_SUBDIR, pruneImageCache } from "../preview/image-cache.ts";
import { getCacheDir } from "../config/paths.ts";
import { logger } from "../ui/logger.ts";
import { globalArgs } from "./_shared.ts";

const ACTIONS = ["info", "prune", "clear"] as const;

/** Files and bytes under a folder (0 when it does not exist). */
function usage(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  if (!existsSync(dir)) return { files, bytes };
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) {
        files++;
        bytes += st.size;
      }
    } catch {
      /* removed meanwhile */
    }
  }
  return { files, bytes };
}

export default defineCommand({
  meta: {
    name: "cache",
    description:
      "Show, prune or clear the caches: info (where and how big), prune (drop entries that can never be used again), clear (remove them all)",
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
      const h = usage(hashesDir);
      const m = usage(metaDir);
      const i = usage(imagesDir);
      process.stdout.write(
        `cache     ${escapeControl(dir)}\nhashes    ${h.files} entries, ${formatBytes(h.bytes)}\nmetadata  ${m.files} entries, ${formatBytes(m.bytes)}\n` +
          `images    ${i.files} entries, ${formatBytes(i.bytes)}\n`,
      );
      return;
    }
    if (action === "prune") {
      const { cache, warning } = await openHashCache(dir);
      if (warning) logger.warn(escapeControl(warning));
      const h = cache ? cache.prune() : { checked: 0, removed: 0 };
      const m = pruneMetaCache(metaDir);
      const i = await pruneImageCache(dir);
      logger.success(
        `pruned ${h.removed} of ${h.checked} hash entries and ${m.removed} of ${m.checked} metadata entries (and ${i.removed} of ${i.checked} images) in ${escapeControl(dir)}`,
      );
      return;
    }
    // No flag: everything; otherwise the caches named.
    const all = args.hashes !== true && args.metadata !== true && args.images !== true;
    for (const [wanted, sub, label] of [
      [all || args.hashes === true, hashesDir, "hash cache"],
      [all || args.metadata === true, metaDir, "metadata cache"],
      [all || args.images === true, imagesDir, "image cache"],
    ] as const) {
      if (!wanted) continue;
      const { files } = usage(sub);
      rmSync(sub, { recursive: true, force: true });
      logger.success(`cleared the ${label}: ${files} entries removed from ${escapeControl(sub)}`);
    }
  },
});
