/**
 * One metadata-cache entry as stored: its shape, and the check that turns stored bytes back into
 * an entry (or nothing). Pure: the cache (meta-cache.ts) and the pruner (meta-cache-prune.ts)
 * both judge entries with `parseEntry`, so they agree on what is usable.
 */
import type { MatchedBy } from "../report/record-types.ts";
import { parseJsonObject } from "../shared/json-guard.ts";

/**
 * 2: entries live under `v2:<scope>:` and name their scope (issue 9, docs/cases.md T2). Entries of format 1
 * (`version:sha256:<hex>` at the top, no scope) are never read again; `cache prune` removes them.
 */
export const ENTRY_VERSION = 2;
/** Entry files end so; anything else in the folder is not ours to read. */
export const ENTRY_EXT = ".json";
export const HOST_RE = /^https?:\/\/[A-Za-z0-9.-]+(?::\d+)?$/;

export interface Entry {
  v: typeof ENTRY_VERSION;
  storedAt: number;
  expiresAt: number;
  kind: "found" | "not_found";
  /** The API bases the answer came from (cache-keys.ts cacheScope): checked again on every read. */
  scope: string;
  data: unknown;
  host?: string;
  matchedBy?: MatchedBy;
}

/** A stored entry if `raw` is one, well-formed and not expired at `now`; else null. */
export function parseEntry(raw: unknown, now: number): Entry | null {
  let text: string;
  if (typeof raw === "string") text = raw;
  else if (raw instanceof Uint8Array) text = new TextDecoder().decode(raw);
  else return null;
  const e = parseJsonObject(text);
  if (e === null) return null;
  if (e.v !== ENTRY_VERSION) return null;
  if (typeof e.storedAt !== "number" || typeof e.expiresAt !== "number") return null;
  if (!Number.isFinite(e.storedAt) || !Number.isFinite(e.expiresAt) || now >= e.expiresAt) return null;
  if (typeof e.scope !== "string" || e.scope.length > 300) return null;
  if (e.kind === "not_found") {
    if (e.data !== null) return null;
  } else if (e.kind !== "found") return null;
  if (e.host !== undefined && (typeof e.host !== "string" || !HOST_RE.test(e.host))) return null;
  if (e.matchedBy !== undefined && e.matchedBy !== "sha256" && e.matchedBy !== "autov3") return null;
  return e as unknown as Entry;
}
