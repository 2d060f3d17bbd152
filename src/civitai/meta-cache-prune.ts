import { statSync, unlinkSync } from "node:fs";
import { basename, sep } from "node:path";
import { listNoFollow } from "../shared/no-follow.ts";
import { isTempName } from "../shared/temp-name.ts";
import { parseJsonObject } from "../shared/json-guard.ts";
import { readSmallRegularFile } from "../shared/read-small-file.ts";
import { ENTRY_EXT, MAX_ENTRY_BYTES, isFresh, parseMetaEntry, storedInFuture } from "./meta-cache-entry.ts";

export interface MetaPruneResult {
  checked: number;
  removed: number;
}

/**
 * Removes metadata-cache files that can never be used again: our entries that are expired, of
 * another entry version (formats 1 and 2 included) or inconsistent, and temp files a killed writer left behind (older than an hour, so a
 * running writer's temp file is never pulled from under it). Files that are not ours, and anything
 * behind a symbolic link, are left alone (docs/cases.md T11). Used by `civitai-meta cache prune`.
 */
export function pruneMetaCache(dir: string, now: number = Date.now()): MetaPruneResult {
  const result: MetaPruneResult = { checked: 0, removed: 0 };
  const remove = (path: string) => {
    try {
      unlinkSync(path);
      result.removed++;
    } catch {
      /* gone already, or read-only */
    }
  };
  for (const path of listNoFollow(dir).files) {
    const own = ownMetaFile(path);
    if (own === null) continue;
    result.checked++;
    if (own.kind === "temp") {
      if (now - own.mtimeMs > 3_600_000) remove(path);
    } else if (!usable(own.text, path, now)) remove(path);
  }
  return result;
}

/**
 * An entry a run may still serve. An expired not-found entry is kept while it can still tell the
 * next answer its history (repeat count, last found answer) — that is, for as long again as it
 * lived; an expired found entry likewise, as the `lastFound` of a later not-found.
 */
function usable(text: string, path: string, now: number): boolean {
  const entry = parseMetaEntry(text);
  if (entry === null) return false;
  // Only where its key and scope put it (meta/v3/<primary>/<fallback>/<key…>.json) will it be read.
  const where = ["", `v${entry.v}`, ...entry.scope.split(":"), ...entry.key.split(":")].join(sep) + ENTRY_EXT;
  if (!path.endsWith(where) || storedInFuture(entry, now)) return false;
  return isFresh(entry, now) || now < entry.expiresAt + (entry.expiresAt - entry.storedAt);
}

// What `cache prune` and `cache clear` may delete (docs/cases.md T11). A file is ours when it carries a
// temp name of our driver or is an entry: a `.json` whose content has our envelope (v, storedAt,
// expiresAt, kind). A user's a.json or tsconfig.json in a folder the cache was pointed at is not.

const LEGACY_TEMP_NAME_RE = /^\.tmp-.+-\d+-[0-9a-f]{8}$/;

type OwnMetaFile = { kind: "temp"; mtimeMs: number } | { kind: "entry"; text: string };

function ownMetaFile(path: string): OwnMetaFile | null {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    return null;
  }
  if (isTempName(path) || LEGACY_TEMP_NAME_RE.test(basename(path))) return { kind: "temp", mtimeMs: st.mtimeMs };
  if (!path.endsWith(ENTRY_EXT)) return null;
  // Larger than any entry of ours (or no longer a regular file): not ours, and not read whole.
  const text = readSmallRegularFile(path, MAX_ENTRY_BYTES);
  if (text === null) return null;
  const e = parseJsonObject(text);
  const envelope =
    e !== null &&
    typeof e.v === "number" &&
    typeof e.storedAt === "number" &&
    typeof e.expiresAt === "number" &&
    (e.kind === "found" || e.kind === "not_found");
  return envelope ? { kind: "entry", text } : null;
}

/** True for a metadata-cache file we wrote (an entry or a temp file); `cache clear` deletes only these. */
export function isOwnMetaFile(path: string): boolean {
  return ownMetaFile(path) !== null;
}
