/**
 * The header facts of a file as they are kept in the hash cache beside its hashes (issue 11): the
 * `local` section of its record without the sidecars, as JSON, plus a stamp of every sidecar read
 * beside it and what it said. Pure: local-reader.ts decides when to read again, hash-cache.ts
 * stores the text.
 */
import type { CachedLocal } from "../hash/hash-entry.ts";
import { markInOrder } from "../report/in-order.ts";
import { localInReportOrder } from "../report/render-json.ts";
import type { LocalInfo, SidecarInfo } from "./local-types.ts";

/**
 * Bump whenever what the header pass makes of a file changes (a new field, a better guess, a fixed
 * parser): cached facts of another version are read again, not trusted.
 * 2: facts are kept in the report's key order (localInfoOf marks them so; version 1 did not keep it).
 * 3: GGUF metadata bounded (1,000 keys, keys cut, one warning for duplicates): older facts of a
 *    hostile GGUF could hold 100,000 keys.
 */
const LOCAL_FACTS_VERSION = 3;

/** The version number stored: LOCAL_FACTS_VERSION, and whether `header.metadata` was kept (--local-metadata). */
export function factsVersion(withMetadata: boolean): number {
  return LOCAL_FACTS_VERSION * 2 + (withMetadata ? 1 : 0);
}

/** Cached facts serve a run that wants metadata only when they hold it; a run that does not can drop it. */
export function usableFacts(cached: { version: number }, withMetadata: boolean): boolean {
  if (cached.version === factsVersion(true)) return true;
  return cached.version === factsVersion(false) && !withMetadata;
}

/** What tells a sidecar was not touched: its size, mtime and ctime (ns) and inode, as one string. */
export type SidecarStampText = string;

export interface SidecarRecord {
  /** The sidecar's file name (base name only). */
  file: string;
  stamp: SidecarStampText;
  info: SidecarInfo;
}

export function stampOf(st: { size: bigint; mtimeNs: bigint; ctimeNs: bigint; ino: bigint }): SidecarStampText {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`;
}

/**
 * The facts as JSON: the info without its sidecars (they are kept apart, with their stamps), in the
 * report's key order at every level, so that localInfoOf can hand them to the renderer as they are.
 */
export function factsText(info: LocalInfo): string {
  const { sidecars: _sidecars, ...facts } = info;
  return JSON.stringify(localInReportOrder(facts));
}

/** The cached form of a file's local section. */
export function toCachedLocal(facts: string, withMetadata: boolean, sidecars: readonly SidecarRecord[]): CachedLocal {
  return { version: factsVersion(withMetadata), facts, sidecars: sidecars.length > 0 ? JSON.stringify(sidecars) : null };
}

/**
 * The sidecar records of a cached entry, or null when the text is not what we write (then every
 * sidecar is read again). The entry's checksum already rules out damage; this rules out our own
 * older shapes.
 */
export function parseSidecarRecords(text: string | null): SidecarRecord[] | null {
  if (text === null) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(raw)) return null;
  for (const r of raw) {
    if (typeof r !== "object" || r === null) return null;
    const o = r as Record<string, unknown>;
    if (typeof o.file !== "string" || typeof o.stamp !== "string" || typeof o.info !== "object" || o.info === null) return null;
  }
  return raw as SidecarRecord[];
}

/** The facts text of a run that does not want `header.metadata`, from facts that may hold it. */
export function withoutMetadata(facts: string): string {
  const info = JSON.parse(facts) as LocalInfo;
  if (info.header?.metadata === undefined) return facts;
  delete info.header.metadata;
  return JSON.stringify(info);
}

/**
 * The LocalInfo of a record: the facts and the sidecars read beside the file (when there were any).
 * Facts of this LOCAL_FACTS_VERSION were stored in the report's key order (factsText) and JSON.parse
 * keeps it, so without sidecars the renderer may take them as they are (report/in-order.ts).
 */
export function localInfoOf(facts: string, sidecars: readonly SidecarInfo[] | undefined): LocalInfo {
  const info = JSON.parse(facts) as LocalInfo;
  if (sidecars && sidecars.length > 0) {
    info.sidecars = [...sidecars];
    return info;
  }
  return markInOrder(info);
}
