// The folder walker: finds model files under the given paths without ever opening one.
// Bun's readdir({recursive:true}) throws ELOOP and returns nothing when a symlink cycle exists
// anywhere below the root (docs/reliability.md §4.6), so this walks one directory at a time with an
// explicit stack and its own (dev, ino) loop detection.
import type { BigIntStats } from "node:fs";
import { statfsSync, statSync } from "node:fs";
import { lstat, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ARIA2_CONTROL_SUFFIX,
  compareByteOrder,
  createExcludeMatcher,
  type ExcludeMatcher,
  hasModelExtension,
  inProgressSuffix,
  isOwnTempName,
  normaliseExtensions,
  ORDER_DIFFERS_RE,
} from "./path-filter.ts";
import type { FileIdentity, FoundFile, SkippedPath, WalkResult } from "./types.ts";
import { identityFromStats } from "./file-identity.ts";
import { sep } from "node:path";
import { basenamePath, dirnamePath, fsPath, hasRawBytes, joinPath, resolvePath } from "../shared/fs-path.ts";
import { listEntries, listEntriesSync, realpathKeepingBytes, type ListedEntry } from "../shared/fs-names.ts";
import { TEMP_PREFIX } from "../shared/temp-name.ts";
import { errnoOrMessage } from "../shared/errors.ts";

const DEFAULT_MAX_DEPTH = 64;

/** Stats issued at once within one folder: enough to hide NFS/SMB latency, few enough not to flood it. */
const STAT_CONCURRENCY = 32;

/**
 * The only file-system calls the walker makes; injectable so tests can simulate EACCES as root.
 * Paths are strings that may hold raw bytes (names that are not UTF-8, see shared/fs-path.ts).
 */
export interface WalkerFs {
  /** A Dirent[] is fine; an entry whose type is unknown (all is*() false) is lstat'ed. */
  readdir(path: string): Promise<ListedEntry[]>;
  /** Follows symlinks. */
  stat(path: string): Promise<BigIntStats>;
  lstat(path: string): Promise<BigIntStats>;
  realpath(path: string): Promise<string>;
}

export const NODE_WALKER_FS: WalkerFs = {
  readdir: listEntries,
  stat: (path) => stat(fsPath(path), { bigint: true }),
  lstat: (path) => lstat(fsPath(path), { bigint: true }),
  realpath: realpathKeepingBytes,
};

export interface WalkOptions {
  /** Extensions to look for, as from `--ext` (normalised again here); empty or absent = DEFAULT_EXTENSIONS. */
  extensions?: readonly string[];
  /** `--exclude` globs; see createExcludeMatcher for the semantics. */
  exclude?: readonly string[];
  /** Folder levels below a root that are still scanned; deeper folders are a warning. */
  maxDepth?: number;
  /**
   * Extra wait before the second stat of every file. 0 (default) means the walk itself is the gap,
   * which catches active downloads on any tree big enough for it to matter and costs nothing.
   */
  stabilityDelayMs?: number;
  onProgress?(dirsDone: number, filesFound: number): void;
  fs?: WalkerFs;
  /**
   * "deferred": return the files after one stat each, and leave the second look (a download in
   * progress changes size or mtime between the two) to the caller, who runs `settleFiles` on the
   * files it is going to read. A warm run then stats each unchanged file once: its cached hash is
   * only used when size, mtime and ctime are still those of a file hashed earlier.
   */
  stability?: "now" | "deferred";
  /** Names to keep from each folder listing (e.g. sidecars), returned in `WalkerResult.names`. */
  keepName?: (name: string) => boolean;
  /**
   * After each folder, the files first found in it that no other path can reach (one link, no
   * link of their own, no .aria2 beside them, real path known), as the result will give them
   * unless another path to one turns up later: a caller may start reading them while the walk goes
   * on. The result has its own FoundFile objects, with the same `identity` object for an unchanged find.
   * Returning false asks for no more.
   */
  onFolderFiles?: (files: FoundFile[]) => boolean;
  /**
   * A regular file named as an argument is taken whatever its extension (`hash model.onnx`, as
   * sha256sum would), instead of being skipped as not a model file. Files found in folders still
   * need a model extension.
   */
  namedFilesAnyName?: boolean;
}

/** WalkResult plus informational notes (a folder reached again through a symlink) that are not problems. */
export interface WalkerResult extends WalkResult {
  notes: string[];
  /** With `keepName`: per walked folder, the names it kept (an empty list when none matched). */
  names?: Map<string, string[]>;
}

/**
 * Walks `roots` (folders or files, in argument order) and returns every regular model file once per
 * (dev, ino), the model-named entries it refused and why, the roots that do not exist, and warnings.
 * Paths are absolute but not symlink-resolved. The same tree always gives the same result.
 *
 * Paths given as arguments are never excluded (the user named them) but are still checked for
 * extension, type and in-progress state. Symlinked folders are followed, after all folders reachable
 * without symlinks, so a file shows under its real folder when the link points inside the tree; a
 * folder already walked is not walked again, so its files do not get the extra paths through that link.
 */
export async function walk(roots: readonly string[], options: WalkOptions = {}): Promise<WalkerResult> {
  const walker = new Walker(options);
  return walker.run(roots);
}

interface DirTask {
  path: string;
  /** Relative to the root it was found under, `/`-separated; "" for the root itself. */
  rel: string;
  depth: number;
  /**
   * Its real path, when it was listed as a folder (not a link) in a folder whose real path is
   * known: that path plus its name, as its files get theirs. Roots and folders reached through a
   * link are resolved with realpath.
   */
  real?: string;
  /**
   * Listed in a folder on a local disk (see syncStat): its own stat, and its listing when it is on
   * a local disk too, are made without a promise (the walk takes one folder at a time, so a promise
   * hid no wait: a stat and a listing through the thread pool per folder were ~20 % of a warm scan
   * of 1,000 folders of one file each).
   */
  parentLocal?: boolean;
}

interface Candidate {
  paths: string[];
  /** `paths` as a set, from its second name on: a folder of 60,000 links to one file made the search of the list quadratic. */
  seen?: Set<string>;
  /** Of the first path, when known without a call (its folder's real path plus its name). */
  realPath: string | null;
  /** From the first stat. */
  identity: FileIdentity;
  aria2: boolean;
}

type EntryOutcome =
  | { kind: "ignore" }
  | { kind: "dir"; task: DirTask }
  | { kind: "linkdir"; task: DirTask }
  | { kind: "skip"; reason: string }
  | { kind: "warn"; message: string }
  | { kind: "file"; st: BigIntStats; aria2: boolean; link: boolean };

type FinalOutcome =
  | { kind: "file"; file: FoundFile }
  | { kind: "skip"; paths: string[]; reason: string }
  | { kind: "warn"; message: string };

type FileKind = "file" | "dir" | "link" | "fifo" | "socket" | "chardev" | "blockdev" | "unknown";

/** What `kindOf` reads: a listed entry's type, or a Stats object's (both have these methods). */
type TypedEntry = Omit<ListedEntry, "name">;

const KIND_LABEL: Record<FileKind, string> = {
  file: "regular file",
  dir: "folder",
  link: "symbolic link",
  fifo: "FIFO",
  socket: "socket",
  chardev: "character device",
  blockdev: "block device",
  unknown: "unknown type",
};

export const SKIP_REASON = {
  broken: "broken symbolic link",
  loop: "symbolic link loop (ELOOP)",
  aria2: "download in progress (aria2 control file present)",
  sizeChanged: "size changed while scanning (still being written?)",
  modified: "modified while scanning (still being written?)",
  replaced: "replaced while scanning (still being written?)",
  removed: "removed while scanning",
  notModel: "not a model file (extension not in the list)",
  ownTemp: "temporary file of civitai-meta",
} as const;

function inProgressReason(suffix: string): string {
  return `download in progress (${suffix})`;
}

function kindOf(entry: TypedEntry): FileKind {
  if (entry.isFile()) return "file";
  if (entry.isDirectory()) return "dir";
  if (entry.isSymbolicLink()) return "link";
  if (entry.isFIFO()) return "fifo";
  if (entry.isSocket()) return "socket";
  if (entry.isCharacterDevice()) return "chardev";
  if (entry.isBlockDevice()) return "blockdev";
  return "unknown";
}

/** What a file whose stat failed becomes: gone since the listing, or a warning with the reason. */
function statFailure(path: string, err: unknown): EntryOutcome {
  const code = errnoOrMessage(err);
  if (code === "ENOENT") return { kind: "skip", reason: SKIP_REASON.removed };
  return { kind: "warn", message: `${path}: cannot read file information (${code})` };
}

/** A listed file replaced by something else between readdir and stat is skipped, saying what it is now. */
function notRegularNow(st: BigIntStats): EntryOutcome | null {
  const now = kindOf(st);
  return now === "file" ? null : { kind: "skip", reason: `not a regular file (${KIND_LABEL[now]})` };
}

function inodeKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

/** Same (dev, ino) and content stamp as the first look: what a stable file keeps between two stats. */
function sameFile(st: BigIntStats, id: FileIdentity): boolean {
  return Number(st.dev) === id.dev && Number(st.ino) === id.ino;
}

/** FoundFile.mtimeMs from the ns string, via whole microseconds (a Number of ~2^60 ns would round). */
function mtimeMsOf(mtimeNs: string): number {
  // Whole microseconds are the digits before the last three (a plain slice for the usual positive value).
  if (/^\d{4,}$/.test(mtimeNs)) return Number(mtimeNs.slice(0, -3)) / 1000;
  return Number(BigInt(mtimeNs) / 1000n) / 1000;
}

async function mapInOrder<T, R>(items: readonly T[], fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += STAT_CONCURRENCY) {
    out.push(...(await Promise.all(items.slice(i, i + STAT_CONCURRENCY).map((item, j) => fn(item, i + j)))));
  }
  return out;
}

function relOf(task: DirTask, name: string): string {
  return task.rel === "" ? name : `${task.rel}/${name}`;
}

/**
 * Linux file systems on which a stat is a local call (statfs f_type): disks, RAM and overlays.
 * Anything else (NFS, SMB, FUSE such as sshfs or rclone, 9p as WSL's drives use, cluster file
 * systems) keeps the concurrent async stats.
 */
const LOCAL_FS_TYPES: ReadonlySet<number> = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x2fc12fc1, // zfs
  0xf2f52010, // f2fs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0x794c7630, // overlayfs
  0x3153464a, // jfs
  0x52654973, // reiserfs
  0x4244, // hfs
  0x482b, // hfs+
  0x5346544e, // ntfs (ntfs3)
  0x4d44, // vfat / exfat via fat
  0x2011bab0, // exfat
]);

function isLocalFileSystem(path: string): boolean {
  try {
    return LOCAL_FS_TYPES.has(Number(statfsSync(fsPath(path)).type));
  } catch {
    return false;
  }
}

/**
 * Sorts by compareByteOrder. When no key holds a character where the two orders differ, the
 * engine's string comparison gives the same order without a test per comparison (the sort of a
 * 100,000-file walk took a sixth of it).
 */
function sortByteOrder<T>(items: T[], key: (item: T) => string, plain = !items.some((item) => ORDER_DIFFERS_RE.test(key(item)))): T[] {
  if (!plain) return items.sort((a, b) => compareByteOrder(key(a), key(b)));
  // A walk mostly yields its files in order already: one pass says so, where a sort compared them all.
  let sorted = true;
  for (let i = 1; i < items.length && sorted; i++) sorted = key(items[i - 1]!) < key(items[i]!);
  if (sorted) return items;
  // The keys sorted by the engine's own string order (no comparator called per comparison: the sort
  // of the listings was a tenth of a warm 100,000-file walk), then the items put in their order.
  const byKey = new Map<string, T>();
  for (const item of items) byKey.set(key(item), item);
  if (byKey.size !== items.length) {
    return items.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }
  const keys = [...byKey.keys()].sort();
  for (let i = 0; i < keys.length; i++) items[i] = byKey.get(keys[i]!)!;
  return items;
}

/**
 * A folder's path plus a name from its listing: plain concatenation (a listed name holds no
 * separator, and the folder path is already normalised), because `path.join` per entry cost more
 * than the stat of a 100,000-file walk.
 */
function childPath(dir: string, name: string, dirRaw: boolean, namePlain = false): string {
  if (dirRaw || (!namePlain && hasRawBytes(name))) return joinPath(dir, name);
  return dir.endsWith(sep) ? dir + name : dir + sep + name;
}

class Walker {
  private readonly fs: WalkerFs;
  private readonly extensions: string[];
  private readonly namedFilesAnyName: boolean;
  private readonly isExcluded: ExcludeMatcher;
  private readonly maxDepth: number;
  private readonly stabilityDelayMs: number;
  private readonly onProgress: WalkOptions["onProgress"];

  /** Folder (dev, ino) → the path it was first walked as. */
  private readonly visitedDirs = new Map<string, string>();
  /** Files by dev, then ino: numbers as keys, no string built per file. */
  private readonly candidates = new Map<number, Map<number, Candidate>>();
  private candidateCount = 0;
  /**
   * Real path of each walked folder, so a file's real path is its folder's plus its name: one
   * realpath per folder instead of one per file. Files reached through a link of their own are
   * resolved one by one (`linkRealPaths`).
   */
  private readonly folderRealPaths = new Map<string, string | null>();
  private readonly linkRealPaths = new Map<string, string>();
  private readonly stability: "now" | "deferred";
  private readonly keepName: ((name: string) => boolean) | undefined;
  private onFolderFiles: ((files: FoundFile[]) => boolean) | undefined;
  /** The current folder's files for onFolderFiles. */
  private folderFiles: FoundFile[] = [];
  private readonly names: Map<string, string[]> | undefined;
  /** Per device: whether its file system is a local one (syncStat). */
  private readonly localDevices = new Map<number, boolean>();
  private readonly skipped: SkippedPath[] = [];
  private readonly missing: string[] = [];
  private readonly warnings: string[] = [];
  private readonly notes: string[] = [];
  private readonly stack: DirTask[] = [];
  /** Symlinked folders, walked after everything reachable without symlinks (FIFO for determinism). */
  private readonly deferred: DirTask[] = [];
  private dirsDone = 0;
  /** False once a folder or a name holds a character where UTF-16 and byte order part (ORDER_DIFFERS_RE). */
  private allPlain = true;

  constructor(options: WalkOptions) {
    this.fs = options.fs ?? NODE_WALKER_FS;
    this.extensions = normaliseExtensions(options.extensions ?? []);
    this.namedFilesAnyName = options.namedFilesAnyName === true;
    this.isExcluded = createExcludeMatcher(options.exclude ?? []);
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.stabilityDelayMs = options.stabilityDelayMs ?? 0;
    this.onProgress = options.onProgress;
    this.stability = options.stability ?? "now";
    this.keepName = options.keepName;
    this.names = options.keepName ? new Map() : undefined;
    this.onFolderFiles = options.onFolderFiles;
  }

  async run(roots: readonly string[]): Promise<WalkerResult> {
    for (const root of roots) await this.walkRoot(resolvePath(root));
    for (let i = 0; i < this.deferred.length; i++) {
      this.stack.push(this.deferred[i] as DirTask);
      await this.drain();
    }
    const files = await this.finalise();
    const bySkippedPath = new Map<string, SkippedPath>();
    for (const s of this.skipped) if (!bySkippedPath.has(s.path)) bySkippedPath.set(s.path, s);
    return {
      files: sortByteOrder(files, (f) => f.path, this.allPlain ? true : undefined),
      skipped: [...bySkippedPath.values()].sort((a, b) => compareByteOrder(a.path, b.path)),
      missing: [...new Set(this.missing)],
      warnings: this.warnings,
      notes: this.notes,
      ...(this.names ? { names: this.names } : {}),
    };
  }

  private async walkRoot(path: string): Promise<void> {
    if (ORDER_DIFFERS_RE.test(path)) this.allPlain = false;
    let lst: BigIntStats;
    try {
      lst = await this.fs.lstat(path);
    } catch (err) {
      const code = errnoOrMessage(err);
      if (code === "ENOENT" || code === "ENOTDIR") this.missing.push(path);
      else this.warnings.push(`${path}: cannot read file information (${code})`);
      return;
    }
    const kind = kindOf(lst);
    if (kind === "dir") {
      this.stack.push({ path, rel: "", depth: 0 });
      await this.drain();
      return;
    }
    const outcome = await this.classify(path, basenamePath(path), "", kind, true, async () => {
      try {
        await this.fs.lstat(path + ARIA2_CONTROL_SUFFIX);
        return true;
      } catch {
        return false;
      }
    });
    if (outcome.kind === "linkdir") {
      // A symlink given as an argument is walked in argument order, like any named folder.
      this.stack.push(outcome.task);
      await this.drain();
      return;
    }
    if (outcome.kind === "file") this.linkRealPaths.set(path, await this.fs.realpath(path).catch(() => path));
    this.apply(path, outcome, []);
  }

  private async drain(): Promise<void> {
    for (let task = this.stack.pop(); task !== undefined; task = this.stack.pop()) {
      await this.walkDir(task);
      // A folder on a local disk is walked without a promise: the event loop still gets a turn
      // per folder, for the hash workers' answers, the progress timer and Ctrl-C.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.folderFiles.length > 0) {
        const found = this.folderFiles;
        this.folderFiles = [];
        if (this.onFolderFiles?.(found) === false) this.onFolderFiles = undefined;
      }
      this.dirsDone++;
      this.onProgress?.(this.dirsDone, this.candidateCount);
    }
  }

  /**
   * The folder's stat and listing, or null when it cannot be read or was walked already under
   * another name (said in a warning or a note). `local`: on a local disk (see syncStat).
   */
  private async openFolder(task: DirTask): Promise<{ st: BigIntStats; entries: ListedEntry[]; local: boolean } | null> {
    let st: BigIntStats;
    try {
      st = task.parentLocal ? statSync(fsPath(task.path), { bigint: true }) : await this.fs.stat(task.path);
    } catch (err) {
      this.warnings.push(`${task.path}: cannot read folder information (${errnoOrMessage(err)})`);
      return null;
    }
    const key = inodeKey(st);
    const seenAs = this.visitedDirs.get(key);
    if (seenAs !== undefined) {
      this.notes.push(`${task.path}: same folder as ${seenAs}, not scanned again`);
      return null;
    }
    this.visitedDirs.set(key, task.path);
    const local = this.onLocalDisk(st, task.path);
    try {
      return { st, entries: local ? listEntriesSync(task.path) : await this.fs.readdir(task.path), local };
    } catch (err) {
      this.warnings.push(`${task.path}: cannot read folder (${errnoOrMessage(err)})`);
      return null;
    }
  }

  private async walkDir(task: DirTask): Promise<void> {
    const opened = await this.openFolder(task);
    if (opened === null) return;
    const { st, entries, local } = opened;
    const { plain, names } = this.readListing(task.path, entries);
    // Resolved once for the folder; null when it cannot be (its files are then resolved one by one).
    // A realpath per folder was ~10 % of a warm scan of 1,000 folders of one file each.
    this.folderRealPaths.set(task.path, task.real ?? (await this.fs.realpath(task.path).catch(() => null)));
    const dirRaw = hasRawBytes(task.path);
    const childPaths = entries.map((entry) => childPath(task.path, entry.name, dirRaw, plain));
    const folderReal = this.folderRealPaths.get(task.path);
    const folderRealRaw = folderReal ? hasRawBytes(folderReal) : false;
    // A plain folder's child paths are plain: handed to stat as they are, without a test for raw bytes each.
    const statNow = this.syncStat(st, task.path, plain && !dirRaw);
    const outcomes: EntryOutcome[] = Array.from({ length: entries.length });
    const later: number[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const kind = kindOf(entry);
      // Regular files on a local disk (nearly every entry of a model library) are decided here,
      // stat and all, without a promise each; the rest goes through classify.
      if (statNow && kind === "file") {
        outcomes[i] = this.classifyRegular(
          childPaths[i]!,
          entry.name,
          relOf(task, entry.name),
          names?.has(entry.name + ARIA2_CONTROL_SUFFIX) === true,
          statNow,
        );
      } else later.push(i);
    }
    const classified = await mapInOrder(later, (i) => {
      const entry = entries[i]!;
      return this.classify(
        childPaths[i]!,
        entry.name,
        relOf(task, entry.name),
        kindOf(entry),
        false,
        names?.has(entry.name + ARIA2_CONTROL_SUFFIX) === true,
      );
    });
    later.forEach((i, k) => (outcomes[i] = classified[k]!));
    const subdirs: DirTask[] = [];
    for (let i = 0; i < outcomes.length; i++) {
      const outcome = outcomes[i]!;
      const path = childPaths[i]!;
      // Where a plain entry really is: its folder's real path plus its name (one string for both when
      // the folder has no link in it); unknown when the folder's could not be resolved.
      const real = folderReal === task.path ? path : folderReal ? childPath(folderReal, entries[i]!.name, folderRealRaw) : null;
      let realPath: string | null = null;
      if (outcome.kind === "dir") {
        if (real !== null) outcome.task.real = real;
        outcome.task.parentLocal = local;
      } else if (outcome.kind === "file") {
        if (outcome.link) {
          realPath = await this.fs.realpath(path).catch(() => null);
          if (realPath !== null) this.linkRealPaths.set(path, realPath);
        } else realPath = real;
      }
      this.apply(path, outcome, subdirs, realPath);
    }
    // Reversed so the stack pops them in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) this.stack.push(subdirs[i] as DirTask);
  }

  /**
   * Sorts a folder's listing (in place) and says what the folder needs: `plain` when no name (nor
   * the folder's path) holds a character where UTF-16 and byte order part, tested once per name for
   * the sort, raw-byte paths and stat; `names` only beside an .aria2 control file, the one case where
   * a name's neighbour matters. Keeps the names asked for (`keepName`).
   */
  private readListing(path: string, entries: ListedEntry[]): { plain: boolean; names: Set<string> | null } {
    const plain = !ORDER_DIFFERS_RE.test(path) && !entries.some((e) => ORDER_DIFFERS_RE.test(e.name));
    if (!plain) this.allPlain = false;
    sortByteOrder(entries, (e) => e.name, plain);
    const names = entries.some((e) => e.name.endsWith(ARIA2_CONTROL_SUFFIX)) ? new Set(entries.map((e) => e.name)) : null;
    if (this.names && this.keepName) this.names.set(path, entries.map((e) => e.name).filter(this.keepName));
    return { plain, names };
  }

  /**
   * A synchronous stat for this folder's files, or null to use the async, concurrent one. A stat
   * on a local disk costs a few µs, less than the promise around it (the walk of 100,000 files
   * took 2.2 s of CPU with a promise per file); on a network file system it may wait a millisecond
   * or more, which 32 concurrent stats hide. Only the real file system qualifies (tests inject
   * theirs), and only file systems Linux names as local.
   */
  private syncStat(folder: BigIntStats, folderPath: string, plainPaths: boolean): ((path: string) => BigIntStats) | null {
    if (!this.onLocalDisk(folder, folderPath)) return null;
    return plainPaths ? (file) => statSync(file, { bigint: true }) : (file) => statSync(fsPath(file), { bigint: true });
  }

  /** Whether this folder is on a file system Linux names as local, walked through the real one (tests inject theirs). */
  private onLocalDisk(folder: BigIntStats, folderPath: string): boolean {
    if (this.fs !== NODE_WALKER_FS || process.platform !== "linux") return false;
    const dev = Number(folder.dev);
    let local = this.localDevices.get(dev);
    if (local === undefined) {
      local = isLocalFileSystem(folderPath);
      this.localDevices.set(dev, local);
    }
    return local;
  }

  /** classify for an entry the listing says is a regular file, with a synchronous stat. */
  private classifyRegular(path: string, name: string, rel: string, aria2: boolean, statNow: (path: string) => BigIntStats): EntryOutcome {
    if (this.isExcluded(rel, false)) return { kind: "ignore" };
    // A listed name has no separator: the prefix test isOwnTempName makes after taking a basename.
    if (name.startsWith(TEMP_PREFIX)) return { kind: "ignore" };
    const suffix = inProgressSuffix(name, this.extensions);
    if (suffix !== undefined) return { kind: "skip", reason: inProgressReason(suffix) };
    if (!hasModelExtension(name, this.extensions)) return { kind: "ignore" };
    let st: BigIntStats;
    try {
      st = statNow(path);
    } catch (err) {
      return statFailure(path, err);
    }
    return notRegularNow(st) ?? { kind: "file", st, aria2, link: false };
  }

  private apply(path: string, outcome: EntryOutcome, subdirs: DirTask[], realPath: string | null = null): void {
    switch (outcome.kind) {
      case "ignore":
        return;
      case "dir":
        subdirs.push(outcome.task);
        return;
      case "linkdir":
        this.deferred.push(outcome.task);
        return;
      case "skip":
        this.skipped.push({ path, reason: outcome.reason });
        return;
      case "warn":
        this.warnings.push(outcome.message);
        return;
      case "file": {
        const identity = identityFromStats(outcome.st);
        let byIno = this.candidates.get(identity.dev);
        if (byIno === undefined) this.candidates.set(identity.dev, (byIno = new Map()));
        const known = byIno.get(identity.ino);
        if (known === undefined) {
          byIno.set(identity.ino, { paths: [path], identity, aria2: outcome.aria2, realPath });
          this.candidateCount++;
          if (this.onFolderFiles && realPath !== null && !outcome.aria2 && !outcome.link && outcome.st.nlink === 1n) {
            this.folderFiles.push({ path, paths: [path], realPath, identity, mtimeMs: mtimeMsOf(identity.mtimeNs) });
          }
        } else {
          const seen = (known.seen ??= new Set(known.paths));
          if (!seen.has(path)) {
            seen.add(path);
            known.paths.push(path);
          }
          known.aria2 ||= outcome.aria2;
        }
      }
    }
  }

  /**
   * Decides what one entry is, touching the file system only with stat/lstat: a FIFO or a link to
   * /dev/zero must never be opened. `explicit` = named as an argument (no exclude, unknown extension reported).
   */
  private async classify(
    path: string,
    name: string,
    rel: string,
    direntKind: FileKind,
    explicit: boolean,
    /** Known from the folder listing, or to be looked up (a file named as an argument). */
    hasAria2Companion: boolean | (() => Promise<boolean>),
  ): Promise<EntryOutcome> {
    let kind = direntKind;
    if (kind === "unknown") {
      // Some file systems do not fill in d_type.
      try {
        kind = kindOf(await this.fs.lstat(path));
      } catch (err) {
        const code = errnoOrMessage(err);
        if (code === "ENOENT") return { kind: "ignore" };
        return { kind: "warn", message: `${path}: cannot read file information (${code})` };
      }
    }
    const excluded = (isDir: boolean) => !explicit && this.isExcluded(rel, isDir);
    const modelish = hasModelExtension(name, this.extensions) || inProgressSuffix(name, this.extensions) !== undefined;

    let target = kind;
    let st: BigIntStats | undefined;
    if (kind === "link") {
      try {
        st = await this.fs.stat(path);
        target = kindOf(st);
      } catch (err) {
        const code = errnoOrMessage(err);
        const reason = code === "ENOENT" || code === "ENOTDIR" ? SKIP_REASON.broken : code === "ELOOP" ? SKIP_REASON.loop : undefined;
        if (reason === undefined) return { kind: "warn", message: `${path}: cannot read file information (${code})` };
        if (excluded(false) || (!modelish && !explicit)) return { kind: "ignore" };
        return { kind: "skip", reason };
      }
    }
    if (target === "dir") {
      if (excluded(true)) return { kind: "ignore" };
      const task: DirTask = { path, rel, depth: explicit ? 0 : rel.split("/").length };
      if (task.depth > this.maxDepth) {
        return { kind: "warn", message: `${path}: not scanned, deeper than the depth limit (${this.maxDepth})` };
      }
      return kind === "link" ? { kind: "linkdir", task } : { kind: "dir", task };
    }

    if (excluded(false)) return { kind: "ignore" };
    if (isOwnTempName(name)) return explicit ? { kind: "skip", reason: SKIP_REASON.ownTemp } : { kind: "ignore" };
    const suffix = inProgressSuffix(name, this.extensions);
    if (suffix !== undefined) return { kind: "skip", reason: inProgressReason(suffix) };
    if (!hasModelExtension(name, this.extensions) && !(explicit && this.namedFilesAnyName)) {
      return explicit ? { kind: "skip", reason: SKIP_REASON.notModel } : { kind: "ignore" };
    }
    if (target !== "file") {
      const label = KIND_LABEL[target];
      return { kind: "skip", reason: kind === "link" ? `link to a non-regular file (${label})` : `not a regular file (${label})` };
    }
    if (st === undefined) {
      try {
        st = await this.fs.stat(path);
      } catch (err) {
        return statFailure(path, err);
      }
      const replaced = notRegularNow(st);
      if (replaced) return replaced;
    }
    const aria2 = typeof hasAria2Companion === "boolean" ? hasAria2Companion : await hasAria2Companion();
    return { kind: "file", st, aria2, link: kind === "link" };
  }

  /** The files found, after the second look unless the caller takes it (`stability: "deferred"`). */
  private async finalise(): Promise<FoundFile[]> {
    const files: FoundFile[] = [];
    for (const byIno of this.candidates.values()) {
      for (const candidate of byIno.values()) {
        const paths = candidate.paths.length > 1 ? [...candidate.paths].sort(compareByteOrder) : candidate.paths;
        const path = paths[0] as string;
        if (candidate.aria2) {
          for (const p of paths) this.skipped.push({ path: p, reason: SKIP_REASON.aria2 });
          continue;
        }
        const realPath = candidate.paths.length === 1 && candidate.realPath !== null ? candidate.realPath : await this.realPathOf(path);
        if (realPath === null) {
          for (const p of paths) this.skipped.push({ path: p, reason: SKIP_REASON.removed });
          continue;
        }
        files.push({ path, paths, realPath, identity: candidate.identity, mtimeMs: mtimeMsOf(candidate.identity.mtimeNs) });
      }
    }
    this.candidates.clear();
    if (this.stability === "deferred") return files;
    if (this.stabilityDelayMs > 0) await sleep(this.stabilityDelayMs);
    const settled = await settleFiles(files, this.fs);
    // Loops, not push(...): a folder of a million skipped files is more arguments than a call takes.
    for (const s of settled.skipped) this.skipped.push(s);
    for (const w of settled.warnings) this.warnings.push(w);
    return settled.files;
  }

  /** The folder's real path plus the name, or the file's own realpath when it is a link (or its folder could not be resolved). */
  private async realPathOf(path: string): Promise<string | null> {
    const own = this.linkRealPaths.get(path);
    if (own !== undefined) return own;
    const folder = this.folderRealPaths.get(dirnamePath(path));
    if (folder) return joinPath(folder, basenamePath(path));
    try {
      return await this.fs.realpath(path);
    } catch {
      return null;
    }
  }
}

export interface SettleResult {
  files: FoundFile[];
  skipped: SkippedPath[];
  warnings: string[];
}

/**
 * The second look at files found earlier (docs/cases.md D7): a file whose size or mtime changed
 * since, or that was replaced or removed, is skipped with the reason. Every other file keeps its
 * first identity (the hash worker checks it again when it opens the file). In input order.
 */
export async function settleFiles(files: readonly FoundFile[], fs: WalkerFs = NODE_WALKER_FS): Promise<SettleResult> {
  const result: SettleResult = { files: [], skipped: [], warnings: [] };
  const outcomes = await mapInOrder(files, async (file): Promise<FinalOutcome> => {
    const paths = file.paths;
    let st: BigIntStats;
    try {
      st = await fs.stat(file.path);
    } catch (err) {
      const code = errnoOrMessage(err);
      if (code === "ENOENT") return { kind: "skip", paths, reason: SKIP_REASON.removed };
      return { kind: "warn", message: `${file.path}: cannot read file information (${code})` };
    }
    const first = file.identity;
    if (!sameFile(st, first) || !st.isFile()) return { kind: "skip", paths, reason: SKIP_REASON.replaced };
    if (Number(st.size) !== first.size) return { kind: "skip", paths, reason: SKIP_REASON.sizeChanged };
    if (st.mtimeNs.toString() !== first.mtimeNs) return { kind: "skip", paths, reason: SKIP_REASON.modified };
    // The second stat's identity: a ctime change alone (chmod, a link added) keeps the file but not its old stamp.
    return { kind: "file", file: { ...file, identity: identityFromStats(st) } };
  });
  for (const outcome of outcomes) {
    if (outcome.kind === "file") result.files.push(outcome.file);
    else if (outcome.kind === "warn") result.warnings.push(outcome.message);
    else for (const path of outcome.paths) result.skipped.push({ path, reason: outcome.reason });
  }
  return result;
}
