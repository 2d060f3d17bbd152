/**
 * The lean form of Civitai answers: what the metadata cache stores and what a lookup hands on,
 * instead of raw API objects (issue 11). Per version and per model it keeps what records use today
 * and what update, duplicate and "gone" reports need next (docs/civitai-api.md §1.2, §2.1); the
 * rest (image generation params, scan results, stats, download URLs) is dropped when the answer
 * arrives. Descriptions are turned into plain text once, here, never again per run.
 *
 * Two directions, both pure:
 * - `leanVersion` / `leanModel`: from an API answer (untrusted, drifting: every field checked,
 *   wrong types become null);
 * - `parseLeanVersion` / `parseLeanModel`: from stored JSON (ours, or another machine's through a
 *   shared store): strict, any field of the wrong type rejects the whole value.
 */
import { isCivitaiId } from "./cache-keys.ts";
import type { ApiFile, ApiModel, ApiModelVersion } from "./civitai-types.ts";
import { htmlToPlainText } from "./html-text.ts";
import { truncateText } from "../shared/format.ts";
import type { CivitaiImage, LicenseFlags, MatchedFile } from "../report/record-types.ts";
import { MAX_IMAGES_PER_VERSION, previewCandidates, toCivitaiImages } from "../preview/choose-preview.ts";

/** One file of a version: exactly the record's `matchedFile` shape (same keys, same order). */
export type LeanFile = MatchedFile;

interface LeanPaidAccess {
  permanent: boolean | null;
  endsAt: string | null;
}

/** `model` inside a by-hash answer. `mode` is "Archived" or "TakenDown", null on healthy models. */
interface LeanVersionModel {
  name: string | null;
  type: string | null;
  nsfw: boolean | null;
  poi: boolean | null;
  mode: string | null;
}

export interface LeanVersion {
  id: number;
  modelId: number | null;
  name: string | null;
  baseModel: string | null;
  baseModelType: string | null;
  trainedWords: string[];
  nsfwLevel: number | null;
  createdAt: string | null;
  updatedAt: string | null;
  publishedAt: string | null;
  /** Checked form (`urn:air:…`), else null: we never build one. */
  air: string | null;
  /** "Public", "EarlyAccess", … as Civitai says. */
  availability: string | null;
  /** Current early-access end; `earlyAccessEndsAt` is the older name (gone 2026-07, docs/civitai-api.md §1.4). */
  earlyAccessDeadline: string | null;
  earlyAccessEndsAt: string | null;
  paidAccess: LeanPaidAccess | null;
  usageControl: string | null;
  model: LeanVersionModel;
  /** Plain text (html-text.ts), cut to DESCRIPTION_MAX_CHARS. */
  description: string | null;
  files: LeanFile[];
  /** The preview candidates: the first still, rated image of each rating (≤ 5, choose-preview.ts). */
  images: CivitaiImage[];
}

/** One entry of a model's version list, in Civitai's order (the first is the latest). */
export interface LeanVersionSummary {
  id: number;
  name: string | null;
  baseModel: string | null;
  baseModelType: string | null;
  /** Civitai's `index` when it sends one (0 = latest). */
  index: number | null;
  status: string | null;
  availability: string | null;
  createdAt: string | null;
  publishedAt: string | null;
  earlyAccessDeadline: string | null;
  earlyAccessEndsAt: string | null;
  paidAccess: LeanPaidAccess | null;
  /** False when Civitai lists no file (archived models list none). */
  hasFiles: boolean;
}

export interface LeanModel {
  id: number;
  name: string | null;
  type: string | null;
  nsfw: boolean | null;
  nsfwLevel: number | null;
  poi: boolean | null;
  mode: string | null;
  creator: string | null;
  tags: string[];
  /** Plain text (html-text.ts), cut to DESCRIPTION_MAX_CHARS. */
  description: string | null;
  license: LicenseFlags;
  versions: LeanVersionSummary[];
}

/** More than this many files or versions in one answer is not Civitai (or not worth keeping). */
const MAX_FILES_PER_VERSION = 100;
const MAX_VERSIONS_PER_MODEL = 1000;
/**
 * A name, a date or any other short text from an answer is cut to this; a list of trained words,
 * tags or licence uses keeps this many. Far above anything Civitai holds, and what keeps a hostile
 * answer (a 5 MB model name, a million trigger words in a 64 MB body) from swelling every report
 * built from it (docs/cases.md B13).
 */
const MAX_TEXT_CHARS = 1000;
const MAX_LIST_ITEMS = 1000;
/** A stored entry's strings and lists (descriptions are cut to 2,000): longer is not one we wrote. */
const MAX_STORED_CHARS = 4096;

// A leading letter keeps `__proto__` and friends out.
const HASH_KEY_RE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
const HASH_VALUE_RE = /^[0-9a-fA-F]{1,128}$/;
/** As stored: lower-case only (leanFile lower-cases); anything else was not written by us. */
const STORED_HASH_RE = /^[0-9a-f]{1,128}$/;
const AIR_RE = /^urn:air:[A-Za-z0-9._:@-]+$/;

/** The order of a Civitai file's hashes in reports: the known names, then any other in byte order. */
export const CIVITAI_HASH_ORDER = ["SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3"] as const;
const HASH_RANK = new Map<string, number>(CIVITAI_HASH_ORDER.map((name, i) => [name, i]));

/**
 * `hashes` in CIVITAI_HASH_ORDER: the object itself when it already is (entries written since this
 * order was kept), else an ordered copy (Civitai answers AutoV1, AutoV2, SHA256, …). Keys are
 * HASH_KEY_RE names (ASCII), so `<` is byte order.
 */
function inHashOrder(hashes: Record<string, string>): Record<string, string> {
  const keys = Object.keys(hashes);
  const rank = (key: string) => HASH_RANK.get(key) ?? CIVITAI_HASH_ORDER.length;
  const before = (a: string, b: string) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
  if (keys.every((key, i) => i === 0 || before(keys[i - 1]!, key) < 0)) return hashes;
  const out: Record<string, string> = {};
  for (const key of keys.sort(before)) out[key] = hashes[key]!;
  return out;
}

// --- from API answers --------------------------------------------------------------------------

/** The lean form of one API version (any shape: what is not of the expected type becomes null). */
export function leanVersion(version: ApiModelVersion): LeanVersion {
  const m = isObject(version.model) ? version.model : {};
  const files: LeanFile[] = [];
  if (Array.isArray(version.files)) {
    for (const file of version.files) {
      if (files.length >= MAX_FILES_PER_VERSION) break;
      if (isObject(file)) files.push(leanFile(file));
    }
  }
  return {
    id: version.id,
    modelId: isCivitaiId(version.modelId) ? version.modelId : null,
    name: str(version.name),
    baseModel: str(version.baseModel),
    baseModelType: str(version.baseModelType),
    trainedWords: cleanStringList(version.trainedWords),
    nsfwLevel: num(version.nsfwLevel),
    createdAt: str(version.createdAt),
    updatedAt: str(version.updatedAt),
    publishedAt: str(version.publishedAt),
    air: airOf(version.air),
    availability: str(version.availability),
    earlyAccessDeadline: str(version.earlyAccessDeadline),
    earlyAccessEndsAt: str(version.earlyAccessEndsAt),
    paidAccess: paidAccessOf(version.paidAccess),
    usageControl: str(version.usageControl),
    model: { name: str(m.name), type: str(m.type), nsfw: bool(m.nsfw), poi: bool(m.poi), mode: str(m.mode) },
    description: htmlToPlainText(rawStr(version.description)),
    files,
    images: previewCandidates(toCivitaiImages(version.images)),
  };
}

/** The record's `matchedFile` of one API file: hex hashes lower-cased, other values dropped. */
function leanFile(file: ApiFile): LeanFile {
  const metadata = isObject(file.metadata) ? file.metadata : {};
  const hashes: Record<string, string> = {};
  if (isObject(file.hashes)) {
    for (const [key, value] of Object.entries(file.hashes)) {
      if (HASH_KEY_RE.test(key) && typeof value === "string" && HASH_VALUE_RE.test(value)) hashes[key] = value.toLowerCase();
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
    hashes: inHashOrder(hashes),
  };
}

/** The lean form of one API model, its versions summarised in Civitai's order. */
export function leanModel(model: ApiModel): LeanModel {
  const versions: LeanVersionSummary[] = [];
  if (Array.isArray(model.modelVersions)) {
    for (const v of model.modelVersions) {
      if (versions.length >= MAX_VERSIONS_PER_MODEL) break;
      if (!isObject(v) || !isCivitaiId(v.id)) continue;
      versions.push({
        id: v.id,
        name: str(v.name),
        baseModel: str(v.baseModel),
        baseModelType: str(v.baseModelType),
        index: nonNegativeInt((v as { index?: unknown }).index),
        status: str(v.status),
        availability: str(v.availability),
        createdAt: str(v.createdAt),
        publishedAt: str(v.publishedAt),
        earlyAccessDeadline: str(v.earlyAccessDeadline),
        earlyAccessEndsAt: str(v.earlyAccessEndsAt),
        paidAccess: paidAccessOf(v.paidAccess),
        hasFiles: Array.isArray(v.files) && v.files.some(isObject),
      });
    }
  }
  return {
    id: model.id,
    name: str(model.name),
    type: str(model.type),
    nsfw: bool(model.nsfw),
    nsfwLevel: num(model.nsfwLevel),
    poi: bool(model.poi),
    mode: str(model.mode),
    creator: isObject(model.creator) ? str(model.creator.username) : null,
    tags: Array.isArray(model.tags) ? cleanStringList(model.tags) : [],
    description: htmlToPlainText(rawStr(model.description)),
    license: {
      allowNoCredit: bool(model.allowNoCredit),
      allowCommercialUse: normalizeCommercialUse(model.allowCommercialUse),
      allowDerivatives: bool(model.allowDerivatives),
      allowDifferentLicense: bool(model.allowDifferentLicense),
    },
    versions,
  };
}

/** `allowCommercialUse` was a string (`"{Image,RentCivit}"`, `"Sell"`), now an array (docs/civitai-api.md §1.4). */
export function normalizeCommercialUse(value: unknown): string[] {
  let parts: unknown[];
  if (Array.isArray(value)) parts = value;
  else if (typeof value === "string") parts = value.replace(/^\s*\{|\}\s*$/g, "").split(",");
  else return [];
  const out = new Set<string>();
  for (const part of parts) {
    if (out.size >= MAX_LIST_ITEMS) break;
    if (typeof part !== "string") continue;
    const item = truncateText(part.trim().replace(/^"|"$/g, ""), MAX_TEXT_CHARS);
    // "None" was the old enum's "no commercial use": an empty list says the same.
    if (item === "" || item === "None") continue;
    out.add(item);
  }
  return [...out];
}

/**
 * Trimmed, de-duplicated, empties and non-strings dropped (trained words, tags); the first
 * MAX_LIST_ITEMS kept, each cut to MAX_TEXT_CHARS. A Set, not a scan of the list per word: that
 * took 2 s for 40,000 words, and a hostile answer can hold millions (docs/cases.md B13).
 */
function cleanStringList(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const seen = new Set<string>();
  for (const word of value) {
    if (seen.size >= MAX_LIST_ITEMS) break;
    if (typeof word !== "string") continue;
    const trimmed = truncateText(word.trim(), MAX_TEXT_CHARS);
    if (trimmed !== "") seen.add(trimmed);
  }
  return [...seen];
}

/** AIR as Civitai gives it; we do not rebuild one (the ecosystem part depends on a base-model table we do not have). */
function airOf(air: unknown): string | null {
  return typeof air === "string" && AIR_RE.test(air) && air.length <= 200 ? air : null;
}

function paidAccessOf(value: unknown): LeanPaidAccess | null {
  if (!isObject(value)) return null;
  return { permanent: bool(value.permanent), endsAt: str(value.endsAt) };
}

// --- from stored JSON (strict) -------------------------------------------------------------------

/** A stored lean version, rebuilt field by field; null when any field is missing or of the wrong type. */
export function parseLeanVersion(value: unknown): LeanVersion | null {
  if (!isObject(value) || !isCivitaiId(value.id)) return null;
  const v = value;
  const model = isObject(v.model) ? v.model : null;
  if (model === null) return null;
  const files = listOf(v.files, parseLeanFile, MAX_FILES_PER_VERSION);
  const images = listOf(v.images, parseImage, MAX_IMAGES_PER_VERSION);
  const trainedWords = stringList(v.trainedWords);
  const paidAccess = v.paidAccess == null ? null : parsePaidAccess(v.paidAccess);
  if (files === null || images === null || trainedWords === null || paidAccess === undefined) return null;
  if (v.modelId != null && !isCivitaiId(v.modelId)) return null;
  if (v.air != null && airOf(v.air) === null) return null;
  if (v.nsfwLevel != null && num(v.nsfwLevel) === null) return null;
  const strings = ["name", "baseModel", "baseModelType", "createdAt", "updatedAt", "publishedAt", "availability"] as const;
  const more = ["earlyAccessDeadline", "earlyAccessEndsAt", "usageControl", "description"] as const;
  if (![...strings, ...more].every((k) => isStrOrNull(v[k]))) return null;
  if (!["name", "type", "mode"].every((k) => isStrOrNull(model[k])) || !isBoolOrNull(model.nsfw) || !isBoolOrNull(model.poi)) return null;
  return {
    id: v.id as number,
    modelId: (v.modelId ?? null) as number | null,
    name: (v.name ?? null) as string | null,
    baseModel: (v.baseModel ?? null) as string | null,
    baseModelType: (v.baseModelType ?? null) as string | null,
    trainedWords,
    nsfwLevel: (v.nsfwLevel ?? null) as number | null,
    createdAt: (v.createdAt ?? null) as string | null,
    updatedAt: (v.updatedAt ?? null) as string | null,
    publishedAt: (v.publishedAt ?? null) as string | null,
    air: (v.air ?? null) as string | null,
    availability: (v.availability ?? null) as string | null,
    earlyAccessDeadline: (v.earlyAccessDeadline ?? null) as string | null,
    earlyAccessEndsAt: (v.earlyAccessEndsAt ?? null) as string | null,
    paidAccess,
    usageControl: (v.usageControl ?? null) as string | null,
    model: {
      name: (model.name ?? null) as string | null,
      type: (model.type ?? null) as string | null,
      nsfw: (model.nsfw ?? null) as boolean | null,
      poi: (model.poi ?? null) as boolean | null,
      mode: (model.mode ?? null) as string | null,
    },
    description: (v.description ?? null) as string | null,
    files,
    images,
  };
}

function parseLeanFile(value: unknown): LeanFile | null {
  if (!isObject(value)) return null;
  const f = value;
  if (f.id != null && !isCivitaiId(f.id)) return null;
  if (f.sizeKB != null && num(f.sizeKB) === null) return null;
  if (typeof f.primary !== "boolean" || (f.hashes !== undefined && !isObject(f.hashes))) return null;
  if (!["name", "type", "format", "fp", "size"].every((k) => isStrOrNull(f[k]))) return null;
  // Checked in place, not copied (copying is most of the cost of reading an entry): every key and
  // value is of the stored form, so the parsed object is kept as it is.
  const hashes = (f.hashes ?? {}) as Record<string, string>;
  for (const key in hashes) {
    const hash = hashes[key];
    if (!Object.hasOwn(hashes, key) || !HASH_KEY_RE.test(key) || typeof hash !== "string" || !STORED_HASH_RE.test(hash)) return null;
  }
  return {
    id: (f.id ?? null) as number | null,
    name: (f.name ?? null) as string | null,
    sizeKB: (f.sizeKB ?? null) as number | null,
    type: (f.type ?? null) as string | null,
    primary: f.primary,
    format: (f.format ?? null) as string | null,
    fp: (f.fp ?? null) as string | null,
    size: (f.size ?? null) as string | null,
    hashes: inHashOrder(hashes),
  };
}

function parseImage(value: unknown): CivitaiImage | null {
  // toCivitaiImages checks URL, rating and sizes the same way as for an API answer.
  const [image] = toCivitaiImages([value]);
  if (image === undefined || !isObject(value)) return null;
  const same =
    value.url === image.url &&
    (value.nsfwLevel ?? null) === image.nsfwLevel &&
    (value.width ?? null) === image.width &&
    (value.height ?? null) === image.height &&
    (value.type ?? null) === image.type;
  return same ? image : null;
}

/** A stored lean model; null when any field is missing or of the wrong type. */
export function parseLeanModel(value: unknown): LeanModel | null {
  if (!isObject(value) || !isCivitaiId(value.id)) return null;
  const m = value;
  const tags = stringList(m.tags);
  const license = isObject(m.license) ? m.license : null;
  const versions = listOf(m.versions, parseSummary, MAX_VERSIONS_PER_MODEL);
  if (tags === null || license === null || versions === null) return null;
  const commercial = stringList(license.allowCommercialUse);
  if (commercial === null) return null;
  if (!["allowNoCredit", "allowDerivatives", "allowDifferentLicense"].every((k) => isBoolOrNull(license[k]))) return null;
  if (!["name", "type", "mode", "creator", "description"].every((k) => isStrOrNull(m[k]))) return null;
  if (!isBoolOrNull(m.nsfw) || !isBoolOrNull(m.poi) || (m.nsfwLevel != null && num(m.nsfwLevel) === null)) return null;
  return {
    id: m.id as number,
    name: (m.name ?? null) as string | null,
    type: (m.type ?? null) as string | null,
    nsfw: (m.nsfw ?? null) as boolean | null,
    nsfwLevel: (m.nsfwLevel ?? null) as number | null,
    poi: (m.poi ?? null) as boolean | null,
    mode: (m.mode ?? null) as string | null,
    creator: (m.creator ?? null) as string | null,
    tags,
    description: (m.description ?? null) as string | null,
    license: {
      allowNoCredit: (license.allowNoCredit ?? null) as boolean | null,
      allowCommercialUse: commercial,
      allowDerivatives: (license.allowDerivatives ?? null) as boolean | null,
      allowDifferentLicense: (license.allowDifferentLicense ?? null) as boolean | null,
    },
    versions,
  };
}

function parseSummary(value: unknown): LeanVersionSummary | null {
  if (!isObject(value) || !isCivitaiId(value.id) || typeof value.hasFiles !== "boolean") return null;
  const s = value;
  const keys = ["name", "baseModel", "baseModelType", "status", "availability", "createdAt", "publishedAt"] as const;
  if (![...keys, "earlyAccessDeadline", "earlyAccessEndsAt"].every((k) => isStrOrNull(s[k]))) return null;
  if (s.index != null && nonNegativeInt(s.index) === null) return null;
  const paidAccess = s.paidAccess == null ? null : parsePaidAccess(s.paidAccess);
  if (paidAccess === undefined) return null;
  return {
    id: s.id as number,
    name: (s.name ?? null) as string | null,
    baseModel: (s.baseModel ?? null) as string | null,
    baseModelType: (s.baseModelType ?? null) as string | null,
    index: (s.index ?? null) as number | null,
    status: (s.status ?? null) as string | null,
    availability: (s.availability ?? null) as string | null,
    createdAt: (s.createdAt ?? null) as string | null,
    publishedAt: (s.publishedAt ?? null) as string | null,
    earlyAccessDeadline: (s.earlyAccessDeadline ?? null) as string | null,
    earlyAccessEndsAt: (s.earlyAccessEndsAt ?? null) as string | null,
    paidAccess,
    hasFiles: s.hasFiles,
  };
}

/** undefined when not a stored paid-access object. */
function parsePaidAccess(value: unknown): LeanPaidAccess | undefined {
  if (!isObject(value) || !isBoolOrNull(value.permanent) || !isStrOrNull(value.endsAt)) return undefined;
  return { permanent: (value.permanent ?? null) as boolean | null, endsAt: (value.endsAt ?? null) as string | null };
}

function listOf<T>(value: unknown, parse: (item: unknown) => T | null, max: number): T[] | null {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > max) return null;
  const out: T[] = [];
  for (const item of value) {
    const parsed = parse(item);
    if (parsed === null) return null;
    out.push(parsed);
  }
  return out;
}

function stringList(value: unknown): string[] | null {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_LIST_ITEMS) return null;
  if (!value.every((s) => typeof s === "string" && s.length <= MAX_STORED_CHARS)) return null;
  return value as string[];
}

// --- small readers -------------------------------------------------------------------------------

export function isObject(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short text of an answer, cut to MAX_TEXT_CHARS. */
function str(value: unknown): string | null {
  return typeof value === "string" ? truncateText(value, MAX_TEXT_CHARS) : null;
}

/** A description as sent: html-text.ts bounds its input and cuts its output. */
function rawStr(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function bool(value: unknown): boolean | null {
  return typeof value === "boolean" ? value : null;
}

function nonNegativeInt(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : null;
}

// Stored entries leave out nulls (leanReplacer): absent reads as null.
function isStrOrNull(value: unknown): boolean {
  return value == null || (typeof value === "string" && value.length <= MAX_STORED_CHARS);
}

function isBoolOrNull(value: unknown): boolean {
  return value == null || typeof value === "boolean";
}

/**
 * JSON.stringify replacer for stored entries: members of nested objects that are null are left
 * out (the lean parsers read absent as null), which makes an entry about a third smaller. The
 * top-level object (the entry's envelope) keeps its nulls: there, null is a value.
 */
export function leanReplacer(this: unknown, key: string, value: unknown): unknown {
  if (key === "" || !isObject(value)) return value;
  let hasNull = false;
  for (const k in value) if (value[k] === null) hasNull = true;
  if (!hasNull) return value;
  const out: Record<string, unknown> = {};
  for (const k in value) if (value[k] !== null) out[k] = value[k];
  return out;
}
