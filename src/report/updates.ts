/**
 * "A newer version exists" (issue 12, point 1), from the model's versions list that the details
 * request already brought (no extra request). Pure.
 *
 * The update users ask for is the newest version **for the file's own base model**: a new version
 * for another base model (an SDXL release of an SD 1.5 LoRA) is the false alarm peers are blamed
 * for (ComfyUI-Lora-Manager#778, Civitai-Helper#295). The newest overall is reported apart.
 *
 * Which version is newer is decided only on evidence, never on a list's position: the same kind
 * of date on both (`publishedAt`, else `createdAt`), else Civitai's `index` (0 = first shown,
 * the latest unless the creator reordered the versions). Without either, nothing is claimed.
 * Versions without files (archived) or not `Published` are never offered.
 */
import type { FileRecord } from "./record-types.ts";
import type { LeanVersionSummary } from "../civitai/lean.ts";
import { isPlainObject } from "../shared/json-guard.ts";

/** Early or paid access of a version, as Civitai declares it (docs/civitai-api.md §1.2, §1.4). */
export interface AccessInfo {
  /** `early_access`: free for everyone from `endsAt` on; `paid`: paid access, `permanent` or until `endsAt`. */
  kind: "early_access" | "paid";
  /** When it ends (ISO 8601 as Civitai wrote it); null when Civitai gives no end. */
  endsAt: string | null;
  /** Paid access that never ends. */
  permanent: boolean;
}

/** A version newer than the file's. */
export interface NewerVersion {
  versionId: number;
  name: string | null;
  baseModel: string | null;
  /** When Civitai published it (else created it); null when it says neither. */
  publishedAt: string | null;
  /** Early or paid access still running when the inventory was written; null: free to download. */
  access: AccessInfo | null;
  /** Files of this library that already hold this version (first 20 by path): then there is nothing to fetch. */
  inLibrary: string[];
  pageUrl: string;
}

/** `record.update`: set when the model has a version newer than the file's. */
export interface UpdateInfo {
  /** The newest version for the file's base model, when newer than the file's; null when there is none (or the base model is unknown). */
  sameBaseModel: NewerVersion | null;
  /** The newest version of the model, whatever its base model. */
  newest: NewerVersion;
}

/** The fields of one entry of a model's versions list that the decision reads. */
export type VersionSummary = Omit<LeanVersionSummary, "baseModelType">;

/** The file's own version as the record knows it (its entry in the list may be missing). */
export interface OwnVersion {
  modelId: number | null;
  versionId: number;
  baseModel: string | null;
  publishedAt: string | null;
  createdAt: string | null;
}

function time(value: string | null | undefined): number | null {
  if (typeof value !== "string") return null;
  const t = Date.parse(value);
  return Number.isFinite(t) ? t : null;
}

/**
 * The access that still runs at `now`: paid access (permanent, or until a future `endsAt`), else
 * early access until `earlyAccessDeadline` (today's name) or `earlyAccessEndsAt` (the older one);
 * `availability: "EarlyAccess"` without a date counts as early access of unknown end. A date in
 * the past wins over the flag: it is over.
 */
export function accessOf(
  version: Pick<VersionSummary, "availability" | "earlyAccessDeadline" | "earlyAccessEndsAt" | "paidAccess">,
  now: number,
): AccessInfo | null {
  const paid = version.paidAccess;
  if (paid && isPlainObject(paid)) {
    const permanent = paid.permanent === true;
    const ends = time(paid.endsAt);
    if (permanent || ends === null || ends > now) return { kind: "paid", endsAt: permanent ? null : (paid.endsAt ?? null), permanent };
  }
  const deadline = version.earlyAccessDeadline ?? version.earlyAccessEndsAt ?? null;
  const ends = time(deadline);
  if (ends !== null) return ends > now ? { kind: "early_access", endsAt: deadline, permanent: false } : null;
  return version.availability === "EarlyAccess" ? { kind: "early_access", endsAt: null, permanent: false } : null;
}

type Dated = { index: number | null; publishedAt: string | null; createdAt: string | null };

/**
 * Negative when `a` is newer than `b`, positive when older, 0 when equal, null when there is no
 * evidence either way (no date of the same kind on both, no index on both).
 *
 * Dates first (`publishedAt`, then `createdAt`), Civitai's `index` only when they are missing or
 * equal: the index is the order the creator chose (a reorder writes the dragged order as `index`,
 * docs/civitai-api.md §2.1), so an older "recommended" version pinned at index 0 is not newer.
 */
export function compareNewer(a: Dated, b: Dated): number | null {
  let equal = false;
  for (const key of ["publishedAt", "createdAt"] as const) {
    const ta = time(a[key]);
    const tb = time(b[key]);
    if (ta === null || tb === null) continue;
    if (ta !== tb) return tb - ta;
    equal = true;
  }
  if (a.index !== null && b.index !== null) return a.index - b.index;
  return equal ? 0 : null;
}

/** The newest of `list` (its first on ties and where there is no evidence). */
function newestOf<T extends Dated>(list: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const v of list) if (best === undefined || (compareNewer(v, best) ?? 0) < 0) best = v;
  return best;
}

function offerable(v: VersionSummary): boolean {
  return v.hasFiles && (v.status === null || v.status === "Published");
}

function toNewer(v: VersionSummary, modelId: number, now: number): NewerVersion {
  return {
    versionId: v.id,
    name: v.name,
    baseModel: v.baseModel,
    publishedAt: v.publishedAt ?? v.createdAt,
    access: accessOf(v, now),
    inLibrary: [],
    pageUrl: `https://civitai.com/models/${modelId}?modelVersionId=${v.id}`,
  };
}

/**
 * The update of a file whose version is `own`, from its model's `versions` (any order). Null when
 * no offered version is provably newer. `inLibrary` is left empty: library-facts.ts fills it.
 */
export function findUpdate(own: OwnVersion, versions: readonly VersionSummary[], now: number): UpdateInfo | null {
  if (own.modelId === null || versions.length === 0) return null;
  const listed = versions.find((v) => v.id === own.versionId);
  const self: Dated = {
    index: listed?.index ?? null,
    publishedAt: own.publishedAt ?? listed?.publishedAt ?? null,
    createdAt: own.createdAt ?? listed?.createdAt ?? null,
  };
  const newer = versions.filter((v) => v.id !== own.versionId && offerable(v) && (compareNewer(v, self) ?? 0) < 0);
  const newest = newestOf(newer);
  if (!newest) return null;
  const base = own.baseModel;
  const sameBase = base === null ? undefined : newestOf(newer.filter((v) => v.baseModel === base));
  return {
    sameBaseModel: sameBase ? toNewer(sameBase, own.modelId, now) : null,
    newest: toNewer(newest, own.modelId, now),
  };
}

function newerVersionOf(value: unknown): { versionId: number; name: string | null; inLibrary: unknown } | null {
  if (!isPlainObject(value) || typeof value.versionId !== "number") return null;
  return { versionId: value.versionId, name: typeof value.name === "string" ? value.name : null, inLibrary: value.inLibrary };
}

/**
 * The version to fetch that a record announces: its same-base-model update when the library does
 * not hold it already; else null. Read by shape (the record may come from a hand-edited file).
 */
export function updateToFetch(record: Pick<FileRecord, "update">): { versionId: number; name: string | null } | null {
  const update = record.update as unknown;
  if (!isPlainObject(update)) return null;
  const same = newerVersionOf(update.sameBaseModel);
  if (!same || (Array.isArray(same.inLibrary) && same.inLibrary.length > 0)) return null;
  return { versionId: same.versionId, name: same.name };
}
