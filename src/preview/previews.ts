/**
 * The preview image of every record, for the HTML gallery and `scan --write-previews`: choose
 * (choose-preview.ts), then the image cache, then the network (image-fetch.ts). Each distinct
 * URL is fetched at most once per run, a few at a time. A failure never stops the run: the
 * record gets the reason, and the caller says how many failed and why.
 */
import pLimit from "p-limit";
import type { FileRecord } from "../report/record-types.ts";
import { chooseImage } from "./choose-preview.ts";
import { fetchImage, type FetchedImage, type ImageFetchOptions } from "./image-fetch.ts";
import type { ImageCache } from "./image-cache.ts";
import { sizedImageUrl } from "./image-url.ts";
import type { SniffedImage } from "./image-sniff.ts";

const DEFAULT_IMAGE_CONCURRENCY = 6;
/**
 * After this many images in a row whose host did not answer (timeouts, refused connections, 5xx),
 * the rest are not asked: 2,000 images behind a dead CDN would otherwise cost hours of timeouts.
 */
const UNREACHABLE_LIMIT = 8;

export type PreviewOutcome =
  /** An image to show or write. */
  | { kind: "image"; url: string; bytes: Uint8Array; image: SniffedImage; fromCache: boolean }
  /** Nothing to show, by design (not on Civitai, no image within the rating limit, …). */
  | { kind: "none"; reason: string }
  /** There was an image to show and it could not be had: a problem worth a warning. */
  | { kind: "failed"; url: string; reason: string };

export interface PreviewOptions {
  /** Ratings allowed (preview/nsfw.ts). */
  nsfwMask: number;
  /** Width asked of the image CDN (image-url.ts). */
  width: number;
  /** null: no cache (--no-cache). */
  cache: ImageCache | null;
  /** Cache only: a miss is a failure that says so. */
  offline: boolean;
  fetch: ImageFetchOptions;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Replaces fetchImage (tests). */
  fetchImage?: (url: string, options: ImageFetchOptions) => Promise<FetchedImage>;
}

interface PreviewStats {
  images: number;
  fetched: number;
  fromCache: number;
  none: number;
  failed: number;
  /** Failure reasons with their counts, most frequent first. */
  failures: { reason: string; count: number }[];
}

export interface PreviewResult {
  /** By record path. */
  outcomes: Map<string, PreviewOutcome>;
  stats: PreviewStats;
}

type UrlOutcome = Exclude<PreviewOutcome, { kind: "none" }>;

/** The preview of each record in `records` (keyed by path). */
export async function loadPreviews(records: readonly FileRecord[], options: PreviewOptions): Promise<PreviewResult> {
  const outcomes = new Map<string, PreviewOutcome>();
  const wanted = new Map<string, string[]>(); // sized URL → record paths
  for (const record of records) {
    const info = record.civitai;
    if (!info || record.status !== "found") {
      outcomes.set(record.path, { kind: "none", reason: "not identified on Civitai" });
      continue;
    }
    const choice = chooseImage(info.images, options.nsfwMask);
    if (choice.image === null) {
      outcomes.set(record.path, { kind: "none", reason: choice.reason });
      continue;
    }
    const url = sizedImageUrl(choice.image.url, options.width);
    wanted.set(url, [...(wanted.get(url) ?? []), record.path]);
  }

  const limit = pLimit(options.concurrency ?? DEFAULT_IMAGE_CONCURRENCY);
  const fetchOne = options.fetchImage ?? fetchImage;
  let done = 0;
  const total = wanted.size;
  const byUrl = new Map<string, UrlOutcome>();
  // Per host: Civitai serves images from image.civitai.com and imagecache.civitai.com, and one dead
  // host must not cost the images of a live one.
  const hosts = new Map<string, HostState>();
  await Promise.all(
    [...wanted.keys()].map((url) =>
      limit(async () => {
        byUrl.set(url, await resolveUrl(url, options, fetchOne, hosts));
        options.onProgress?.(++done, total);
      }),
    ),
  );
  for (const [url, paths] of wanted) for (const path of paths) outcomes.set(path, byUrl.get(url)!);
  return { outcomes, stats: statsOf(outcomes) };
}

/** Shared by the fetches of one run from one host: how many in a row found no answer, and whether we gave up. */
interface HostState {
  unreachableInARow: number;
  givenUp: string | null;
}

async function resolveUrl(
  url: string,
  options: PreviewOptions,
  fetchOne: (url: string, options: ImageFetchOptions) => Promise<FetchedImage>,
  hosts: Map<string, HostState>,
): Promise<UrlOutcome> {
  options.signal?.throwIfAborted();
  const cached = await options.cache?.get(url);
  if (cached) return { kind: "image", url, bytes: cached.bytes, image: cached.image, fromCache: true };
  if (options.offline) return { kind: "failed", url, reason: "offline, and the image is not in the image cache" };
  const host = hostOf(url);
  let state = hosts.get(host);
  if (!state) hosts.set(host, (state = { unreachableInARow: 0, givenUp: null }));
  if (state.givenUp !== null) return { kind: "failed", url, reason: state.givenUp };
  const fetched = await fetchOne(url, { ...options.fetch, signal: options.signal });
  if (!fetched.ok) {
    state.unreachableInARow = fetched.unreachable ? state.unreachableInARow + 1 : 0;
    if (state.unreachableInARow >= UNREACHABLE_LIMIT && state.givenUp === null) {
      state.givenUp = `not asked: the image host ${host} did not answer ${UNREACHABLE_LIMIT} times in a row`;
    }
    return { kind: "failed", url, reason: fetched.reason };
  }
  state.unreachableInARow = 0;
  await options.cache?.put(url, fetched.bytes);
  return { kind: "image", url, bytes: fetched.bytes, image: fetched.image, fromCache: false };
}

/** The URL's host and port (`image.civitai.com`); the URL itself when it does not parse (it is refused anyway). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function statsOf(outcomes: ReadonlyMap<string, PreviewOutcome>): PreviewStats {
  const stats: PreviewStats = { images: 0, fetched: 0, fromCache: 0, none: 0, failed: 0, failures: [] };
  const reasons = new Map<string, number>();
  const seenUrls = new Set<string>();
  for (const o of outcomes.values()) {
    if (o.kind === "none") {
      stats.none++;
      continue;
    }
    if (o.kind === "failed") {
      stats.failed++;
      reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
      continue;
    }
    stats.images++;
    if (seenUrls.has(o.url)) continue;
    seenUrls.add(o.url);
    if (o.fromCache) stats.fromCache++;
    else stats.fetched++;
  }
  stats.failures = [...reasons]
    .map(([reason, count]) => ({ reason, count }))
    .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1));
  return stats;
}
