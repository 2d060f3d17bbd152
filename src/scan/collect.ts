import { availableParallelism } from "node:os";
import type { FileHashes, FoundFile, HashAlgo, HashResult, SkippedPath } from "./types.ts";
import { hashesFromEntry, openHashCache, type HashCache, type HashCacheEntry } from "../hash/hash-cache.ts";
import { hashFiles, type HashProgress } from "../hash/hasher.ts";
import { settleFiles, SKIP_REASON, walk, type WalkerResult } from "./walker.ts";
import { compareByteOrder } from "./path-filter.ts";

export interface CollectOptions {
  paths: string[];
  extensions: string[];
  exclude: string[];
  algos: (file: FoundFile) => readonly HashAlgo[];
  jobs?: number;
  /** Cache folder, or false for --no-cache. */
  cacheDir: string | false;
  /** Read the header facts stored with the hashes too (for `onCacheEntry`). */
  withLocal?: boolean;
  /** Leave the cache open in the result (the caller stores more and closes it); default: closed. */
  keepCacheOpen?: boolean;
  rehash?: boolean;
  signal?: AbortSignal;
  onWarning: (message: string) => void;
  onHashProgress?: (progress: HashProgress) => void;
  /** Names to keep from the folder listings (scan: sidecar names), in `walk.names`. */
  keepName?: (name: string) => boolean;
  /** Once per file found, in walk order, with its trusted cache entry (null when none), before any file is read. */
  onCacheEntry?: (file: FoundFile, entry: HashCacheEntry | null) => void;
  /**
   * Called once, before hashing, with every file still there (scan's local pass). Files it returns
   * hashes for are not read: their result carries those hashes (scan --trust-sidecars).
   */
  presetHashes?: (files: readonly FoundFile[], context: PresetContext) => Promise<ReadonlyMap<FoundFile, FileHashes>>;
}

interface PresetContext {
  /** The open hash cache (null with --no-cache), for what the caller stores beside the hashes. */
  cache: HashCache | null;
  /** The walk, with the names it kept (`keepName`). */
  walk: WalkerResult;
}

export interface CollectResult {
  walk: WalkerResult;
  hashes: HashResult[];
  stats: { filesHashed: number; filesCached: number; bytesRead: number; durationMs: number; filesPreset?: number };
  /** Open only with `keepCacheOpen`. */
  cache: HashCache | null;
}

/**
 * Walk, then hash with the cache: the part `hash` and `scan` share. Warnings go to `onWarning`
 * as they happen so a long run shows them early.
 *
 * Each file is stat'ed once by the walk. Its cache entry is read once, and when it holds the
 * hashes asked for, nothing more is done with the file. Only the others get the walker's second
 * look (docs/cases.md D7) before they are read, so an unchanged library costs one stat per file.
 */
export async function collectFiles(options: CollectOptions): Promise<CollectResult> {
  const started = performance.now();
  const walked = await walk(options.paths, {
    extensions: options.extensions,
    exclude: options.exclude,
    stability: "deferred",
    ...(options.keepName ? { keepName: options.keepName } : {}),
  });
  for (const w of walked.warnings) options.onWarning(w);

  const { cache, warning } = await openHashCache(options.cacheDir, { onWarning: options.onWarning, withLocal: options.withLocal === true });
  if (warning) options.onWarning(warning);
  try {
    return await collectWithCache(options, walked, cache, started);
  } finally {
    if (!options.keepCacheOpen) cache?.close();
  }
}

async function collectWithCache(
  options: CollectOptions,
  walked: WalkerResult,
  cache: HashCache | null,
  started: number,
): Promise<CollectResult> {
  const hits = cacheHits(walked.files, cache, options);
  options.signal?.throwIfAborted();

  const preset = options.presetHashes
    ? await options.presetHashes(walked.files, { cache, walk: walked })
    : new Map<FoundFile, FileHashes>();
  options.signal?.throwIfAborted();
  // Files taken from a sidecar are not read: they get the walker's second look here.
  const presetFiles = preset.size === 0 ? [] : walked.files.filter((f, i) => preset.has(f) && !hits[i]);
  const settled = await settleFiles(presetFiles);
  const skipped: SkippedPath[] = [...settled.skipped];
  const stillThere = new Set(settled.files.map((f) => f.path));
  const left = new Set(presetFiles.filter((f) => !stillThere.has(f.path)));
  for (const w of settled.warnings) options.onWarning(w);
  walked.warnings.push(...settled.warnings);

  // The others are read, and the hash worker's fstat is their second look.
  const toHash = walked.files.filter((file, i) => !hits[i] && !(preset.size > 0 && preset.has(file)));
  const hashed = await hashFiles(toHash, {
    algos: options.algos,
    jobs: options.jobs ?? availableParallelism(),
    cache,
    rehash: options.rehash,
    lookedUp: true,
    secondLook: true,
    onSkipped: (file, why) => {
      left.add(file);
      for (const path of file.paths) skipped.push({ path, reason: SKIP_REASON[why] });
    },
    signal: options.signal,
    onProgress: options.onHashProgress,
  });
  if (skipped.length > 0) walked.skipped = mergeSkipped(walked.skipped, skipped);
  const { hashes, presetCount, cachedCount } = inWalkOrder(walked.files, left, preset, hits, hashed);
  const files = left.size > 0 ? walked.files.filter((f) => !left.has(f)) : walked.files;
  walked.files = files;

  let bytesRead = 0;
  let filesHashed = 0;
  for (const r of hashed) {
    if (left.has(r.file)) continue;
    filesHashed++;
    if (!r.error) bytesRead += r.file.identity.size;
  }
  return {
    walk: walked,
    hashes,
    stats: {
      filesHashed,
      filesCached: cachedCount,
      bytesRead,
      durationMs: performance.now() - started,
      ...(presetCount > 0 ? { filesPreset: presetCount } : {}),
    },
    cache: options.keepCacheOpen ? cache : null,
  };
}

/**
 * Each file's cached hashes (null when it must be read), by position in the walk: a map keyed by
 * file cost a tenth of a warm 100,000-file run. Tells `onCacheEntry` about each file on the way.
 */
function cacheHits(files: readonly FoundFile[], cache: HashCache | null, options: CollectOptions): (FileHashes | null)[] {
  const { onCacheEntry } = options;
  return files.map((file) => {
    if (!cache) {
      onCacheEntry?.(file, null);
      return null;
    }
    if (onCacheEntry) {
      const entry = cache.read(file.realPath, file.identity);
      onCacheEntry(file, entry);
      return entry && !options.rehash ? hashesFromEntry(entry, options.algos(file)) : null;
    }
    // Only the hashes are wanted (`hash`): the same verdict without an entry built per file.
    return options.rehash ? null : cache.get(file.realPath, file.identity, options.algos(file));
  });
}

/** Each file's result, back in walk order (`left`: files left out): from a sidecar, the cache, or a read now. */
function inWalkOrder(
  files: readonly FoundFile[],
  left: ReadonlySet<FoundFile>,
  preset: ReadonlyMap<FoundFile, FileHashes>,
  hits: readonly (FileHashes | null)[],
  hashed: readonly HashResult[],
): { hashes: HashResult[]; presetCount: number; cachedCount: number } {
  let presetCount = 0;
  let cachedCount = 0;
  const byFile = new Map<FoundFile, HashResult>();
  for (const r of hashed) byFile.set(r.file, r);
  const hashes: HashResult[] = [];
  files.forEach((file, i) => {
    if (left.size > 0 && left.has(file)) return;
    const given = preset.size > 0 ? preset.get(file) : undefined;
    const hit = hits[i];
    if (given) {
      presetCount++;
      hashes.push({ file, hashes: given, cached: false });
    } else if (hit) {
      cachedCount++;
      hashes.push({ file, hashes: hit, cached: true });
    } else hashes.push(byFile.get(file)!);
  });
  return { hashes, presetCount, cachedCount };
}

function mergeSkipped(a: readonly SkippedPath[], b: readonly SkippedPath[]): SkippedPath[] {
  return [...a, ...b].sort((x, y) => compareByteOrder(x.path, y.path));
}
