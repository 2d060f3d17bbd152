// The folder walker: finds model files under the given paths without ever opening one.
// Bun's readdir({recursive:true}) throws ELOOP and returns nothing when a symlink cycle exists
// anywhere below the root (docs/reliability.md §4.6), so this walks one directory at a time with an
// explicit stack and its own (dev, ino) loop detection.
import type { BigIntStats } from "node:fs";
import { lstat, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ARIA2_CONTROL_SUFFIX,
  compareByteOrder,
  createExcludeMatcher,
  DEFAULT_EXTENSIONS,
  type ExcludeMatcher,
  hasModelExtension,
  inProgressSuffix,
  isOwnTempName,
  normaliseExtensions,
} from "./path-filter.ts";
import type { FoundFile, SkippedPath, WalkResult } from "./types.ts";
import { identityFromStats } from "./file-identity.ts";
import { basenamePath, fsPath, joinPath, resolvePath } from "../shared/fs-path.ts";
import { listEntries, realpathKeepingBytes, type ListedEntry } from "../shared/fs-names.ts";

export { DEFAULT_EXTENSIONS };

export const DEFAULT_MAX_DEPTH = 64;

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
}

/** WalkResult plus informational notes (a folder reached again through a symlink) that are not problems. */
export interface WalkerResult extends WalkResult {
  notes: string[];
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
}

interface Candidate {
  paths: string[];
  first: BigIntStats;
  aria2: boolean;
}

type EntryOutcome =
  | { kind: "ignore" }
  | { kind: "dir"; task: DirTask }
  | { kind: "linkdir"; task: DirTask }
  | { kind: "skip"; reason: string }
  | { kind: "warn"; message: string }
  | { kind: "file"; st: BigIntStats; aria2: boolean };

type FinalOutcome =
  | { kind: "file"; file: FoundFile }
  | { kind: "skip"; paths: string[]; reason: string }
  | { kind: "warn"; message: string };

type FileKind = "file" | "dir" | "link" | "fifo" | "socket" | "chardev" | "blockdev" | "unknown";

interface TypedEntry {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}

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

export function inProgressReason(suffix: string): string {
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

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return err instanceof Error ? err.message : String(err);
}

function inodeKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

async function mapInOrder<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += STAT_CONCURRENCY) {
    out.push(...(await Promise.all(items.slice(i, i + STAT_CONCURRENCY).map(fn))));
  }
  return out;
}

class Walker {
  private readonly fs: WalkerFs;
  private readonly extensions: string[];
  private readonly isExcluded: ExcludeMatcher;
  private readonly maxDepth: number;
  private readonly stabilityDelayMs: number;
  private readonly onProgress: WalkOptions["onProgress"];

  /** Folder (dev, ino) → the path it was first walked as. */
  private readonly visitedDirs = new Map<string, string>();
  private readonly candidates = new Map<string, Candidate>();
  private readonly skipped: SkippedPath[] = [];
  private readonly missing: string[] = [];
  private readonly warnings: string[] = [];
  private readonly notes: string[] = [];
  private readonly stack: DirTask[] = [];
  /** Symlinked folders, walked after everything reachable without symlinks (FIFO for determinism). */
  private readonly deferred: DirTask[] = [];
  private dirsDone = 0;

  constructor(options: WalkOptions) {
    this.fs = options.fs ?? NODE_WALKER_FS;
    this.extensions = normaliseExtensions(options.extensions ?? []);
    this.isExcluded = createExcludeMatcher(options.exclude ?? []);
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.stabilityDelayMs = options.stabilityDelayMs ?? 0;
    this.onProgress = options.onProgress;
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
      files: files.sort((a, b) => compareByteOrder(a.path, b.path)),
      skipped: [...bySkippedPath.values()].sort((a, b) => compareByteOrder(a.path, b.path)),
      missing: [...new Set(this.missing)],
      warnings: this.warnings,
      notes: this.notes,
    };
  }

  private async walkRoot(path: string): Promise<void> {
    let lst: BigIntStats;
    try {
      lst = await this.fs.lstat(path);
    } catch (err) {
      const code = errorCode(err);
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
    this.apply(path, outcome, []);
  }

  private async drain(): Promise<void> {
    for (let task = this.stack.pop(); task !== undefined; task = this.stack.pop()) {
      await this.walkDir(task);
      this.dirsDone++;
      this.onProgress?.(this.dirsDone, this.candidates.size);
    }
  }

  private async walkDir(task: DirTask): Promise<void> {
    let st: BigIntStats;
    let entries: ListedEntry[];
    try {
      st = await this.fs.stat(task.path);
    } catch (err) {
      this.warnings.push(`${task.path}: cannot read folder information (${errorCode(err)})`);
      return;
    }
    const key = inodeKey(st);
    const seenAs = this.visitedDirs.get(key);
    if (seenAs !== undefined) {
      this.notes.push(`${task.path}: same folder as ${seenAs}, not scanned again`);
      return;
    }
    this.visitedDirs.set(key, task.path);
    try {
      entries = await this.fs.readdir(task.path);
    } catch (err) {
      this.warnings.push(`${task.path}: cannot read folder (${errorCode(err)})`);
      return;
    }
    entries.sort((a, b) => compareByteOrder(a.name, b.name));
    const names = new Set(entries.map((e) => e.name));
    const outcomes = await mapInOrder(entries, (entry) => {
      const rel = task.rel === "" ? entry.name : `${task.rel}/${entry.name}`;
      const childTask: DirTask = { path: joinPath(task.path, entry.name), rel, depth: task.depth + 1 };
      return this.classify(childTask.path, entry.name, rel, kindOf(entry), false, async () => names.has(entry.name + ARIA2_CONTROL_SUFFIX));
    });
    const subdirs: DirTask[] = [];
    outcomes.forEach((outcome, i) => {
      const path = joinPath(task.path, (entries[i] as ListedEntry).name);
      this.apply(path, outcome, subdirs);
    });
    // Reversed so the stack pops them in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) this.stack.push(subdirs[i] as DirTask);
  }

  private apply(path: string, outcome: EntryOutcome, subdirs: DirTask[]): void {
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
        const key = inodeKey(outcome.st);
        const known = this.candidates.get(key);
        if (known === undefined) {
          this.candidates.set(key, { paths: [path], first: outcome.st, aria2: outcome.aria2 });
        } else {
          if (!known.paths.includes(path)) known.paths.push(path);
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
    hasAria2Companion: () => Promise<boolean>,
  ): Promise<EntryOutcome> {
    let kind = direntKind;
    if (kind === "unknown") {
      // Some file systems do not fill in d_type.
      try {
        kind = kindOf(await this.fs.lstat(path));
      } catch (err) {
        const code = errorCode(err);
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
        const code = errorCode(err);
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
    if (!hasModelExtension(name, this.extensions)) {
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
        const code = errorCode(err);
        if (code === "ENOENT") return { kind: "skip", reason: SKIP_REASON.removed };
        return { kind: "warn", message: `${path}: cannot read file information (${code})` };
      }
      // Replaced by something else between readdir and stat.
      const now = kindOf(st);
      if (now !== "file") return { kind: "skip", reason: `not a regular file (${KIND_LABEL[now]})` };
    }
    return { kind: "file", st, aria2: await hasAria2Companion() };
  }

  /** Second stat of every candidate: a download in progress changes size or mtime between the two. */
  private async finalise(): Promise<FoundFile[]> {
    if (this.stabilityDelayMs > 0) await sleep(this.stabilityDelayMs);
    const outcomes = await mapInOrder([...this.candidates.values()], (c) => this.settle(c));
    const files: FoundFile[] = [];
    for (const outcome of outcomes) {
      if (outcome.kind === "file") files.push(outcome.file);
      else if (outcome.kind === "warn") this.warnings.push(outcome.message);
      else for (const path of outcome.paths) this.skipped.push({ path, reason: outcome.reason });
    }
    return files;
  }

  private async settle(candidate: Candidate): Promise<FinalOutcome> {
    const paths = [...candidate.paths].sort(compareByteOrder);
    const path = paths[0] as string;
    if (candidate.aria2) return { kind: "skip", paths, reason: SKIP_REASON.aria2 };
    let st: BigIntStats;
    let realPath: string;
    try {
      st = await this.fs.stat(path);
      realPath = await this.fs.realpath(path);
    } catch (err) {
      const code = errorCode(err);
      if (code === "ENOENT") return { kind: "skip", paths, reason: SKIP_REASON.removed };
      return { kind: "warn", message: `${path}: cannot read file information (${code})` };
    }
    const first = candidate.first;
    if (inodeKey(st) !== inodeKey(first) || !st.isFile()) return { kind: "skip", paths, reason: SKIP_REASON.replaced };
    if (st.size !== first.size) return { kind: "skip", paths, reason: SKIP_REASON.sizeChanged };
    if (st.mtimeNs !== first.mtimeNs) return { kind: "skip", paths, reason: SKIP_REASON.modified };
    return {
      kind: "file",
      file: {
        path,
        paths,
        realPath,
        identity: identityFromStats(st),
        // Via whole microseconds: Number() of a ~2^60 ns value would round to 256 ns steps.
        mtimeMs: Number(st.mtimeNs / 1000n) / 1000,
      },
    };
  }
}
