import { availableParallelism } from "node:os";
import type { FileHashes, FoundFile, HashAlgo, HashResult, WalkResult } from "./types.ts";
import { openHashCache } from "../hash/hash-cache.ts";
import { hashFiles, type HashProgress } from "../hash/hasher.ts";
import { walk } from "./walker.ts";

export interface CollectOptions {
  paths: string[];
  extensions: string[];
  exclude: string[];
  algos: (file: FoundFile) => readonly HashAlgo[];
  jobs?: number;
  /** Cache folder, or false for --no-cache. */
  cacheDir: string | false;
  rehash?: boolean;
  signal?: AbortSignal;
  onWarning: (message: string) => void;
  onHashProgress?: (progress: HashProgress) => void;
  /**
   * Called once after the walk with every file found. Files it returns hashes for are not read:
   * their result carries those hashes (scan --trust-sidecars). `hash` does not use it.
   */
  presetHashes?: (files: readonly FoundFile[]) => Promise<ReadonlyMap<FoundFile, FileHashes>>;
}

export interface CollectResult {
  walk: WalkResult;
  hashes: HashResult[];
  stats: { filesHashed: number; filesCached: number; bytesRead: number; durationMs: number; filesPreset?: number };
}

/**
 * Walk, then hash with the cache: the part `hash` and `scan` share. Warnings go to `onWarning`
 * as they happen so a long run shows them early.
 */
export async function collectFiles(options: CollectOptions): Promise<CollectResult> {
  const started = performance.now();
  const walked = await walk(options.paths, { extensions: options.extensions, exclude: options.exclude });
  for (const w of walked.warnings) options.onWarning(w);

  const { cache, warning } = await openHashCache(options.cacheDir, { onWarning: options.onWarning });
  if (warning) options.onWarning(warning);

  const preset = options.presetHashes ? await options.presetHashes(walked.files) : new Map<FoundFile, FileHashes>();
  options.signal?.throwIfAborted();
  const toHash = preset.size > 0 ? walked.files.filter((f) => !preset.has(f)) : walked.files;
  const hashed = await hashFiles(toHash, {
    algos: options.algos,
    jobs: options.jobs ?? availableParallelism(),
    cache,
    rehash: options.rehash,
    signal: options.signal,
    onProgress: options.onHashProgress,
  });
  let bytesRead = 0;
  let filesCached = 0;
  for (const r of hashed) {
    if (r.cached) filesCached++;
    else if (!r.error) bytesRead += r.file.identity.size;
  }
  // Back in walk order, preset files where they were.
  let at = 0;
  const hashes: HashResult[] =
    preset.size > 0
      ? walked.files.map((file) => {
          const given = preset.get(file);
          return given ? { file, hashes: given, cached: false } : hashed[at++]!;
        })
      : hashed;
  return {
    walk: walked,
    hashes,
    stats: {
      filesHashed: hashed.length - filesCached,
      filesCached,
      bytesRead,
      durationMs: performance.now() - started,
      ...(preset.size > 0 ? { filesPreset: preset.size } : {}),
    },
  };
}
