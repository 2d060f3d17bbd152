/**
 * The hash cache before issue 11: one JSON file per model file at
 * `<cache>/hashes/v1/<ab>/<sha256 of the real path's bytes>.json`. Read once, to move its entries
 * into the store (hash-cache.ts), and recognised by name so `cache clear` removes what is left.
 */
import { readFileSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { isHashAlgo, isValidHashValue } from "./hash-algos.ts";
import type { FileHashes, HashAlgo } from "../scan/types.ts";
import { isTempName } from "../shared/atomic-write.ts";
import { listNoFollow, removeEmptyDirs } from "../shared/no-follow.ts";

/** Entries were a few hundred bytes; anything much larger was not ours. */
const MAX_ENTRY_BYTES = 64 * 1024;
const NS_RE = /^-?\d{1,30}$/;

export interface V1Entry {
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  hashes: FileHashes;
  absent: HashAlgo[];
  confirmed: boolean;
  hashedAt: number;
}

export function v1Root(cacheDir: string): string {
  return join(cacheDir, "hashes", "v1");
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Type-checks a v1 entry field by field; anything unexpected makes it unusable. */
function parseV1Entry(text: string): V1Entry | null {
  if (text.length === 0 || text.length > MAX_ENTRY_BYTES) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const o = raw as Record<string, unknown>;
  if (o.v !== 1 || typeof o.path !== "string" || o.path === "") return null;
  if (!isNonNegInt(o.dev) || !isNonNegInt(o.ino) || !isNonNegInt(o.size)) return null;
  if (typeof o.mtimeNs !== "string" || !NS_RE.test(o.mtimeNs)) return null;
  if (typeof o.ctimeNs !== "string" || !NS_RE.test(o.ctimeNs)) return null;
  if (typeof o.confirmed !== "boolean" || !isNonNegInt(o.hashedAt)) return null;
  if (typeof o.hashes !== "object" || o.hashes === null || Array.isArray(o.hashes)) return null;
  const hashes: FileHashes = {};
  for (const [algo, value] of Object.entries(o.hashes as Record<string, unknown>)) {
    if (!isHashAlgo(algo) || !isValidHashValue(algo, value)) return null;
    hashes[algo] = value;
  }
  const absent: HashAlgo[] = [];
  if (o.absent !== undefined) {
    if (!Array.isArray(o.absent)) return null;
    for (const algo of o.absent) {
      if (typeof algo !== "string" || !isHashAlgo(algo) || algo in hashes) return null;
      absent.push(algo);
    }
  }
  return {
    path: o.path,
    dev: o.dev,
    ino: o.ino,
    size: o.size,
    mtimeNs: o.mtimeNs,
    ctimeNs: o.ctimeNs,
    hashes,
    absent,
    confirmed: o.confirmed,
    hashedAt: o.hashedAt,
  };
}

/** `<root>/<ab>/<ab…64 hex>.json`: the only name a v1 entry had, so a user's file is never taken for one. */
function isV1EntryFile(root: string, file: string): boolean {
  const name = basename(file);
  const sub = dirname(file);
  return /^[0-9a-f]{64}\.json$/.test(name) && basename(sub) === name.slice(0, 2) && dirname(sub) === root;
}

/**
 * Reads every v1 entry under `cacheDir` (links not followed, files we did not write ignored) and
 * hands the usable ones to `take`; then removes the files it recognised, and the folders left
 * empty. Returns how many entries were taken.
 */
export function drainV1Entries(cacheDir: string, take: (entries: V1Entry[]) => void): number {
  const root = v1Root(cacheDir);
  const listing = listNoFollow(root);
  const own = listing.files.filter((f) => isV1EntryFile(root, f) || isTempName(basename(f)));
  if (own.length === 0 && listing.files.length === 0 && listing.dirs.length === 0) return 0;
  const entries: V1Entry[] = [];
  for (const file of own) {
    if (isTempName(basename(file))) continue;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const entry = parseV1Entry(text);
    if (entry && entry.confirmed) entries.push(entry);
  }
  // Taken first: if the store refuses them, the files stay for the next run.
  take(entries);
  clearV1Files(cacheDir);
  return entries.length;
}

/** Removes the v1 entries and temp files we wrote under `cacheDir`, then the folders left empty. */
export function clearV1Files(cacheDir: string): number {
  const root = v1Root(cacheDir);
  const listing = listNoFollow(root);
  let removed = 0;
  for (const file of listing.files) {
    if (!isTempName(basename(file)) && !isV1EntryFile(root, file)) continue;
    try {
      unlinkSync(file);
      removed++;
    } catch {
      /* gone already */
    }
  }
  removeEmptyDirs([...listing.dirs, root]);
  return removed;
}
