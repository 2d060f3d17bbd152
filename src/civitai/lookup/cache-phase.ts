import { versionKeyBySha256 } from "../cache-keys.ts";
import { byOrder, chunk, type LookupRun, type Work } from "./run.ts";

/** Entries read per unstorage getItems call: large enough to amortise, small enough to show progress. */
export const CACHE_READ_BATCH = 500;

/**
 * Phase 1: the metadata cache by SHA-256, read in batches. Settles what the cache knows (found;
 * not found, with its AutoV3 also known or moving on to the AutoV3); returns the Works still to
 * ask, in the caller's order. Under --refresh nothing is served, but the reads still tell the
 * cache each key's history (the last found answer) for the not-found answers written later.
 */
export async function cachePhase(run: LookupRun): Promise<Work[]> {
  const needsSha: Work[] = [];
  run.report("cache");
  // Works settled before any request (the empty file's hash) are not read from the cache either.
  for (const batch of chunk(
    run.works.filter((w) => !w.done),
    CACHE_READ_BATCH,
  )) {
    const cached = await run.cache.readVersions(
      batch.map((w) => versionKeyBySha256(w.sha256)),
      run.readOptions,
    );
    batch.forEach((work, i) => {
      const answer = cached[i] ?? null;
      if (answer === null) return void needsSha.push(work);
      run.counters.cacheHits++;
      if (answer.kind === "found") return run.found(work, answer, true);
      work.shaNotFoundCached = true;
      work.entry.fromCache = true;
      if (answer.lastFound) work.lastFound = answer.lastFound;
      // The AutoV3 was asked with it (or the file has none): both answers are in this entry.
      if (answer.autov3 !== undefined || !run.mayHaveAutov3(work)) return run.notFound(work, true);
      run.needsAutov3.push(work);
    });
  }
  // Keep the caller's order for requests (reads finish in any order).
  return needsSha.sort(byOrder);
}
