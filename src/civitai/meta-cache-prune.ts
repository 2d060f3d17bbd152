import { readdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { ENTRY_EXT, parseEntry, TEMP_PREFIX } from "./meta-cache-entry.ts";

export interface MetaPruneResult {
  checked: number;
  removed: number;
}

/**
 * Removes metadata-cache files that can never be used again: expired, unreadable or of the wrong
 * shape, and temp files a killed writer left behind (older than an hour, so a running writer's
 * temp file is never pulled from under it). Used by `civitai-meta cache prune`.
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
  let names: string[];
  try {
    names = readdirSync(dir, { recursive: true }) as string[];
  } catch {
    return result;
  }
  for (const name of names) {
    const path = join(dir, name);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    result.checked++;
    if (basename(path).startsWith(TEMP_PREFIX)) {
      if (now - st.mtimeMs > 3_600_000) remove(path);
      continue;
    }
    if (!path.endsWith(ENTRY_EXT)) continue;
    let text: string | null;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      text = null;
    }
    if (text === null || parseEntry(text, now) === null) remove(path);
  }
  return result;
}
