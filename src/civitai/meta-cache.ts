import { randomBytes } from "node:crypto";
import { promises as fsp, readFileSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve, sep } from "node:path";
import { createStorage, defineDriver, type Storage } from "unstorage";
import memoryDriver from "unstorage/drivers/memory";
import { modelKey } from "./cache-keys.ts";
import { isModel, isVersion } from "./civitai-record.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import type { MatchedBy } from "../report/record-types.ts";
import { listNoFollow } from "../shared/no-follow.ts";

/**
 * Civitai metadata cache on unstorage. unstorage 1.17's fs drivers write in place (readers see
 * torn files, a crash leaves a truncated one) and its getItem runs destr, which turns garbage into
 * strings and numeric strings into numbers (reliability.md §3.1). So: our own driver writes
 * tmp + fsync + rename, and entries go through getItemRaw/setItemRaw as JSON we parse and
 * shape-check ourselves; anything unreadable or of the wrong shape is a miss.
 */

export const DEFAULT_TTL_FOUND_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_TTL_NOT_FOUND_MS = 24 * 60 * 60 * 1000;
const ENTRY_VERSION = 1;
const VERSION_KEY_RE = /^version:(?:sha256:[0-9a-f]{64}|autov3:[0-9a-f]{12})$/;
const HOST_RE = /^https?:\/\/[A-Za-z0-9.-]+(?::\d+)?$/;

export interface MetaCacheOptions {
  /** Folder of the fs cache; `false` keeps everything in memory (--no-cache). */
  dir: string | false;
  ttlFoundMs?: number;
  ttlNotFoundMs?: number;
  now?: () => number;
  /** Reads always miss, writes still happen (--refresh). */
  refresh?: boolean;
  /** Called on a failed write (read-only dir, disk full): the run goes on uncached. */
  onWriteError?: (err: unknown) => void;
}

export interface MetaCacheStats {
  hits: number;
  misses: number;
  writes: number;
  writeErrors: number;
}

export interface VersionMeta {
  /** Origin that answered, e.g. `https://civitai.com`. */
  host?: string;
  matchedBy?: MatchedBy;
}

export type CachedVersion = ({ kind: "found"; versions: ApiModelVersion[] } & VersionMeta) | { kind: "not_found" };
export type CachedModel = { kind: "found"; model: ApiModel } | { kind: "not_found" };

export interface MetaCache {
  /** `key` from `versionKeyBySha256` / `versionKeyByAutov3`. Null = miss (absent, expired, corrupt, refresh). */
  getVersion(key: string): Promise<CachedVersion | null>;
  /** Candidates (first = chosen) or one version; null records "not on Civitai" with the short TTL. */
  setVersion(key: string, value: ApiModelVersion | readonly ApiModelVersion[] | null, meta?: VersionMeta): Promise<void>;
  getModel(id: number): Promise<CachedModel | null>;
  /** null records "Civitai did not return this model" with the short TTL. */
  setModel(id: number, model: ApiModel | null): Promise<void>;
  readonly stats: Readonly<MetaCacheStats>;
  readonly refresh: boolean;
  /** The unstorage instance underneath (tests, `cache` commands). */
  readonly storage: Storage;
}

interface Entry {
  v: typeof ENTRY_VERSION;
  storedAt: number;
  expiresAt: number;
  kind: "found" | "not_found";
  data: unknown;
  host?: string;
  matchedBy?: MatchedBy;
}

export function createMetaCache(options: MetaCacheOptions): MetaCache {
  const ttlFound = options.ttlFoundMs ?? DEFAULT_TTL_FOUND_MS;
  const ttlNotFound = options.ttlNotFoundMs ?? DEFAULT_TTL_NOT_FOUND_MS;
  const now = options.now ?? Date.now;
  const refresh = options.refresh === true;
  const storage = createStorage({
    driver: options.dir === false ? memoryDriver() : atomicFsDriver({ base: options.dir }),
  });
  const stats: MetaCacheStats = { hits: 0, misses: 0, writes: 0, writeErrors: 0 };

  async function read(key: string): Promise<Entry | null> {
    let raw: unknown;
    try {
      raw = await storage.getItemRaw(key);
    } catch {
      raw = null;
    }
    return parseEntry(raw, now());
  }

  function counted<T>(value: T | null): T | null {
    if (value === null) stats.misses++;
    else stats.hits++;
    return value;
  }

  async function write(key: string, kind: Entry["kind"], data: unknown, meta: VersionMeta = {}): Promise<void> {
    const storedAt = now();
    const entry: Entry = { v: ENTRY_VERSION, storedAt, expiresAt: storedAt + (kind === "found" ? ttlFound : ttlNotFound), kind, data };
    if (meta.host !== undefined && HOST_RE.test(meta.host)) entry.host = meta.host;
    if (meta.matchedBy !== undefined) entry.matchedBy = meta.matchedBy;
    try {
      await storage.setItemRaw(key, JSON.stringify(entry));
      stats.writes++;
    } catch (err) {
      stats.writeErrors++;
      options.onWriteError?.(err);
    }
  }

  return {
    stats,
    refresh,
    storage,
    async getVersion(key) {
      assertVersionKey(key);
      if (refresh) return null;
      const entry = await read(key);
      if (!entry) return counted(null);
      if (entry.kind === "not_found") return counted({ kind: "not_found" });
      if (!Array.isArray(entry.data) || entry.data.length === 0 || !entry.data.every(isVersion)) return counted(null);
      const found: CachedVersion = { kind: "found", versions: entry.data };
      if (entry.host !== undefined) found.host = entry.host;
      if (entry.matchedBy !== undefined) found.matchedBy = entry.matchedBy;
      return counted(found);
    },
    async setVersion(key, value, meta) {
      assertVersionKey(key);
      if (value === null) return write(key, "not_found", null);
      const versions = (Array.isArray(value) ? value : [value]) as ApiModelVersion[];
      if (versions.length === 0 || !versions.every(isVersion)) throw new TypeError("setVersion: not a model version");
      return write(key, "found", versions, meta);
    },
    async getModel(id) {
      const key = modelKey(id);
      if (refresh) return null;
      const entry = await read(key);
      if (!entry) return counted(null);
      if (entry.kind === "not_found") return counted({ kind: "not_found" });
      if (!isModel(entry.data) || entry.data.id !== id) return counted(null);
      return counted({ kind: "found", model: entry.data });
    },
    async setModel(id, model) {
      const key = modelKey(id);
      if (model === null) return write(key, "not_found", null);
      if (!isModel(model) || model.id !== id) throw new TypeError("setModel: not the model with this id");
      return write(key, "found", model);
    },
  };
}

function assertVersionKey(key: string): void {
  if (typeof key !== "string" || !VERSION_KEY_RE.test(key)) {
    throw new TypeError(`invalid version cache key: ${JSON.stringify(String(key).slice(0, 100))}`);
  }
}

/** A stored entry if `raw` is one, well-formed and not expired at `now`; else null. */
function parseEntry(raw: unknown, now: number): Entry | null {
  let text: string;
  if (typeof raw === "string") text = raw;
  else if (raw instanceof Uint8Array) text = new TextDecoder().decode(raw);
  else return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const e = value as Record<string, unknown>;
  if (e.v !== ENTRY_VERSION) return null;
  if (typeof e.storedAt !== "number" || typeof e.expiresAt !== "number") return null;
  if (!Number.isFinite(e.storedAt) || !Number.isFinite(e.expiresAt) || now >= e.expiresAt) return null;
  if (e.kind === "not_found") {
    if (e.data !== null) return null;
  } else if (e.kind !== "found") return null;
  if (e.host !== undefined && (typeof e.host !== "string" || !HOST_RE.test(e.host))) return null;
  if (e.matchedBy !== undefined && e.matchedBy !== "sha256" && e.matchedBy !== "autov3") return null;
  return e as unknown as Entry;
}

// ---------------------------------------------------------------------------------------------
// Driver

export interface AtomicFsDriverOptions {
  base: string;
}

// One path segment per key segment; the leading character rules out `.`, `..` and our temp files.
const SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const ENTRY_EXT = ".json";
const TEMP_PREFIX = ".tmp-";

/**
 * fs-lite's reads with atomic writes: each value goes to a temp file in the same folder, is
 * fsynced, then renamed over the entry, so a reader (or the next run after a crash) sees the old
 * or the new value, never a torn one. Keys map to `base/seg/seg.json` only when every segment is
 * plain; anything that could climb out of `base` throws.
 */
export const atomicFsDriver = defineDriver((opts: AtomicFsDriverOptions) => {
  if (!opts || typeof opts.base !== "string" || opts.base === "") throw new Error("atomic-fs driver: `base` is required");
  const base = resolve(opts.base);

  function pathOf(key: string): string {
    const segments = key.split(":");
    if (!segments.every((s) => SEGMENT_RE.test(s))) {
      throw new Error(`atomic-fs driver: unsafe key ${JSON.stringify(key.slice(0, 100))}`);
    }
    const path = join(base, ...segments) + ENTRY_EXT;
    if (!path.startsWith(base + sep)) throw new Error(`atomic-fs driver: key escapes the cache dir: ${JSON.stringify(key)}`);
    return path;
  }

  async function read(key: string): Promise<string | null> {
    try {
      return await fsp.readFile(pathOf(key), "utf8");
    } catch (err) {
      if (isFsError(err, "ENOENT") || isFsError(err, "EISDIR") || isFsError(err, "ENOTDIR")) return null;
      throw err;
    }
  }

  async function write(key: string, value: unknown): Promise<void> {
    const path = pathOf(key);
    const data = typeof value === "string" || value instanceof Uint8Array ? value : String(value);
    await fsp.mkdir(dirname(path), { recursive: true });
    const temp = join(dirname(path), `${TEMP_PREFIX}${basename(path)}-${process.pid}-${randomBytes(4).toString("hex")}`);
    const handle = await fsp.open(temp, "wx");
    try {
      await handle.writeFile(data);
      await handle.sync();
      await handle.close();
      await fsp.rename(temp, path);
    } catch (err) {
      await handle.close().catch(() => {});
      await fsp.unlink(temp).catch(() => {});
      throw err;
    }
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
      if (entry.isDirectory()) keys.push(...(await listKeys(join(dir, entry.name), `${prefix}${entry.name}:`)));
      else if (entry.isFile() && entry.name.endsWith(ENTRY_EXT)) keys.push(prefix + entry.name.slice(0, -ENTRY_EXT.length));
    }
    return keys;
  }

  return {
    name: "atomic-fs",
    options: opts,
    async hasItem(key) {
      return (await read(key)) !== null;
    },
    getItem: read,
    getItemRaw: read,
    setItem: write,
    setItemRaw: write,
    async removeItem(key) {
      await fsp.unlink(pathOf(key)).catch((err) => {
        if (!isFsError(err, "ENOENT")) throw err;
      });
    },
    getKeys() {
      return listKeys(base, "");
    },
  };
});

function isFsError(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

export interface MetaPruneResult {
  checked: number;
  removed: number;
}

/**
 * Removes metadata-cache files that can never be used again: our entries that are expired or of
 * another entry version, and temp files a killed writer left behind (older than an hour, so a
 * running writer's temp file is never pulled from under it). Files that are not ours, and anything
 * behind a symbolic link, are left alone. Used by `civitai-meta cache prune`.
 */
export function pruneMetaCache(dir: string, now: number = Date.now()): MetaPruneResult {
  const result: MetaPruneResult = { checked: 0, removed: 0 };
  const remove = (path: string) => {
    try {
      unlinkSync(path);
      result.removed++;
    } catch {
      /* gone already, or read-only */
    }
  };
  // Issue 9 (T11): never through a symbolic link, and only files that are ours (isOwnMetaFile).
  for (const path of listNoFollow(dir).files) {
    const own = ownMetaFile(path);
    if (own === null) continue;
    result.checked++;
    if (own.kind === "temp") {
      if (now - own.mtimeMs > 3_600_000) remove(path);
    } else if (parseEntry(own.text, now) === null) remove(path);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Issue 9 (T11): what `cache prune` and `cache clear` may delete. A file is ours when it carries a
// temp name of our driver or is an entry: a `.json` whose content has our envelope (v, storedAt,
// expiresAt, kind). A user's a.json or tsconfig.json in a folder the cache was pointed at is not.

const TEMP_NAME_RE = /^\.tmp-.+-\d+-[0-9a-f]{8}$/;

type OwnMetaFile = { kind: "temp"; mtimeMs: number } | { kind: "entry"; text: string };

function ownMetaFile(path: string): OwnMetaFile | null {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    return null;
  }
  if (TEMP_NAME_RE.test(basename(path))) return { kind: "temp", mtimeMs: st.mtimeMs };
  if (!path.endsWith(ENTRY_EXT)) return null;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const e = value as Record<string, unknown>;
  const envelope =
    typeof e.v === "number" &&
    typeof e.storedAt === "number" &&
    typeof e.expiresAt === "number" &&
    (e.kind === "found" || e.kind === "not_found");
  return envelope ? { kind: "entry", text } : null;
}

/** True for a metadata-cache file we wrote (an entry or a temp file); `cache clear` deletes only these. */
export function isOwnMetaFile(path: string): boolean {
  return ownMetaFile(path) !== null;
}
