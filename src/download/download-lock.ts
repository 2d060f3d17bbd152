import { closeSync, lstatSync, openSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { errnoCode } from "../shared/errors.ts";
import { fsPath } from "../shared/fs-path.ts";
import { readSmallRegularFile } from "../shared/read-small-file.ts";

/**
 * A per-target lock so two runs never append to one `.part` (docs/reliability.md §1.7, docs/cases.md A12). It is
 * only a courtesy: flock is unreliable on network filesystems (huggingface_hub#4306), and the
 * final SHA-256 check is what guarantees a correct file; a broken lock costs bandwidth, not data.
 */

export interface LockOwner {
  pid: number;
  startedAt: string;
  host: string;
}

interface HeldLock {
  path: string;
  release(): void;
}

export type LockResult = { ok: true; lock: HeldLock } | { ok: false; owner: LockOwner | null };

export interface LockOptions {
  /** Whether a pid is alive; default `process.kill(pid, 0)` (ESRCH = dead, EPERM = alive). */
  isAlive?: (pid: number) => boolean;
  /** A lock file we cannot parse (killed between create and write) counts as stale after this long. */
  unreadableStaleMs?: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === "EPERM";
  }
}

/** A FIFO, a link or a device planted at the lock's name is read as an unreadable lock, never read (docs/cases.md A16). */
function readOwner(path: string): LockOwner | null {
  const text = readSmallRegularFile(path, 4096);
  if (text === null) return null;
  try {
    const doc = JSON.parse(text) as Partial<LockOwner>;
    if (typeof doc.pid === "number" && Number.isInteger(doc.pid) && doc.pid > 0) {
      return { pid: doc.pid, startedAt: String(doc.startedAt ?? ""), host: String(doc.host ?? "") };
    }
  } catch {
    /* unreadable */
  }
  return null;
}

function tryCreate(path: string): HeldLock | null {
  let fd: number;
  try {
    // "wx" = O_CREAT|O_EXCL: fails on anything already there, a symlink included, and never follows it.
    fd = openSync(fsPath(path), "wx", 0o644);
  } catch (err) {
    if (errnoCode(err) === "EEXIST") return null;
    throw err;
  }
  try {
    const owner: LockOwner = { pid: process.pid, startedAt: new Date().toISOString(), host: hostname() };
    writeSync(fd, JSON.stringify(owner));
  } finally {
    closeSync(fd);
  }
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      // Only remove it if it is still ours (a taker-over after a long pause must keep theirs).
      const now = readOwner(path);
      if (now === null || now.pid === process.pid) {
        try {
          unlinkSync(fsPath(path));
        } catch {
          /* already gone */
        }
      }
    },
  };
}

/** Takes the lock at `path`, taking over one whose owner is dead; otherwise says who holds it. */
export function acquireLock(path: string, options: LockOptions = {}): LockResult {
  const isAlive = options.isAlive ?? pidAlive;
  for (let attempt = 0; attempt < 3; attempt++) {
    const lock = tryCreate(path);
    if (lock) return { ok: true, lock };
    const owner = readOwner(path);
    let stale: boolean;
    if (owner === null) {
      let age = 0;
      try {
        age = Date.now() - lstatSync(fsPath(path)).mtimeMs;
      } catch {
        continue; // vanished meanwhile: try again
      }
      stale = age > (options.unreadableStaleMs ?? 30_000);
    } else {
      // Another machine's pid means nothing here: only a lock from this host can be judged dead.
      stale = (owner.host === "" || owner.host === hostname()) && owner.pid !== process.pid && !isAlive(owner.pid);
    }
    if (!stale) return { ok: false, owner };
    try {
      unlinkSync(fsPath(path));
    } catch {
      /* someone else took it over first */
    }
  }
  return { ok: false, owner: readOwner(path) };
}
