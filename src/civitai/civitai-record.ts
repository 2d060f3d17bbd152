import { isCivitaiId, normalizeAutov3, normalizeSha256 } from "./cache-keys.ts";
import type { ApiFile, ApiModel, ApiModelVersion } from "./civitai-types.ts";
import { htmlToPlainText } from "./html-text.ts";
import type { Availability, CivitaiInfo, LicenseFlags, MatchedBy, MatchedFile } from "../report/record-types.ts";
import { chooseImage, previewCandidates, toCivitaiImages } from "../preview/choose-preview.ts";
import { DEFAULT_NSFW_MASK } from "../preview/nsfw.ts";
import { isPlainObject } from "../shared/json-guard.ts";

/**
 * Civitai answers → our records. Everything from Civitai is untrusted and drifts (docs/civitai-api.md
 * §1.4): every field may be missing, null or of another type, so each read checks its type.
 */

// Links are built from ids on this origin, never from the API's `downloadUrl` (which carries the
// request's host, possibly `https://undefined`, and points at the primary file: docs/civitai-api.md §3.1, §4.4).
export const CIVITAI_ORIGIN = "https://civitai.com";

/** SHA-256 of empty input, written as AutoV3 by some repackaging tools: shared by unrelated models. */
const PLACEHOLDER_AUTOV3 = "e3b0c44298fc";

export interface CivitaiInfoOptions {
  autov3?: string;
  /** Reference time for "early access still running"; defaults to the current time. */
  now?: Date | number;
  /** Ratings a preview may have (`--nsfw-level`, preview/nsfw.ts); default PG and PG-13. */
  nsfwMask?: number;
}

export function primaryDownloadUrl(versionId: number): string {
  return `${CIVITAI_ORIGIN}/api/download/models/${versionId}`;
}

/** `?fileId=` picks the exact file; the per-type query form is ambiguous (civitai/civitai#758). */
export function fileDownloadUrl(versionId: number, fileId: number): string {
  return `${primaryDownloadUrl(versionId)}?fileId=${fileId}`;
}

export function modelPageUrl(modelId: number | null, versionId: number): string {
  if (modelId === null) return `${CIVITAI_ORIGIN}/model-versions/${versionId}`; // redirects to the model page
  return `${CIVITAI_ORIGIN}/models/${modelId}?modelVersionId=${versionId}`;
}

/** A usable AutoV3 (12 hex, not the empty-input placeholder), lower-cased; else null. */
export function usableAutov3(value: unknown): string | null {
  const hex = normalizeAutov3(value);
  return hex === null || hex === PLACEHOLDER_AUTOV3 ? null : hex;
}

/** The value of `hashes[name]` (key compared case-insensitively), lower-cased; null when absent. */
export function fileHash(file: ApiFile, name: string): string | null {
  const hashes = file.hashes;
  if (!isPlainObject(hashes)) return null;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(hashes)) {
    if (key.toLowerCase() === wanted && typeof value === "string") return value.toLowerCase();
  }
  return null;
}

export function versionFiles(version: ApiModelVersion): ApiFile[] {
  return Array.isArray(version.files) ? version.files.filter(isPlainObject) : [];
}

/**
 * The file of `version` that is ours: the one whose SHA-256 equals `sha256`, else the one whose
 * AutoV3 equals `autov3`. Never "the primary one" by default: a version may hold several files.
 */
export function findMatchedFile(
  version: ApiModelVersion,
  sha256: string | null,
  autov3?: string | null,
): { file: ApiFile; by: MatchedBy } | null {
  const files = versionFiles(version);
  const sha = normalizeSha256(sha256);
  if (sha !== null) {
    const file = files.find((f) => fileHash(f, "SHA256") === sha);
    if (file) return { file, by: "sha256" };
  }
  const v3 = usableAutov3(autov3);
  if (v3 !== null) {
    const file = files.find((f) => fileHash(f, "AutoV3") === v3);
    if (file) return { file, by: "autov3" };
  }
  return null;
}

function toMatchedFile(file: ApiFile): MatchedFile {
  const metadata = isPlainObject(file.metadata) ? file.metadata : {};
  const hashes: Record<string, string> = {};
  if (isPlainObject(file.hashes)) {
    for (const [key, value] of Object.entries(file.hashes)) {
      if (typeof value === "string" && /^[0-9a-fA-F]{1,128}$/.test(value)) hashes[key] = value.toLowerCase();
    }
  }
  return {
    id: isCivitaiId(file.id) ? file.id : null,
    name: str(file.name),
    sizeKB: num(file.sizeKB),
    type: str(file.type),
    primary: file.primary === true,
    format: str(metadata.format),
    fp: str(metadata.fp),
    size: str(metadata.size),
    hashes,
  };
}

/** `allowCommercialUse` was a string (`"{Image,RentCivit}"`, `"Sell"`), now an array (docs/civitai-api.md §1.4). */
export function normalizeCommercialUse(value: unknown): string[] {
  let parts: unknown[];
  if (Array.isArray(value)) parts = value;
  else if (typeof value === "string") parts = value.replace(/^\s*\{|\}\s*$/g, "").split(",");
  else return [];
  const out: string[] = [];
  for (const part of parts) {
    if (typeof part !== "string") continue;
    const item = part.trim().replace(/^"|"$/g, "");
    // "None" was the old enum's "no commercial use": an empty list says the same.
    if (item === "" || item === "None" || out.includes(item)) continue;
    out.push(item);
  }
  return out;
}

/** Trimmed, de-duplicated, empties and non-strings dropped (trained words, tags). */
function cleanStringList(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const out: string[] = [];
  for (const word of value) {
    if (typeof word !== "string") continue;
    const trimmed = word.trim();
    if (trimmed !== "" && !out.includes(trimmed)) out.push(trimmed);
  }
  return out;
}

export function availabilityOf(version: ApiModelVersion, model: ApiModel | null, now: number): Availability {
  const mode = str(model?.mode) ?? str(version.model?.mode);
  const earlyEnds = [version.earlyAccessEndsAt, version.earlyAccessDeadline]
    .map((v) => (typeof v === "string" ? Date.parse(v) : Number.NaN))
    .filter((t) => Number.isFinite(t));
  return {
    archived: mode === "Archived",
    takenDown: mode === "TakenDown",
    earlyAccess: version.availability === "EarlyAccess" || earlyEnds.some((t) => t > now),
    paidAccess: isPlainObject(version.paidAccess),
  };
}

/** AIR as Civitai gives it; we do not rebuild one (the ecosystem part depends on a base-model table we do not have). */
function airOf(version: ApiModelVersion): string | null {
  const air = version.air;
  return typeof air === "string" && /^urn:air:[A-Za-z0-9._:@-]+$/.test(air) && air.length <= 200 ? air : null;
}

export function toCivitaiInfo(
  version: ApiModelVersion,
  model: ApiModel | null,
  sha256: string | null,
  opts: CivitaiInfoOptions = {},
): CivitaiInfo {
  const versionId = version.id;
  const modelId = isCivitaiId(version.modelId) ? version.modelId : isCivitaiId(model?.id) ? model.id : null;
  // Details of another model (a caller mix-up) must not leak into this record.
  const details = model !== null && isPlainObject(model) && (modelId === null || model.id === modelId) ? model : null;
  const versionModel = isPlainObject(version.model) ? version.model : {};
  const now = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  const matched = findMatchedFile(version, sha256, opts.autov3);
  const matchedFile = matched ? toMatchedFile(matched.file) : null;
  const images = previewCandidates(toCivitaiImages(version.images));
  return {
    modelId,
    modelName: str(details?.name) ?? str(versionModel.name),
    modelType: str(details?.type) ?? str(versionModel.type),
    versionId,
    versionName: str(version.name),
    baseModel: str(version.baseModel),
    baseModelType: str(version.baseModelType),
    trainedWords: cleanStringList(version.trainedWords),
    nsfw: bool(details?.nsfw) ?? bool(versionModel.nsfw),
    nsfwLevel: num(version.nsfwLevel) ?? num(details?.nsfwLevel),
    availability: availabilityOf(version, details, now),
    createdAt: str(version.createdAt),
    updatedAt: str(version.updatedAt),
    publishedAt: str(version.publishedAt),
    description: htmlToPlainText(str(details?.description)) ?? htmlToPlainText(str(version.description)),
    creator: details && isPlainObject(details.creator) ? str(details.creator.username) : null,
    tags: details && Array.isArray(details.tags) ? cleanStringList(details.tags) : [],
    license: details ? licenseOf(details) : null,
    pageUrl: modelPageUrl(modelId, versionId),
    air: airOf(version),
    matchedFile,
    downloadUrl: matchedFile?.id != null ? fileDownloadUrl(versionId, matchedFile.id) : null,
    primaryDownloadUrl: primaryDownloadUrl(versionId),
    previewImageUrl: chooseImage(images, opts.nsfwMask ?? DEFAULT_NSFW_MASK).image?.url ?? null,
    images,
  };
}

function licenseOf(model: ApiModel): LicenseFlags {
  return {
    allowNoCredit: bool(model.allowNoCredit),
    allowCommercialUse: normalizeCommercialUse(model.allowCommercialUse),
    allowDerivatives: bool(model.allowDerivatives),
    allowDifferentLicense: bool(model.allowDifferentLicense),
  };
}

/**
 * A bulk by-hash answer mapped back to the hashes asked (docs/civitai-api.md §3.1): the answer is
 * unordered, has one element per matching file (so repeats), may hold nulls, and names no input
 * hash, so each version is attributed through its `files[].hashes.SHA256`. A hash claimed by
 * several different versions gets all of them, in `compareCandidates` order. Hashes nothing
 * claims are absent from the map.
 */
export function mapBulkAnswer(answers: readonly unknown[], sha256s: readonly string[]): Map<string, ApiModelVersion[]> {
  const wanted = new Set<string>();
  for (const sha of sha256s) {
    const hex = normalizeSha256(sha);
    if (hex !== null) wanted.add(hex);
  }
  const out = new Map<string, ApiModelVersion[]>();
  for (const answer of Array.isArray(answers) ? answers : []) {
    if (!isVersion(answer)) continue;
    for (const file of versionFiles(answer)) {
      const sha = fileHash(file, "SHA256");
      if (sha === null || !wanted.has(sha)) continue;
      const list = out.get(sha) ?? [];
      if (!list.some((v) => v.id === answer.id)) list.push(answer);
      out.set(sha, list);
    }
  }
  for (const list of out.values()) list.sort(compareCandidates);
  return out;
}

/**
 * Civitai's own rule for a hash several versions share (by-hash `orderBy`, docs/civitai-api.md §1.1):
 * oldest `publishedAt` first (unknown last, as Postgres sorts NULLs), then lowest version id.
 */
export function compareCandidates(a: ApiModelVersion, b: ApiModelVersion): number {
  const ta = typeof a.publishedAt === "string" ? Date.parse(a.publishedAt) : Number.NaN;
  const tb = typeof b.publishedAt === "string" ? Date.parse(b.publishedAt) : Number.NaN;
  const fa = Number.isFinite(ta);
  const fb = Number.isFinite(tb);
  if (fa && fb && ta !== tb) return ta - tb;
  if (fa !== fb) return fa ? -1 : 1;
  return a.id - b.id;
}

/** The smallest shape we accept as a model version: an object with a valid id. */
export function isVersion(value: unknown): value is ApiModelVersion {
  return isPlainObject(value) && isCivitaiId((value as { id?: unknown }).id);
}

export function isModel(value: unknown): value is ApiModel {
  return isPlainObject(value) && isCivitaiId((value as { id?: unknown }).id);
}

export interface CivitaiFields {
  civitai: CivitaiInfo;
  /** Every candidate (first = `civitai`), set only when there are several. */
  ambiguous?: CivitaiInfo[];
}

/**
 * The `civitai` / `ambiguous` part of a FileRecord from a lookup's candidates (already in
 * candidate order) and whatever model details were fetched. Null when there is no candidate.
 */
export function toCivitaiFields(
  versions: readonly ApiModelVersion[],
  models: ReadonlyMap<number, ApiModel>,
  sha256: string | null,
  opts: CivitaiInfoOptions = {},
): CivitaiFields | null {
  const infos = versions.map((version) => {
    const model = isCivitaiId(version.modelId) ? (models.get(version.modelId) ?? null) : null;
    return toCivitaiInfo(version, model, sha256, opts);
  });
  const first = infos[0];
  if (first === undefined) return null;
  return infos.length > 1 ? { civitai: first, ambiguous: infos } : { civitai: first };
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function bool(value: unknown): boolean | null {
  return typeof value === "boolean" ? value : null;
}
