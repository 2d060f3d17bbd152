import { versionKeyBySha256 } from "../cache-keys.ts";
import { byOrder, type LookupRun, type Work } from "./run.ts";

/** Cache reads are local file reads: many at once. */
export const CACHE_READ_CONCURRENCY = 32;

/**
 * Phase 1: the metadata cache by SHA-256. Settles what the cache knows (found, or "not found"
 * moving on to the AutoV3); returns the Works still to ask, in the caller's order.
 */
export async function cachePhase(run: LookupRun): Promise<Work[]> {
  if (!run.useCache) return [...run.works];
  const needsSha: Work[] = [];
  run.report("cache");
  await run.each(run.works, CACHE_READ_CONCURRENCY, async (work) => {
    const cached = await run.cache.getVersion(versionKeyBySha256(work.sha256));
    if (cached === null) return void needsSha.push(work);
    run.counters.cacheHits++;
    if (cached.kind === "found") return run.found(work, cached.versions, cached.host, cached.matchedBy ?? "sha256", true);
    work.shaNotFoundCached = true;
    work.entry.fromCache = true;
    run.afterShaMiss(work);
  });
  // Keep the caller's order for requests (reads finish in any order).
  return needsSha.sort(byOrder);
}
