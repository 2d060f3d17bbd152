/**
 * The one temp-file name of our atomic writes (shared/atomic-write.ts): every writer puts its bytes
 * under this prefix beside the target, so walkers skip such names (scan/path-filter.ts) and the
 * cache pruners can tell a killed writer's leftover from a user's file. Pure: names only.
 */
import { basenamePath, dirnamePath, joinPath } from "./fs-path.ts";

/** Prefix of our temp files; directory walkers and cache pruning skip names starting with it. */
export const TEMP_PREFIX = ".civitai-meta-tmp-";

/** A fresh temp path in `path`'s folder (rename is only atomic within one filesystem). */
export function tempPathFor(path: string): string {
  return joinPath(
    dirnamePath(path),
    `${TEMP_PREFIX}${process.pid}-${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}`,
  );
}

/** True for a name or path our writers use for temp files (left behind only by a killed process). */
export function isTempName(path: string): boolean {
  return basenamePath(path).startsWith(TEMP_PREFIX);
}
