import { accessOf } from "../report/updates.ts";
import { markInOrder } from "../report/in-order.ts";
import { isCivitaiId, normalizeAutov3, normalizeSha256 } from "./cache-keys.ts";
import type { ApiFile, ApiModel, ApiModelVersion } from "./civitai-types.ts";
import type { LeanFile, LeanModel, LeanVersion } from "./lean.ts";
import type { Availability, CivitaiInfo, MatchedBy } from "../report/record-types.ts";
import { chooseImage } from "../preview/choose-preview.ts";
import { DEFAULT_NSFW_MASK } from "../preview/nsfw.ts";
import { isPlainObject } from "../shared/json-guard.ts";
import { AUTOV3_OF_EMPTY } from "../hash/hash-algos.ts";

/**
 * Civitai answers → our records. Raw answers are untrusted and drift (docs/civitai-api.md §1.4):
 * lean.ts checks every field once when an answer arrives; records are built from that lean form
 * here. The few helpers that still read raw answers (bulk mapping, downloads) check each type.
 */

// Links are built from ids on this origin, never from the API's `downloadUrl` (which carries the
// request's host, possibly `https://undefined`, and points at the primary file: docs/civitai-api.md §3.1, §4.4).
export const CIVITAI_ORIGIN = "https://civitai.com";

export interface CivitaiInfoOptions {
  autov3?: string;
  /** A short hash (AutoV1/V2/V3, CRC32) that was asked: its file is the matched one when no SHA-256 or AutoV3 names one. */
  shortHash?: string;
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
  return hex === null || hex === AUTOV3_OF_EMPTY ? null : hex;
}

/** The value of `hashes[name]` (key compared case-insensitively), lower-cased; null when absent. */
export function fileHash(file: ApiFile, name: string): string | null {
  const hashes = file.hashes;
  if (!isPlainObject(hashes)) return null;
  const wanted = name.toLowerCase();
  // for…in and a length check first, as leanFileHash: called for every file of every version of a
  // bulk answer (up to ~800,000 of them), where an array of entries per call was a quarter of the time.
  for (const key in hashes) {
    if (key.length !== wanted.length || !Object.hasOwn(hashes, key)) continue;
    const value = (hashes as Record<string, unknown>)[key];
    if (key.toLowerCase() === wanted && typeof value === "string") return value.toLowerCase();
  }
  return null;
}

export function versionFiles(version: ApiModelVersion): ApiFile[] {
  return Array.isArray(version.files) ? version.files.filter(isPlainObject) : [];
}

/** The value of `hashes[name]` of a lean file (key compared case-insensitively); null when absent. */
export function leanFileHash(file: LeanFile, name: string): string | null {
  const wanted = name.toLowerCase();
  const hashes = file.hashes;
  // for…in and a length check first: called for every candidate file of every lookup, no array per call.
  for (const key in hashes) {
    if (key.length === wanted.length && Object.hasOwn(hashes, key) && key.toLowerCase() === wanted) return hashes[key]!;
  }
  return null;
}

/**
 * The file of `version` that is ours: the one whose SHA-256 equals `sha256`, else the one whose
 * AutoV3 equals `autov3`. Never "the primary one" by default: a version may hold several files.
 */
export function findMatchedFile(
  version: LeanVersion,
  sha256: string | null,
  autov3?: string | null,
): { file: LeanFile; by: MatchedBy } | null {
  const sha = normalizeSha256(sha256);
  if (sha !== null) {
    const file = version.files.find((f) => leanFileHash(f, "SHA256") === sha);
    if (file) return { file, by: "sha256" };
  }
  const v3 = usableAutov3(autov3);
  if (v3 !== null) {
    const file = version.files.find((f) => leanFileHash(f, "AutoV3") === v3);
    if (file) return { file, by: "autov3" };
  }
  return null;
}

/** The hash types a short hex value of each length can be (docs/civitai-api.md §5). */
const SHORT_HASH_TYPES: Readonly<Record<number, readonly string[]>> = { 8: ["AutoV1", "CRC32"], 10: ["AutoV2"], 12: ["AutoV3"] };

/**
 * Whether a file of `version` carries the short hash `hash` (8, 10 or 12 hex) under a type of that
 * length. The single by-hash GET matches every type, so its answer is only a match when it says
 * which file has the hash; anything else (a broken mirror, a hostile server) must not pass for one.
 */
export function listsShortHash(version: LeanVersion, hash: string): boolean {
  return shortHashFile(version, hash) !== null;
}

/** The file of `version` that carries the short hash `hash` under a type of that length; null when none does. */
function shortHashFile(version: LeanVersion, hash: string): LeanFile | null {
  const wanted = hash.toLowerCase();
  const types = SHORT_HASH_TYPES[wanted.length] ?? [];
  return version.files.find((f) => types.some((t) => leanFileHash(f, t) === wanted)) ?? null;
}

/**
 * Availability facts of a version as records show them. `model` is the model's details when
 * fetched; its `mode` wins over the one by-hash carries.
 */
export function availabilityOf(version: LeanVersion, model: LeanModel | null, now: number): Availability {
  const mode = model?.mode ?? version.model.mode;
  const earlyEnds = [version.earlyAccessEndsAt, version.earlyAccessDeadline]
    .map((v) => (v === null ? Number.NaN : Date.parse(v)))
    .filter((t) => Number.isFinite(t));
  return {
    archived: mode === "Archived",
    takenDown: mode === "TakenDown",
    earlyAccess: version.availability === "EarlyAccess" || earlyEnds.some((t) => t > now),
    paidAccess: version.paidAccess !== null,
  };
}

/**
 * A record's `civitai` part from the lean form (lean.ts): nothing is converted here any more, the
 * description is already text. `model` is the version's model details, when fetched.
 */
export function toCivitaiInfo(
  version: LeanVersion,
  model: LeanModel | null,
  sha256: string | null,
  opts: CivitaiInfoOptions = {},
): CivitaiInfo {
  const versionId = version.id;
  const modelId = version.modelId ?? model?.id ?? null;
  // Details of another model (a caller mix-up) must not leak into this record.
  const details = model !== null && (modelId === null || model.id === modelId) ? model : null;
  const now = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  const matchedFile =
    findMatchedFile(version, sha256, opts.autov3)?.file ?? (opts.shortHash === undefined ? null : shortHashFile(version, opts.shortHash));
  // Laid out in the report's key order, with parts that are too (lean.ts parses them so), so the
  // JSON renderer takes it as it is (report/in-order.ts; checked by test/unit/report/in-order.test.ts).
  return markInOrder({
    modelId,
    modelName: details?.name ?? version.model.name,
    modelType: details?.type ?? version.model.type,
    versionId,
    versionName: version.name,
    baseModel: version.baseModel,
    baseModelType: version.baseModelType,
    trainedWords: version.trainedWords,
    nsfw: details?.nsfw ?? version.model.nsfw,
    nsfwLevel: version.nsfwLevel ?? details?.nsfwLevel ?? null,
    availability: availabilityOf(version, details, now),
    createdAt: version.createdAt,
    updatedAt: version.updatedAt,
    publishedAt: version.publishedAt,
    description: details?.description ?? version.description,
    creator: details?.creator ?? null,
    tags: details?.tags ?? [],
    license: details ? details.license : null,
    pageUrl: modelPageUrl(modelId, versionId),
    air: version.air,
    matchedFile,
    downloadUrl: matchedFile?.id != null ? fileDownloadUrl(versionId, matchedFile.id) : null,
    primaryDownloadUrl: primaryDownloadUrl(versionId),
    previewImageUrl: chooseImage(version.images, opts.nsfwMask ?? DEFAULT_NSFW_MASK).image?.url ?? null,
    images: version.images,
    access: accessOf(version, now),
  });
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
  // Version ids already listed per hash: a set, since a broken answer may list ~800,000 versions (64 MB).
  const listed = new Map<string, Set<number>>();
  for (const answer of Array.isArray(answers) ? answers : []) {
    if (!isVersion(answer)) continue;
    for (const file of versionFiles(answer)) {
      const sha = fileHash(file, "SHA256");
      if (sha === null || !wanted.has(sha)) continue;
      const ids = listed.get(sha) ?? new Set<number>();
      if (ids.has(answer.id)) continue;
      ids.add(answer.id);
      listed.set(sha, ids);
      const list = out.get(sha) ?? [];
      list.push(answer);
      out.set(sha, list);
    }
  }
  for (const list of out.values()) list.sort(compareCandidates);
  return out;
}

/** What candidate order reads: API versions and lean ones both have it. */
export interface CandidateOrder {
  id: number;
  publishedAt?: string | null;
}

/**
 * Civitai's own rule for a hash several versions share (by-hash `orderBy`, docs/civitai-api.md §1.1):
 * oldest `publishedAt` first (unknown last, as Postgres sorts NULLs), then lowest version id.
 */
export function compareCandidates(a: CandidateOrder, b: CandidateOrder): number {
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
  versions: readonly LeanVersion[],
  models: ReadonlyMap<number, LeanModel>,
  sha256: string | null,
  opts: CivitaiInfoOptions = {},
): CivitaiFields | null {
  const infos = versions.map((version) => {
    const model = version.modelId !== null ? (models.get(version.modelId) ?? null) : null;
    return toCivitaiInfo(version, model, sha256, opts);
  });
  const first = infos[0];
  if (first === undefined) return null;
  return infos.length > 1 ? { civitai: first, ambiguous: infos } : { civitai: first };
}
