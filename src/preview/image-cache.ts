/**
 * Preview images cached by URL in `<cache>/images/`, so each is fetched once, ever: images on
 * Civitai's CDN do not change under a URL, and a model that vanishes from Civitai keeps its
 * picture here (ComfyUI-Lora-Manager#288). One file per URL, named by the SHA-256 of the URL
 * (never the URL itself: no path tricks), written temp + rename. A read checks the bytes again
 * (magic number, completeness): a damaged entry is a miss and is replaced by the next fetch.
 */
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { listNoFollow } from "../shared/no-follow.ts";
import { isTempName, writeFileAtomicAsync } from "../shared/atomic-write.ts";
import { looksComplete, sniffImage, type SniffedImage } from "./image-sniff.ts";
import { MAX_IMAGE_BYTES } from "./image-fetch.ts";

export const IMAGE_CACHE_SUBDIR = "images";

interface CachedImage {
  bytes: Uint8Array;
  image: SniffedImage;
}

export interface ImageCache {
  get(url: string): Promise<CachedImage | null>;
  /** Best effort: a failed write is reported once through `onWriteError`, never thrown. */
  put(url: string, bytes: Uint8Array): Promise<void>;
  readonly dir: string;
}

/** `<root>/images/ab/abcdef…` for a URL. */
export function imageCachePath(dir: string, url: string): string {
  const key = new Bun.CryptoHasher("sha256").update(url).digest("hex");
  return join(dir, key.slice(0, 2), key);
}

/** The image cache under `cacheRoot` (the tool's cache folder). */
export function openImageCache(cacheRoot: string, onWriteError?: (err: unknown) => void): ImageCache {
  const dir = join(cacheRoot, IMAGE_CACHE_SUBDIR);
  let warned = false;
  return {
    dir,
    async get(url) {
      const path = imageCachePath(dir, url);
      try {
        const st = await stat(path);
        if (!st.isFile() || st.size > MAX_IMAGE_BYTES) return null;
        const bytes = new Uint8Array(await readFile(path));
        const image = sniffImage(bytes);
        if (image === null || !looksComplete(bytes, image.kind)) return null;
        return { bytes, image };
      } catch {
        return null;
      }
    },
    async put(url, bytes) {
      const path = imageCachePath(dir, url);
      try {
        await mkdir(join(path, ".."), { recursive: true });
        // No fsync: a torn entry after a power cut fails the completeness check and is refetched.
        await writeFileAtomicAsync(path, bytes, { fsync: false, mode: 0o644 });
      } catch (err) {
        if (!warned) {
          warned = true;
          onWriteError?.(err);
        }
      }
    },
  };
}

const ENTRY_NAME_RE = /^[0-9a-f]{64}$/;

/** A file the image cache wrote: `images/ab/<64 hex>` or one of our temp files there (docs/cases.md T11). */
export function isOwnImageFile(path: string): boolean {
  const name = basename(path);
  return (ENTRY_NAME_RE.test(name) || isTempName(path)) && /^[0-9a-f]{2}$/.test(basename(dirname(path)));
}

/**
 * `cache prune`: removes image entries that can never be used again: temp files a killed run left,
 * and entries that are not a whole image (a read would miss on them anyway). Links are never
 * followed and files the cache did not write are left alone (docs/cases.md T11).
 */
export async function pruneImageCache(cacheRoot: string): Promise<{ checked: number; removed: number }> {
  let checked = 0;
  let removed = 0;
  for (const path of listNoFollow(join(cacheRoot, IMAGE_CACHE_SUBDIR)).files) {
    if (!isOwnImageFile(path)) continue;
    checked++;
    let keep = false;
    if (!isTempName(path)) {
      try {
        const st = await stat(path);
        if (st.isFile() && st.size <= MAX_IMAGE_BYTES) {
          const bytes = new Uint8Array(await readFile(path));
          const image = sniffImage(bytes);
          keep = image !== null && looksComplete(bytes, image.kind);
        }
      } catch {
        keep = false;
      }
    }
    if (!keep) {
      await rm(path, { force: true }).catch(() => {});
      removed++;
    }
  }
  return { checked, removed };
}
