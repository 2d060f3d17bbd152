/**
 * The rules of the finished-record cache (record-cache.ts), pure. A warm `scan` of an unchanged
 * library used to rebuild every record from the metadata cache: 200,000 entry files read and
 * parsed, 100,000 records built and turned into JSON (16 of its 20 s at 100,000 files). A record
 * is a function of the file (its identity, hashes and header facts, all kept under the same
 * identity by the hash cache), the options, the clock and the metadata-cache entries its lookup
 * read. It is stored once built, with all of that, and given again only while each still holds:
 *
 * - the file: real path, device, inode, size, mtime and ctime (ns), every path that reaches it,
 *   its SHA-256, and each sidecar beside it (name, size, inode, mtime and ctime) are the same. That
 *   needs no hash cache at all (RecordCache.claim): the file is the one the record was built for,
 *   so the record's hashes and header facts are still its own, and neither the hash cache, the
 *   header nor a sidecar is read. A record is kept only when the file and its sidecars were last
 *   changed more than 2 s before the run began (the hash cache's racy rule);
 * - the options that shape a record (hosts, details, NSFW level, header metadata; the tool and
 *   schema versions): the fingerprint;
 * - the metadata: every entry it was built from was served from the cache (none fetched in that
 *   run), none has expired (the row keeps the earliest expiry), and no entry in the cache folders
 *   holding them has been written or removed since (the folders' inode and mtime are kept; each
 *   write is a rename in its folder). A row is made only when those folders were last written more
 *   than 2 s before the run read them (coarse clocks, as the hash cache's racy rule);
 * - the clock: a record that shows access still running (early access, paid access, on the file or
 *   on its update) changes when that ends, so it is never stored.
 *
 * Options under which a record is never stored nor given: --refresh, --offline, --trust-sidecars,
 * --use-index and --write-sidecars.
 */
import type { FileRecord } from "../report/record-types.ts";
import type { LocalInfo } from "../local/local-types.ts";
import type { FoundFile } from "./types.ts";
import { hasListedSidecar } from "../local/sidecars.ts";

/** What is kept with a record besides its JSON (record-pack-format.ts); the options fingerprint is the pack's. */
export interface RecordMeta {
  /** fileIdent of the file it was made for. */
  ident: string;
  /** The earliest expiry (epoch ms) of the metadata-cache entries it was built from. */
  expiresAt: number;
  /** The metadata-cache folders those entries are in, each with its stamp then. */
  deps: readonly Dep[];
  /** What the library facts read of the record (skeletonOf), without its path and aliases (the file's). */
  facts: FileRecord;
}

/** A metadata-cache folder and its stamp (meta-cache-driver.ts folderStamp). */
export type Dep = readonly [folder: string, stamp: string];

/**
 * The rules records are kept by. 2: a record's file identity says whether a sidecar was listed
 * beside the file (fileIdent), which lets a warm scan give it before reading the hash cache.
 * 3: the SHA-256 is the facts' alone, and the page URL kept only where a note row shows it.
 * 4: the identity without the mtime in ms (mtimeNs holds it).
 * 5: a file's sidecars are in its identity with their stamps, so a file with sidecars is claimed too.
 * 6: a kept body is the record's JSON on one line (render-json.ts recordText), as inventories now hold it.
 */
const RECORD_RULES_VERSION = 6;

export interface FingerprintParts {
  tool: string;
  schemaVersion: number;
  primary: string;
  fallback: string | null;
  details: boolean;
  nsfwLevel: string;
  localMetadata: boolean;
  /** Of the header facts (local-cache.ts factsVersion): facts read by an older reader are not the same. */
  factsVersion: number;
}

/** The options a record depends on, as one string. */
export function recordFingerprint(parts: FingerprintParts): string {
  return JSON.stringify([
    RECORD_RULES_VERSION,
    parts.factsVersion,
    parts.tool,
    parts.schemaVersion,
    parts.primary,
    parts.fallback,
    parts.details,
    parts.nsfwLevel,
    parts.localMetadata,
  ]);
}

/**
 * Whether a sidecar was listed beside the file, as fileIdent keeps it: "" none, ":s" one or more
 * (RecordCache then adds what they are: sidecarStampsMark), ":?" its folder was not listed (a file
 * named as an argument: its record is never claimed before the hash cache is read).
 */
export function sidecarMark(listed: readonly string[] | undefined, path: string): "" | ":s" | ":?" {
  if (listed === undefined) return ":?";
  return hasListedSidecar(listed, path) ? ":s" : "";
}

/** A sidecar beside a file as it stands now: its name and its stat stamp (size, inode, mtime and ctime in ns). */
export interface SidecarStamp {
  name: string;
  stamp: string;
}

/**
 * The mark of a file with sidecars: ":s" and a hash of each one's name and stamp. A record is made
 * from the sidecars' contents, so it is given again only while each is the file it was then.
 */
export function sidecarStampsMark(stamps: readonly SidecarStamp[]): string {
  return `:s${Bun.hash.wyhash(stamps.map((s) => `${s.name}\u0000${s.stamp}`).join("\u0000")).toString(16)}`;
}

/**
 * The file as the record shows it: its identity, its sidecars (sidecarMark, sidecarStampsMark), and (when it has links, or its path is not its real path) a hash of its real path
 * and every path to it. Plain text for the usual file: hashing every file's paths cost a tenth of
 * a warm 100,000-file scan. Its SHA-256 is the facts' (rowHolds): not written twice in the index.
 */
export function fileIdent(file: FoundFile, mark: string): string {
  const id = file.identity;
  // (The mtime in ms, FoundFile.mtimeMs, is read from mtimeNs: not a field of its own.)
  let text = `${id.dev}:${id.ino}:${id.size}:${id.mtimeNs}:${id.ctimeNs}${mark}`;
  if (file.paths.length > 1 || file.realPath !== file.path) {
    text += `:${Bun.hash.wyhash([file.realPath, ...file.paths].join("\u0000")).toString(16)}`;
  }
  return text;
}

/**
 * Whether the record reads the same later: false when it shows access still running (it ends at
 * a date, or when Civitai says so), on its version or on the update it offers. Every other field
 * that depends on the clock (availability.earlyAccess, update access) is derived from those.
 */
export function staysTrue(record: FileRecord): boolean {
  const c = record.civitai;
  // `!= null`: a record read from an older inventory may lack the field; absent is no access.
  if (c && (c.access != null || c.availability?.earlyAccess === true)) return false;
  for (const candidate of record.ambiguous ?? [])
    if (candidate.access != null || candidate.availability?.earlyAccess === true) return false;
  const u = record.update;
  if (u && (u.newest.access != null || u.sameBaseModel?.access != null)) return false;
  return true;
}

/** The statuses a stored record may have: what the metadata cache settled (never an error, never skipped). */
export function storableStatus(record: FileRecord): boolean {
  return record.status === "found" || record.status === "not_found" || record.status === "gone";
}

/**
 * What the library facts and the record spill read of a record (library-facts.ts FactsBuilder.add,
 * record-order.ts sectionOf, record-spill.ts add): small, so a served record is never parsed.
 */
export function skeletonOf(record: FileRecord): FileRecord {
  // No path, aliases or mtime: they are the file's, and the caller puts them back (withFile).
  const out = {
    size: record.size,
    hashes: record.hashes.sha256 === undefined ? {} : { sha256: record.hashes.sha256 },
    status: record.status,
  } as FileRecord;
  if (record.knownFrom !== undefined) out.knownFrom = record.knownFrom;
  const c = record.civitai;
  if (c) {
    out.civitai = {
      modelId: c.modelId,
      modelName: c.modelName,
      modelType: c.modelType,
      versionId: c.versionId,
      versionName: c.versionName,
      baseModel: c.baseModel,
    } as FileRecord["civitai"];
  }
  const local = record.local;
  if (local && (local.formatMismatch !== undefined || local.errors.length > 0)) {
    out.local = {
      ...(local.formatMismatch !== undefined ? { formatMismatch: local.formatMismatch } : {}),
      errors: local.errors,
    } as LocalInfo;
  }
  if (record.update) out.update = record.update;
  if (record.gone) out.gone = record.gone;
  // The page is shown only in the rows of updates, gone models and warnings (library-facts.ts
  // noteRow): kept for those alone, it is a tenth of the index a warm scan parses.
  if (c && (out.update || out.gone || out.local)) out.civitai!.pageUrl = c.pageUrl;
  return out;
}

/** Facts as skeletonOf keeps them (decoded from a pack), with the file's path and aliases put back. */
export function withFile(facts: FileRecord, file: FoundFile): FileRecord {
  facts.path = file.path;
  facts.aliases = file.paths.filter((p) => p !== file.path);
  facts.mtime = null;
  return facts;
}

/** Whether a decoded value is a record's facts (a pack is ours, but checked as if it were not). */
export function isFacts(value: unknown): value is FileRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const f = value as Partial<FileRecord>;
  return typeof f.status === "string" && typeof f.hashes === "object" && f.hashes !== null;
}

export function isDep(d: unknown): d is Dep {
  return Array.isArray(d) && d.length === 2 && typeof d[0] === "string" && typeof d[1] === "string";
}

/**
 * Whether a stored record may be given for this file now (see the head of this file), its pack's
 * fingerprint matching. `depHolds` says whether a folder still has the stamp it had.
 */
export function rowHolds(
  meta: RecordMeta,
  want: { ident: string; sha256: string | undefined; now: number; depHolds: (dep: Dep) => boolean },
): boolean {
  // The SHA-256 names the bytes; the other hashes are of the same bytes. Not all of them are
  // compared: a file Civitai does not know gets its AutoV3 during the lookup, after records are offered.
  if (meta.ident !== want.ident || typeof want.sha256 !== "string" || meta.facts.hashes?.sha256 !== want.sha256) return false;
  if (!(want.now < meta.expiresAt)) return false;
  return meta.deps.every(want.depHolds);
}
