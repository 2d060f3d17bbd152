/**
 * Persistent hash cache: the hashes of each file, and (for `scan`) its header facts and sidecar
 * stamps, under its real path and exact identity, in one SQLite store (hash-store.ts).
 *
 * Reads go by folder: the first file asked for in a folder loads that folder's rows in one query,
 * so a warm run over 100,000 files makes a few hundred queries, not 100,000. Writes are gathered
 * and committed in batches (BATCH_ROWS rows or BATCH_MS, whichever comes first, and at flush/close):
 * a kill -9 loses at most the batch not yet committed.
 *
 * The promises of docs/cases.md C1–C10 hold on the store: a hit needs path, dev, ino, size, mtimeNs
 * and ctimeNs all equal and an entry that is not racy (hash-entry.ts); a damaged row is a miss, and
 * a damaged store is set aside and started again (one warning); a read-only or full location gives
 * one warning and the run goes on without storing; two runs at once write through SQLite's lock.
 */
import { lstatSync, mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import type { FileHashes, FileIdentity, HashAlgo } from "../scan/types.ts";
import { isTempName, tempPathFor } from "../shared/atomic-write.ts";
import { decodeFsName, fsNameBytes, fsPath, hasRawBytes, joinPath } from "../shared/fs-path.ts";
import { readFileHead } from "../shared/read-small-file.ts";
import { removeEmptyDirs } from "../shared/no-follow.ts";
import { describeErrno, errnoCode } from "../shared/errors.ts";
import { clearV1Files, drainV1Entries, v1Root, type V1Entry } from "./hash-cache-v1.ts";
import {
  checksum,
  hashesFromEntry,
  hashPartText,
  identityPrefix,
  localPartText,
  mergeHashes,
  parseHashPart,
  parseLocalPart,
  splitPath,
  type CachedLocal,
  type HashCacheEntry,
  type HashPart,
  type LocalPart,
  type RawRow,
} from "./hash-entry.ts";
import {
  CORRUPT_SUFFIX,
  describeStoreError,
  openStore,
  openStoreReadOnly,
  setAsideStore,
  STORE_COMPANIONS,
  storeErrorKind,
  storePath,
  type HashStore,
  type PartRow,
} from "./hash-store.ts";

export { hashesFromEntry, type HashCacheEntry } from "./hash-entry.ts";

/** Rows gathered before a commit. */
const BATCH_ROWS = 1000;
/** Longest a computed row waits for its commit while hashing goes on. */
const BATCH_MS = 2000;
/** Folders whose rows are held at once: callers go folder by folder (walk order). */
const FOLDERS_HELD = 4;

interface HashCacheStats {
  hits: number;
  misses: number;
  writes: number;
  /** Rows that failed their checks (each treated as a miss). */
  corrupt: number;
}

interface PruneResult {
  checked: number;
  removed: number;
}

export interface HashCache {
  /** The cache's root folder (the one given to openHashCache). */
  readonly dir: string;
  /** False once a write failed: the run goes on without storing, lookups still work. */
  readonly writable: boolean;
  /** Warnings raised so far (write failure, damaged rows or store), each once. */
  readonly warnings: readonly string[];
  readonly stats: Readonly<HashCacheStats>;
  /**
   * The cached hashes of `algos` for this exact file state, or null unless every one is cached (or
   * known not to apply). The result holds only algorithms that were asked for and exist.
   */
  get(realPath: string, identity: FileIdentity, algos: readonly HashAlgo[]): FileHashes | null;
  /** The trusted entry for this exact file state (all identity fields equal, confirmed), or null. */
  read(realPath: string, identity: FileIdentity): HashCacheEntry | null;
  /**
   * As read, and also an entry this run wrote even while it is racy: what this run computed is
   * good for this run (scan reads its header facts back from here instead of holding them).
   */
  peek(realPath: string, identity: FileIdentity): HashCacheEntry | null;
  /** `peek(…)?.local`, without reading the hash part again (scan reads the facts back per file). */
  peekLocal(realPath: string, identity: FileIdentity): CachedLocal | null;
  /**
   * Stores hashes computed for `identity`, merged with a trusted entry for the same state. Never
   * throws: a write error disables further writes and adds one warning.
   */
  set(realPath: string, identity: FileIdentity, hashes: FileHashes, absent?: readonly HashAlgo[]): void;
  /** Stores the header facts and sidecar stamps read for `identity` (same merge and errors as set). */
  setLocal(realPath: string, identity: FileIdentity, local: CachedLocal): void;
  /** Commits what set() gathered. Never throws. */
  flush(): void;
  /** Commits, then releases the store; the cache answers nothing afterwards. */
  close(): void;
  /** Removes rows that fail their checks or whose file is gone or replaced (docs/cases.md C9). */
  prune(): PruneResult;
  /** Where hash workers may store their results (after committing what is pending here), or null. */
  workerStore(): WorkerStore | null;
  /** The hash part a worker merges its result into (same state, usable), as text; "" when none. */
  workerPrevious(realPath: string, identity: FileIdentity): string;
  /** Takes note of what the workers stored (and of an error that stopped them). */
  fromWorkers(writes: WorkerWrites): void;
}

export interface OpenHashCacheOptions {
  /** Clock for racy-entry decisions; tests move it. */
  now?: () => number;
  /** Called once per warning as it happens (also collected in `cache.warnings`). */
  onWarning?: (message: string) => void;
  /** Also read the header-facts columns (scan); `hash` does not need them. */
  withLocal?: boolean;
}

export interface OpenHashCacheResult {
  cache: HashCache | null;
  /** Set when the cache could not be used: one line for the user, the run goes on without it. */
  warning?: string;
}

/** `<path>: read-only file system (EROFS)`, the form every cache warning uses (shared/errors.ts). */
function describeFsError(path: string, err: unknown): string {
  const code = errnoCode(err);
  if (code?.startsWith("SQLITE_")) return `${path}: ${describeStoreError(err)}`;
  return `${path}: ${describeErrno(err)}`;
}

interface Folder {
  path: string;
  bytes: Uint8Array;
  withLocal: boolean;
  /** Rows by name (raw bytes kept, see fs-path.ts); checked when asked for. */
  rows: Map<string, RawRow>;
}

interface PendingPart {
  text: string;
  sum: number;
}

/** Parts set in this run and not committed yet: read before the store. */
interface PendingRow {
  dir: Uint8Array;
  name: Uint8Array;
  hash?: PendingPart;
  local?: PendingPart;
}

/** Where the hash workers store what they compute (hash-worker.ts), when they may. */
export interface WorkerStore {
  file: string;
  /** Add to the worker's clock: tests move the cache's clock (OpenHashCacheOptions.now). */
  clockOffset: number;
}

/** What the workers said about their writes, after a run of batches. */
export interface WorkerWrites {
  /** Real paths whose hashes were stored. */
  stored: string[];
  /** The first store error a worker met (it stopped writing then). */
  error?: { code?: string; message: string };
}

class StoreHashCache implements HashCache {
  readonly warnings: string[] = [];
  readonly stats: HashCacheStats = { hits: 0, misses: 0, writes: 0, corrupt: 0 };
  writable = true;
  private readonly folders = new Map<string, Folder>();
  private current: Folder | undefined;
  private readonly pending = new Map<string, PendingRow>();
  /** Real paths this run stored a part for (peek and merges trust those even while racy). */
  private readonly thisRun = new Set<string>();
  /**
   * Real paths the hash workers stored, added to thisRun when it is first asked: `hash` closes the
   * cache without asking, and a set of 100,000 paths cost its main thread ~30 ms at the very end.
   */
  private readonly workerStored: string[][] = [];
  private pendingSince = 0;
  private warnedCorrupt = false;
  private warnedBusy = false;
  private readonly withLocal: boolean;

  constructor(
    readonly dir: string,
    private store: HashStore | null,
    private readonly file: string,
    private readonly options: OpenHashCacheOptions,
    openingWarnings: readonly string[],
  ) {
    this.withLocal = options.withLocal === true;
    for (const w of openingWarnings) this.warn(w);
  }

  /** This run stored a part for `realPath` (here or in a hash worker). */
  private ours(realPath: string): boolean {
    if (this.workerStored.length > 0) {
      for (const list of this.workerStored) for (const path of list) this.thisRun.add(path);
      this.workerStored.length = 0;
    }
    return this.thisRun.has(realPath);
  }

  private warn(message: string): void {
    this.warnings.push(message);
    this.options.onWarning?.(message);
  }

  private warnOnce(message: string): void {
    if (!this.warnings.includes(message)) this.warn(message);
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /**
   * A damaged store found mid-run: moved aside and started again, so this run's results are kept
   * and the next run builds on a sound file. Nothing read from it was used unchecked.
   */
  private recover(err: unknown): void {
    this.store?.close();
    this.store = null;
    this.invalidate();
    const replaced = replaceDamagedStore(this.file, err);
    this.warn(replaced.message);
    if (replaced.store) this.store = replaced.store;
    else this.writable = false;
  }

  /** Forgets the folders read: another connection (a hash worker) wrote to the store. */
  invalidate(): void {
    this.folders.clear();
    this.current = undefined;
  }

  private folder(dir: string): Folder {
    // Callers go file by file through a folder: the last one answers without touching the LRU.
    if (this.current?.path === dir && (this.current.withLocal || !this.withLocal)) return this.current;
    const held = this.folders.get(dir);
    if (held && (held.withLocal || !this.withLocal)) {
      // Most recently used last, so the oldest is dropped first.
      this.folders.delete(dir);
      this.folders.set(dir, held);
      this.current = held;
      return held;
    }
    const bytes = fsNameBytes(dir);
    const folder: Folder = { path: dir, bytes, withLocal: this.withLocal, rows: new Map() };
    let raw: RawRow[] = [];
    if (this.store) {
      try {
        raw = this.store.readFolder(bytes, this.withLocal);
      } catch (err) {
        if (storeErrorKind(err) === "damaged") this.recover(err);
        else this.warnOnce(`hash cache: cannot read ${this.file}: ${describeStoreError(err)}`);
      }
    }
    const names = decodeNames(raw);
    for (let i = 0; i < raw.length; i++) if (names[i] !== undefined) folder.rows.set(names[i]!, raw[i]!);
    this.folders.set(dir, folder);
    if (this.folders.size > FOLDERS_HELD) this.folders.delete(this.folders.keys().next().value!);
    this.current = folder;
    return folder;
  }

  private damaged(): void {
    this.stats.corrupt++;
    if (!this.warnedCorrupt) {
      this.warnedCorrupt = true;
      this.warn(`hash cache: ignoring a damaged entry in ${this.file} (rewritten when the file is hashed)`);
    }
  }

  /**
   * The two parts stored for `realPath` in this `identity` (usable or not yet judged), each null
   * when absent, for another state of the file (a plain miss, not parsed) or damaged (counted).
   */
  private parts(realPath: string, identity: FileIdentity, withHash = true): { hash: HashPart | null; local: LocalPart | null } {
    const waiting = this.pending.get(realPath);
    const [dir, name] = splitPath(realPath);
    const row = waiting?.hash && (waiting.local || !this.withLocal) ? undefined : this.folder(dir).rows.get(name);
    // Nothing stored for this path (every file of a first run): no prefix to build.
    if (waiting === undefined && row === undefined) return { hash: null, local: null };
    const prefix = identityPrefix(identity);
    const now = this.now();
    const hashText = waiting?.hash?.text ?? row?.[1];
    const hashSum = waiting?.hash?.sum ?? row?.[2];
    const localText = waiting?.local?.text ?? row?.[3];
    const localSum = waiting?.local?.sum ?? row?.[4];
    let hash: HashPart | null = null;
    if (!withHash) {
      // Only the facts are wanted: the hash part is neither parsed nor judged (nor counted twice if damaged).
    } else if (typeof hashText === "string" && hashText.startsWith(prefix)) {
      hash = parseHashPart(hashText, hashSum, now, identity, prefix);
      if (!hash) this.damaged();
    } else if (hashText !== null && hashText !== undefined && typeof hashText !== "string") this.damaged();
    let local: LocalPart | null = null;
    if (typeof localText === "string" && localText.startsWith(prefix)) {
      local = parseLocalPart(localText, localSum, now, identity);
      if (!local) this.damaged();
    }
    return { hash, local };
  }

  /** The entry for this state from the parts that may be used (`ours`: this run's racy parts too). */
  private entry(realPath: string, identity: FileIdentity, ours: boolean): HashCacheEntry | null {
    const { hash, local } = this.parts(realPath, identity);
    const mine = ours && this.ours(realPath);
    const h = hash && (hash.confirmed || mine) ? hash : null;
    const l = local && (local.confirmed || mine) ? local : null;
    if (!h && !l) return null;
    return {
      path: realPath,
      dev: identity.dev,
      ino: identity.ino,
      size: identity.size,
      mtimeNs: identity.mtimeNs,
      ctimeNs: identity.ctimeNs,
      hashes: h?.hashes ?? {},
      absent: h?.absent ?? [],
      confirmed: (h ?? l)!.confirmed,
      hashedAt: (h ?? l)!.at,
      local: l?.local ?? null,
    };
  }

  read(realPath: string, identity: FileIdentity): HashCacheEntry | null {
    return this.entry(realPath, identity, false);
  }

  peek(realPath: string, identity: FileIdentity): HashCacheEntry | null {
    return this.entry(realPath, identity, true);
  }

  peekLocal(realPath: string, identity: FileIdentity): CachedLocal | null {
    const { local } = this.parts(realPath, identity, false);
    return local && (local.confirmed || this.ours(realPath)) ? local.local : null;
  }

  get(realPath: string, identity: FileIdentity, algos: readonly HashAlgo[]): FileHashes | null {
    // read()'s verdict on the hashes, without building the entry (once per file of a warm run).
    const hash = this.parts(realPath, identity).hash;
    const hit = hash?.confirmed ? hashesFromEntry(hash, algos) : null;
    if (hit) this.stats.hits++;
    else this.stats.misses++;
    return hit;
  }

  set(realPath: string, identity: FileIdentity, hashes: FileHashes, absent: readonly HashAlgo[] = []): void {
    if (!this.writable || !this.store) return;
    try {
      const now = this.now();
      const merged = mergeHashes(identity, this.parts(realPath, identity).hash, { hashes, absent }, now, this.ours(realPath));
      this.put(realPath, "hash", hashPartText(merged), now);
    } catch (err) {
      this.disable(err);
    }
  }

  setLocal(realPath: string, identity: FileIdentity, local: CachedLocal): void {
    if (!this.writable || !this.store) return;
    try {
      const now = this.now();
      this.put(realPath, "local", localPartText(identity, now, local), now);
    } catch (err) {
      this.disable(err);
    }
  }

  private put(realPath: string, which: "hash" | "local", text: string, now: number): void {
    const [dir, name] = splitPath(realPath);
    const folder = this.folder(dir);
    let row = this.pending.get(realPath);
    if (!row) {
      row = { dir: folder.bytes, name: fsNameBytes(name) };
      if (this.pending.size === 0) this.pendingSince = now;
      this.pending.set(realPath, row);
    }
    row[which] = { text, sum: checksum(text) };
    this.thisRun.add(realPath);
    this.stats.writes++;
    if (this.pending.size >= BATCH_ROWS || now - this.pendingSince >= BATCH_MS) this.commit(false);
  }

  /** Stops writing; what was gathered stays readable for this run (peek), it is just never committed. */
  private disable(err: unknown): void {
    if (!this.writable) return;
    this.writable = false;
    this.warn(`hash cache disabled: ${describeFsError(this.dir, err)}`);
  }

  /** `last`: nothing will come after, so a batch another run keeps locked is reported, not kept. */
  private commit(last: boolean): void {
    if (this.pending.size === 0 || !this.writable || !this.store) return;
    const hashes: PartRow[] = [];
    const locals: PartRow[] = [];
    for (const row of this.pending.values()) {
      if (row.hash) hashes.push({ dir: row.dir, name: row.name, text: row.hash.text, sum: row.hash.sum });
      if (row.local) locals.push({ dir: row.dir, name: row.name, text: row.local.text, sum: row.local.sum });
    }
    for (let attempt = 0; ; attempt++) {
      try {
        this.store!.write(hashes, locals);
        this.pending.clear();
        // Committed rows are read from the store again (the folders held may predate them).
        this.invalidate();
        return;
      } catch (err) {
        const kind = storeErrorKind(err);
        if (kind === "damaged" && attempt === 0) {
          this.recover(err);
          if (!this.store) return;
          continue;
        }
        if (kind === "busy") {
          // Another run held the lock past the timeout: keep the rows for the next commit.
          if (!last) return;
          if (!this.warnedBusy) {
            this.warnedBusy = true;
            this.warn(`hash cache busy (another run is writing ${this.file}): ${this.pending.size} entries not stored`);
          }
          this.pending.clear();
          return;
        }
        this.disable(err);
        return;
      }
    }
  }

  flush(): void {
    this.commit(false);
  }

  close(): void {
    this.commit(true);
    this.store?.close();
    this.store = null;
    this.invalidate();
  }

  workerStore(): WorkerStore | null {
    if (!this.writable || !this.store) return null;
    // What this thread holds goes first, so the workers' merges see it.
    this.commit(false);
    return this.writable ? { file: this.file, clockOffset: this.now() - Date.now() } : null;
  }

  workerPrevious(realPath: string, identity: FileIdentity): string {
    const hash = this.parts(realPath, identity).hash;
    return hash && (hash.confirmed || this.ours(realPath)) ? hashPartText(hash) : "";
  }

  fromWorkers(writes: WorkerWrites): void {
    this.workerStored.push(writes.stored);
    this.stats.writes += writes.stored.length;
    this.invalidate();
    const err = writes.error;
    if (!err) return;
    const kind = storeErrorKind(err);
    if (kind === "busy") {
      if (!this.warnedBusy) {
        this.warnedBusy = true;
        this.warn(`hash cache busy (another run is writing ${this.file}): some entries not stored`);
      }
      return;
    }
    // Damage seen by a worker: this run stops writing; the next one sets the store aside when it meets it.
    this.disable(Object.assign(new Error(err.message), err.code ? { code: err.code } : {}));
  }

  prune(): PruneResult {
    this.commit(true);
    const result: PruneResult = { checked: 0, removed: 0 };
    if (!this.store || !this.writable) return result;
    const doomed: { dir: Uint8Array; name: Uint8Array }[] = [];
    let last = { dir: null as Uint8Array | null, path: "" };
    const now = Date.now();
    try {
      for (const { dir, row } of this.store.rows()) {
        result.checked++;
        if (last.dir === null || Buffer.compare(last.dir, dir) !== 0) last = { dir, path: decodeFsName(dir) };
        const name = row[0];
        if (!(name instanceof Uint8Array)) continue;
        const path = joinPath(last.path, decodeFsName(name));
        const hash = row[1] === null ? null : parseHashPart(row[1], row[2], now);
        const local = row[3] === null || row[3] === undefined ? null : parseLocalPart(row[3], row[4], now);
        const damaged = (row[1] !== null && !hash) || (row[3] !== null && row[3] !== undefined && !local);
        const part = hash ?? local;
        if (damaged || !part || !stillThere(path, part)) doomed.push({ dir, name });
      }
      if (doomed.length > 0) {
        this.store.delete(doomed);
        this.store.compact();
      }
      result.removed = doomed.length + removeLeftovers(this.dir);
    } catch (err) {
      if (storeErrorKind(err) === "damaged") this.recover(err);
      else this.warn(`hash cache: prune stopped: ${describeStoreError(err)}`);
    }
    this.invalidate();
    return result;
  }
}

/**
 * The name of each row as a string (undefined for a row whose name is not bytes: damage). The
 * names of a folder are decoded in one call, joined by `/` (which no name holds): one decode per
 * row was a tenth of a warm run's cache reads. Any surprise (a name with `/` or bytes that are not
 * UTF-8) falls back to one decode per row, which keeps raw bytes (fs-path.ts).
 */
function decodeNames(rows: readonly RawRow[]): (string | undefined)[] {
  const bytes: Uint8Array[] = [];
  for (const row of rows) {
    const name = row[0];
    if (!(name instanceof Uint8Array)) return rows.map((r) => (r[0] instanceof Uint8Array ? decodeFsName(r[0]) : undefined));
    bytes.push(name);
  }
  if (bytes.length === 0) return [];
  const joined = Buffer.alloc(
    bytes.reduce((n, b) => n + b.length + 1, -1),
    SLASH,
  );
  let at = 0;
  for (const b of bytes) {
    joined.set(b, at);
    at += b.length + 1;
  }
  let names: string[] | null = null;
  try {
    names = strictUtf8.decode(joined).split("/");
  } catch {
    // Not UTF-8 somewhere: below, name by name.
  }
  if (names?.length === bytes.length && !names.some(hasRawBytes)) return names;
  return bytes.map((b) => decodeFsName(b));
}

const SLASH = 0x2f;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A temp file older than this was left by a killed process. */
const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * What a prune can also drop: a set-aside damaged store, old per-file entries a migration could not
 * take, and probe files a killed run left (only when old: a live run's probe must not vanish).
 */
function removeLeftovers(dir: string): number {
  let removed = 0;
  const file = storePath(dir);
  for (const f of [file + CORRUPT_SUFFIX, ...STORE_COMPANIONS.map((s) => file + CORRUPT_SUFFIX + s)]) {
    if (!isOwnFile(f)) continue;
    try {
      unlinkSync(f);
      removed++;
    } catch {
      /* gone already */
    }
  }
  removed += clearV1Files(dir);
  const root = join(dir, "hashes");
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    const path = join(root, name);
    if (!isTempName(name) || !isOwnFile(path)) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs > STALE_TEMP_MS) {
        unlinkSync(path);
        removed++;
      }
    } catch {
      /* raced with its writer */
    }
  }
  return removed;
}

/** False when the entry's file is gone, or its path now names another file (docs/cases.md C9). */
function stillThere(path: string, id: FileIdentity): boolean {
  try {
    const st = statSync(fsPath(path), { bigint: true });
    return Number(st.dev) === id.dev && Number(st.ino) === id.ino;
  } catch (err) {
    const code = errnoCode(err);
    return code !== "ENOENT" && code !== "ENOTDIR";
  }
}

/** Sets a damaged store aside and opens a new one in its place; the message says what happened. */
function replaceDamagedStore(file: string, err: unknown): { store: HashStore | null; message: string } {
  try {
    const aside = setAsideStore(file);
    const reopened = openStore(file);
    if (reopened.kind === "ok") {
      return {
        store: reopened.store,
        message: `hash cache: ${file} was damaged (${describeStoreError(err)}); moved to ${aside} and started again`,
      };
    }
    const why = reopened.kind === "newer" ? "a newer store appeared" : describeStoreError(reopened.error);
    return { store: null, message: `hash cache disabled: ${file} was damaged and could not be made again: ${why}` };
  } catch (moveErr) {
    return {
      store: null,
      message: `hash cache disabled: ${file} is damaged (${describeStoreError(err)}) and cannot be moved aside: ${describeFsError(file, moveErr)}`,
    };
  }
}

/** Old per-file entries, moved into the store once and then removed (issue 11). */
function migrateV1(cacheDir: string, store: HashStore): void {
  drainV1Entries(cacheDir, (entries: V1Entry[]) => {
    const rows: PartRow[] = [];
    for (const e of entries) {
      const text = hashPartText({ ...e, at: e.hashedAt });
      const [dir, name] = splitPath(e.path);
      rows.push({ dir: fsNameBytes(dir), name: fsNameBytes(name), text, sum: checksum(text) });
    }
    if (rows.length > 0) store.write(rows);
  });
}

/**
 * Opens (and probes) the hash cache under `dir`; `false` means no cache (--no-cache). The probe
 * creates, renames and removes a file where the store goes, so a read-only, uncreatable or
 * not-a-folder location becomes one warning up front instead of an error per file.
 */
export async function openHashCache(dir: string | false, options: OpenHashCacheOptions = {}): Promise<OpenHashCacheResult> {
  if (dir === false) return { cache: null };
  const root = join(dir, "hashes");
  const probe = tempPathFor(join(root, "probe"));
  const renamed = `${probe}-renamed`;
  try {
    mkdirSync(root, { recursive: true });
    writeFileSync(probe, "probe", { flag: "wx" });
    renameSync(probe, renamed);
    unlinkSync(renamed);
  } catch (err) {
    for (const p of [probe, renamed]) {
      try {
        unlinkSync(p);
      } catch {
        /* not there */
      }
    }
    const readOnly = readOnlyCache(dir, err, options);
    if (readOnly) return { cache: readOnly };
    return { cache: null, warning: `hash cache disabled: ${describeFsError(dir, err)}` };
  }
  const file = storePath(dir);
  // We never make the store as a link. SQLite follows one: it would add our table to whatever
  // database the link names (an app's own), switch it to WAL and write our rows into it. Not
  // followed, as `cache prune` and `clear` do not follow one (docs/cases.md T11).
  if (isLink(file)) {
    return {
      cache: null,
      warning: `hash cache disabled: ${file} is a symbolic link: not followed, nothing is written through it (remove the link and the next run makes the store)`,
    };
  }
  const warnings: string[] = [];
  let opened = openStore(file);
  if (opened.kind === "damaged") {
    const replaced = replaceDamagedStore(file, opened.error);
    if (!replaced.store) return { cache: null, warning: replaced.message };
    warnings.push(replaced.message);
    opened = { kind: "ok", store: replaced.store };
  }
  if (opened.kind === "newer") {
    return {
      cache: null,
      warning: `hash cache disabled: ${file} was written by a newer civitai-meta (format ${opened.format}); left as it is`,
    };
  }
  if (opened.kind === "error") return { cache: null, warning: `hash cache disabled: ${describeFsError(file, opened.error)}` };
  const store = opened.store;
  try {
    migrateV1(dir, store);
  } catch (err) {
    warnings.push(`hash cache: old entries under ${v1Root(dir)} not moved into the store: ${describeStoreError(err)}`);
  }
  return { cache: new StoreHashCache(dir, store, file, options, warnings) };
}

/**
 * A store that exists where nothing can be written (a read-only mount, a team's share): its hashes
 * are used, nothing is stored, one warning says so. Only a regular file, never a link (docs/cases.md T11).
 */
function readOnlyCache(dir: string, err: unknown, options: OpenHashCacheOptions): StoreHashCache | null {
  const code = errnoCode(err);
  if (code !== "EROFS" && code !== "EACCES" && code !== "EPERM") return null;
  const file = storePath(dir);
  if (!isOwnFile(file)) return null;
  const store = openStoreReadOnly(file);
  if (!store) return null;
  const warning = `hash cache read-only: ${describeFsError(dir, err)}; the hashes stored there are used, new ones are not stored`;
  const cache = new StoreHashCache(dir, store, file, options, [warning]);
  cache.writable = false;
  return cache;
}

/** The store's files we wrote: the database, its companions and a set-aside copy. */
function storeFiles(dir: string): string[] {
  const file = storePath(dir);
  const aside = file + CORRUPT_SUFFIX;
  return [file, aside, ...STORE_COMPANIONS.flatMap((s) => [file + s, aside + s])];
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Regular files only: a link where a store file should be is not ours to follow or remove. */
function isOwnFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

const SQLITE_MAGIC = Buffer.from("SQLite format 3\u0000");

/** An empty file, or one that starts as every SQLite database does. */
function looksLikeSqlite(path: string): boolean {
  const head = readFileHead(path, SQLITE_MAGIC.length);
  return head !== null && (head.length === 0 || SQLITE_MAGIC.equals(head));
}

function isOwnFolder(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function countRows(dir: string): number {
  const file = storePath(dir);
  if (!isOwnFile(file)) return 0;
  // Opened for writing where it can be (nothing is written): a read-only connection to a WAL
  // store makes its -wal and -shm and cannot remove them on close, so they stayed, and the next
  // `cache info` counted them. On a location we cannot write, read-only it is.
  for (const options of [{ readwrite: true, create: false }, { readonly: true }]) {
    try {
      const db = new Database(file, options);
      try {
        return (db.query("SELECT count(*) FROM files").values()[0]?.[0] ?? 0) as number;
      } finally {
        db.close();
      }
    } catch {
      /* damaged, from a newer version, or not writable: try read-only, then no entries we can use */
    }
  }
  return 0;
}

/** `cache info`: entries we can use (rows, plus old per-file entries not moved yet) and bytes on disk. */
export function hashCacheUsage(dir: string): { entries: number; bytes: number } {
  // Never through a link (docs/cases.md T11): what it points at is not our cache.
  if (!isOwnFolder(join(dir, "hashes"))) return { entries: 0, bytes: 0 };
  let bytes = 0;
  for (const f of storeFiles(dir)) {
    if (isOwnFile(f)) bytes += statSync(f).size;
  }
  return { entries: countRows(dir), bytes };
}

/**
 * `cache clear --hashes`: removes the store (its companions and a set-aside copy) and old per-file
 * entries, then the folders left empty. Links are not followed and files we did not write stay.
 * Returns the number of entries removed.
 */
export function clearHashCache(dir: string): number {
  let removed = countRows(dir);
  for (const f of storeFiles(dir)) {
    if (!isOwnFile(f)) continue;
    // The store itself must look like one (or be empty, as a run that was killed while making it
    // leaves it): a file of another kind at its name is not ours to delete (docs/cases.md T11).
    if (f === storePath(dir) && !looksLikeSqlite(f)) continue;
    try {
      unlinkSync(f);
    } catch {
      /* gone already */
    }
  }
  removed += clearV1Files(dir);
  removeEmptyDirs([join(dir, "hashes")]);
  return removed;
}
