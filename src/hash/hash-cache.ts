/**
 * Persistent hash cache: one small JSON file per model file, keyed by a hash of its real path.
 *
 * Why not unstorage (docs/reliability.md §3.1): 1.x rewrites files in place (torn reads), destr turns
 * "1234567890" into a number, and its key normalisation merges `a/b` with `a:b`. Here:
 * - the file name is sha256(realPath), so no name from disk can traverse or collide;
 * - each value is an object whose every field is type-checked on read; anything odd is a miss;
 * - writes go through a temp file and a rename, so readers and a second run never see a torn entry;
 * - a hit needs path, dev, ino, size, mtimeNs and ctimeNs all equal (docs/reliability.md §3.4), and entries written
 *   while the file's mtime was "racy" (within 2 s of the write, or in the future) are never trusted.
 *
 * Reads are synchronous on purpose: a warm run over 10,000 files is 10,000 tiny reads, and per-entry
 * promise overhead would cost more than the reads.
 */
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { HASH_HEX_LENGTH, isHashAlgo, isValidHashValue } from "./hash-algos.ts";
import type { FileHashes, FileIdentity, HashAlgo } from "../scan/types.ts";
import { isTempName, tempPathFor, writeFileAtomic } from "../shared/atomic-write.ts";
import { encodeFsName, fsPath } from "../shared/fs-path.ts";
import { listNoFollow, removeEmptyDirs } from "../shared/no-follow.ts";

export const HASH_CACHE_VERSION = 1;
/** An entry whose file mtime is this close to (or after) the time it was written is not trusted. */
export const RACY_WINDOW_MS = 2000;
/** Entries are a few hundred bytes; anything much larger is not ours. */
const MAX_ENTRY_BYTES = 64 * 1024;
/** A temp file older than this was left by a killed process. */
const STALE_TEMP_MS = 60 * 60 * 1000;

export interface HashCacheEntry {
  v: typeof HASH_CACHE_VERSION;
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  hashes: FileHashes;
  /** Algorithms computed but not applicable (AutoV3 of a file that is not safetensors). */
  absent: HashAlgo[];
  /** False for a racy entry: kept for inspection, never used as a hit. */
  confirmed: boolean;
  /** Epoch milliseconds when the entry was written. */
  hashedAt: number;
}

export interface HashCacheStats {
  hits: number;
  misses: number;
  writes: number;
  /** Entry files that failed to parse or validate (each treated as a miss). */
  corrupt: number;
}

export interface PruneResult {
  checked: number;
  removed: number;
}

export interface HashCache {
  /** The cache's root folder (the one given to openHashCache). */
  readonly dir: string;
  /** False once a write failed: the run goes on without storing, lookups still work. */
  readonly writable: boolean;
  /** Warnings raised so far (write failure, corrupt entries), each once. */
  readonly warnings: readonly string[];
  readonly stats: Readonly<HashCacheStats>;
  /**
   * The cached hashes of `algos` for this exact file state, or null unless every one is cached (or
   * known not to apply). The result holds only algorithms that were asked for and exist.
   */
  get(realPath: string, identity: FileIdentity, algos: readonly HashAlgo[]): FileHashes | null;
  /** The trusted entry for this exact file state (all identity fields equal, confirmed), or null. */
  read(realPath: string, identity: FileIdentity): HashCacheEntry | null;
  /**
   * Stores hashes computed for `identity`, merged with a trusted entry for the same state. Never
   * throws: a write error disables further writes and adds one warning.
   */
  set(realPath: string, identity: FileIdentity, hashes: FileHashes, absent?: readonly HashAlgo[]): void;
  /** Removes entries that do not parse, whose file is gone or replaced (docs/cases.md C9), and stale temp files. */
  prune(): PruneResult;
  /** The entry file for a real path (exported for tests and `cache` diagnostics). */
  entryPath(realPath: string): string;
}

export interface OpenHashCacheOptions {
  /** fsync each entry before its rename (default false; see the note on JsonHashCache). */
  fsync?: boolean;
  /** Clock for racy-entry decisions; tests move it. */
  now?: () => number;
  /** Called once per warning as it happens (also collected in `cache.warnings`). */
  onWarning?: (message: string) => void;
}

export interface OpenHashCacheResult {
  cache: HashCache | null;
  /** Set when the cache could not be used: one line for the user, the run goes on without it. */
  warning?: string;
}

const ERRNO_TEXT: Record<string, string> = {
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "not a directory",
  EEXIST: "file exists",
  ENOENT: "no such file or directory",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EISDIR: "is a directory",
  EIO: "input/output error",
};

/** `<path>: EROFS (read-only file system)`, the form every cache warning uses. */
export function describeFsError(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code) return `${path}: ${code} (${ERRNO_TEXT[code] ?? (err as Error).message})`;
  return `${path}: ${err instanceof Error ? err.message : String(err)}`;
}

function entriesRoot(dir: string): string {
  return join(dir, "hashes", `v${HASH_CACHE_VERSION}`);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

const NS_RE = /^-?\d{1,30}$/;

/** Type-checks a parsed entry field by field; anything unexpected makes the whole entry invalid. */
export function parseEntry(text: string): HashCacheEntry | null {
  if (text.length === 0 || text.length > MAX_ENTRY_BYTES) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const o = raw as Record<string, unknown>;
  if (o.v !== HASH_CACHE_VERSION || typeof o.path !== "string" || o.path === "") return null;
  if (!isNonNegInt(o.dev) || !isNonNegInt(o.ino) || !isNonNegInt(o.size)) return null;
  if (typeof o.mtimeNs !== "string" || !NS_RE.test(o.mtimeNs)) return null;
  if (typeof o.ctimeNs !== "string" || !NS_RE.test(o.ctimeNs)) return null;
  if (typeof o.confirmed !== "boolean") return null;
  if (typeof o.hashedAt !== "number" || !Number.isFinite(o.hashedAt)) return null;
  if (typeof o.hashes !== "object" || o.hashes === null || Array.isArray(o.hashes)) return null;
  const hashes: FileHashes = {};
  for (const [algo, value] of Object.entries(o.hashes as Record<string, unknown>)) {
    if (!isHashAlgo(algo) || !isValidHashValue(algo, value)) return null;
    hashes[algo] = value;
  }
  const absent: HashAlgo[] = [];
  if (o.absent !== undefined) {
    if (!Array.isArray(o.absent)) return null;
    for (const algo of o.absent) {
      if (typeof algo !== "string" || !isHashAlgo(algo) || algo in hashes) return null;
      absent.push(algo);
    }
  }
  return {
    v: HASH_CACHE_VERSION,
    path: o.path,
    dev: o.dev,
    ino: o.ino,
    size: o.size,
    mtimeNs: o.mtimeNs,
    ctimeNs: o.ctimeNs,
    hashes,
    absent,
    confirmed: o.confirmed,
    hashedAt: o.hashedAt,
  };
}

function sameIdentity(entry: HashCacheEntry, realPath: string, id: FileIdentity): boolean {
  return (
    entry.path === realPath &&
    entry.dev === id.dev &&
    entry.ino === id.ino &&
    entry.size === id.size &&
    entry.mtimeNs === id.mtimeNs &&
    entry.ctimeNs === id.ctimeNs
  );
}

/** Racy-git rule (docs/reliability.md §3.4): a change right after hashing could keep the same timestamps, so such an entry is not trusted. */
export function isRacy(mtimeNs: string, hashedAt: number): boolean {
  const mtimeMs = Number(BigInt(mtimeNs) / 1_000_000n);
  return mtimeMs > hashedAt - RACY_WINDOW_MS;
}

/**
 * fsync is off by default: a cold run over thousands of files would pay one disk flush each, and an
 * entry is self-validating, so what a power cut can leave (an empty or garbage file) reads as a miss.
 * The rename alone already guarantees that a killed process leaves old-or-new, never torn.
 */
class JsonHashCache implements HashCache {
  readonly warnings: string[] = [];
  readonly stats: HashCacheStats = { hits: 0, misses: 0, writes: 0, corrupt: 0 };
  writable = true;
  private readonly root: string;
  private readonly madeDirs = new Set<string>();
  private warnedCorrupt = false;

  constructor(
    readonly dir: string,
    private readonly options: OpenHashCacheOptions,
  ) {
    this.root = entriesRoot(dir);
  }

  entryPath(realPath: string): string {
    // Of the bytes: a string with raw bytes would be hashed with U+FFFD, and two names would collide.
    const key = Bun.CryptoHasher.hash("sha256", encodeFsName(realPath), "hex");
    return join(this.root, key.slice(0, 2), `${key}.json`);
  }

  private warn(message: string): void {
    this.warnings.push(message);
    this.options.onWarning?.(message);
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private load(file: string): HashCacheEntry | null {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return null; // ENOENT is the common miss; any other read error is a miss too
    }
    const entry = parseEntry(text);
    if (!entry) {
      this.stats.corrupt++;
      if (!this.warnedCorrupt) {
        this.warnedCorrupt = true;
        this.warn(`hash cache: ignoring unreadable entry ${file} (rewritten when the file is hashed)`);
      }
    }
    return entry;
  }

  read(realPath: string, identity: FileIdentity): HashCacheEntry | null {
    const entry = this.load(this.entryPath(realPath));
    if (!entry || !entry.confirmed || !sameIdentity(entry, realPath, identity)) return null;
    return entry;
  }

  get(realPath: string, identity: FileIdentity, algos: readonly HashAlgo[]): FileHashes | null {
    const entry = this.read(realPath, identity);
    if (entry && algos.every((a) => entry.hashes[a] !== undefined || entry.absent.includes(a))) {
      this.stats.hits++;
      const out: FileHashes = {};
      for (const a of algos) {
        const value = entry.hashes[a];
        if (value !== undefined) out[a] = value;
      }
      return out;
    }
    this.stats.misses++;
    return null;
  }

  set(realPath: string, identity: FileIdentity, hashes: FileHashes, absent: readonly HashAlgo[] = []): void {
    if (!this.writable) return;
    const file = this.entryPath(realPath);
    try {
      const merged: FileHashes = {};
      const mergedAbsent = new Set<HashAlgo>();
      const previous = this.read(realPath, identity);
      if (previous) {
        Object.assign(merged, previous.hashes);
        for (const a of previous.absent) mergedAbsent.add(a);
      }
      for (const [algo, value] of Object.entries(hashes) as [HashAlgo, string][]) {
        // Never store what a later read would reject.
        if (!isValidHashValue(algo, value)) throw new Error(`invalid ${algo} value (${HASH_HEX_LENGTH[algo]} hex expected)`);
        merged[algo] = value;
        mergedAbsent.delete(algo);
      }
      for (const a of absent) if (merged[a] === undefined) mergedAbsent.add(a);
      const hashedAt = this.now();
      const entry: HashCacheEntry = {
        v: HASH_CACHE_VERSION,
        path: realPath,
        dev: identity.dev,
        ino: identity.ino,
        size: identity.size,
        mtimeNs: identity.mtimeNs,
        ctimeNs: identity.ctimeNs,
        hashes: merged,
        absent: [...mergedAbsent],
        confirmed: !isRacy(identity.mtimeNs, hashedAt),
        hashedAt,
      };
      const sub = dirname(file);
      if (!this.madeDirs.has(sub)) {
        mkdirSync(sub, { recursive: true });
        this.madeDirs.add(sub);
      }
      writeFileAtomic(file, JSON.stringify(entry), { fsync: this.options.fsync ?? false, mode: 0o644 });
      this.stats.writes++;
    } catch (err) {
      this.writable = false;
      this.warn(`hash cache disabled: ${describeFsError(this.dir, err)}`);
    }
  }

  prune(): PruneResult {
    const result: PruneResult = { checked: 0, removed: 0 };
    const remove = (p: string) => {
      try {
        unlinkSync(p);
        result.removed++;
      } catch {
        /* gone already, or read-only: nothing to do */
      }
    };
    const now = Date.now();
    // Never through a link, and only files named as we name them (docs/cases.md T11): anything else is not ours.
    for (const file of listNoFollow(this.root).files) {
      const name = basename(file);
      if (isTempName(name)) {
        try {
          if (now - statSync(file).mtimeMs > STALE_TEMP_MS) remove(file);
        } catch {
          /* raced with its writer */
        }
        continue;
      }
      if (!isEntryFile(this.root, file)) continue;
      result.checked++;
      let text = "";
      try {
        text = readFileSync(file, "utf8");
      } catch {
        continue;
      }
      const entry = parseEntry(text);
      if (!entry || this.entryPath(entry.path) !== file) {
        remove(file);
        continue;
      }
      try {
        const st = statSync(fsPath(entry.path), { bigint: true });
        if (Number(st.dev) !== entry.dev || Number(st.ino) !== entry.ino) remove(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") {
          remove(file);
        }
      }
    }
    return result;
  }
}

/** `<root>/<ab>/<ab…64 hex>.json`: the only name an entry has, so a user's file is never taken for one. */
function isEntryFile(root: string, file: string): boolean {
  const name = basename(file);
  const sub = dirname(file);
  return /^[0-9a-f]{64}\.json$/.test(name) && basename(sub) === name.slice(0, 2) && dirname(sub) === root;
}

/**
 * `cache clear --hashes`: removes the entries and temp files we wrote under `dir`, then the folders
 * left empty. Links are not followed and files we did not write stay (with their folders).
 * Returns the number of files removed.
 */
export function clearHashCache(dir: string): number {
  const root = entriesRoot(dir);
  const listing = listNoFollow(root);
  let removed = 0;
  for (const file of listing.files) {
    if (!isTempName(basename(file)) && !isEntryFile(root, file)) continue;
    try {
      unlinkSync(file);
      removed++;
    } catch {
      /* gone already */
    }
  }
  removeEmptyDirs([...listing.dirs, root, join(dir, "hashes")]);
  return removed;
}

/**
 * Opens (and probes) the hash cache under `dir`; `false` means no cache (--no-cache). The probe
 * creates, renames and removes a file where entries go, so a read-only, uncreatable or
 * not-a-folder location becomes one warning up front instead of an error per file.
 */
export async function openHashCache(dir: string | false, options: OpenHashCacheOptions = {}): Promise<OpenHashCacheResult> {
  if (dir === false) return { cache: null };
  const root = entriesRoot(dir);
  const probe = tempPathFor(join(root, "probe"));
  const renamed = `${probe}-renamed`;
  try {
    mkdirSync(root, { recursive: true });
    writeFileSync(probe, "probe", { flag: "wx" });
    renameSync(probe, renamed);
    unlinkSync(renamed);
  } catch (err) {
    for (const p of [probe, renamed]) {
      try {
        unlinkSync(p);
      } catch {
        /* not there */
      }
    }
    return { cache: null, warning: `hash cache disabled: ${describeFsError(dir, err)}` };
  }
  return { cache: new JsonHashCache(dir, options) };
}
