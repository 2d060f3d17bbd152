/**
 * The local sections of a scan's records (`buildRecords` reads them), kept where they cost least
 * (scan.ts fills them during the header pass).
 */
import type { HashCache } from "../hash/hash-cache.ts";
import { localInfoOf } from "../local/local-cache.ts";
import type { LocalInfo, SidecarInfo } from "../local/local-types.ts";
import type { FoundFile } from "./types.ts";

/**
 * The local section of every file, for buildRecords. Facts the hash cache holds (read from it, or
 * stored by this run) stay there and are read back, folder by folder, when the record is built:
 * at ~1 KB of JSON per file, holding them all would be the largest part of a 100,000-file scan's
 * memory. Without a usable cache (--no-cache, a full disk) the text is held here.
 */
export class LocalSections implements ReadonlyMap<string, LocalInfo> {
  private readonly inCache = new Map<string, FoundFile>();
  private readonly texts = new Map<string, string>();
  private readonly sidecars = new Map<string, SidecarInfo[]>();
  /** Records whose facts the cache no longer had (a damaged store set aside mid-run). */
  lost = 0;
  /** Files whose header facts and sidecars came unchanged from the hash cache. */
  readonly unchanged = new Set<FoundFile>();

  constructor(private readonly cache: HashCache | null) {}

  /**
   * `facts` null: unchanged in the cache. `stored`: these facts were just given to the cache. Facts
   * that are neither (the cache is off or failing, or they were cut down from the cached ones) are
   * held here.
   */
  set(file: FoundFile, facts: string | null, sidecars: SidecarInfo[] | undefined, stored: boolean): void {
    if (sidecars) this.sidecars.set(file.path, sidecars);
    if (this.cache && (facts === null || stored)) this.inCache.set(file.path, file);
    else if (facts !== null) this.texts.set(file.path, facts);
  }

  get(path: string): LocalInfo | undefined {
    const file = this.inCache.get(path);
    let facts = this.texts.get(path);
    if (file) {
      facts = this.cache?.peekLocal(file.realPath, file.identity)?.facts;
      if (facts === undefined) {
        this.lost++;
        return undefined;
      }
    }
    return facts === undefined ? undefined : localInfoOf(facts, this.sidecars.get(path));
  }

  has(path: string): boolean {
    return this.inCache.has(path) || this.texts.has(path);
  }

  get size(): number {
    return this.inCache.size + this.texts.size;
  }

  *keys(): MapIterator<string> {
    yield* this.inCache.keys();
    yield* this.texts.keys();
  }

  *entries(): MapIterator<[string, LocalInfo]> {
    for (const path of this.keys()) {
      const info = this.get(path);
      if (info) yield [path, info];
    }
  }

  *values(): MapIterator<LocalInfo> {
    for (const [, info] of this.entries()) yield info;
  }

  forEach(fn: (value: LocalInfo, key: string, map: ReadonlyMap<string, LocalInfo>) => void): void {
    for (const [path, info] of this.entries()) fn(info, path, this);
  }

  [Symbol.iterator](): MapIterator<[string, LocalInfo]> {
    return this.entries();
  }
}
