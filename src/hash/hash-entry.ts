/**
 * Rules of one hash-cache entry (docs/reliability.md §3.4): what a row of the store must hold to be
 * used, how it is checked, and how a new result merges into it. Pure: the store (hash-store.ts)
 * and the cache (hash-cache.ts) do the I/O.
 *
 * A row is trusted only when all of these hold:
 * - every field has the type and shape we write (a flipped byte can change a column's type);
 * - its checksum matches: SQLite checks its pages' structure, not the bytes of a value, so a
 *   damaged hash would otherwise read back as a valid-looking wrong hash;
 * - path, dev, ino, size, mtime and ctime (ns) equal the file's now;
 * - it is not "racy": the file's mtime is more than RACY_WINDOW_MS older than the row.
 */
import { HASH_ALGOS, type FileHashes, type FileIdentity, type HashAlgo } from "../scan/types.ts";
import { isHashAlgo, isValidHashValue } from "./hash-algos.ts";

/** An entry whose file mtime is this close to (or after) the time it was written is not trusted. */
export const RACY_WINDOW_MS = 2000;

/** Racy-git rule (docs/reliability.md §3.4): a change right after hashing could keep the same timestamps, so such an entry is not trusted. */
export function isRacy(mtimeNs: string, storedAt: number): boolean {
  // Whole milliseconds are the digits before the last six: a slice for the usual positive value.
  const mtimeMs = mtimeNs.length > 6 && mtimeNs[0] !== "-" ? Number(mtimeNs.slice(0, -6)) : Number(BigInt(mtimeNs) / 1_000_000n);
  return mtimeMs > storedAt - RACY_WINDOW_MS;
}

/**
 * The header facts of a file (its record's `local` section, sidecars excluded) and the sidecars
 * beside it, as JSON text: parsed only by the one who needs them.
 */
export interface CachedLocal {
  /** LOCAL_FACTS_VERSION of the reader that wrote `facts` (with the metadata bit, see local-cache.ts). */
  version: number;
  facts: string;
  /** JSON of the sidecar stamps and what was read from them; null when there were none. */
  sidecars: string | null;
}

export interface HashCacheEntry {
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  hashes: FileHashes;
  /** Algorithms computed but not applicable (AutoV3 of a file that is not safetensors). */
  absent: HashAlgo[];
  /** False for a racy entry: kept for inspection, never used as a hit. */
  confirmed: boolean;
  /** Epoch milliseconds when the oldest part of the entry was computed. */
  hashedAt: number;
  local: CachedLocal | null;
}

/**
 * Column order of every row the store reads and writes (hash-store.ts builds its SQL from it). The
 * identity and hashes sit in one text column (`entry`, see entryText): one value to fetch, check
 * and split per file, where a column each cost more than the query of a 100,000-file warm run.
 */
export const ROW_COLUMNS = ["name", "entry", "sum", "local", "local_sum"] as const;

/** Index of the first local column: readers that do not need the header facts stop before it. */
export const HASH_ROW_LENGTH = ROW_COLUMNS.indexOf("local");

/** One row as SQLite returns it (any column may hold anything after damage). */
export type RawRow = unknown[];

/** One row to write, in ROW_COLUMNS order (the folder is given apart). */
export type RowValues = [name: Uint8Array, entry: string, sum: number, local: string | null, localSum: number | null];

const HASH_ALGO_COLUMNS: readonly HashAlgo[] = ["sha256", "autov1", "autov2", "autov3", "crc32"];
const ENTRY_FIELDS = 6 + HASH_ALGO_COLUMNS.length + 1;
const UINT_RE = /^\d{1,21}$/;
const NS_RE = /^-?\d{1,30}$/;

/**
 * CRC-32 of the entry text. Not a defence against someone who writes the store on purpose (they
 * could write any file we read); it catches damage, which is what the store can suffer. The key
 * (folder, name) needs no checksum: a row is only used for a file whose dev, ino, size, mtime and
 * ctime are the ones in its text, so a row that moved to another name matches no other file (a
 * hard link of the same inode has the same content).
 */
function checksum(text: string): number {
  return Bun.hash.crc32(text) >>> 0;
}

/** `dev|ino|size|mtimeNs|ctimeNs|at|sha256|autov1|autov2|autov3|crc32|absent`, empty where a hash is not known. */
function entryText(e: HashCacheEntry): string {
  const h = e.hashes;
  const absent = e.absent.length === 0 ? "" : HASH_ALGOS.filter((a) => e.absent.includes(a)).join(",");
  // Spelled out (HASH_ALGO_COLUMNS order): built once per stored file, a map and join cost a tenth of a cold run.
  return `${e.dev}|${e.ino}|${e.size}|${e.mtimeNs}|${e.ctimeNs}|${e.hashedAt}|${h.sha256 ?? ""}|${h.autov1 ?? ""}|${h.autov2 ?? ""}|${h.autov3 ?? ""}|${h.crc32 ?? ""}|${absent}`;
}

/** `version`, the facts and the sidecars, one per line (JSON text holds no raw line break). */
function localText(local: CachedLocal): string {
  return `${local.version}\n${local.facts}\n${local.sidecars ?? ""}`;
}

/** The row to store for `entry`, whose path is its folder plus `name`. */
export function rowFor(entry: HashCacheEntry, name: Uint8Array): RowValues {
  const text = entryText(entry);
  const sum = checksum(text);
  if (!entry.local) return [name, text, sum, null, null];
  const local = localText(entry.local);
  // Chained on the entry's sum: header facts are only ever read back with the identity they were read for.
  return [name, text, sum, local, Bun.hash.crc32(local, sum) >>> 0];
}

function parseUint(text: string): number | null {
  return UINT_RE.test(text) ? Number(text) : null;
}

/**
 * The entry a row holds for `path`, or null when anything about it is off (the caller counts it as
 * damaged). A row read with its local columns has them checked too; a damaged local part drops
 * only the local part. `knownIdentity`: the caller checked that the row is for this identity.
 */
export function entryFromRow(row: RawRow, path: string, now: number, knownIdentity?: FileIdentity): HashCacheEntry | null {
  const [name, text, sum] = row;
  if (!(name instanceof Uint8Array) || typeof text !== "string" || typeof sum !== "number") return null;
  if (checksum(text) !== sum) return null;
  const f = text.split("|");
  if (f.length !== ENTRY_FIELDS) return null;
  let id: FileIdentity;
  if (knownIdentity) {
    // The caller saw the text start with this identity (rowMayMatch): no need to parse those fields.
    id = knownIdentity;
  } else {
    const dev = parseUint(f[0]!);
    const ino = parseUint(f[1]!);
    const size = parseUint(f[2]!);
    if (dev === null || ino === null || size === null || !NS_RE.test(f[3]!) || !NS_RE.test(f[4]!)) return null;
    id = { dev, ino, size, mtimeNs: f[3]!, ctimeNs: f[4]! };
  }
  const at = parseUint(f[5]!);
  if (at === null) return null;
  const hashes: FileHashes = {};
  for (let i = 0; i < HASH_ALGO_COLUMNS.length; i++) {
    const value = f[6 + i]!;
    if (value === "") continue;
    const algo = HASH_ALGO_COLUMNS[i]!;
    if (!isValidHashValue(algo, value)) return null;
    hashes[algo] = value;
  }
  const absent: HashAlgo[] = [];
  const absentText = f[ENTRY_FIELDS - 1]!;
  if (absentText !== "") {
    for (const algo of absentText.split(",")) {
      if (!isHashAlgo(algo) || algo in hashes || absent.includes(algo)) return null;
      absent.push(algo);
    }
  }
  return {
    path,
    dev: id.dev,
    ino: id.ino,
    size: id.size,
    mtimeNs: id.mtimeNs,
    ctimeNs: id.ctimeNs,
    hashes,
    absent,
    confirmed: !isRacy(id.mtimeNs, at) && at <= now + RACY_WINDOW_MS,
    hashedAt: at,
    local: row.length > HASH_ROW_LENGTH ? localFromRow(row[HASH_ROW_LENGTH], row[HASH_ROW_LENGTH + 1], sum) : null,
  };
}

/** How an entry of this identity starts: a row that does not is for another state of the file. */
export function identityPrefix(id: FileIdentity): string {
  return `${id.dev}|${id.ino}|${id.size}|${id.mtimeNs}|${id.ctimeNs}|`;
}

function localFromRow(text: unknown, localSum: unknown, sum: number): CachedLocal | null {
  if (typeof text !== "string" || localSum !== Bun.hash.crc32(text, sum) >>> 0) return null;
  const first = text.indexOf("\n");
  const second = text.indexOf("\n", first + 1);
  if (first < 1 || second < 0) return null;
  const version = parseUint(text.slice(0, first));
  if (version === null) return null;
  const sidecars = text.slice(second + 1);
  return { version, facts: text.slice(first + 1, second), sidecars: sidecars === "" ? null : sidecars };
}

/**
 * The hashes of `algos` an entry answers, or null unless it holds every one (or knows it does not
 * apply). Only algorithms asked for and present are returned.
 */
export function hashesFromEntry(entry: HashCacheEntry, algos: readonly HashAlgo[]): FileHashes | null {
  const out: FileHashes = {};
  for (const a of algos) {
    const value = entry.hashes[a];
    if (value !== undefined) out[a] = value;
    else if (!entry.absent.includes(a)) return null;
  }
  return out;
}

export function sameIdentity(entry: FileIdentity, id: FileIdentity): boolean {
  return (
    entry.dev === id.dev && entry.ino === id.ino && entry.size === id.size && entry.mtimeNs === id.mtimeNs && entry.ctimeNs === id.ctimeNs
  );
}

export interface EntryUpdate {
  hashes?: FileHashes;
  absent?: readonly HashAlgo[];
  local?: CachedLocal;
}

/**
 * The entry to store after computing `update` for `identity` at `now`, merged with `previous`
 * when that one is trusted (or this run's, see previousOurs) and of the same identity (else
 * `previous` is dropped). Its time is the older of the two, so a part computed while the file was
 * racy never becomes trusted by a later write beside it. Throws on a hash value a later read would
 * reject.
 */
export function mergeEntry(
  path: string,
  identity: FileIdentity,
  previous: HashCacheEntry | null,
  update: EntryUpdate,
  now: number,
  /**
   * `previous` was written by this run: while the file is still racy it is kept (both parts are of
   * the same racy state, and the result stays racy); once it is not, the racy part is dropped.
   */
  previousOurs = false,
): HashCacheEntry {
  const usable = previous !== null && (previous.confirmed || (previousOurs && isRacy(identity.mtimeNs, now)));
  const base = usable && previous.path === path && sameIdentity(previous, identity) ? previous : null;
  const hashes: FileHashes = base ? { ...base.hashes } : {};
  let absent: HashAlgo[] = base ? base.absent : [];
  if (update.hashes) {
    for (const algo in update.hashes) {
      const value = update.hashes[algo as HashAlgo];
      if (!isHashAlgo(algo) || !isValidHashValue(algo, value)) throw new Error(`invalid ${algo} value`);
      hashes[algo] = value;
    }
  }
  if (update.absent?.length || (absent.length > 0 && update.hashes)) {
    const set = new Set<HashAlgo>([...absent, ...(update.absent ?? [])]);
    absent = HASH_ALGOS.filter((a) => set.has(a) && hashes[a] === undefined);
  }
  const hashedAt = base ? Math.min(base.hashedAt, now) : now;
  return {
    path,
    dev: identity.dev,
    ino: identity.ino,
    size: identity.size,
    mtimeNs: identity.mtimeNs,
    ctimeNs: identity.ctimeNs,
    hashes,
    absent,
    confirmed: !isRacy(identity.mtimeNs, hashedAt),
    hashedAt,
    local: update.local ?? base?.local ?? null,
  };
}
