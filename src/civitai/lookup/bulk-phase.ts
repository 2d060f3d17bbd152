import { versionKeyBySha256 } from "../cache-keys.ts";
import { mapBulkAnswer } from "../civitai-record.ts";
import { byOrder, chunk, type LookupRun, type Work } from "./run.ts";

/** POST /model-versions/by-hash takes at most 100 SHA-256s (docs/civitai-api.md §3.1). */
const BULK_BATCH_SIZE = 100;

/**
 * Phase 2: bulk POST by SHA-256 on the primary host, ≤ 100 per request. Returns what the answers
 * left out (the bulk endpoint drops edge cases silently), in the caller's order.
 */
export async function bulkPhase(run: LookupRun, needsSha: readonly Work[]): Promise<Work[]> {
  const { api, cache, hosts } = run;
  const leftOver: Work[] = [];
  const batches = chunk(needsSha, BULK_BATCH_SIZE);
  run.report("bulk");
  await run.each(batches, run.concurrency, async (batch) => {
    if (run.isStopped()) return;
    const hashes = batch.map((w) => w.sha256);
    run.counters.requests.bulk++;
    try {
      const answer = await api.versionsByHashes(hosts.primary, hashes);
      const byHash = mapBulkAnswer(Array.isArray(answer) ? answer : [], hashes);
      const writes: Promise<void>[] = [];
      for (const work of batch) {
        const versions = byHash.get(work.sha256);
        if (versions && versions.length > 0) {
          run.found(work, versions, hosts.primary, "sha256", false);
          writes.push(cache.setVersion(versionKeyBySha256(work.sha256), versions, { host: hosts.primary, matchedBy: "sha256" }));
        } else {
          leftOver.push(work);
        }
      }
      await Promise.all(writes);
    } catch (err) {
      const f = run.failure(err);
      for (const work of batch) run.fail(work, f);
    }
  });
  return leftOver.sort(byOrder);
}
