/**
 * A by-hash version object (docs/civitai-api.md §1.2) rebuilt from the lean form, for files other
 * tools read (`.civitai.info`, docs/sidecars.md §2): Civitai's field names and order, hashes
 * upper-case as Civitai writes them, download URLs built from ids (never an answer's host). What
 * the lean form does not keep (image generation parameters, scan results, stats) is absent, and
 * `description` is plain text (CHz strips the HTML too). Pure.
 */
import { fileDownloadUrl, primaryDownloadUrl } from "./civitai-record.ts";
import type { LeanModel, LeanVersion } from "./lean.ts";

export function versionObject(version: LeanVersion, model: LeanModel | null): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: version.id,
    modelId: version.modelId,
    name: version.name,
    nsfwLevel: version.nsfwLevel,
    createdAt: version.createdAt,
    updatedAt: version.updatedAt,
    publishedAt: version.publishedAt,
    availability: version.availability,
    trainedWords: version.trainedWords,
    baseModel: version.baseModel,
    baseModelType: version.baseModelType,
    description: version.description,
    usageControl: version.usageControl,
    paidAccess: version.paidAccess,
    ...(version.earlyAccessDeadline !== null ? { earlyAccessDeadline: version.earlyAccessDeadline } : {}),
    ...(version.earlyAccessEndsAt !== null ? { earlyAccessEndsAt: version.earlyAccessEndsAt } : {}),
    air: version.air,
    model: modelPart(version, model),
    files: version.files.map((f) => ({
      id: f.id,
      sizeKB: f.sizeKB,
      name: f.name,
      type: f.type,
      metadata: { format: f.format, size: f.size, fp: f.fp },
      hashes: Object.fromEntries(Object.entries(f.hashes).map(([k, v]) => [k, v.toUpperCase()])),
      primary: f.primary,
      downloadUrl: f.id === null ? null : fileDownloadUrl(version.id, f.id),
    })),
    images: version.images,
    downloadUrl: primaryDownloadUrl(version.id),
  };
  if (model?.creator) out.creator = { username: model.creator };
  return out;
}

/** `model` as by-hash gives it, with (when details were fetched) the model's own fields merged in, as CHz does. */
function modelPart(version: LeanVersion, model: LeanModel | null): Record<string, unknown> {
  const m = version.model;
  const out: Record<string, unknown> = {
    name: m.name,
    type: m.type,
    nsfw: m.nsfw,
    poi: m.poi,
    ...(m.mode !== null ? { mode: m.mode } : {}),
  };
  if (!model || (version.modelId !== null && model.id !== version.modelId)) return out;
  return {
    ...out,
    name: model.name ?? m.name,
    type: model.type ?? m.type,
    nsfw: model.nsfw ?? m.nsfw,
    poi: model.poi ?? m.poi,
    description: model.description,
    tags: model.tags,
    ...model.license,
  };
}
