import { isModel } from "../civitai-record.ts";
import { leanModel, type LeanModel } from "../lean.ts";
import type { CachedModel } from "../meta-cache.ts";
import { CACHE_READ_BATCH } from "./cache-phase.ts";
import { chunk, type LookupRun, type Work } from "./run.ts";

/** GET /models?ids= takes at most 100 ids (docs/civitai-api.md §3.1). */
const MODELS_BATCH_SIZE = 100;

/**
 * Phase 5: details (tags, creator, description, license) of the found versions' models: the cache,
 * then ≤ 100 ids per request, each asked on the host that found the version. Entries get the
 * models we have, and a `detailsError` when some could not be fetched. A found file is complete
 * (for the progress) once every model it needs is resolved, fetched or not.
 */
export async function detailsPhase(run: LookupRun): Promise<void> {
  run.report("models");
  const hostOfModel = modelHosts(run);
  const resolved = completionTracker(run);
  const ids = [...hostOfModel.keys()];
  const models = new Map<number, LeanModel>();
  const detailsErrors = new Map<number, string>();
  const toFetch = await readCachedModels(run, ids, hostOfModel, models, resolved);
  const batches = [...toFetch.entries()].flatMap(([host, list]) => chunk(list, MODELS_BATCH_SIZE).map((batch) => ({ host, batch })));
  await run.each(batches, run.concurrency, async ({ host, batch }) => {
    if (run.isStopped()) {
      for (const id of batch) detailsErrors.set(id, run.stopped?.message ?? "stopped");
    } else {
      run.counters.requests.models++;
      try {
        const answer = await run.api.modelsByIds(host, batch);
        const wanted = new Set(batch);
        for (const model of Array.isArray(answer) ? answer : []) {
          if (isModel(model) && wanted.has(model.id) && !models.has(model.id)) models.set(model.id, leanModel(model));
        }
        // Civitai omits models it will not show (deleted, filtered): remember that, like any not-found.
        run.writeModels(batch.map((id) => ({ id, model: models.get(id) ?? null })));
      } catch (err) {
        const f = run.failure(err);
        for (const id of batch) detailsErrors.set(id, f.message);
      }
    }
    for (const id of batch) resolved(id);
  });
  attachModels(run, models, detailsErrors);
}

/** Each model id of a found candidate, with the host that found it (first one wins). */
function modelHosts(run: LookupRun): Map<number, string> {
  const hostOfModel = new Map<number, string>();
  for (const work of run.works) {
    if (work.entry.status !== "found") continue;
    for (const version of work.entry.versions) {
      if (version.modelId !== null && !hostOfModel.has(version.modelId)) {
        hostOfModel.set(version.modelId, work.entry.host ?? run.hosts.primary);
      }
    }
  }
  return hostOfModel;
}

/**
 * Which found files wait for which models: returns `resolved(id)`, which completes every file
 * whose last missing model that was. Files that need no model are complete at once.
 */
function completionTracker(run: LookupRun): (id: number) => void {
  const waiting = new Map<number, Work[]>();
  const missing = new Map<Work, number>();
  for (const work of run.works) {
    if (work.entry.status !== "found" || work.complete) continue;
    const ids = new Set(work.entry.versions.flatMap((v) => (v.modelId === null ? [] : [v.modelId])));
    if (ids.size === 0) {
      run.complete(work);
      continue;
    }
    missing.set(work, ids.size);
    for (const id of ids) {
      const list = waiting.get(id);
      if (list) list.push(work);
      else waiting.set(id, [work]);
    }
  }
  return (id) => {
    for (const work of waiting.get(id) ?? []) {
      const left = (missing.get(work) ?? 1) - 1;
      missing.set(work, left);
      if (left === 0) run.complete(work);
    }
    waiting.delete(id);
  };
}

/** Fills `models` from the cache; returns the ids still to ask, by host (none when offline). */
async function readCachedModels(
  run: LookupRun,
  ids: readonly number[],
  hostOfModel: ReadonlyMap<number, string>,
  models: Map<number, LeanModel>,
  resolved: (id: number) => void,
): Promise<Map<string, number[]>> {
  const cachedModels: (CachedModel | null)[] = [];
  for (const batch of chunk(ids, CACHE_READ_BATCH)) cachedModels.push(...(await run.cache.readModels(batch, run.readOptions)));
  const toFetch = new Map<string, number[]>();
  ids.forEach((id, i) => {
    const cached = cachedModels[i] ?? null;
    if (cached !== null) {
      run.counters.cacheHits++;
      if (cached.kind === "found") models.set(id, cached.model);
      resolved(id);
      return;
    }
    if (run.options.offline) return resolved(id);
    const host = hostOfModel.get(id) ?? run.hosts.primary;
    const list = toFetch.get(host);
    if (list) list.push(id);
    else toFetch.set(host, [id]);
  });
  return toFetch;
}

function attachModels(run: LookupRun, models: ReadonlyMap<number, LeanModel>, detailsErrors: ReadonlyMap<number, string>): void {
  for (const work of run.works) {
    if (work.entry.status !== "found") continue;
    for (const version of work.entry.versions) {
      if (version.modelId === null) continue;
      const model = models.get(version.modelId);
      if (model) work.entry.models.set(version.modelId, model);
      const detailsError = detailsErrors.get(version.modelId);
      if (detailsError !== undefined && work.entry.detailsError === undefined) work.entry.detailsError = detailsError;
    }
  }
}
