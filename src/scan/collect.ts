import { availableParallelism } from "node:os";
import type { FileHashes, FoundFile, HashAlgo, HashResult, SkippedPath } from "./types.ts";
import { hashesFromEntry, openHashCache, type HashCache, type HashCacheEntry } from "../hash/hash-cache.ts";
import { hashFiles, startHashFiles, type HashFilesOptions, type HashProgress, type HashRun } from "../hash/hasher.ts";
import type { SecondLookSkip } from "../hash/hash-wire.ts";
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
  /** Files sent for hashing at a time while the walk goes on (default EARLY_PART_FILES); tests lower it. */
  earlyPartFiles?: number;
  /** Names to keep from the folder listings (scan: sidecar names), in `walk.names`. */
  keepName?: (name: string) => boolean;
  /** A file named as an argument is read whatever its extension (`hash`; see WalkOptions). */
  namedFilesAnyName?: boolean;
  /** Once per file found, in walk order, with its trusted cache entry (null when none), before any file is read. */
  onCacheEntry?: (file: FoundFile, entry: HashCacheEntry | null) => void;
  /**
   * Called once after the walk when the hash cache is open, before it is read: the caller may then
   * say (`claim`) which files it knows the hashes of without the cache.
   */
  prepareClaims?: (walk: WalkerResult) => Promise<void>;
  /**
   * Asked first for each file found, in walk order, when the hash cache is open: its hashes when the
   * caller knows them without the cache (scan: a record kept from an earlier run, record-cache.ts).
   * The cache is then not read for the file, and `onCacheEntry` is not called for it.
   */
  claim?: (file: FoundFile) => FileHashes | null;
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
  // Without per-file hooks before reading (`hash`), files are read while the walk goes on.
  if (!options.presetHashes && !options.onCacheEntry) return collectAsWalked(options, started);
  const walked = await walk(options.paths, {
    extensions: options.extensions,
    exclude: options.exclude,
    stability: "deferred",
    ...(options.keepName ? { keepName: options.keepName } : {}),
    ...(options.namedFilesAnyName ? { namedFilesAnyName: true } : {}),
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

/**
 * Files a folder listing gave are sent for hashing in parts of this many: workers start on the
 * first ones while the walk goes on (a cold walk of 100,000 files took 0.75 s of one core, the
 * other one idle), and 4,096 make batches of the measured best size (hasher.ts BATCH_MAX_FILES).
 */
const EARLY_PART_FILES = 4096;

/**
 * Files looked up as the walk gives them before deciding: when fewer than half of them need
 * reading, the rest are looked up after the walk instead. A warm run has nothing to read early, and
 * holding what it found for each file during the walk cost it a fifth more CPU (100k files).
 */
const EARLY_PROBE_FILES = 2048;

/** A file the walk gave early, and what became of it: its cache hit, or its place in the run. */
interface EarlyFile {
  file: FoundFile;
  hit: FileHashes | null;
  /** Given to the hash run already. */
  sent: boolean;
  /** The walk's own object for this find, when it kept it. */
  kept?: FoundFile;
}

/**
 * Each file the walk returns, with what was done early for that same find (same path, real path
 * and identity object), else looked up now; and those still to hash (early ones not sent yet included).
 */
function reconcile(
  files: readonly FoundFile[],
  early: ReadonlyMap<string, EarlyFile>,
  lookUp: (file: FoundFile) => FileHashes | null,
): { hits: (FileHashes | null)[]; toHash: FoundFile[] } {
  const hits: (FileHashes | null)[] = [];
  const toHash: FoundFile[] = [];
  for (const file of files) {
    const e = early.get(file.path);
    if (e && e.file.identity === file.identity && e.file.realPath === file.realPath) {
      hits.push(e.hit);
      if (e.hit) continue;
      e.kept = file;
      if (!e.sent) toHash.push(e.file);
    } else {
      const hit = lookUp(file);
      hits.push(hit);
      if (!hit) toHash.push(file);
    }
  }
  return { hits, toHash };
}

/** The run's results and second-look skips for the walk's own objects; those of finds it did not keep are dropped. */
function keptResults(
  all: HashResult[],
  skips: readonly { file: FoundFile; why: SecondLookSkip }[],
  kept: (file: FoundFile) => FoundFile | undefined,
): { hashed: HashResult[]; left: Set<FoundFile>; skipped: SkippedPath[] } {
  const hashed: HashResult[] = [];
  for (const r of all) {
    const file = kept(r.file);
    if (!file) continue;
    r.file = file;
    hashed.push(r);
  }
  const left = new Set<FoundFile>();
  const skipped: SkippedPath[] = [];
  for (const skip of skips) {
    const file = kept(skip.file);
    if (!file) continue;
    left.add(file);
    for (const path of file.paths) skipped.push({ path, reason: SKIP_REASON[skip.why] });
  }
  return { hashed, left, skipped };
}

/**
 * collectFiles when nothing has to see the files before they are read: the hash cache is opened
 * first, and the files each folder gives are looked up and sent to the hash workers as the walk
 * goes on (walker.ts onFolderFiles). When the walk ends, each file it returns takes what was done
 * for it early if it is that same find (same path, real path and identity object); any other is
 * looked up and hashed then, as before. Results for finds the walk did not keep are dropped (the
 * cache entry they made is right for their real path and state).
 */
async function collectAsWalked(options: CollectOptions, started: number): Promise<CollectResult> {
  // The cache's warnings come after the walk's, as they did when it was opened after the walk.
  const held: string[] = [];
  let holding = true;
  const onWarning = (m: string) => (holding ? held.push(m) : options.onWarning(m));
  const { cache, warning } = await openHashCache(options.cacheDir, { onWarning, withLocal: options.withLocal === true });
  if (warning) held.push(warning);
  const early = new Map<string, EarlyFile>();
  const skips: { file: FoundFile; why: SecondLookSkip }[] = [];
  let run: HashRun | null = null;
  let part: EarlyFile[] = [];
  let seen = 0;
  let missed = 0;
  const startRun = () => startHashFiles({ ...hashRunOptions(options, cache, (file, why) => skips.push({ file, why })), growing: true });
  /** The walk's object for a file given to the run: itself, or the one it became (none: a find the walk did not keep). */
  const kept = (file: FoundFile): FoundFile | undefined => {
    const e = early.get(file.path);
    return e?.file === file ? e.kept : file;
  };
  const lookUp = (file: FoundFile) => (cache && !options.rehash ? cache.get(file.realPath, file.identity, options.algos(file)) : null);
  try {
    const walked = await walk(options.paths, {
      extensions: options.extensions,
      exclude: options.exclude,
      stability: "deferred",
      ...(options.keepName ? { keepName: options.keepName } : {}),
      ...(options.namedFilesAnyName ? { namedFilesAnyName: true } : {}),
      onFolderFiles: (files) => {
        seen += files.length;
        for (const file of files) {
          const e: EarlyFile = { file, hit: lookUp(file), sent: false };
          early.set(file.path, e);
          if (!e.hit) {
            part.push(e);
            missed++;
          }
        }
        if (part.length >= (options.earlyPartFiles ?? EARLY_PART_FILES)) {
          run ??= startRun();
          run.add(part.map((e) => e.file));
          for (const e of part) e.sent = true;
          part = [];
        }
        // Mostly cached: the rest is looked up after the walk, as before (and the walk builds no early record).
        return seen < EARLY_PROBE_FILES || missed * 2 >= seen;
      },
    });
    for (const w of walked.warnings) options.onWarning(w);
    holding = false;
    for (const w of held) options.onWarning(w);
    options.signal?.throwIfAborted();

    const { hits, toHash } = reconcile(walked.files, early, lookUp);
    run ??= startRun();
    run.add(toHash);
    const { hashed, left, skipped } = keptResults(await run.end(), skips, kept);
    return finishCollect(options, walked, hits, new Map(), left, skipped, hashed, started, cache);
  } catch (err) {
    run?.cancel();
    if (holding) for (const w of held) options.onWarning(w);
    throw err;
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
  if (cache && !options.rehash) await options.prepareClaims?.(walked);
  const hits = cacheHits(walked, cache, options);
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
  const hashed = await hashFiles(
    toHash,
    hashRunOptions(options, cache, (file, why) => {
      left.add(file);
      for (const path of file.paths) skipped.push({ path, reason: SKIP_REASON[why] });
    }),
  );
  return finishCollect(options, walked, hits, preset, left, skipped, hashed, started, cache);
}

/** How collect runs the hasher, both ways: files already looked up in the cache, each given a second look. */
function hashRunOptions(
  options: CollectOptions,
  cache: HashCache | null,
  onSkipped: (file: FoundFile, why: SecondLookSkip) => void,
): HashFilesOptions {
  return {
    algos: options.algos,
    jobs: options.jobs ?? availableParallelism(),
    cache,
    rehash: options.rehash,
    lookedUp: true,
    secondLook: true,
    onSkipped,
    signal: options.signal,
    onProgress: options.onHashProgress,
  };
}

/** The results in walk order without the files left out, and the counts (both ways of collecting end here). */
function finishCollect(
  options: CollectOptions,
  walked: WalkerResult,
  hits: readonly (FileHashes | null)[],
  preset: ReadonlyMap<FoundFile, FileHashes>,
  left: ReadonlySet<FoundFile>,
  skipped: readonly SkippedPath[],
  hashed: readonly HashResult[],
  started: number,
  cache: HashCache | null,
): CollectResult {
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
function cacheHits(walked: WalkerResult, cache: HashCache | null, options: CollectOptions): (FileHashes | null)[] {
  const { onCacheEntry, claim } = options;
  return walked.files.map((file) => {
    if (!cache) {
      onCacheEntry?.(file, null);
      return null;
    }
    const claimed = claim && !options.rehash ? claim(file) : null;
    if (claimed) return claimed;
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
