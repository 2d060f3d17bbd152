import type { ArgsDef } from "citty";
import type { Inventory } from "../report/inventory-types.ts";
import type { FileRecord } from "../report/record-types.ts";
import { renderInventory } from "../report/render.ts";
import { DEFAULT_API_URL, resolveApiSettings } from "../config/settings.ts";
import { loadConfig } from "../config/config-file.ts";
import { resolveCacheDir } from "../config/paths.ts";
import { durationArg } from "./_api.ts";
import { DEFAULT_NSFW_LIMIT, NSFW_LABEL, NSFW_LIMIT_NAMES, nsfwMask, parseNsfwLimit, type NsfwLimitName } from "../preview/nsfw.ts";
import { openImageCache } from "../preview/image-cache.ts";
import { GALLERY_IMAGE_WIDTH, PREVIEW_FILE_WIDTH } from "../preview/image-url.ts";
import { loadPreviews, type PreviewResult } from "../preview/previews.ts";
import { writePreviewFiles, type PreviewWriteResult } from "../preview/preview-writer.ts";
import { UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { createProgress } from "../ui/progress.ts";
import { VERSION } from "../version.ts";

/**
 * The HTML gallery's flags and the preview images behind it, for `scan` and `report`: one place,
 * so both commands fetch, cache and report images the same way (src/preview/ does the work).
 */
export const galleryArgs = {
  images: {
    type: "boolean",
    default: true,
    negativeDescription: "HTML: leave preview images out (a light gallery; nothing is fetched)",
    description: "HTML: embed preview images",
  },
  "nsfw-level": {
    type: "string",
    valueHint: "pg|pg13|r|x|xxx",
    description: "Highest image rating a preview may have (default pg13: PG and PG-13 only)",
  },
} as const satisfies ArgsDef;

/**
 * `report`'s flags for the gallery's images: where the image cache is, whether the network may be
 * used, and the API origin whose host may serve images (a mirror or a test server).
 */
export const reportImageArgs = {
  offline: { type: "boolean", description: "HTML: use only images already in the image cache" },
  "api-url": {
    type: "string",
    valueHint: "url",
    description: "HTML: also fetch images from this API origin's host (also CIVITAI_API_URL)",
  },
  config: { type: "string", valueHint: "file", description: "Config file (for the cache folder and apiUrl)" },
  timeout: { type: "string", valueHint: "duration", description: "HTML: per-image timeout (default 30s, at least 1s)" },
  "cache-dir": { type: "string", valueHint: "dir", description: "Cache folder holding the image cache" },
  cache: {
    type: "boolean",
    default: true,
    negativeDescription: "Do not read or write the image cache",
    description: "Use the image cache",
  },
} as const satisfies ArgsDef;

/** The image context of `report`: flags, then the environment, then the config file (as for scan). */
export function galleryImageContext(args: {
  offline?: boolean;
  "api-url"?: string;
  config?: string;
  timeout?: string;
  "cache-dir"?: string;
  cache?: boolean;
  quiet?: boolean;
}): ImageContext {
  const config = loadConfig(args.config);
  for (const w of config.warnings) logger.warn(w);
  let apiUrl: string;
  try {
    apiUrl = resolveApiSettings({ apiUrl: args["api-url"] }, process.env, config.config).primary;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const cacheSettings = config.config.cache ?? {};
  const enabled = args.cache !== false && cacheSettings.enabled !== false;
  return {
    cacheRoot: enabled ? resolveCacheDir(args["cache-dir"], cacheSettings.dir) : false,
    offline: args.offline === true,
    apiUrl,
    timeoutMs: durationArg(args.timeout, "timeout", 30_000, true),
    quiet: args.quiet === true,
  };
}

/** `--nsfw-level` → a limit name (default pg13); a usage error names the accepted values. */
export function parseNsfwArg(value: string | undefined): NsfwLimitName {
  if (value === undefined) return DEFAULT_NSFW_LIMIT;
  const limit = parseNsfwLimit(value);
  if (limit === null) {
    throw new UsageError(`--nsfw-level must be one of ${NSFW_LIMIT_NAMES.join(", ")} (got "${escapeControl(value)}")`);
  }
  return limit;
}

export interface ImageContext {
  /** The tool's cache folder; false with --no-cache (images are then fetched every run). */
  cacheRoot: string | false;
  offline: boolean;
  /** The configured API origin: images on its host are allowed when it is not civitai.com. */
  apiUrl: string;
  timeoutMs: number;
  quiet: boolean;
  signal?: AbortSignal;
}

/** Fetches (or reads from the cache) one preview per record; logs one summary of what failed. */
async function previewsFor(records: readonly FileRecord[], ctx: ImageContext, limit: NsfwLimitName, width: number, what: string) {
  const bar = createProgress(what, { enabled: !ctx.quiet });
  const result = await loadPreviews(records, {
    nsfwMask: nsfwMask(limit),
    width,
    cache:
      ctx.cacheRoot === false
        ? null
        : openImageCache(ctx.cacheRoot, (err) =>
            logger.warn(`image cache not written: ${escapeControl(String((err as Error)?.message ?? err))}`),
          ),
    offline: ctx.offline,
    fetch: {
      policy: { extraOrigin: ctx.apiUrl === DEFAULT_API_URL ? null : ctx.apiUrl },
      userAgent: `civitai-meta/${VERSION}`,
      timeoutMs: ctx.timeoutMs,
    },
    signal: ctx.signal,
    onProgress: (done, total) => bar.update({ bytesDone: 0, bytesTotal: 0, filesDone: done, filesTotal: total }),
  });
  bar.done();
  warnFailures(result, what);
  return result;
}

function warnFailures(result: PreviewResult, what: string): void {
  const s = result.stats;
  logger.debug(
    `${what}: ${s.images} images (${s.fetched} fetched, ${s.fromCache} from the cache), ${s.none} without one, ${s.failed} failed`,
  );
  if (s.failed === 0) return;
  const top = s.failures
    .slice(0, 3)
    .map((f) => `${escapeControl(f.reason)} (${f.count})`)
    .join("; ");
  const more = s.failures.length > 3 ? `; ${s.failures.length - 3} other reasons` : "";
  logger.warn(`${s.failed} ${s.failed === 1 ? what.replace(/images$/, "image") : what} could not be loaded: ${top}${more}`);
}

/**
 * The HTML gallery: the preview images are loaded first (unless --no-images), and a failed image
 * leaves its card without a picture, never the gallery unwritten.
 */
export async function renderGallery(
  inv: Inventory,
  args: { images?: boolean; "nsfw-level"?: string },
  /** Made only when images are fetched (report reads the config file for it). */
  ctx: ImageContext | (() => ImageContext),
): Promise<string> {
  const limit = parseNsfwArg(args["nsfw-level"]);
  if (args.images === false) return renderInventory(inv, "html", { html: { nsfwLabel: NSFW_LABEL[limit] } });
  const previews = await previewsFor(inv.records, typeof ctx === "function" ? ctx() : ctx, limit, GALLERY_IMAGE_WIDTH, "preview images");
  return renderInventory(inv, "html", { html: { previews: previews.outcomes, nsfwLabel: NSFW_LABEL[limit] } });
}

/** `scan --write-previews`: one `<base>.preview.<ext>` per found model that has none; logs a summary. */
export async function writePreviews(
  records: readonly FileRecord[],
  ctx: ImageContext,
  nsfwLevel: string | undefined,
): Promise<PreviewWriteResult[]> {
  const found = records.filter((r) => r.status === "found" && r.civitai);
  const previews = await previewsFor(found, ctx, parseNsfwArg(nsfwLevel), PREVIEW_FILE_WIDTH, "preview files");
  const results = writePreviewFiles(
    found.map((r) => r.path),
    previews.outcomes,
  );
  for (const r of results) {
    if (r.status === "failed" && r.path) logger.warn(`${escapeControl(r.path)}: not written: ${escapeControl(r.reason ?? "failed")}`);
  }
  const n = (status: string) => results.filter((r) => r.status === status).length;
  logger.info(
    `.preview images: ${n("written")} written, ${n("exists")} kept (a preview exists), ${n("no-image")} without an image to use, ${n("failed")} failed`,
  );
  return results;
}
