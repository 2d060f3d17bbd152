/**
 * The hash cache's one store: a SQLite database (bun:sqlite, inside the binary) at
 * `<cache>/hashes/v2.sqlite`, one row per real path, keyed by (folder bytes, name bytes) so names
 * that are not UTF-8 are keys like any other and a folder's rows come back in one query.
 *
 * Why SQLite and not an append-only log (issue 11, measured at 100k entries on the 2-core machine):
 * a log read whole at start cost 0.55 s and ~300 MB parsed (0.14 s and the 88 MB text held, if
 * only indexed), and needs its own lock and compaction for two runs at once; SQLite reads only the
 * folders being scanned (0.24 s for 100k rows by folder, without the header facts), keeps memory
 * flat, serialises writers itself (WAL, busy timeout) and commits a batch atomically. Its writes
 * are slower (1.8 s for 100k rows against 0.5 s), paid once, when the files are hashed anyway.
 *
 * Durability: WAL with synchronous=NORMAL. A kill -9 loses at most the batch not yet committed; a
 * power cut may lose the last batches but never tears the database. What SQLite cannot see
 * (a damaged value inside an intact page) the rows' checksums catch (hash-entry.ts).
 *
 * Errors are sorted into three kinds for the cache above: damage (set the file aside, start a
 * new one), busy (another run holds the write lock past the timeout: try the batch again later)
 * and anything else (stop writing; one warning).
 */
import { constants, Database, type Statement } from "bun:sqlite";
import { existsSync, lstatSync, renameSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { ROW_COLUMNS, HASH_ROW_LENGTH, type RawRow } from "./hash-entry.ts";

/** Bumped when the schema changes in a way an older reader would misread; see openStore. */
export const STORE_FORMAT = 2;
const STORE_FILE = `v${STORE_FORMAT}.sqlite`;
/** Where a damaged store is moved (one at a time: the latest replaces the previous). */
export const CORRUPT_SUFFIX = ".corrupt";
/** SQLite's own companions of a database file in WAL mode. */
export const STORE_COMPANIONS = ["-wal", "-shm"] as const;
/** How long a write waits for another run's transaction before the batch is kept for later. */
const BUSY_TIMEOUT_MS = 5000;

export type StoreErrorKind = "damaged" | "busy" | "other";

/** How an error from SQLite (or the file system under it) should be handled. */
export function storeErrorKind(err: unknown): StoreErrorKind {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return "other";
  if (code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_NOTADB")) return "damaged";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return "busy";
  return "other";
}

const SQLITE_TEXT: Record<string, string> = {
  SQLITE_FULL: "ENOSPC (no space left on device)",
  SQLITE_READONLY: "EROFS (read-only)",
  SQLITE_CANTOPEN: "cannot open the database file",
  SQLITE_IOERR: "input/output error",
  SQLITE_PERM: "permission denied",
};

/** One line for a SQLite error, in the form of the file-system warnings. */
export function describeStoreError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code !== "string") return message;
  // Extended codes (SQLITE_IOERR_WRITE) share their primary code's text.
  const text = SQLITE_TEXT[code] ?? SQLITE_TEXT[code.split("_").slice(0, 2).join("_")];
  return text ? `${text} (${code})` : `${message} (${code})`;
}

const KEY_COLUMNS = ROW_COLUMNS.slice(0, HASH_ROW_LENGTH).join(", ");
const ALL_COLUMNS = ROW_COLUMNS.join(", ");

/**
 * One row per real path. `entry`/`sum` (the hashes) and `local`/`local_sum` (the header facts) are
 * written apart, each by an upsert that leaves the other pair as it is: the hash workers store the
 * hashes while the main thread stores the facts (hash-entry.ts says when each is trusted).
 */
const SCHEMA = `CREATE TABLE IF NOT EXISTS files (
  dir BLOB NOT NULL,
  name BLOB NOT NULL,
  entry TEXT,
  sum INTEGER,
  local TEXT,
  local_sum INTEGER,
  PRIMARY KEY (dir, name)
) WITHOUT ROWID`;

/** One part of a row to write: `text` and its checksum under the key (folder bytes, name bytes). */
export interface PartRow {
  dir: Uint8Array;
  name: Uint8Array;
  text: string;
  sum: number;
}

/**
 * WAL pages (16 KiB) before a commit folds the WAL into the database, with an fsync of each. At
 * SQLite's default (1,000) a cold `hash` of 100k small files made its hash workers wait on 10 to 60
 * fsyncs (one took 0.34 s on a busy disk); at 4,000 (64 MiB) the WAL of such a run is folded in
 * once, by the last connection to close. A power cut may then lose more of the last batches (never
 * the database: see Durability above); a kill -9 still loses at most the batch in flight.
 */
const WAL_CHECKPOINT_PAGES = 4000;

/** Rows per INSERT statement: one statement per row cost half again as much per row (bun:sqlite, 100k rows). */
const ROWS_PER_INSERT = 100;

export type OpenStoreResult =
  | { kind: "ok"; store: HashStore }
  | { kind: "newer"; format: number }
  | { kind: "damaged"; error: unknown }
  | { kind: "error"; error: unknown };

/**
 * Opens (creating when absent) the store at `file`. A store whose format is newer than ours is
 * closed untouched ("newer"): a later civitai-meta that changes the schema in a way we would
 * misread also changes STORE_FILE, so this is only met with a compatible-looking file we must not
 * write to.
 */
export function openStore(file: string): OpenStoreResult {
  // Two runs creating the store at the same moment: switching a new file to WAL takes a lock that
  // SQLite's busy handler does not always wait for, so one of them can get SQLITE_BUSY at once.
  // Opening again shortly after finds the store made; only a lock held past the tries is an error.
  for (let attempt = 1; ; attempt++) {
    const result = openStoreOnce(file);
    if (result.kind !== "error" || storeErrorKind(result.error) !== "busy" || attempt >= OPEN_BUSY_TRIES) return result;
    Atomics.wait(OPEN_PAUSE, 0, 0, 25 * attempt);
  }
}

const OPEN_BUSY_TRIES = 8;
/** Something to wait on synchronously between tries (the store opens before any event loop work). */
const OPEN_PAUSE = new Int32Array(new SharedArrayBuffer(4));

function openStoreOnce(file: string): OpenStoreResult {
  let db: Database | undefined;
  try {
    db = new Database(file, { create: true, readwrite: true, strict: true });
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const format = (db.query("PRAGMA user_version").values()[0]?.[0] ?? 0) as number;
    if (format > STORE_FORMAT) {
      db.close();
      return { kind: "newer", format };
    }
    // Only takes effect on a new file: 16 KiB pages keep a row with its header facts (~1 KB) in its
    // leaf, and made batch inserts a third faster than 4 KiB.
    if (format === 0) db.run("PRAGMA page_size = 16384");
    db.run("PRAGMA journal_mode = WAL");
    db.run("PRAGMA synchronous = NORMAL");
    db.run(`PRAGMA wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    if (format < STORE_FORMAT) {
      // Two runs may create it at once: IF NOT EXISTS, and the version set in the same transaction.
      db.transaction(() => {
        db!.run(SCHEMA);
        db!.run(`PRAGMA user_version = ${STORE_FORMAT}`);
      }).immediate();
    }
    // A probe of the write path, so a store that cannot be written is one warning up front.
    db.transaction(() => db!.run("DELETE FROM files WHERE 0")).immediate();
    return { kind: "ok", store: new HashStore(db) };
  } catch (error) {
    try {
      db?.close();
    } catch {
      /* already unusable */
    }
    return storeErrorKind(error) === "damaged" ? { kind: "damaged", error } : { kind: "error", error };
  }
}

/**
 * Opens an existing store on a location we cannot write (a read-only mount, a share): read with
 * SQLite's `immutable=1`, which takes no lock and makes no `-wal`/`-shm` beside it (a plain
 * read-only open of a WAL database needs to write those). Immutable means SQLite trusts nothing
 * changes underneath; rows not yet moved from a leftover `-wal` into the file are not seen. Both
 * only cost misses: every hit still needs path, dev, inode, size, mtime and ctime equal, and a row
 * a damaged page yields fails its checksum. Null when it is not a store of our format.
 */
export function openStoreReadOnly(file: string): HashStore | null {
  let db: Database | undefined;
  try {
    const uri = `file:${encodeURI(file).replace(/[?#]/g, encodeURIComponent)}?immutable=1`;
    db = new Database(uri, constants.SQLITE_OPEN_READONLY | constants.SQLITE_OPEN_URI);
    const format = (db.query("PRAGMA user_version").values()[0]?.[0] ?? 0) as number;
    if (format !== STORE_FORMAT) {
      db.close();
      return null;
    }
    return new HashStore(db);
  } catch {
    try {
      db?.close();
    } catch {
      /* already unusable */
    }
    return null;
  }
}

/**
 * Moves a damaged store (and its companions) out of the way so a new one can be made; the data is
 * kept for whoever wants to look at it, under one fixed name (the latest replaces the previous).
 * Throws when it cannot.
 */
export function setAsideStore(file: string): string {
  const aside = file + CORRUPT_SUFFIX;
  renameSync(file, aside);
  for (const suffix of STORE_COMPANIONS) {
    const companion = file + suffix;
    try {
      // The WAL of a damaged database is no use to a new one, and must not be replayed into it.
      if (existsSync(companion) && !lstatSync(companion).isSymbolicLink()) renameSync(companion, aside + suffix);
    } catch {
      try {
        unlinkSync(companion);
      } catch {
        /* gone already */
      }
    }
  }
  return aside;
}

/** An upsert of one pair of columns, as a prepared statement for one row and one for ROWS_PER_INSERT. */
class PartWriter {
  private readonly one: Statement;
  private readonly many: Statement;

  constructor(db: Database, text: string, sum: string) {
    const sql = (n: number) =>
      `INSERT INTO files (dir, name, ${text}, ${sum}) VALUES ${Array.from({ length: n }, () => "(?, ?, ?, ?)").join(", ")} ` +
      `ON CONFLICT (dir, name) DO UPDATE SET ${text} = excluded.${text}, ${sum} = excluded.${sum}`;
    this.one = db.prepare(sql(1));
    this.many = db.prepare(sql(ROWS_PER_INSERT));
  }

  write(rows: readonly PartRow[]): void {
    let i = 0;
    for (; i + ROWS_PER_INSERT <= rows.length; i += ROWS_PER_INSERT) {
      const params: (Uint8Array | string | number)[] = [];
      for (let j = i; j < i + ROWS_PER_INSERT; j++) {
        const r = rows[j]!;
        params.push(r.dir, r.name, r.text, r.sum);
      }
      this.many.run(...params);
    }
    for (; i < rows.length; i++) this.one.run(rows[i]!.dir, rows[i]!.name, rows[i]!.text, rows[i]!.sum);
  }

  finalize(): void {
    for (const stmt of [this.one, this.many]) {
      try {
        stmt.finalize();
      } catch {
        /* already finalised */
      }
    }
  }
}

export class HashStore {
  private readonly folderHashes: Statement;
  private readonly folderAll: Statement;
  private readonly hashWriter: PartWriter;
  private readonly localWriter: PartWriter;

  constructor(private readonly db: Database) {
    this.folderHashes = db.prepare(`SELECT ${KEY_COLUMNS} FROM files WHERE dir = ?`);
    this.folderAll = db.prepare(`SELECT ${ALL_COLUMNS} FROM files WHERE dir = ?`);
    this.hashWriter = new PartWriter(db, "entry", "sum");
    this.localWriter = new PartWriter(db, "local", "local_sum");
  }

  /** Every row of one folder (by its bytes); `withLocal` adds the header-facts columns. */
  readFolder(dir: Uint8Array, withLocal: boolean): RawRow[] {
    return (withLocal ? this.folderAll : this.folderHashes).values(dir) as RawRow[];
  }

  /** Writes hash parts and local parts in one transaction: all of them are stored, or none. */
  write(hashes: readonly PartRow[], locals: readonly PartRow[] = []): void {
    this.db
      .transaction(() => {
        this.hashWriter.write(hashes);
        this.localWriter.write(locals);
      })
      .immediate();
  }

  count(): number {
    return (this.db.query("SELECT count(*) FROM files").values()[0]?.[0] ?? 0) as number;
  }

  /** Every row (dir first, then ROW_COLUMNS), in key order. */
  *rows(): Generator<{ dir: Uint8Array; row: RawRow }> {
    for (const values of this.db.query(`SELECT dir, ${ALL_COLUMNS} FROM files ORDER BY dir, name`).values() as unknown[][]) {
      yield { dir: values[0] as Uint8Array, row: values.slice(1) };
    }
  }

  delete(keys: readonly { dir: Uint8Array; name: Uint8Array }[]): void {
    const del = this.db.prepare("DELETE FROM files WHERE dir = ? AND name = ?");
    try {
      this.db
        .transaction(() => {
          for (const k of keys) del.run(k.dir, k.name);
        })
        .immediate();
    } finally {
      del.finalize();
    }
  }

  /**
   * Copies what the WAL holds into the database without waiting for anyone (a PASSIVE checkpoint),
   * so the last close has little left to fold in (hash-worker.ts startCheckpointer).
   */
  checkpoint(): void {
    this.db.run("PRAGMA wal_checkpoint(PASSIVE)");
  }

  /** Gives the space of deleted rows back and folds the WAL in (after a prune). */
  compact(): void {
    this.db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    this.db.run("VACUUM");
  }

  /**
   * Finalises our statements first: SQLite keeps a database with live statements open (and its
   * WAL unmerged) past close. The last connection to close folds the WAL in and removes it.
   */
  close(): void {
    for (const stmt of [this.folderHashes, this.folderAll]) {
      try {
        stmt.finalize();
      } catch {
        /* already finalised */
      }
    }
    this.hashWriter.finalize();
    this.localWriter.finalize();
    try {
      this.db.close(false);
    } catch {
      /* closing a broken handle: nothing left to save */
    }
  }
}

/** The store file under a cache folder. */
export function storePath(cacheDir: string): string {
  return join(cacheDir, "hashes", STORE_FILE);
}
