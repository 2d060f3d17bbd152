import { versionKeyByAutov3, versionKeyBySha256 } from "../cache-keys.ts";
import { findMatchedFile, usableAutov3 } from "../civitai-record.ts";
import type { CachedVersion } from "../meta-cache.ts";
import { checkedVersion } from "./checked-version.ts";
import { byOrder, type LookupRun, type Work } from "./run.ts";

/**
 * Phase 4: files whose SHA-256 is not on Civitai but whose AutoV3 is known: the cache, then one GET
 * per distinct AutoV3 (primary, then fallback), accepted only when a file of the answer really
 * has that AutoV3. Files sharing an AutoV3 are settled together.
 */
export async function autov3Phase(run: LookupRun, autov3For?: Autov3Source): Promise<void> {
  if (autov3For) await fillAutov3(run, autov3For);
  const byAutov3 = new Map<string, Work[]>();
  for (const work of run.needsAutov3.sort(byOrder)) {
    if (work.done || work.autov3 === null) continue;
    byAutov3.set(work.autov3, [...(byAutov3.get(work.autov3) ?? []), work]);
  }
  const groups = [...byAutov3.entries()];
  run.report("autov3");
  await run.each(groups, run.concurrency, async ([autov3, group]) => {
    const result = await resolveAutov3(run, autov3, group);
    if (result === undefined) return;
    await settleGroup(run, group, result.value, result.fromCache);
  });
}

/** Computes (or finds in the hash cache) the AutoV3 of SHA-256 misses; see LookupDeps.autov3For. */
export type Autov3Source = (sha256s: readonly string[]) => Promise<ReadonlyMap<string, string>>;

/** Asks for the AutoV3s no item gave; a miss that has none (not safetensors) is not found, and cached as such. */
async function fillAutov3(run: LookupRun, autov3For: Autov3Source): Promise<void> {
  const missing = run.needsAutov3.filter((work) => !work.done && work.autov3 === null);
  if (missing.length === 0) return;
  const answers = await autov3For(missing.map((work) => work.sha256));
  for (const work of missing) {
    work.autov3 = usableAutov3(answers.get(work.sha256));
    if (work.autov3 !== null) continue;
    run.finish(work, { status: "not_found" });
    if (!work.shaNotFoundCached) await run.cache.setVersion(versionKeyBySha256(work.sha256), null);
  }
}

/** The cached or asked answer for one AutoV3; undefined when the group was settled (or left) here. */
async function resolveAutov3(
  run: LookupRun,
  autov3: string,
  group: readonly Work[],
): Promise<{ value: CachedVersion; fromCache: boolean } | undefined> {
  const { api, cache, options } = run;
  const key = versionKeyByAutov3(autov3);
  const cached: CachedVersion | null = run.useCache ? await cache.getVersion(key) : null;
  if (cached !== null) {
    run.counters.cacheHits++;
    return { value: cached, fromCache: true };
  }
  if (options.offline) {
    for (const work of group) run.finish(work, { status: "offline" });
    return undefined;
  }
  if (run.isStopped()) return undefined;
  try {
    const hit = await run.askHosts(async (host) => {
      run.counters.requests.autov3++;
      const answer = checkedVersion(await api.versionByHash(host, autov3), host);
      // A 12-hex value only matches AutoV3 today, but the GET matches every hash type: check.
      return answer && findMatchedFile(answer, null, autov3)?.by === "autov3" ? answer : null;
    });
    if (hit === "stopped") return undefined;
    if (hit) await cache.setVersion(key, hit.version, { host: hit.host, matchedBy: "autov3" });
    else await cache.setVersion(key, null);
    return {
      value: hit ? { kind: "found", versions: [hit.version], host: hit.host, matchedBy: "autov3" } : { kind: "not_found" },
      fromCache: false,
    };
  } catch (err) {
    const f = run.failure(err);
    for (const work of group) {
      // The SHA-256 part did finish: remember it so the next run only retries the AutoV3.
      if (!work.shaNotFoundCached) await cache.setVersion(versionKeyBySha256(work.sha256), null);
      run.fail(work, f);
    }
    return undefined;
  }
}

async function settleGroup(run: LookupRun, group: readonly Work[], result: CachedVersion, fromCache: boolean): Promise<void> {
  for (const work of group) {
    if (result.kind === "found") {
      run.found(work, result.versions, result.host, "autov3", fromCache);
      await run.cache.setVersion(versionKeyBySha256(work.sha256), result.versions, {
        ...(result.host ? { host: result.host } : {}),
        matchedBy: "autov3",
      });
    } else {
      run.finish(work, { status: "not_found", fromCache: fromCache && work.shaNotFoundCached });
      if (!work.shaNotFoundCached) await run.cache.setVersion(versionKeyBySha256(work.sha256), null);
    }
  }
}
