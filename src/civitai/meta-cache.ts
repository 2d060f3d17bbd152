import { createStorage, prefixStorage, type Storage } from "unstorage";
import memoryDriver from "unstorage/drivers/memory";
import { cacheScope, modelKey } from "./cache-keys.ts";
import { isModel, isVersion } from "./civitai-record.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import type { MatchedBy } from "../report/record-types.ts";
import { atomicFsDriver } from "./meta-cache-driver.ts";
import { ENTRY_VERSION, HOST_RE, parseEntry, type Entry } from "./meta-cache-entry.ts";

/**
 * Civitai metadata cache on unstorage. unstorage 1.17's fs drivers write in place (readers see
 * torn files, a crash leaves a truncated one) and its getItem runs destr, which turns garbage into
 * strings and numeric strings into numbers (docs/reliability.md §3.1). So: our own driver writes
 * tmp + fsync + rename, and entries go through getItemRaw/setItemRaw as JSON we parse and
 * shape-check ourselves; anything unreadable or of the wrong shape is a miss.
 */

export const DEFAULT_TTL_FOUND_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_TTL_NOT_FOUND_MS = 24 * 60 * 60 * 1000;
const VERSION_KEY_RE = /^version:(?:sha256:[0-9a-f]{64}|autov3:[0-9a-f]{12})$/;

export interface MetaCacheOptions {
  /** Folder of the fs cache; `false` keeps everything in memory (--no-cache). */
  dir: string | false;
  /**
   * The API bases whose answers this cache holds: the primary, then the fallback if any. Entries
   * are kept per scope (`<dir>/v2/<primary>/<fallback|none>/…`), so answers from one server are
   * never served for another.
   */
  origins: readonly string[];
  ttlFoundMs?: number;
  ttlNotFoundMs?: number;
  now?: () => number;
  /** Reads always miss, writes still happen (--refresh). */
  refresh?: boolean;
  /** Called on a failed write (read-only dir, disk full): the run goes on uncached. */
  onWriteError?: (err: unknown) => void;
}

interface MetaCacheStats {
  hits: number;
  misses: number;
  writes: number;
  writeErrors: number;
}

interface VersionMeta {
  /** Origin that answered, e.g. `https://civitai.com`. */
  host?: string;
  matchedBy?: MatchedBy;
}

export type CachedVersion = ({ kind: "found"; versions: ApiModelVersion[] } & VersionMeta) | { kind: "not_found" };
type CachedModel = { kind: "found"; model: ApiModel } | { kind: "not_found" };

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
  /** The unstorage view of this cache's scope (keys without the `v2:<scope>:` prefix). */
  readonly storage: Storage;
}

export function createMetaCache(options: MetaCacheOptions): MetaCache {
  const ttlFound = options.ttlFoundMs ?? DEFAULT_TTL_FOUND_MS;
  const ttlNotFound = options.ttlNotFoundMs ?? DEFAULT_TTL_NOT_FOUND_MS;
  const now = options.now ?? Date.now;
  const refresh = options.refresh === true;
  const scope = cacheScope(options.origins);
  const root = createStorage({ driver: options.dir === false ? memoryDriver() : atomicFsDriver({ base: options.dir }) });
  const storage = prefixStorage(root, `v${ENTRY_VERSION}:${scope}`);
  const stats: MetaCacheStats = { hits: 0, misses: 0, writes: 0, writeErrors: 0 };

  async function read(key: string): Promise<Entry | null> {
    let raw: unknown;
    try {
      raw = await storage.getItemRaw(key);
    } catch {
      raw = null;
    }
    const entry = parseEntry(raw, now());
    // Belt and braces: an entry copied or linked into another scope's folder is not its answer.
    return entry?.scope === scope ? entry : null;
  }

  function counted<T>(value: T | null): T | null {
    if (value === null) stats.misses++;
    else stats.hits++;
    return value;
  }

  async function write(key: string, kind: Entry["kind"], data: unknown, meta: VersionMeta = {}): Promise<void> {
    const storedAt = now();
    const expiresAt = storedAt + (kind === "found" ? ttlFound : ttlNotFound);
    const entry: Entry = { v: ENTRY_VERSION, storedAt, expiresAt, kind, scope, data };
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
      return counted(versionOf(await read(key)));
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
      return counted(modelOf(await read(key), id));
    },
    async setModel(id, model) {
      const key = modelKey(id);
      if (model === null) return write(key, "not_found", null);
      if (!isModel(model) || model.id !== id) throw new TypeError("setModel: not the model with this id");
      return write(key, "found", model);
    },
  };
}

/** What a stored entry says about a version key; null when it is not a usable answer. */
function versionOf(entry: Entry | null): CachedVersion | null {
  if (!entry) return null;
  if (entry.kind === "not_found") return { kind: "not_found" };
  if (!Array.isArray(entry.data) || entry.data.length === 0 || !entry.data.every(isVersion)) return null;
  const found: CachedVersion = { kind: "found", versions: entry.data };
  if (entry.host !== undefined) found.host = entry.host;
  if (entry.matchedBy !== undefined) found.matchedBy = entry.matchedBy;
  return found;
}

/** What a stored entry says about model `id`; null when it is not a usable answer. */
function modelOf(entry: Entry | null, id: number): CachedModel | null {
  if (!entry) return null;
  if (entry.kind === "not_found") return { kind: "not_found" };
  if (!isModel(entry.data) || entry.data.id !== id) return null;
  return { kind: "found", model: entry.data };
}

function assertVersionKey(key: string): void {
  if (typeof key !== "string" || !VERSION_KEY_RE.test(key)) {
    throw new TypeError(`invalid version cache key: ${JSON.stringify(String(key).slice(0, 100))}`);
  }
}
