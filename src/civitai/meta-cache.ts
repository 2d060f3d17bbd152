import { join } from "node:path";
import { createStorage, prefixStorage, type Storage } from "unstorage";
import memoryDriver from "unstorage/drivers/memory";
import { cacheScope, isKeyFolder, modelKey, parseKey } from "./cache-keys.ts";
import { leanReplacer, type LeanModel } from "./lean.ts";
import { atomicFsDriver, folderStamp, type FolderStamp } from "./meta-cache-driver.ts";
import { MAX_SHARED_VALUE_CHARS, type SharedStore, type SharedWrite } from "./meta-cache-redis.ts";
import {
  ENTRY_VERSION,
  HOST_RE,
  isFresh,
  parseMetaEntry,
  type LastFound,
  type MetaEntry,
  type ModelEntry,
  type VersionAnswer,
  type VersionEntry,
} from "./meta-cache-entry.ts";

export type { LastFound, VersionAnswer } from "./meta-cache-entry.ts";

/**
 * Civitai metadata cache on unstorage. unstorage 1.17's fs drivers write in place (readers see
 * torn files, a crash leaves a truncated one) and its getItem runs destr, which turns garbage into
 * strings and numeric strings into numbers (docs/reliability.md §3.1). So: our own driver writes
 * temp + rename, entries are whole JSON objects that `parseMetaEntry` checks field by field (C2:
 * destr never sees a bare value), and anything unreadable or inconsistent is a miss.
 *
 * Reads and writes go in batches (`readVersions`, `writeVersions`, …: one unstorage
 * getItems/setItems call each). Not-found answers live longer each time they repeat
 * (NOT_FOUND_TTL_STEPS_MS), and a not-found that replaces a found answer keeps it as `lastFound`.
 *
 * A shared store (Redis, issue 14) sits behind the local cache: what the local cache cannot serve
 * is asked there (one MGET per batch), what it serves is checked exactly as a local entry (same
 * key, same scope, an origin of ours) and copied into the local cache; every write goes to both.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_TTL_FOUND_MS = 7 * DAY_MS;
/**
 * A hash Civitai does not know is asked again after 3 days, then 7, then every 30: most unknown
 * files are private merges and training outputs that never appear, and those that do appear
 * usually do within days. `--refresh` starts the count over.
 */
export const NOT_FOUND_TTL_STEPS_MS: readonly number[] = [3 * DAY_MS, 7 * DAY_MS, 30 * DAY_MS];

export interface MetaCacheOptions {
  /** Folder of the fs cache; `false` keeps everything in memory (--no-cache). */
  dir: string | false;
  /**
   * The API bases whose answers this cache holds: the primary, then the fallback if any. Entries
   * are kept per scope (`<dir>/v3/<primary>/<fallback|none>/…`), so answers from one server are
   * never served for another.
   */
  origins: readonly string[];
  ttlFoundMs?: number;
  /** A fixed TTL for every not-found answer (config `cache.notFoundTtl`); default: NOT_FOUND_TTL_STEPS_MS. */
  ttlNotFoundMs?: number;
  now?: () => number;
  /** Reads always miss, writes still happen (--refresh); repeat counts start over. */
  refresh?: boolean;
  /** Called on a failed write (read-only dir, disk full): the run goes on uncached. */
  onWriteError?: (err: unknown) => void;
  /** The team's cache behind the local one (meta-cache-redis.ts); it warns about its own failures. */
  shared?: SharedStore;
  /** One line for the debug log (what the shared store ignored). */
  onDebug?: (message: string) => void;
}

interface MetaCacheStats {
  hits: number;
  misses: number;
  writes: number;
  writeErrors: number;
  /** Entries not written because they would not read back (an answer inconsistent with its key). */
  invalid: number;
  /** Answers served from the shared store (also counted in `hits`). */
  sharedHits: number;
  /** Values in the shared store that failed the checks (wrong shape, another key or scope, a foreign origin). */
  sharedIgnored: number;
}

export type CachedVersion =
  | ({ kind: "found" } & VersionAnswer)
  | { kind: "not_found"; misses: number; autov3?: string | null; lastFound?: LastFound };
export type CachedModel = { kind: "found"; model: LeanModel } | { kind: "not_found"; misses: number };

export type VersionWrite =
  | { key: string; answer: VersionAnswer }
  /** `autov3`: for a SHA-256 key, the AutoV3 also asked and not found (null: the file has none). */
  | { key: string; notFound: { autov3?: string | null } };
export interface ModelWrite {
  id: number;
  /** null records "Civitai did not return this model". */
  model: LeanModel | null;
}

export interface ReadOptions {
  /** Serve nothing (as with the cache's own `refresh`), only learn each key's history. */
  refresh?: boolean;
}

/** What earlier entries of a key say, for the next not-found written under it. */
interface History {
  misses: number;
  lastFound?: LastFound;
}

export interface MetaCache {
  /** Keys from `versionKeyBySha256` / `versionKeyByAutov3`; each answer null on a miss (absent, expired, corrupt, refresh). */
  readVersions(keys: readonly string[], opts?: ReadOptions): Promise<(CachedVersion | null)[]>;
  writeVersions(writes: readonly VersionWrite[]): Promise<void>;
  readModels(ids: readonly number[], opts?: ReadOptions): Promise<(CachedModel | null)[]>;
  writeModels(writes: readonly ModelWrite[]): Promise<void>;
  /** The last found answer for `key` known to this cache (read earlier in this run, or just replaced). */
  lastFound(key: string): LastFound | undefined;
  getVersion(key: string): Promise<CachedVersion | null>;
  setVersion(key: string, answer: VersionAnswer | null): Promise<void>;
  getModel(id: number): Promise<CachedModel | null>;
  setModel(id: number, model: LeanModel | null): Promise<void>;
  readonly stats: Readonly<MetaCacheStats>;
  readonly refresh: boolean;
  /** The unstorage view of this cache's scope (keys without the `v3:<scope>:` prefix). */
  readonly storage: Storage;
  /**
   * For finished records (scan/record-cache.ts): the expiry of each entry served from the cache
   * since the last call, by key. The map is handed over and this cache starts a new one; the first
   * call starts the tracking (and returns an empty map).
   */
  takeServed(): Map<string, number>;
  /**
   * The state of the fs cache folders named (cache-keys.ts keyFolder), by folder; null for one that
   * is not there or not a folder name of ours. Null without an fs cache. Every write or removal of
   * an entry renames or unlinks in its folder, so an unchanged stamp means no entry in it changed,
   * whoever wrote (another run, an older civitai-meta, `cache prune`).
   */
  folderStamps(folders: Iterable<string>): Map<string, FolderStamp | null> | null;
  /** The shared store's URL as shown (no password), when there is one. */
  readonly shared: string | null;
  /** Closes the shared store's connection (a no-op without one). */
  close(): Promise<void>;
}

// Long because its methods share one closure (storage, clock, TTL steps, stats); each method is short.
export function createMetaCache(options: MetaCacheOptions): MetaCache {
  const ttlFound = options.ttlFoundMs ?? DEFAULT_TTL_FOUND_MS;
  const now = options.now ?? Date.now;
  const refresh = options.refresh === true;
  const scope = cacheScope(options.origins);
  const fsDriver = options.dir === false ? null : atomicFsDriver({ base: options.dir });
  const root = createStorage({ driver: fsDriver ?? memoryDriver() });
  const prefix = `v${ENTRY_VERSION}:${scope}`;
  const storage = prefixStorage(root, prefix);
  /**
   * Batch reads go to the fs driver itself, with the full keys: unstorage's storage layer
   * normalises, mounts and re-joins every key of a batch (~10 % of a warm 100,000-file scan's
   * lookup, `bun --cpu-prof`), and ours are already plain (cache-keys.ts; the driver checks each).
   * Writes, listing and the memory driver go through unstorage as before.
   */
  const getItems = async (keys: readonly string[]): Promise<{ key: string; value: unknown }[]> => {
    if (!fsDriver?.getItems) return storage.getItems([...keys]);
    const got = await fsDriver.getItems(
      keys.map((key) => ({ key: `${prefix}:${key}` })),
      {},
    );
    return got.map((item, i) => ({ key: keys[i]!, value: item.value }));
  };
  const stats: MetaCacheStats = { hits: 0, misses: 0, writes: 0, writeErrors: 0, invalid: 0, sharedHits: 0, sharedIgnored: 0 };
  /** History of keys read but not served (expired, or --refresh), for the not-found written next. */
  const history = new Map<string, History>();
  /**
   * Expiry of the entries served since the last takeServed, by key; null until it is first called
   * (only a scan keeping records asks, and a map of every entry a 100,000-file run serves is not free).
   */
  let served: Map<string, number> | null = null;
  const folderBase = options.dir === false ? null : join(options.dir, ...prefix.split(":"));

  const ttlNotFound = (misses: number): number =>
    options.ttlNotFoundMs ?? NOT_FOUND_TTL_STEPS_MS[Math.min(misses, NOT_FOUND_TTL_STEPS_MS.length) - 1]!;

  /** The entries under `keys`, checked; null where there is none usable. Remembers history. */
  async function readEntries(keys: readonly string[], opts: ReadOptions = {}): Promise<(MetaEntry | null)[]> {
    const refreshing = refresh || opts.refresh === true;
    if (keys.length === 0) return [];
    let items: { key: string; value: unknown }[];
    try {
      items = await getItems(keys);
    } catch {
      items = [];
    }
    const byKey = new Map(items.map((item) => [item.key, item.value]));
    const local = keys.map((key) => parseMetaEntry(byKey.get(key) ?? null, { key, scope }));
    const at = now();
    // --refresh serves nothing, and what the local cache knows of each key's history is enough.
    const remote = refreshing ? [] : await readShared(keys, local, at);
    return keys.map((key, i) => {
      const own = local[i] ?? null;
      const theirs = remote[i] ?? null;
      if (!refreshing && own !== null && isFresh(own, at)) return servedEntry(key, own);
      if (theirs !== null && isFresh(theirs, at)) return servedEntry(key, theirs);
      // Not served: the newer of the two tells the next answer its history.
      const past = theirs !== null && (own === null || theirs.storedAt > own.storedAt) ? theirs : own;
      if (past !== null) remember(key, past, refreshing);
      return null;
    });
  }

  /**
   * The shared store's entries for the keys the local cache cannot serve (null elsewhere), each
   * checked as strictly as a local one plus its origin; fresh ones are copied into the local cache.
   */
  async function readShared(keys: readonly string[], local: readonly (MetaEntry | null)[], at: number): Promise<(MetaEntry | null)[]> {
    const shared = options.shared;
    if (!shared) return [];
    const wanted = keys.flatMap((key, i) => (local[i] != null && isFresh(local[i]!, at) ? [] : [i]));
    if (wanted.length === 0) return [];
    const values = await shared.read(wanted.map((i) => `${prefix}:${keys[i]}`));
    const out: (MetaEntry | null)[] = keys.map(() => null);
    if (values === null) return out;
    const copies: MetaEntry[] = [];
    wanted.forEach((index, j) => {
      const value = values[j] ?? null;
      if (value === null) return;
      const key = keys[index]!;
      const entry = value.length > MAX_SHARED_VALUE_CHARS ? null : parseMetaEntry(value, { key, scope, hosts: options.origins });
      if (entry === null) {
        stats.sharedIgnored++;
        return;
      }
      out[index] = entry;
      if (isFresh(entry, at)) {
        stats.sharedHits++;
        copies.push(entry);
      }
    });
    if (copies.length > 0) await writeLocal(copies);
    return out;
  }

  function servedEntry(key: string, entry: MetaEntry): MetaEntry {
    served?.set(key, entry.expiresAt);
    return entry;
  }

  function remember(key: string, entry: MetaEntry, refreshing: boolean): void {
    const misses = refreshing || entry.kind === "found" ? 0 : entry.misses;
    let lastFound: LastFound | undefined;
    if ("versions" in entry && entry.kind === "found") lastFound = { ...answerOf(entry), at: entry.storedAt };
    else if ("lastFound" in entry) lastFound = entry.lastFound;
    if (misses > 0 || lastFound) history.set(key, { misses, ...(lastFound ? { lastFound } : {}) });
    else history.delete(key);
  }

  function counted<T>(values: (T | null)[]): (T | null)[] {
    for (const v of values) {
      if (v === null) stats.misses++;
      else stats.hits++;
    }
    return values;
  }

  async function writeEntries(entries: readonly MetaEntry[]): Promise<void> {
    // What would be a miss on reading is not written: it would only cost a request every run.
    const valid = entries.filter((entry) => parseMetaEntry(entry, { key: entry.key, scope }) !== null);
    stats.invalid += entries.length - valid.length;
    if (valid.length === 0) return;
    await Promise.all([writeLocal(valid), writeShared(valid)]);
  }

  async function writeLocal(entries: readonly MetaEntry[]): Promise<void> {
    const items = entries.map((entry) => ({ key: entry.key, value: JSON.stringify(entry, leanReplacer) }));
    try {
      await storage.setItems(items);
      stats.writes += items.length;
    } catch (err) {
      // The driver tried every item; a read-only or full disk fails them all, so count them all.
      stats.writeErrors += items.length;
      options.onWriteError?.(err);
    }
  }

  /** Into the shared store, each with the Redis expiry of sharedTtlMs (the store warns about its own failures). */
  async function writeShared(entries: readonly MetaEntry[]): Promise<void> {
    if (!options.shared) return;
    const at = now();
    const items: SharedWrite[] = entries.map((entry) => ({
      key: `${prefix}:${entry.key}`,
      value: JSON.stringify(entry, leanReplacer),
      ttlSeconds: Math.ceil(sharedTtlMs(entry, at) / 1000),
    }));
    await options.shared.write(items.filter((item) => item.ttlSeconds > 0));
  }

  function envelope(key: string, ttl: number) {
    const storedAt = now();
    return { v: ENTRY_VERSION, scope, key, storedAt, expiresAt: storedAt + ttl } as const;
  }

  function versionEntry(write: VersionWrite): VersionEntry {
    assertVersionKey(write.key);
    if ("answer" in write) {
      history.delete(write.key);
      return { ...envelope(write.key, ttlFound), kind: "found", ...checkedAnswer(write.answer) };
    }
    const past = history.get(write.key);
    const misses = (past?.misses ?? 0) + 1;
    const entry: VersionEntry = { ...envelope(write.key, ttlNotFound(misses)), kind: "not_found", misses };
    if (write.notFound.autov3 !== undefined) entry.autov3 = write.notFound.autov3;
    if (past?.lastFound) entry.lastFound = past.lastFound;
    history.set(write.key, { misses, ...(past?.lastFound ? { lastFound: past.lastFound } : {}) });
    return entry;
  }

  function modelEntry(write: ModelWrite): ModelEntry {
    const key = modelKey(write.id);
    if (write.model === null) {
      const misses = (history.get(key)?.misses ?? 0) + 1;
      history.set(key, { misses });
      return { ...envelope(key, ttlNotFound(misses)), kind: "not_found", misses };
    }
    history.delete(key);
    if (write.model.id !== write.id) throw new TypeError("writeModels: not the model with this id");
    return { ...envelope(key, ttlFound), kind: "found", model: write.model };
  }

  const cache: MetaCache = {
    stats,
    refresh,
    storage,
    shared: options.shared?.label ?? null,
    async close() {
      if (!options.shared) return;
      if (stats.sharedIgnored > 0) {
        options.onDebug?.(
          `shared metadata cache ${options.shared.label}: ${stats.sharedIgnored} value(s) ignored (not a valid entry for their key, scope or origin); asked again instead`,
        );
      }
      await options.shared.close();
    },
    async readVersions(keys, opts) {
      keys.forEach(assertVersionKey);
      const entries = (await readEntries(keys, opts)) as (VersionEntry | null)[];
      return counted(entries.map((e) => (e === null ? null : cachedVersion(e))));
    },
    async writeVersions(writes) {
      await writeEntries(writes.map(versionEntry));
    },
    async readModels(ids, opts) {
      const entries = (await readEntries(ids.map(modelKey), opts)) as (ModelEntry | null)[];
      return counted(
        entries.map((e) => {
          if (e === null) return null;
          return e.kind === "found" ? { kind: "found", model: e.model } : { kind: "not_found", misses: e.misses };
        }),
      );
    },
    async writeModels(writes) {
      await writeEntries(writes.map(modelEntry));
    },
    lastFound(key) {
      return history.get(key)?.lastFound;
    },
    takeServed() {
      const out = served ?? new Map<string, number>();
      served = new Map();
      return out;
    },
    folderStamps(folders) {
      if (folderBase === null) return null;
      const out = new Map<string, FolderStamp | null>();
      for (const folder of folders) {
        if (out.has(folder)) continue;
        // Only our plain folder names are joined (a row's deps come from a store we trust only so far).
        out.set(folder, isKeyFolder(folder) ? folderStamp(join(folderBase, ...folder.split(":"))) : null);
      }
      return out;
    },
    async getVersion(key) {
      return (await cache.readVersions([key]))[0] ?? null;
    },
    async setVersion(key, answer) {
      await cache.writeVersions([answer === null ? { key, notFound: {} } : { key, answer }]);
    },
    async getModel(id) {
      return (await cache.readModels([id]))[0] ?? null;
    },
    async setModel(id, model) {
      await cache.writeModels([{ id, model }]);
    },
  };
  return cache;
}

/**
 * How long the shared store keeps an entry (its Redis expiry): a found answer until it expires; a
 * not-found one as long again after (as `cache prune` keeps it locally), so the next machine that
 * asks still learns how many times in a row it was not found, and waits longer before asking again.
 */
export function sharedTtlMs(entry: MetaEntry, now: number): number {
  const lifetime = entry.expiresAt - entry.storedAt;
  return (entry.kind === "found" ? entry.expiresAt : entry.expiresAt + lifetime) - now;
}

function cachedVersion(entry: VersionEntry): CachedVersion {
  if (entry.kind === "found") return { kind: "found", ...answerOf(entry) };
  const out: CachedVersion = { kind: "not_found", misses: entry.misses };
  if (entry.autov3 !== undefined) out.autov3 = entry.autov3;
  if (entry.lastFound) out.lastFound = entry.lastFound;
  return out;
}

function answerOf(entry: VersionAnswer): VersionAnswer {
  const answer: VersionAnswer = { versions: entry.versions, matchedBy: entry.matchedBy };
  if (entry.host !== undefined) answer.host = entry.host;
  if (entry.autov3 !== undefined) answer.autov3 = entry.autov3;
  if (entry.unlisted) answer.unlisted = true;
  return answer;
}

/** The answer as it will be stored; a host that is not a bare origin is left out. */
function checkedAnswer(answer: VersionAnswer): VersionAnswer {
  if (answer.versions.length === 0) throw new TypeError("writeVersions: a found answer needs a version");
  const out = answerOf(answer);
  if (out.host !== undefined && !HOST_RE.test(out.host)) delete out.host;
  return out;
}

function assertVersionKey(key: string): void {
  const parsed = parseKey(key);
  if (parsed === null || parsed.kind === "model") {
    throw new TypeError(`invalid version cache key: ${JSON.stringify(String(key).slice(0, 100))}`);
  }
}
