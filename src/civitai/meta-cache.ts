import { createStorage, prefixStorage, type Storage } from "unstorage";
import memoryDriver from "unstorage/drivers/memory";
import { cacheScope, modelKey, parseKey } from "./cache-keys.ts";
import { leanReplacer, type LeanModel } from "./lean.ts";
import { atomicFsDriver } from "./meta-cache-driver.ts";
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
}

interface MetaCacheStats {
  hits: number;
  misses: number;
  writes: number;
  writeErrors: number;
  /** Entries not written because they would not read back (an answer inconsistent with its key). */
  invalid: number;
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
}

// Long because its methods share one closure (storage, clock, TTL steps, stats); each method is short.
export function createMetaCache(options: MetaCacheOptions): MetaCache {
  const ttlFound = options.ttlFoundMs ?? DEFAULT_TTL_FOUND_MS;
  const now = options.now ?? Date.now;
  const refresh = options.refresh === true;
  const scope = cacheScope(options.origins);
  const root = createStorage({ driver: options.dir === false ? memoryDriver() : atomicFsDriver({ base: options.dir }) });
  const storage = prefixStorage(root, `v${ENTRY_VERSION}:${scope}`);
  const stats: MetaCacheStats = { hits: 0, misses: 0, writes: 0, writeErrors: 0, invalid: 0 };
  /** History of keys read but not served (expired, or --refresh), for the not-found written next. */
  const history = new Map<string, History>();

  const ttlNotFound = (misses: number): number =>
    options.ttlNotFoundMs ?? NOT_FOUND_TTL_STEPS_MS[Math.min(misses, NOT_FOUND_TTL_STEPS_MS.length) - 1]!;

  /** The entries under `keys`, checked; null where there is none usable. Remembers history. */
  async function readEntries(keys: readonly string[], opts: ReadOptions = {}): Promise<(MetaEntry | null)[]> {
    const refreshing = refresh || opts.refresh === true;
    if (keys.length === 0) return [];
    let items: { key: string; value: unknown }[];
    try {
      items = await storage.getItems([...keys]);
    } catch {
      items = [];
    }
    const byKey = new Map(items.map((item) => [item.key, item.value]));
    const at = now();
    return keys.map((key) => {
      const entry = parseMetaEntry(byKey.get(key) ?? null, { key, scope });
      if (entry === null) return null;
      if (!refreshing && isFresh(entry, at)) return entry;
      remember(key, entry, refreshing);
      return null;
    });
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
    const items = valid.map((entry) => ({ key: entry.key, value: JSON.stringify(entry, leanReplacer) }));
    try {
      await storage.setItems(items);
      stats.writes += items.length;
    } catch (err) {
      // The driver tried every item; a read-only or full disk fails them all, so count them all.
      stats.writeErrors += items.length;
      options.onWriteError?.(err);
    }
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
