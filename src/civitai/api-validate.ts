/**
 * Shape checks for Civitai bodies. A 200 whose body fails them is treated like a transient failure
 * (docs/cases.md B5/B6): never returned, never cached. The checks are deliberately shallow: the
 * shape drifts (docs/civitai-api.md §1.4), so only what the callers rely on is required.
 */
import type { VersionIdMatch } from "./api-types.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import { isPlainObject } from "../shared/json-guard.ts";

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): ValidationResult<T> => ({ ok: true, value });
const bad = <T>(reason: string): ValidationResult<T> => ({ ok: false, reason });

function hasNumericId(value: Record<string, unknown>): boolean {
  return typeof value.id === "number" && Number.isFinite(value.id);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (isPlainObject(value)) {
    const keys = Object.keys(value).slice(0, 5);
    return keys.length ? `an object with keys ${keys.map((k) => JSON.stringify(k)).join(", ")}` : "an empty object";
  }
  return `a ${typeof value}`;
}

/** `files` and `images`, when present, must be arrays of objects: the lookup walks them. */
function checkVersionLists(value: Record<string, unknown>, where: string): string | undefined {
  for (const key of ["files", "images"] as const) {
    const list = value[key];
    if (list == null) continue;
    if (!Array.isArray(list)) return `${where}.${key} is ${describe(list)}, expected an array`;
    if (!list.every(isPlainObject)) return `${where}.${key} holds a non-object`;
  }
  if (value.model != null && !isPlainObject(value.model)) return `${where}.model is ${describe(value.model)}`;
  return undefined;
}

/** One model version (GET by-hash, /model-versions/{id}). */
export function validateVersion(data: unknown): ValidationResult<ApiModelVersion> {
  if (!isPlainObject(data)) return bad(`expected a model version object, got ${describe(data)}`);
  if (!hasNumericId(data)) return bad(`expected a model version with a numeric "id", got ${describe(data)}`);
  const problem = checkVersionLists(data, "version");
  return problem ? bad(problem) : ok(data as unknown as ApiModelVersion);
}

/** POST by-hash: an array whose elements are null or versions (docs/civitai-api.md §3.1). */
export function validateVersionList(data: unknown): ValidationResult<(ApiModelVersion | null)[]> {
  if (!Array.isArray(data)) return bad(`expected an array of model versions, got ${describe(data)}`);
  for (const [i, item] of data.entries()) {
    if (item === null) continue;
    const result = validateVersion(item);
    if (!result.ok) return bad(`element ${i}: ${result.reason}`);
  }
  return ok(data as (ApiModelVersion | null)[]);
}

/** POST by-hash/ids: `[{modelVersionId, modelId, hash}]` (docs/civitai-api.md §3.2). */
export function validateVersionIdList(data: unknown): ValidationResult<VersionIdMatch[]> {
  if (!Array.isArray(data)) return bad(`expected an array of {modelVersionId, hash}, got ${describe(data)}`);
  for (const [i, item] of data.entries()) {
    if (!isPlainObject(item) || typeof item.modelVersionId !== "number" || typeof item.hash !== "string") {
      return bad(`element ${i}: expected {modelVersionId, hash}, got ${describe(item)}`);
    }
  }
  return ok(data as VersionIdMatch[]);
}

/** One model (/models/{id}); `modelVersions`, when present, must be versions. */
export function validateModel(data: unknown): ValidationResult<ApiModel> {
  if (!isPlainObject(data)) return bad(`expected a model object, got ${describe(data)}`);
  if (!hasNumericId(data)) return bad(`expected a model with a numeric "id", got ${describe(data)}`);
  const versions = data.modelVersions;
  if (versions != null) {
    if (!Array.isArray(versions)) return bad(`model.modelVersions is ${describe(versions)}, expected an array`);
    for (const [i, v] of versions.entries()) {
      if (!isPlainObject(v) || !hasNumericId(v)) return bad(`model.modelVersions[${i}] has no numeric "id"`);
      const problem = checkVersionLists(v, `model.modelVersions[${i}]`);
      if (problem) return bad(problem);
    }
  }
  return ok(data as unknown as ApiModel);
}

/** /models?ids=…: `{items: [...], metadata}`; returns the items. */
export function validateModelPage(data: unknown): ValidationResult<ApiModel[]> {
  if (!isPlainObject(data)) return bad(`expected {"items": [...]}, got ${describe(data)}`);
  if (!Array.isArray(data.items)) return bad(`expected {"items": [...]}, got ${describe(data)}`);
  for (const [i, item] of data.items.entries()) {
    const result = validateModel(item);
    if (!result.ok) return bad(`items[${i}]: ${result.reason}`);
  }
  return ok(data.items as ApiModel[]);
}

/** What Civitai's error bodies carry (docs/civitai-api.md §4.1): `{error}`, `{message, error}`, `{code, message}`. */
export interface ApiErrorBody {
  error?: string;
  message?: string;
  code?: string;
}

/** Reads an error body leniently; undefined when it is not JSON or not an object. */
export function parseErrorBody(text: string | undefined): ApiErrorBody | undefined {
  if (!text) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isPlainObject(data)) return undefined;
  const str = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? v : undefined);
  return { error: str(data.error), message: str(data.message), code: str(data.code) };
}

/** The most useful sentence of an error body: `error`, then `message`. */
export function errorBodyText(body: ApiErrorBody | undefined): string | undefined {
  if (!body) return undefined;
  if (body.error && body.message && body.error !== body.message) return `${body.error}: ${body.message}`;
  return body.error ?? body.message;
}

/** What an HTML page most likely is, for the error message (docs/civitai-api.md §4.1). */
export type HtmlPageKind = "cloudflare-challenge" | "maintenance" | "html";

export function looksLikeHtml(contentType: string | null | undefined, body: string): boolean {
  if (contentType && /\btext\/html\b|application\/xhtml/i.test(contentType)) return true;
  return /^\s*<(?:!doctype|html|head|body)\b/i.test(body);
}

export function classifyHtml(body: string): HtmlPageKind {
  if (/just a moment|cf-chl|challenge-platform|cf-browser-verification|attention required|cloudflare/i.test(body))
    return "cloudflare-challenge";
  if (/maintenance|be back in a few|adjusting a few things/i.test(body)) return "maintenance";
  return "html";
}

const HEX_RE = /^[0-9a-f]+$/i;

/** A hash as by-hash accepts it in a URL path: hex only, so nothing can smuggle a path or query. */
export function isHexHash(value: string): boolean {
  return value.length >= 8 && value.length <= 128 && HEX_RE.test(value);
}

export function isSha256Hex(value: string): boolean {
  return value.length === 64 && HEX_RE.test(value);
}

/** Civitai's id range for models and versions (zod: positive int ≤ 2^31−1, docs/civitai-api.md §2.1). */
export function isCivitaiId(value: number): boolean {
  return Number.isInteger(value) && value > 0 && value <= 2_147_483_647;
}
