import { readFileSync, statSync, unlinkSync } from "node:fs";
import { basename } from "node:path";
import { listNoFollow } from "../shared/no-follow.ts";
import { isTempName } from "../shared/temp-name.ts";
import { ENTRY_EXT, parseEntry } from "./meta-cache-entry.ts";
import { parseJsonObject } from "../shared/json-guard.ts";

export interface MetaPruneResult {
  checked: number;
  removed: number;
}

/**
 * Removes metadata-cache files that can never be used again: our entries that are expired or of
 * another entry version, and temp files a killed writer left behind (older than an hour, so a
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
    } else if (parseEntry(own.text, now) === null) remove(path);
  }
  return result;
}

// What `cache prune` and `cache clear` may delete (docs/cases.md T11). A file is ours when it carries
// our temp name (shared/temp-name.ts, or the `.tmp-<entry>-<pid>-<hex>` the driver used before it
// wrote through shared/atomic-write.ts) or is an entry: a `.json` whose content has our envelope
// (v, storedAt, expiresAt, kind). A user's a.json or tsconfig.json in a folder the cache was pointed at is not.

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
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
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
