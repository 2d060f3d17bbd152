import { versionKeyBySha256 } from "../cache-keys.ts";
import { checkedVersion } from "./checked-version.ts";
import type { LookupRun, Work } from "./run.ts";

/** Phase 3: one GET by SHA-256 per file the bulk answer left out: primary, then fallback. */
export async function singlePhase(run: LookupRun, leftOver: readonly Work[]): Promise<void> {
  const { api, cache } = run;
  run.report("single");
  await run.each(leftOver, run.concurrency, async (work) => {
    if (run.isStopped()) return;
    try {
      const hit = await run.askHosts(async (host) => {
        run.counters.requests.single++;
        const answer = await api.versionByHash(host, work.sha256);
        return checkedVersion(answer, host);
      });
      if (hit === "stopped") return;
      if (hit) {
        run.found(work, [hit.version], hit.host, "sha256", false);
        await cache.setVersion(versionKeyBySha256(work.sha256), hit.version, { host: hit.host, matchedBy: "sha256" });
      } else {
        run.afterShaMiss(work);
        if (work.done) await cache.setVersion(versionKeyBySha256(work.sha256), null);
      }
    } catch (err) {
      run.fail(work, run.failure(err));
    }
  });
}
