import { ApiError } from "../api-types.ts";
import { isCivitaiId, normalizeSha256, versionKeyBySha256 } from "../cache-keys.ts";
import { compareCandidates, fileHash, isVersion, mapBulkAnswer, versionFiles } from "../civitai-record.ts";
import type { ApiModelVersion } from "../civitai-types.ts";
import { leanVersion } from "../lean.ts";
import type { VersionWrite } from "../meta-cache.ts";
import { byOrder, chunk, type LookupRun, type Work } from "./run.ts";

/** POST /model-versions/by-hash takes at most 100 SHA-256s (docs/civitai-api.md §3.1). */
const BULK_BATCH_SIZE = 100;
/** POST /model-versions/by-hash/ids takes at most 10,000 (docs/civitai-api.md §3.2). */
export const IDS_BATCH_SIZE = 10_000;

/** Which versions Civitai ties each asked SHA-256 to (lower-case), from by-hash/ids. */
type KnownIds = Map<string, Set<number>>;

/**
 * Phase 2: the SHA-256s by bulk POST, on the primary host, then what it does not know on the
 * fallback host, in bulk too. Nothing is asked one file at a time: Civitai's source shows that the
 * single GET by SHA-256 finds nothing the bulk POST misses (same files, same "published" filter,
 * docs/civitai-api.md §3.3). What the bulk answer cannot show is which hash an archived version
 * (no `files`) or a version whose matching file is not public belongs to; by-hash/ids names it.
 *
 * With more than one batch to ask, by-hash/ids first tells which hashes a host knows (10,000 per
 * request), so unknown hashes cost no bulk POST and the known ones pack into full batches.
 * Whatever no host knows moves on to the AutoV3 (or is settled as not found).
 */
export async function bulkPhase(run: LookupRun, needsSha: readonly Work[]): Promise<void> {
  run.report("bulk");
  let pending = [...needsSha];
  for (const [index, host] of run.hostList.entries()) {
    if (pending.length === 0) break;
    // Not asked on every host: a stop settles them, or they may be on the fallback that failed.
    if (run.isStopped()) return;
    if (index > 0 && run.fallbackFailure !== undefined) {
      for (const work of pending) run.fail(work, run.fallbackUnavailable());
      return;
    }
    pending = await askHost(run, host, pending, index > 0);
  }
  const writes: VersionWrite[] = [];
  for (const work of pending) if (!work.done) run.afterShaMiss(work, writes);
  run.write(writes);
}

/** Asks one host about `works`; returns those it does not know (the rest are settled). */
async function askHost(run: LookupRun, host: string, works: readonly Work[], isFallback: boolean): Promise<Work[]> {
  const misses: Work[] = [];
  let toFetch: readonly Work[] = works;
  let known: KnownIds | undefined;
  if (works.length > BULK_BATCH_SIZE && !run.idsUnsupported.has(host)) {
    const filtered = await prefilter(run, host, works, isFallback);
    if (filtered === "failed") return [];
    if (filtered !== undefined) {
      known = filtered;
      toFetch = works.filter((w) => filtered.has(w.sha256));
      misses.push(...works.filter((w) => !filtered.has(w.sha256)));
    }
  }
  /** Hashes left out of a bulk answer that also held versions no asked hash claims (see `attribute`). */
  const unclaimed: { works: Work[]; versions: ApiModelVersion[] }[] = [];
  await run.each(chunk(toFetch, BULK_BATCH_SIZE), run.concurrency, async (batch) => {
    if (run.isStopped()) return;
    if (isFallback && run.fallbackFailure !== undefined) {
      for (const work of batch) run.fail(work, run.fallbackUnavailable());
      return;
    }
    const hashes = batch.map((w) => w.sha256);
    run.counters.requests.bulk++;
    let answer: (ApiModelVersion | null)[];
    try {
      answer = await run.api.versionsByHashes(host, hashes);
    } catch (err) {
      const f = isFallback && run.fallbackFailed(host, err) ? run.fallbackUnavailable() : run.failure(err);
      for (const work of batch) run.fail(work, f);
      return;
    }
    const list = Array.isArray(answer) ? answer : [];
    const byHash = mapBulkAnswer(list, hashes);
    const writes: VersionWrite[] = [];
    const leftOver: Work[] = [];
    for (const work of batch) {
      const versions = byHash.get(work.sha256);
      if (versions && versions.length > 0) settleFound(run, work, versions.map(leanVersion), host, false, writes);
      else leftOver.push(work);
    }
    const orphans = leftOver.length > 0 ? unclaimedVersions(list, hashes) : [];
    if (orphans.length > 0 && !known) unclaimed.push({ works: leftOver, versions: orphans });
    else {
      if (orphans.length > 0 && known) attribute(run, leftOver, orphans, known, host, writes);
      misses.push(...leftOver.filter((w) => !w.done));
    }
    run.write(writes);
  });
  if (unclaimed.length > 0) misses.push(...(await attributeUnclaimed(run, host, unclaimed, isFallback)));
  return misses.filter((w) => !w.done).sort(byOrder);
}

/**
 * by-hash/ids for `works`: the hashes the host knows, with their version ids. undefined when the
 * host does not offer it (a mirror that answers 404 or refuses the body): the caller asks in bulk
 * as without it. "failed" when the request failed otherwise (the works are settled as errors).
 */
async function prefilter(
  run: LookupRun,
  host: string,
  works: readonly Work[],
  isFallback: boolean,
): Promise<KnownIds | undefined | "failed"> {
  const known: KnownIds = new Map();
  for (const batch of chunk(works, IDS_BATCH_SIZE)) {
    if (run.isStopped()) return "failed";
    try {
      await askIds(run, host, batch, known);
    } catch (err) {
      if (err instanceof ApiError && (err.kind === "http" || err.kind === "bad_response")) {
        run.idsUnsupported.add(host);
        return undefined;
      }
      const f = isFallback && run.fallbackFailed(host, err) ? run.fallbackUnavailable() : run.failure(err);
      for (const work of works) run.fail(work, f);
      return "failed";
    }
  }
  return known;
}

/** One `POST /by-hash/ids` for `batch`, counted, its version ids added to `known`. */
async function askIds(run: LookupRun, host: string, batch: readonly Work[], known: KnownIds): Promise<void> {
  run.counters.requests.ids++;
  addIds(
    known,
    await run.api.versionIdsByHashes(
      host,
      batch.map((w) => w.sha256),
    ),
  );
}

/** Leftovers of bulk answers that held unclaimed versions: one by-hash/ids request names their versions. */
async function attributeUnclaimed(
  run: LookupRun,
  host: string,
  unclaimed: readonly { works: Work[]; versions: ApiModelVersion[] }[],
  isFallback: boolean,
): Promise<Work[]> {
  const works = unclaimed.flatMap((u) => u.works);
  const versions = unclaimed.flatMap((u) => u.versions);
  const known: KnownIds = new Map();
  for (const batch of chunk(works, IDS_BATCH_SIZE)) {
    if (run.isStopped()) return [];
    try {
      await askIds(run, host, batch, known);
    } catch (err) {
      // Not knowing is not "not found": these files may be archived versions. Asked again next run.
      const f = isFallback && run.fallbackFailed(host, err) ? run.fallbackUnavailable() : run.failure(err);
      for (const work of batch) run.fail(work, f);
    }
  }
  const writes: VersionWrite[] = [];
  attribute(run, works, versions, known, host, writes);
  run.write(writes);
  return works.filter((w) => !w.done);
}

/** Settles each of `works` that by-hash/ids ties to one of `versions` (their files do not list it). */
function attribute(
  run: LookupRun,
  works: readonly Work[],
  versions: readonly ApiModelVersion[],
  known: KnownIds,
  host: string,
  writes: VersionWrite[],
): void {
  for (const work of works) {
    if (work.done) continue;
    const ids = known.get(work.sha256);
    if (!ids) continue;
    // One pass with a set: an answer may hold ~800,000 versions (the 64 MB cap), each one repeated.
    const seen = new Set<number>();
    const mine = versions.filter((v) => ids.has(v.id) && !seen.has(v.id) && seen.add(v.id));
    const first = mine.sort(compareCandidates)[0];
    if (first) settleFound(run, work, [leanVersion(first)], host, true, writes);
  }
}

function settleFound(
  run: LookupRun,
  work: Work,
  versions: ReturnType<typeof leanVersion>[],
  host: string,
  unlisted: boolean,
  writes: VersionWrite[],
): void {
  const answer = { versions, matchedBy: "sha256" as const, host, ...(unlisted ? { unlisted: true as const } : {}) };
  run.found(work, answer, false);
  writes.push({ key: versionKeyBySha256(work.sha256), answer });
}

/** Versions of a bulk answer that list no file with an asked SHA-256 (archived, or the file is not public). */
function unclaimedVersions(answer: readonly unknown[], hashes: readonly string[]): ApiModelVersion[] {
  const wanted = new Set(hashes);
  const out: ApiModelVersion[] = [];
  const seen = new Set<number>();
  for (const version of answer) {
    if (!isVersion(version) || seen.has(version.id)) continue;
    seen.add(version.id);
    if (!versionFiles(version).some((f) => wanted.has(fileHash(f, "SHA256") ?? ""))) out.push(version);
  }
  return out;
}

function addIds(known: KnownIds, rows: readonly unknown[]): void {
  for (const row of Array.isArray(rows) ? rows : []) {
    const r = row as { modelVersionId?: unknown; hash?: unknown };
    const sha = normalizeSha256(r.hash);
    if (sha === null || !isCivitaiId(r.modelVersionId)) continue;
    const set = known.get(sha) ?? new Set<number>();
    set.add(r.modelVersionId);
    known.set(sha, set);
  }
}
