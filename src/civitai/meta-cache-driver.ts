import { lstatSync, promises as fsp } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import pLimit from "p-limit";
import { defineDriver, type StorageValue } from "unstorage";
import { writeFileAtomicAsync } from "../shared/atomic-write.ts";
import { errnoCode } from "../shared/errors.ts";
import { readSmallRegularFile } from "../shared/read-small-file.ts";
import { ENTRY_EXT, MAX_ENTRY_BYTES } from "./meta-cache-entry.ts";

/**
 * unstorage 1.17's fs drivers write in place: readers see torn files, and a crash leaves a
 * truncated one (docs/reliability.md §3.1). This driver keeps fs-lite's layout (one file per key,
 * `a:b:c` → `base/a/b/c.json`) and writes atomically, and it answers unstorage's batch calls
 * (`getItems`, `setItems`) in one go, so a lookup reads and writes its entries by the hundred.
 *
 * No fsync: every entry is validated when read (meta-cache-entry.ts), so what a power cut can leave
 * (an empty or stale file under the final name) is a miss that costs one request, never a wrong
 * answer. A killed process leaves the old or the new file, never a torn one (the rename), and a
 * temp file that `cache prune` removes. Syncing each entry made a 10k `--refresh` do 20,001 fsyncs.
 */

export interface AtomicFsDriverOptions {
  base: string;
}

/** Writes of one batch in flight at once: enough to keep the disk busy, few enough to stay gentle. */
const WRITES_IN_FLIGHT = 16;

// One path segment per key segment; the leading character rules out `.`, `..` and our temp files.
// Checked over the whole key at once (`a:b:c`), one regex run per read.
const KEY_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}(?::[A-Za-z0-9_-][A-Za-z0-9._-]{0,127})*$/;

interface Item {
  key: string;
  value?: unknown;
}

/**
 * fs-lite's reads with atomic writes: each value goes to a temp file in the same folder, then is
 * renamed over the entry, so a reader (or the next run after a kill) sees the old or the new
 * value, never a torn one. Keys map to `base/seg/seg.json` only when every segment is plain;
 * anything that could climb out of `base` throws.
 */
// Long because unstorage defines a driver as one factory whose methods share its base and folders.
export const atomicFsDriver = defineDriver((opts: AtomicFsDriverOptions) => {
  if (!opts || typeof opts.base !== "string" || opts.base === "") throw new Error("atomic-fs driver: `base` is required");
  const base = resolve(opts.base);
  const root = base.endsWith(sep) ? base : base + sep;
  /** Folders made (or found) by this driver: a batch of writes creates each shard folder once. */
  const madeDirs = new Set<string>();

  function pathOf(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`atomic-fs driver: unsafe key ${JSON.stringify(key.slice(0, 100))}`);
    // Plain segments (no `/`, never `.` or `..`) need no path normalisation: joined as they are.
    const path = root + key.replaceAll(":", sep) + ENTRY_EXT;
    if (!path.startsWith(root)) throw new Error(`atomic-fs driver: key escapes the cache dir: ${JSON.stringify(key)}`);
    return path;
  }

  // Entries are small (a few KB) and the page cache holds them: a synchronous read costs less than
  // the thread-pool round trip of an async one, and a batch blocks the loop for milliseconds.
  // Only a regular file up to MAX_ENTRY_BYTES, never through a link: a FIFO in an entry's place made
  // a plain read wait for a writer forever (a scan Ctrl-C could not stop), and a link to /dev/zero
  // or a huge file read without end. Anything else is a miss, replaced by the next write (rename).
  function readSync(key: string): string | null {
    return readSmallRegularFile(pathOf(key), MAX_ENTRY_BYTES);
  }

  async function write(key: string, value: unknown): Promise<void> {
    const path = pathOf(key);
    const data = typeof value === "string" || value instanceof Uint8Array ? value : String(value);
    const dir = dirname(path);
    if (!madeDirs.has(dir)) {
      await fsp.mkdir(dir, { recursive: true });
      madeDirs.add(dir);
    }
    try {
      // No fsync and no stat of the old entry: a torn entry after a power cut is a validated miss (docs/cases.md C3).
      await writeFileAtomicAsync(path, data, { fsync: false, mode: 0o644 });
    } catch (err) {
      if (errnoCode(err) === "ENOENT") madeDirs.delete(dir); // removed under us: make it again next time
      throw err;
    }
  }

  /** Writes every item it can, WRITES_IN_FLIGHT at a time; throws the first error after trying them all. */
  async function writeAll(items: readonly Item[]): Promise<void> {
    const limit = pLimit(WRITES_IN_FLIGHT);
    const results = await Promise.allSettled(items.map((item) => limit(() => write(item.key, item.value))));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  async function listKeys(dir: string, prefix: string): Promise<string[]> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return [];
    }
    const keys: string[] = [];
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      // A loop, not push(...): a folder of a million entries is more arguments than a call takes.
      if (entry.isDirectory()) for (const key of await listKeys(join(dir, entry.name), `${prefix}${entry.name}:`)) keys.push(key);
      else if (entry.isFile() && entry.name.endsWith(ENTRY_EXT)) keys.push(prefix + entry.name.slice(0, -ENTRY_EXT.length));
    }
    return keys;
  }

  /**
   * A batch read's value parsed here, so unstorage's destr passes it through: destr scans each
   * text with three regexes before its own JSON.parse (a third of the read at 10,000 entries).
   * Entries are JSON objects; every caller checks what it gets (parseMetaEntry). A `__proto__`
   * key stays an own key under JSON.parse. Text that is not JSON goes on as text, as before.
   */
  function parsed(text: string | null): StorageValue {
    if (text === null) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  return {
    name: "atomic-fs",
    options: opts,
    async hasItem(key) {
      return readSync(key) !== null;
    },
    async getItem(key) {
      return readSync(key);
    },
    async getItemRaw(key) {
      return readSync(key);
    },
    async getItems(items: Item[]) {
      return items.map((item) => {
        let value: StorageValue;
        try {
          value = parsed(readSync(item.key));
        } catch {
          value = null; // unreadable (permissions, I/O): a miss, like a corrupt entry
        }
        return { key: item.key, value };
      });
    },
    setItem: write,
    setItemRaw: write,
    setItems: writeAll,
    async removeItem(key) {
      await fsp.unlink(pathOf(key)).catch((err) => {
        if (errnoCode(err) !== "ENOENT") throw err;
      });
    },
    getKeys() {
      return listKeys(base, "");
    },
  };
});

/** A cache folder's state: every entry written (temp + rename) or removed in it moves its mtime. */
export interface FolderStamp {
  /** Inode and mtime in ns: a folder removed and made again, or written to, has another. */
  stamp: string;
  mtimeMs: number;
}

/** The folder's stamp, or null when it is not a folder (absent, a link, unreadable). */
export function folderStamp(path: string): FolderStamp | null {
  try {
    const st = lstatSync(path, { bigint: true });
    if (!st.isDirectory()) return null;
    return { stamp: `${st.ino}:${st.mtimeNs}`, mtimeMs: Number(st.mtimeMs) };
  } catch {
    return null;
  }
}
