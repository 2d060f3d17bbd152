/**
 * Rules of one hash-cache row (docs/reliability.md §3.4): what it must hold to be used, how it is
 * checked, and how a new result merges into it. Pure: the store (hash-store.ts), the cache
 * (hash-cache.ts) and the hash workers (hash-worker.ts) do the I/O.
 *
 * A row has two independent parts, each a text with its own checksum: the hashes (written by the
 * hash workers) and the header facts (written by scan's header pass). Each names the file state
 * (dev, ino, size, mtime, ctime) and the time it was computed, and is trusted only when:
 * - its checksum matches: SQLite checks its pages' structure, not the bytes of a value, so a
 *   damaged hash would otherwise read back as a valid-looking wrong hash;
 * - every field has the shape we write;
 * - dev, ino, size, mtime and ctime (ns) equal the file's now (and the row is under its real path);
 * - it is not "racy": the file's mtime is more than RACY_WINDOW_MS older than the part.
 * The key (folder, name) needs no checksum: a part is only used for a file whose identity is the
 * one in its text, so a part that moved to another name matches no other file (a hard link of the
 * same inode has the same content).
 */
import { sep } from "node:path";
import { HASH_ALGOS, type FileHashes, type FileIdentity, type HashAlgo } from "../scan/types.ts";
import { basenamePath, dirnamePath } from "../shared/fs-path.ts";
import { HASH_HEX_LENGTH, isHashAlgo, isValidHashValue } from "./hash-algos.ts";

/** An entry whose file mtime is this close to (or after) the time it was written is not trusted. */
export const RACY_WINDOW_MS = 2000;

/** Racy-git rule (docs/reliability.md §3.4): a change right after hashing could keep the same timestamps, so such an entry is not trusted. */
export function isRacy(mtimeNs: string, storedAt: number): boolean {
  // Whole milliseconds are the digits before the last six: a slice for the usual positive value.
  const mtimeMs = mtimeNs.length > 6 && mtimeNs[0] !== "-" ? Number(mtimeNs.slice(0, -6)) : Number(BigInt(mtimeNs) / 1_000_000n);
  return mtimeMs > storedAt - RACY_WINDOW_MS;
}

/**
 * The racy rule for a file's state: its mtime, and its ctime when that is in whole seconds (a file
 * system with coarse timestamps: ext2/3, ext4 with 128-byte inodes, FAT, some shares). There a
 * change in the same second as the hashing, its mtime put back (`touch -r`, `cp -p`), leaves size,
 * mtime and ctime as they were; with finer ctimes the change moves the ctime.
 */
export function isRacyState(state: Pick<FileIdentity, "mtimeNs" | "ctimeNs">, storedAt: number): boolean {
  return isRacy(state.mtimeNs, storedAt) || (state.ctimeNs.endsWith("000000000") && isRacy(state.ctimeNs, storedAt));
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

/** One part of a row, checked: the state it is for and when it was computed. */
interface Part extends FileIdentity {
  at: number;
  /** Not racy: may be used by a later run. */
  confirmed: boolean;
}

export interface HashPart extends Part {
  hashes: FileHashes;
  /** Algorithms computed but not applicable (AutoV3 of a file that is not safetensors). */
  absent: HashAlgo[];
}

export interface LocalPart extends Part {
  local: CachedLocal;
}

/** What the cache knows about one file in one state (each part present only when usable). */
export interface HashCacheEntry extends FileIdentity {
  path: string;
  hashes: FileHashes;
  absent: HashAlgo[];
  /** False for a racy entry: kept for inspection, never used as a hit by a later run. */
  confirmed: boolean;
  /** Epoch milliseconds when the hashes (else the facts) were computed. */
  hashedAt: number;
  local: CachedLocal | null;
}

/**
 * Column order of every row the store reads (hash-store.ts builds its SQL from it). Each part is one
 * text column with a checksum beside it: one value to fetch, check and split per file, where a
 * column per field cost more than the query of a 100,000-file warm run.
 */
export const ROW_COLUMNS = ["name", "entry", "sum", "local", "local_sum"] as const;

/** Index of the first local column: readers that do not need the header facts stop before it. */
export const HASH_ROW_LENGTH = ROW_COLUMNS.indexOf("local");

/** One row as SQLite returns it (any column may hold anything after damage). */
export type RawRow = unknown[];

const HASH_ALGO_COLUMNS: readonly HashAlgo[] = ["sha256", "autov1", "autov2", "autov3", "crc32"];
const ENTRY_FIELDS = 6 + HASH_ALGO_COLUMNS.length + 1;
const UINT_RE = /^\d{1,21}$/;
const NS_RE = /^-?\d{1,30}$/;

/**
 * CRC-32 of a part's text. Not a defence against someone who writes the store on purpose (they
 * could write any file we read); it catches damage, which is what the store can suffer.
 */
export function checksum(text: string): number {
  return Bun.hash.crc32(text) >>> 0;
}

/** How both parts of a file in this state start: a part that does not is for another state. */
export function identityPrefix(id: FileIdentity): string {
  return `${id.dev}|${id.ino}|${id.size}|${id.mtimeNs}|${id.ctimeNs}|`;
}

/** `dev|ino|size|mtimeNs|ctimeNs|at|sha256|autov1|autov2|autov3|crc32|absent`, empty where a hash is not known. */
export function hashPartText(p: Omit<HashPart, "confirmed">): string {
  const h = p.hashes;
  const absent = p.absent.length === 0 ? "" : HASH_ALGOS.filter((a) => p.absent.includes(a)).join(",");
  // Spelled out (HASH_ALGO_COLUMNS order): built once per stored file, a map and join cost a tenth of a cold run.
  return `${identityPrefix(p)}${p.at}|${h.sha256 ?? ""}|${h.autov1 ?? ""}|${h.autov2 ?? ""}|${h.autov3 ?? ""}|${h.crc32 ?? ""}|${absent}`;
}

/** `dev|ino|size|mtimeNs|ctimeNs|at`, then the version, the facts and the sidecars, one per line (JSON holds no raw line break). */
export function localPartText(id: FileIdentity, at: number, local: CachedLocal): string {
  return `${identityPrefix(id)}${at}\n${local.version}\n${local.facts}\n${local.sidecars ?? ""}`;
}

function parseUint(text: string): number | null {
  return UINT_RE.test(text) ? Number(text) : null;
}

/** The identity and time at the head of a part (`known`: the caller saw the text start with its prefix). */
function parseHead(f: readonly string[], known: FileIdentity | undefined): (FileIdentity & { at: number }) | null {
  const at = parseUint(f[5]!);
  if (at === null) return null;
  if (known) return { dev: known.dev, ino: known.ino, size: known.size, mtimeNs: known.mtimeNs, ctimeNs: known.ctimeNs, at };
  const dev = parseUint(f[0]!);
  const ino = parseUint(f[1]!);
  const size = parseUint(f[2]!);
  if (dev === null || ino === null || size === null || !NS_RE.test(f[3]!) || !NS_RE.test(f[4]!)) return null;
  return { dev, ino, size, mtimeNs: f[3]!, ctimeNs: f[4]!, at };
}

/**
 * The hash part of a row, or null when it is absent or anything about it is off (damage: the
 * caller counts it). `known`: the caller checked that the text starts with this identity's prefix.
 */
export function parseHashPart(
  text: unknown,
  sum: unknown,
  now: number,
  known?: FileIdentity,
  /** `identityPrefix(known)`, when the caller has it already. */
  knownPrefix?: string,
): HashPart | null {
  if (typeof text !== "string" || typeof sum !== "number" || checksum(text) !== sum) return null;
  if (known) return parseKnownHashPart(text.slice((knownPrefix ?? identityPrefix(known)).length), known, now);
  const f = text.split("|");
  if (f.length !== ENTRY_FIELDS) return null;
  const head = parseHead(f, known);
  if (!head) return null;
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
  return { ...head, hashes, absent, confirmed: trusted(head, head.at, now) };
}

/**
 * What follows the identity in a hash part, every field's shape checked by one match (HASH_ALGO_COLUMNS
 * order): the time, then each hash empty or in the one form we write, then the absent list. A split
 * and a test per field cost a third of a warm 100,000-file `hash`.
 */
const HASH_REST_RE = new RegExp(
  `^(\\d{1,21})\\|${HASH_ALGO_COLUMNS.map((a) => `([0-9a-f]{${HASH_HEX_LENGTH[a]}})?`).join("\\|")}\\|([a-z0-9,]*)$`,
);

/** parseHashPart for what follows `known`'s prefix in a text (its checksum already checked). */
function parseKnownHashPart(rest: string, known: FileIdentity, now: number): HashPart | null {
  const m = HASH_REST_RE.exec(rest);
  if (m === null) return null;
  const hashes: FileHashes = {};
  for (let i = 0; i < HASH_ALGO_COLUMNS.length; i++) {
    const value = m[2 + i];
    if (value !== undefined) hashes[HASH_ALGO_COLUMNS[i]!] = value;
  }
  const absent: HashAlgo[] = [];
  const absentText = m[7]!;
  if (absentText !== "") {
    for (const algo of absentText.split(",")) {
      if (!isHashAlgo(algo) || algo in hashes || absent.includes(algo)) return null;
      absent.push(algo);
    }
  }
  const at = Number(m[1]);
  const { dev, ino, size, mtimeNs, ctimeNs } = known;
  return { dev, ino, size, mtimeNs, ctimeNs, at, hashes, absent, confirmed: trusted(known, at, now) };
}

/** The local part of a row, or null when it is absent or anything about it is off. */
export function parseLocalPart(text: unknown, sum: unknown, now: number, known?: FileIdentity): LocalPart | null {
  if (typeof text !== "string" || typeof sum !== "number" || checksum(text) !== sum) return null;
  const first = text.indexOf("\n");
  const second = text.indexOf("\n", first + 1);
  const third = text.indexOf("\n", second + 1);
  if (first < 0 || second < 0 || third < 0) return null;
  const f = text.slice(0, first).split("|");
  if (f.length !== 6) return null;
  const head = parseHead(f, known);
  const version = parseUint(text.slice(first + 1, second));
  if (!head || version === null) return null;
  const sidecars = text.slice(third + 1);
  const local: CachedLocal = { version, facts: text.slice(second + 1, third), sidecars: sidecars === "" ? null : sidecars };
  return { ...head, local, confirmed: trusted(head, head.at, now) };
}

/** Not racy, and not written by a clock ahead of ours. */
function trusted(state: Pick<FileIdentity, "mtimeNs" | "ctimeNs">, at: number, now: number): boolean {
  return !isRacyState(state, at) && at <= now + RACY_WINDOW_MS;
}

/**
 * The hashes of `algos` an entry answers, or null unless it holds every one (or knows it does not
 * apply). Only algorithms asked for and present are returned.
 */
export function hashesFromEntry(entry: Pick<HashCacheEntry, "hashes" | "absent">, algos: readonly HashAlgo[]): FileHashes | null {
  const out: FileHashes = {};
  for (const a of algos) {
    const value = entry.hashes[a];
    if (value !== undefined) out[a] = value;
    else if (!entry.absent.includes(a)) return null;
  }
  return out;
}

function sameIdentity(entry: FileIdentity, id: FileIdentity): boolean {
  return (
    entry.dev === id.dev && entry.ino === id.ino && entry.size === id.size && entry.mtimeNs === id.mtimeNs && entry.ctimeNs === id.ctimeNs
  );
}

/**
 * The hash part to store after computing `hashes` (and `absent`) for `identity` at `now`, merged
 * with `previous` when that one is usable (trusted, or this run's while the file is still racy;
 * see `previousOurs`) and of the same identity (else it is dropped). Its time is the older of the
 * two, so a part computed while the file was racy never becomes trusted by a later write beside
 * it. Throws on a hash value a later read would reject.
 */
export function mergeHashes(
  identity: FileIdentity,
  previous: HashPart | null,
  update: { hashes: FileHashes; absent?: readonly HashAlgo[] },
  now: number,
  /**
   * `previous` was written by this run: while the file is still racy it is kept (both parts are of
   * the same racy state, and the result stays racy); once it is not, the racy part is dropped.
   */
  previousOurs = false,
): HashPart {
  const usable = previous !== null && (previous.confirmed || (previousOurs && isRacyState(identity, now)));
  const base = usable && sameIdentity(previous, identity) ? previous : null;
  const hashes: FileHashes = base ? { ...base.hashes } : {};
  let absent: HashAlgo[] = base ? base.absent : [];
  for (const algo in update.hashes) {
    const value = update.hashes[algo as HashAlgo];
    if (!isHashAlgo(algo) || !isValidHashValue(algo, value)) throw new Error(`invalid ${algo} value`);
    hashes[algo] = value;
  }
  if (update.absent?.length || absent.length > 0) {
    const set = new Set<HashAlgo>([...absent, ...(update.absent ?? [])]);
    absent = HASH_ALGOS.filter((a) => set.has(a) && hashes[a] === undefined);
  }
  const at = base ? Math.min(base.at, now) : now;
  return {
    dev: identity.dev,
    ino: identity.ino,
    size: identity.size,
    mtimeNs: identity.mtimeNs,
    ctimeNs: identity.ctimeNs,
    at,
    hashes,
    absent,
    confirmed: !isRacyState(identity, at),
  };
}

/**
 * Folder and name of a real path, as the rows are keyed. A slice at the last separator for the
 * usual absolute POSIX path (node:path per file cost a tenth of a warm run); node:path's rules
 * (through fs-path.ts, which keeps raw bytes) otherwise.
 */
export function splitPath(realPath: string): [string, string] {
  const slash = realPath.lastIndexOf("/");
  if (sep === "/" && slash > 0 && slash < realPath.length - 1) return [realPath.slice(0, slash), realPath.slice(slash + 1)];
  return [dirnamePath(realPath), basenamePath(realPath)];
}
