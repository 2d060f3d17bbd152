import { versionKeyByAutov3, versionKeyBySha256 } from "../cache-keys.ts";
import { findMatchedFile, usableAutov3 } from "../civitai-record.ts";
import { leanVersion, type LeanVersion } from "../lean.ts";
import type { CachedVersion, VersionAnswer, VersionWrite } from "../meta-cache.ts";
import { checkedVersion } from "./checked-version.ts";
import { byOrder, chunk, type LookupRun, type Work } from "./run.ts";
import { CACHE_READ_BATCH } from "./cache-phase.ts";

/**
 * Phase 3: files whose SHA-256 is not on Civitai but whose AutoV3 may be (a safetensors whose
 * header was edited). Files that came without an AutoV3 get one from `deps.autov3` first (the scan
 * computes it only now, for the few files that need it). Then the cache, then one GET per distinct
 * AutoV3 (primary, then fallback: Civitai has no bulk lookup by AutoV3), accepted only when a file
 * of the answer really has that AutoV3. Files sharing an AutoV3 are settled together, and each
 * file's SHA-256 entry records the outcome, so the next run needs neither the AutoV3 nor a request.
 */
export async function autov3Phase(run: LookupRun): Promise<void> {
  const waiting = run.needsAutov3.filter((w) => !w.done).sort(byOrder);
  if (waiting.length === 0) return;
  run.report("autov3");
  await computeMissing(run, waiting);
  const byAutov3 = new Map<string, Work[]>();
  const writes: VersionWrite[] = [];
  for (const work of waiting) {
    if (work.done) continue;
    if (!work.autov3) {
      // None after all (not a safetensors, or not computable): the SHA-256 miss is the answer.
      if (!work.shaNotFoundCached) writes.push({ key: versionKeyBySha256(work.sha256), notFound: { autov3: null } });
      run.notFound(work, work.shaNotFoundCached);
      continue;
    }
    const group = byAutov3.get(work.autov3);
    if (group) group.push(work);
    else byAutov3.set(work.autov3, [work]);
  }
  run.write(writes);
  const groups = [...byAutov3.entries()];
  const cached = await readCached(
    run,
    groups.map(([autov3]) => autov3),
  );
  await run.each(groups, run.concurrency, async ([autov3, group]) => {
    const hit = cached.get(autov3) ?? null;
    if (hit !== null) run.counters.cacheHits++;
    const result = hit === null ? await ask(run, autov3, group) : { value: hit, fromCache: true };
    if (result !== undefined) await settleGroup(run, autov3, group, result.value, result.fromCache);
  });
}

/** Fills in the AutoV3 of works that came without one, through deps.autov3 (null: the file has none). */
async function computeMissing(run: LookupRun, works: readonly Work[]): Promise<void> {
  const unknown = works.filter((w) => w.autov3 === undefined);
  if (unknown.length === 0) return;
  const hook = run.deps.autov3;
  let computed: Map<string, string | null> = new Map();
  if (hook) {
    try {
      computed = await hook(unknown.map((w) => w.sha256));
    } catch (err) {
      const f = run.failure(err);
      for (const work of unknown) run.fail(work, { message: `AutoV3 not computed: ${f.message}` });
      return;
    }
  }
  for (const work of unknown) work.autov3 = usableAutov3(computed.get(work.sha256) ?? null);
}

async function readCached(run: LookupRun, autov3s: readonly string[]): Promise<Map<string, CachedVersion>> {
  const out = new Map<string, CachedVersion>();
  for (const batch of chunk(autov3s, CACHE_READ_BATCH)) {
    const answers = await run.cache.readVersions(batch.map(versionKeyByAutov3), run.readOptions);
    batch.forEach((autov3, i) => {
      const answer = answers[i];
      if (answer) out.set(autov3, answer);
    });
  }
  return out;
}

/** The asked answer for one AutoV3; undefined when the group was settled (or left) here. */
async function ask(
  run: LookupRun,
  autov3: string,
  group: readonly Work[],
): Promise<{ value: CachedVersion; fromCache: boolean } | undefined> {
  const { api, options } = run;
  if (options.offline) {
    for (const work of group) run.finish(work, { status: "offline" });
    return undefined;
  }
  if (run.isStopped()) return undefined;
  const key = versionKeyByAutov3(autov3);
  try {
    const hit = await run.askHosts<LeanVersion>(async (host) => {
      run.counters.requests.autov3++;
      const answer = checkedVersion(await api.versionByHash(host, autov3), host);
      if (answer === null) return null;
      // A 12-hex value only matches AutoV3 today, but the GET matches every hash type: check.
      const lean = leanVersion(answer);
      return findMatchedFile(lean, null, autov3)?.by === "autov3" ? lean : null;
    });
    if (hit === "stopped") return undefined;
    if (hit === null) {
      run.write([{ key, notFound: {} }]);
      return { value: { kind: "not_found", misses: 1 }, fromCache: false };
    }
    const answer: VersionAnswer = { versions: [hit.version], host: hit.host, matchedBy: "autov3" };
    run.write([{ key, answer }]);
    return { value: { kind: "found", ...answer }, fromCache: false };
  } catch (err) {
    const f = run.failure(err);
    // The SHA-256 part did finish: remember it so the next run only retries the AutoV3.
    const writes: VersionWrite[] = group
      .filter((w) => !w.shaNotFoundCached)
      .map((w) => ({ key: versionKeyBySha256(w.sha256), notFound: {} }));
    run.write(writes);
    for (const work of group) run.fail(work, f);
    return undefined;
  }
}

async function settleGroup(
  run: LookupRun,
  autov3: string,
  group: readonly Work[],
  result: CachedVersion,
  fromCache: boolean,
): Promise<void> {
  const writes: VersionWrite[] = [];
  for (const work of group) {
    if (result.kind === "found") {
      const answer: VersionAnswer = {
        versions: result.versions,
        matchedBy: "autov3",
        autov3,
        ...(result.host ? { host: result.host } : {}),
      };
      run.found(work, answer, fromCache);
      writes.push({ key: versionKeyBySha256(work.sha256), answer });
    } else {
      if (!work.shaNotFoundCached) writes.push({ key: versionKeyBySha256(work.sha256), notFound: { autov3 } });
      run.notFound(work, fromCache && work.shaNotFoundCached);
    }
  }
  run.write(writes);
}
