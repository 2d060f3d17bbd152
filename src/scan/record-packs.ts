/**
 * Where finished records are kept between runs (record-cache.ts): one pack per scanned folder
 * (record-pack-format.ts), at `<cache>/records/v1/<ab>/<hash of the folder path>.pack`, written
 * whole to a temp file and renamed into place (a reader or the next run after a kill sees the old
 * pack or the new one), without fsync: a pack a power cut tore fails its checks and is a miss.
 *
 * One file per folder, not rows in the hash cache's SQLite store: a warm 100,000-file scan read
 * 100,000 rows of ~6 KB at ~15 µs each, and the run that stored them took 16 s longer (WAL, then
 * the database: every byte written twice). A pack is read in one call, its bodies copied to the
 * report as bytes.
 *
 * Records are a shortcut, never needed: a pack that cannot be read is a miss, one that cannot be
 * written is left as it was, silently (the hash cache already says when the cache folder cannot be
 * written).
 */
import { closeSync, lstatSync, mkdirSync, read, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { isTempName, writeFileAtomic } from "../shared/atomic-write.ts";
import { errnoCode } from "../shared/errors.ts";
import { basenamePath, dirnamePath, fsPath } from "../shared/fs-path.ts";
import { listNoFollow, removeEmptyDirs } from "../shared/no-follow.ts";
import { openRegularFile, readInto, readRegularFile } from "../shared/read-small-file.ts";
import { decodePack, encodePack, type NewEntry, type Pack } from "./record-pack-format.ts";

/** A pack larger than this is not read (a folder of ~200,000 models); its records are built. */
const MAX_PACK_BYTES = 1024 * 1024 * 1024;

/**
 * A pack's bodies go into the JSON inventory as they are (parsing 450 MB of records is what the
 * packs save), so only a pack this user wrote and nobody else can change is read: owned by us, not
 * writable by group or others (as ssh trusts its files). A cache folder shared on a NAS is then
 * rebuilt per user, never served from another's pack.
 */
function ownedByUs(st: { uid: number; mode: number }): boolean {
  const uid = process.getuid?.();
  return (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0;
}

/** The folder of packs under a cache folder. */
export function packsRoot(cacheDir: string): string {
  return join(cacheDir, "records", "v1");
}

export class RecordPacks {
  /** Packs not written (read-only or full disk), for the debug log. */
  writeFailures = 0;
  private readonly madeDirs = new Set<string>();
  private buffer = Buffer.allocUnsafe(0);

  /** `maxBytes`: the largest pack written or read (MAX_PACK_BYTES; a test makes it small). */
  constructor(
    private readonly root: string,
    private readonly maxBytes = MAX_PACK_BYTES,
  ) {}

  private pathOf(dir: string): { shardDir: string; file: string } {
    const id = Bun.hash.wyhash(dir).toString(16).padStart(16, "0");
    const shardDir = join(this.root, id.slice(0, 2));
    return { shardDir, file: join(shardDir, `${id}.pack`) };
  }

  /**
   * The pack of folder `dir` and the descriptor it was read through (the caller keeps it to read
   * bodies again later, or closes it), or null: none, unreadable, not a pack, or another folder's.
   * Read into one buffer reused from pack to pack: the pack's bodies are views into it, valid until
   * the next `open` or `read`.
   */
  open(dir: string): { fd: number; pack: Pack } | null {
    const checked = this.openChecked(dir);
    if (checked === null) return null;
    const { fd, size } = checked;
    try {
      if (this.buffer.length < size) this.buffer = Buffer.allocUnsafe(Math.max(size, this.buffer.length * 2));
      const got = readInto(fd, this.buffer.subarray(0, size));
      return this.decodeFor(dir, fd, this.buffer.subarray(0, got));
    } catch {
      closeSync(fd);
      return null;
    }
  }

  /**
   * The bytes of folder `dir`'s pack, read on the runtime's pool into `buffer` (or a larger one,
   * returned) while the caller goes on: a warm scan reads the next folder's pack while it checks
   * this one's files. `decodeFor` makes them a pack. Null as `open`.
   */
  async fetch(dir: string, buffer: Buffer): Promise<{ fd: number; bytes: Uint8Array; buffer: Buffer } | null> {
    const checked = this.openChecked(dir);
    if (checked === null) return null;
    const { fd, size } = checked;
    try {
      const into = buffer.length >= size ? buffer : Buffer.allocUnsafe(Math.max(size, buffer.length * 2));
      let got = 0;
      while (got < size) {
        const n = await new Promise<number>((resolve, reject) =>
          read(fd, into, got, size - got, got, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))),
        );
        if (n === 0) break;
        got += n;
      }
      return { fd, bytes: into.subarray(0, got), buffer: into };
    } catch {
      closeSync(fd);
      return null;
    }
  }

  /** The pack in `bytes`, read through `fd`, when it is folder `dir`'s; else null, `fd` closed. */
  decodeFor(dir: string, fd: number, bytes: Uint8Array): { fd: number; pack: Pack } | null {
    const pack = decodePack(bytes);
    if (pack !== null && pack.dir === dir) return { fd, pack };
    closeSync(fd);
    return null;
  }

  /** Folder `dir`'s pack opened, when it is a regular file this user owns and may be read whole. */
  private openChecked(dir: string): { fd: number; size: number } | null {
    let opened: ReturnType<typeof openRegularFile>;
    try {
      opened = openRegularFile(this.pathOf(dir).file, { follow: false });
    } catch {
      return null;
    }
    if (typeof opened === "string") return null;
    const { fd, stat: st } = opened;
    if (st.size > this.maxBytes || !ownedByUs(st)) {
      closeSync(fd);
      return null;
    }
    return { fd, size: st.size };
  }

  /** As `open`, without keeping the descriptor. */
  read(dir: string): Pack | null {
    const opened = this.open(dir);
    if (opened === null) return null;
    closeSync(opened.fd);
    return opened.pack;
  }

  /** Replaces the pack of folder `dir`. Never throws. */
  write(dir: string, fp: string, entries: readonly NewEntry[]): void {
    const { shardDir, file } = this.pathOf(dir);
    const pieces = encodePack(fp, dir, entries);
    // A pack too large to be read back would be written again by every run, for nothing.
    if (pieces.reduce((n, p) => n + p.length, 0) > this.maxBytes) {
      this.writeFailures++;
      return;
    }
    try {
      if (!this.madeDirs.has(shardDir)) {
        mkdirSync(shardDir, { recursive: true });
        this.madeDirs.add(shardDir);
      }
      writeFileAtomic(file, pieces, { fsync: false, mode: 0o644 });
    } catch {
      this.writeFailures++;
    }
  }
}

const PACK_NAME_RE = /^[0-9a-f]{16}\.pack$/;
/** A temp file older than this was left by a killed run (a live writer's is seconds old). */
const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * Whether a file under the packs folder is ours: a pack's name in a shard folder, or our temp name
 * there. `cache clear` removes only these (docs/cases.md T11).
 */
export function isOwnPackFile(path: string): boolean {
  const name = basenamePath(path);
  return (PACK_NAME_RE.test(name) || isTempName(path)) && /^[0-9a-f]{2}$/.test(basenamePath(dirnamePath(path)));
}

/**
 * `cache prune`: removes packs that can never give a record again: not a pack, every record in it
 * expired, or its folder gone; and temp files a killed run left (older than an hour). Links are
 * never followed, and files that are not ours are left alone.
 */
export function prunePacks(root: string, now: number = Date.now()): { checked: number; removed: number } {
  const out = { checked: 0, removed: 0 };
  const listing = listNoFollow(root);
  for (const path of listing.files) {
    if (!isOwnPackFile(path)) continue;
    out.checked++;
    let doomed: boolean;
    if (isTempName(path)) doomed = fileAge(path, now) > STALE_TEMP_MS;
    else {
      const pack = readPackFile(path);
      doomed = pack === null || ![...pack.entries.values()].some((e) => now < e.meta.expiresAt) || !isFolder(pack.dir);
    }
    if (!doomed) continue;
    try {
      unlinkSync(path);
      out.removed++;
    } catch {
      /* gone already, or read-only */
    }
  }
  removeEmptyDirs([...listing.dirs]);
  return out;
}

function readPackFile(path: string): Pack | null {
  try {
    const bytes = readRegularFile(path, { maxBytes: MAX_PACK_BYTES, follow: false });
    return typeof bytes === "string" ? null : decodePack(bytes);
  } catch {
    return null;
  }
}

function fileAge(path: string, now: number): number {
  try {
    return now - lstatSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(fsPath(path)).isDirectory();
  } catch (err) {
    // Unreadable is not gone: only a folder that is not there any more drops its pack.
    const code = errnoCode(err);
    return code !== "ENOENT" && code !== "ENOTDIR";
  }
}
