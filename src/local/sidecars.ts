/**
 * Reads the files other tools leave beside a model (docs/sidecars.md §1–§4) into one shape,
 * labelled with where each came from. They are hints written by other programs from Civitai data:
 * every string is cut, every hash shape-checked, unknown keys ignored, and a hash they claim is
 * for the caller to confirm against its own.
 */
import { AUTOV3_OF_EMPTY, HASH_HEX_LENGTH } from "../hash/hash-algos.ts";
import { cutText, isPlainObject, own, parseJsonGuarded } from "../shared/json-guard.ts";
import { basenamePath } from "../shared/fs-path.ts";
import type { SidecarFileHashes, SidecarInfo, SidecarSource } from "./local-types.ts";

/** Largest sidecar read: LM files with a full version object and image lists stay well under. */
export const SIDECAR_MAX_BYTES = 16 * 1024 * 1024;
/** Descriptions are HTML and often long; other strings use the usual 1,000-character cut. */
const SIDECAR_DESCRIPTION_MAX_CHARS = 10_000;
const LIST_MAX_ITEMS = 200;
const FILES_MAX = 50;

/** How a sidecar is recognised: by its name beside the model. */
export type SidecarKind = "civitai-info" | "lora-manager" | "stability-matrix" | "json";

/** Longest first: `x.metadata.json` must not be taken for A1111's `x.json` of another model. */
const SIDECAR_SUFFIXES: readonly { suffix: string; kind: SidecarKind }[] = [
  { suffix: ".civitai.info", kind: "civitai-info" },
  { suffix: ".metadata.json", kind: "lora-manager" },
  { suffix: ".cm-info.json", kind: "stability-matrix" },
  { suffix: ".json", kind: "json" },
];

/** `<dir>/<base>.safetensors` → `<dir>/<base>`: the stem every sidecar and preview name starts with. */
export function modelBasePath(modelPath: string): string {
  const slash = Math.max(modelPath.lastIndexOf("/"), modelPath.lastIndexOf("\\"));
  const dot = modelPath.lastIndexOf(".");
  return dot > slash + 1 ? modelPath.slice(0, dot) : modelPath;
}

/**
 * Whether a folder listing (names only) holds a sidecar of `modelPath`: one of its sidecar names,
 * other than the model's own.
 */
export function hasListedSidecar(listed: readonly string[], modelPath: string): boolean {
  return listed.length > 0 && listedSidecars(listed, modelPath).length > 0;
}

/** The sidecar names of `modelPath` (other than its own name) that a folder listing holds, in sidecarPaths order. */
export function listedSidecars(listed: readonly string[], modelPath: string): string[] {
  const out: string[] = [];
  if (listed.length === 0) return out;
  const names = listedSet(listed);
  const modelName = basenamePath(modelPath);
  for (const { path } of sidecarPaths(modelPath)) {
    const name = basenamePath(path);
    if (name !== modelName && (names ? names.has(name) : listed.includes(name))) out.push(name);
  }
  return out;
}

/** Whether a folder listing holds `name`: by its set (made once) when the listing is long. */
export function listingHas(listed: readonly string[], name: string): boolean {
  const names = listedSet(listed);
  return names ? names.has(name) : listed.includes(name);
}

/**
 * A long listing as a set, made once per listing: a folder where every model has its sidecars
 * lists ~1,000 names, asked about by each of its ~500 models.
 */
const listedSets = new WeakMap<readonly string[], ReadonlySet<string>>();
function listedSet(listed: readonly string[]): ReadonlySet<string> | null {
  if (listed.length < 16) return null;
  let names = listedSets.get(listed);
  if (!names) listedSets.set(listed, (names = new Set(listed)));
  return names;
}

/** `<dir>/<base>.safetensors` → the sidecar paths to try (`<dir>/<base>.civitai.info`, …). */
export function sidecarPaths(modelPath: string): { path: string; kind: SidecarKind }[] {
  const base = modelBasePath(modelPath);
  return SIDECAR_SUFFIXES.map(({ suffix, kind }) => ({ path: `${base}${suffix}`, kind }));
}

function emptyInfo(source: SidecarSource, file: string): SidecarInfo {
  return {
    source,
    file,
    status: "ok",
    modelId: null,
    versionId: null,
    modelName: null,
    versionName: null,
    modelType: null,
    baseModel: null,
    trainedWords: [],
    tags: [],
    creator: null,
    nsfw: null,
    description: null,
    size: null,
    files: [],
    deleted: null,
    activationText: null,
    preferredWeight: null,
    negativeText: null,
    notes: null,
    sdVersion: null,
  };
}

type Obj = Record<string, unknown>;

function str(v: unknown, max?: number): string | null {
  if (typeof v !== "string") return null;
  const t = v.trim();
  return t === "" ? null : cutText(t, max);
}

function id(v: unknown): number | null {
  if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
  if (typeof v === "string" && /^\d{1,15}$/.test(v.trim())) {
    const n = Number(v.trim());
    return n > 0 ? n : null;
  }
  return null;
}

function finiteNumber(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v.trim())) return Number(v.trim());
  return null;
}

function bool(v: unknown): boolean | null {
  return typeof v === "boolean" ? v : null;
}

function strings(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  const out: string[] = [];
  for (const item of v) {
    // Civitai tags come as strings or as {name}.
    const s = str(isPlainObject(item) ? own(item, "name") : item, 200);
    if (s !== null && !out.includes(s)) out.push(s);
    if (out.length >= LIST_MAX_ITEMS) break;
  }
  return out;
}

function hex(v: unknown, length: number): string | null {
  if (typeof v !== "string") return null;
  const h = v.trim().toLowerCase();
  return h.length === length && /^[0-9a-f]+$/.test(h) ? h : null;
}

/** Case-insensitive key lookup: Civitai writes `SHA256`/`AutoV2`, other tools vary the case. */
function pick(obj: Obj, ...keys: string[]): unknown {
  for (const key of keys) if (Object.hasOwn(obj, key)) return obj[key];
  const lower = new Map(Object.keys(obj).map((k) => [k.toLowerCase(), k]));
  for (const key of keys) {
    const real = lower.get(key.toLowerCase());
    if (real !== undefined) return obj[real];
  }
  return undefined;
}

function normaliseHashes(
  hashes: unknown,
  name: string | null = null,
  sizeKB: number | null = null,
  primary: boolean | null = null,
): SidecarFileHashes {
  const h: Obj = isPlainObject(hashes) ? hashes : Object.create(null);
  const autov3 = hex(pick(h, "AutoV3"), HASH_HEX_LENGTH.autov3);
  return {
    name,
    sizeKB,
    primary,
    sha256: hex(pick(h, "SHA256"), HASH_HEX_LENGTH.sha256),
    autov2: hex(pick(h, "AutoV2"), HASH_HEX_LENGTH.autov2),
    autov3: autov3 === AUTOV3_OF_EMPTY ? null : autov3,
    blake3: hex(pick(h, "BLAKE3"), 64),
    crc32: hex(pick(h, "CRC32"), 8),
  };
}

function hasAnyHash(f: SidecarFileHashes): boolean {
  return f.sha256 !== null || f.autov2 !== null || f.autov3 !== null || f.blake3 !== null || f.crc32 !== null;
}

/** Fields of a Civitai version object (by-hash answer), as CH, CHz, LM and GCD store it. */
function applyVersion(v: Obj, info: SidecarInfo): void {
  info.versionId = id(own(v, "id")) ?? info.versionId;
  info.modelId = id(own(v, "modelId")) ?? info.modelId;
  info.versionName = str(own(v, "name")) ?? info.versionName;
  const base = str(own(v, "baseModel"), 100);
  if (base !== null && base !== "Unknown") info.baseModel = base;
  const words = strings(own(v, "trainedWords"));
  if (words.length > 0) info.trainedWords = words;
  const model = own(v, "model");
  if (isPlainObject(model)) {
    info.modelName = str(own(model, "name")) ?? info.modelName;
    info.modelType = str(own(model, "type"), 100) ?? info.modelType;
    info.nsfw = bool(own(model, "nsfw")) ?? info.nsfw;
    info.description = str(own(model, "description"), SIDECAR_DESCRIPTION_MAX_CHARS) ?? info.description;
    const tags = strings(own(model, "tags"));
    if (tags.length > 0) info.tags = tags;
  }
  if (info.description === null) info.description = str(own(v, "description"), SIDECAR_DESCRIPTION_MAX_CHARS);
  const tags = strings(own(v, "tags"));
  if (info.tags.length === 0 && tags.length > 0) info.tags = tags;
  const creator = own(v, "creator");
  if (isPlainObject(creator)) info.creator = str(own(creator, "username"), 200) ?? info.creator;
  const files = own(v, "files");
  if (Array.isArray(files)) {
    for (const f of files.slice(0, FILES_MAX)) {
      if (!isPlainObject(f)) continue;
      const entry = normaliseHashes(own(f, "hashes"), str(own(f, "name"), 300), finiteNumber(own(f, "sizeKB")), bool(own(f, "primary")));
      if (hasAnyHash(entry) || entry.name !== null) info.files.push(entry);
    }
  }
}

function isSkeleton(v: Obj): boolean {
  if (own(v, "skeleton_file") === true) return true;
  const ext = own(v, "extensions");
  const ch = isPlainObject(ext) ? own(ext, "sd_civitai_helper") : undefined;
  return isPlainObject(ch) && own(ch, "skeleton_file") === true;
}

function parseCivitaiInfo(v: Obj, info: SidecarInfo): void {
  // CH writes `{}` when Civitai answered 404; CHz writes a skeleton with our hash but no ids.
  if (Object.keys(v).length === 0) {
    info.status = "not-found";
    return;
  }
  applyVersion(v, info);
  if (isSkeleton(v) || (info.versionId === null && info.modelId === null)) info.status = "not-found";
}

function parseLoraManager(v: Obj, info: SidecarInfo): void {
  info.modelName = str(own(v, "model_name"));
  info.size = finiteNumber(own(v, "size"));
  const base = str(own(v, "base_model"), 100);
  info.baseModel = base === "Unknown" ? null : base;
  info.notes = str(own(v, "notes"));
  info.deleted = bool(own(v, "civitai_deleted"));
  // LM's own hashes of the local file: sha256 may be "" while hashing is pending; autov3 null = none.
  const own3 = hex(own(v, "autov3"), HASH_HEX_LENGTH.autov3);
  const local: SidecarFileHashes = {
    name: str(own(v, "file_name"), 300),
    sizeKB: info.size === null ? null : info.size / 1024,
    primary: null,
    sha256: hex(own(v, "sha256"), HASH_HEX_LENGTH.sha256),
    autov2: null,
    autov3: own3 === AUTOV3_OF_EMPTY ? null : own3,
    blake3: null,
    crc32: null,
  };
  if (hasAnyHash(local)) info.files.push(local);
  const civitai = own(v, "civitai");
  if (isPlainObject(civitai)) applyVersion(civitai, info);
  info.description = str(own(v, "modelDescription"), SIDECAR_DESCRIPTION_MAX_CHARS) ?? info.description;
  const tags = strings(own(v, "tags"));
  if (tags.length > 0) info.tags = tags;
  const words = strings(own(v, "trainedWords"));
  if (info.trainedWords.length === 0 && words.length > 0) info.trainedWords = words;
  if (info.versionId === null && (own(v, "from_civitai") === false || info.deleted === true)) info.status = "not-found";
}

function parseStabilityMatrix(v: Obj, info: SidecarInfo): void {
  info.modelId = id(pick(v, "ModelId"));
  info.versionId = id(pick(v, "VersionId"));
  info.modelName = str(pick(v, "ModelName"));
  info.versionName = str(pick(v, "VersionName"));
  info.modelType = str(pick(v, "ModelType"), 100);
  info.baseModel = str(pick(v, "BaseModel"), 100);
  info.trainedWords = strings(pick(v, "TrainedWords"));
  info.tags = strings(pick(v, "Tags"));
  info.creator = str(pick(v, "AuthorUsername"), 200);
  info.nsfw = bool(pick(v, "Nsfw"));
  info.description = str(pick(v, "ModelDescription"), SIDECAR_DESCRIPTION_MAX_CHARS);
  info.notes = str(pick(v, "VersionDescription"));
  const entry = normaliseHashes(pick(v, "Hashes"), str(pick(v, "RemoteFileName"), 300));
  if (hasAnyHash(entry) || entry.name !== null) info.files.push(entry);
}

const A1111_KEYS = [
  "description",
  "sd version",
  "activation text",
  "preferred weight",
  "negative text",
  "notes",
  "sha256",
  "modelId",
  "modelVersionId",
];

function looksLikeVersion(v: Obj): boolean {
  return Array.isArray(own(v, "files")) && (own(v, "modelId") !== undefined || isPlainObject(own(v, "model")));
}

function parseA1111(v: Obj, info: SidecarInfo): void {
  if (!A1111_KEYS.some((k) => Object.hasOwn(v, k))) {
    info.status = "invalid";
    info.error = "no keys of a known sidecar format";
    return;
  }
  info.description = str(own(v, "description"), SIDECAR_DESCRIPTION_MAX_CHARS);
  info.sdVersion = str(own(v, "sd version"), 50);
  info.activationText = str(own(v, "activation text"));
  info.preferredWeight = finiteNumber(own(v, "preferred weight"));
  info.negativeText = str(own(v, "negative text"));
  info.notes = str(own(v, "notes"));
  // CivitAI Browser+ adds ids and the (upper-case) SHA-256, or "Model not found".
  info.modelId = id(own(v, "modelId"));
  info.versionId = id(own(v, "modelVersionId"));
  const sha = own(v, "sha256");
  if (typeof sha === "string" && /not found/i.test(sha)) info.status = "not-found";
  const entry = normaliseHashes({ SHA256: sha });
  if (hasAnyHash(entry)) info.files.push(entry);
}

/**
 * `text` with the bare `NaN`, `Infinity` and `-Infinity` that Python's `json.dumps` writes (and
 * `json.loads` reads) replaced by `null`, strings left as they are; null when it holds none.
 */
function pythonConstantsAsNull(text: string): string | null {
  let found = false;
  const out = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (token) => {
    if (token.startsWith('"')) return token;
    found = true;
    return "null";
  });
  return found ? out : null;
}

const SOURCE_OF_KIND: Readonly<Record<Exclude<SidecarKind, "json">, SidecarSource>> = {
  "civitai-info": "civitai-helper",
  "lora-manager": "lora-manager",
  "stability-matrix": "stability-matrix",
};

/**
 * A sidecar's text as a JSON object (prototype-safe, depth-checked), or why it is not one: a
 * leading BOM is skipped, and Python's `NaN` / `±Infinity` (CH, CHz, LM and CBP write them with
 * `json.dumps` and read them back) are taken as null.
 */
export function parseSidecarJson(text: string): { ok: true; value: Obj } | { ok: false; reason: string } {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const options = { maxChars: SIDECAR_MAX_BYTES, findDuplicates: false };
  let parsed = parseJsonGuarded(body, options);
  const python = parsed.ok ? null : pythonConstantsAsNull(body);
  if (python !== null) parsed = parseJsonGuarded(python, options);
  if (!parsed.ok) return { ok: false, reason: parsed.reason };
  return isPlainObject(parsed.value) ? { ok: true, value: parsed.value } : { ok: false, reason: "not a JSON object" };
}

/**
 * One sidecar's text → SidecarInfo. Never throws: a file that is not JSON, too deep, or not an
 * object gives `status: "invalid"` with the reason.
 */
export function parseSidecar(kind: SidecarKind, file: string, text: string): SidecarInfo {
  const source: SidecarSource = kind === "json" ? "a1111-user-metadata" : SOURCE_OF_KIND[kind];
  const info = emptyInfo(source, file);
  const parsed = parseSidecarJson(text);
  if (!parsed.ok) {
    info.status = "invalid";
    info.error = parsed.reason;
    return info;
  }
  const v = parsed.value;
  switch (kind) {
    case "civitai-info":
      parseCivitaiInfo(v, info);
      break;
    case "lora-manager":
      parseLoraManager(v, info);
      break;
    case "stability-matrix":
      parseStabilityMatrix(v, info);
      break;
    case "json":
      if (looksLikeVersion(v)) {
        info.source = "version-json";
        applyVersion(v, info);
      } else parseA1111(v, info);
      break;
  }
  return info;
}

export interface SidecarHashClaim {
  sha256: string;
  source: SidecarSource;
  file: string;
  /** Whether the size the sidecar records matches `fileSize`; null when it records none. */
  sizeMatches: boolean | null;
}

/**
 * The SHA-256 values sidecars attribute to this model file. With a version's several files, only
 * entries named like the model (when names are known) count, else the only or the primary one.
 * When the file's own SHA-256 is known (`ownSha256`), any entry with that SHA-256 counts too
 * (docs/cases.md T20): a pruned variant renamed locally is neither named like it nor primary, but its hash
 * says which entry it is. The caller uses a claim only when its own hash agrees, or with
 * --trust-sidecars when `sizeMatches` is true.
 */
export function sidecarSha256Claims(
  sidecars: readonly SidecarInfo[],
  modelFileName: string,
  fileSize: number,
  ownSha256?: string,
): SidecarHashClaim[] {
  const claims: SidecarHashClaim[] = [];
  // LM records the stem, Civitai the full name.
  const stem = modelFileName.replace(/\.[^.]+$/, "");
  for (const s of sidecars) {
    if (s.status === "invalid") continue;
    const named = s.files.filter((f) => f.name === modelFileName || f.name === stem);
    const byName = named.length > 0 ? named : s.files.length === 1 ? s.files : s.files.filter((f) => f.primary === true);
    const byHash = ownSha256 ? s.files.filter((f) => f.sha256 === ownSha256 && !byName.includes(f)) : [];
    for (const f of [...byName, ...byHash]) {
      if (f.sha256 === null || claims.some((c) => c.sha256 === f.sha256 && c.file === s.file)) continue;
      // Civitai's sizeKB is a float of bytes/1024; LM records bytes exactly.
      const sizeMatches = s.size !== null ? s.size === fileSize : f.sizeKB !== null ? Math.abs(f.sizeKB * 1024 - fileSize) < 1024 : null;
      claims.push({ sha256: f.sha256, source: s.source, file: s.file, sizeMatches });
    }
  }
  return claims;
}
