import { redact } from "../shared/redact.ts";
import type { LeanModel, LeanVersion } from "../civitai/lean.ts";
import { CIVITAI_ORIGIN, modelPageUrl, toCivitaiFields } from "../civitai/civitai-record.ts";
import type { LocalInfo, SidecarInfo } from "../local/local-types.ts";
import type { FileRecord, HashSource, MatchedBy, SidecarIdentity, SidecarLabel } from "../report/record-types.ts";
import { findUpdate } from "../report/updates.ts";
import { sidecarSha256Claims } from "../local/sidecars.ts";
import type { HashResult, SkippedPath } from "./types.ts";
import { compareByteOrder } from "./path-filter.ts";
import { basenamePath } from "../shared/fs-path.ts";

/**
 * What a lookup says about one SHA-256 (civitai/lookup.ts LookupEntry fits this shape): the lean
 * answers (civitai/lean.ts), so records are built without raw API objects and without converting
 * any HTML again.
 */
export interface LookupOutcome {
  status: "found" | "not_found" | "error" | "offline";
  matchedBy?: MatchedBy;
  host?: string;
  versions: readonly LeanVersion[];
  models: ReadonlyMap<number, LeanModel>;
  error?: string;
  /** Found through by-hash/ids while the version lists no file (archived) or not this one. */
  unlisted?: boolean;
  /** Not found now, found before: the last found answer and when it was stored (epoch ms). */
  lastFound?: { at: number; versions: readonly LeanVersion[]; matchedBy: MatchedBy; host?: string };
}

export interface BuildRecordsInput {
  hashes: readonly HashResult[];
  skipped: readonly SkippedPath[];
  /** By lower-case SHA-256; null when no lookup ran (e.g. `hash`). */
  lookups: ReadonlyMap<string, LookupOutcome> | null;
  /** The local pass, by file path (FoundFile.path); files without an entry get no `local`. */
  locals?: ReadonlyMap<string, LocalInfo>;
  /** Files whose SHA-256 came from a sidecar (--trust-sidecars), by path. */
  hashSources?: ReadonlyMap<string, HashSource>;
  now?: number;
  /** Ratings `previewImageUrl` may have (preview/nsfw.ts); default PG and PG-13. */
  nsfwMask?: number;
}

const OFFLINE_REASON = "offline: not in the metadata cache, not looked up";

/** One record per file (links folded into `aliases`) and per skipped path, sorted by path. */
export function buildRecords(input: BuildRecordsInput): FileRecord[] {
  const records: FileRecord[] = [];
  for (const h of input.hashes) {
    const file = h.file;
    const base: FileRecord = {
      path: file.path,
      aliases: file.paths.filter((p) => p !== file.path),
      size: file.identity.size,
      mtime: new Date(file.mtimeMs).toISOString(),
      hashes: h.hashes,
      status: "error",
    };
    const hashSource = input.hashSources?.get(file.path);
    if (hashSource) base.hashSource = hashSource;
    const local = input.locals?.get(file.path);
    let record: FileRecord;
    if (h.error) record = { ...base, error: h.error };
    else {
      const outcome = h.hashes.sha256 ? input.lookups?.get(h.hashes.sha256) : undefined;
      record = applyOutcome(base, outcome, input.now, input.nsfwMask);
    }
    records.push(local ? withLocal(record, local) : record);
  }
  for (const s of input.skipped) {
    records.push({ path: s.path, aliases: [], size: null, mtime: null, hashes: {}, status: "skipped", reason: s.reason });
  }
  return records.sort((a, b) => compareByteOrder(a.path, b.path));
}

const SHOWN_HOSTS = new Map<string, string>();

/** The host a record names: a password in its URL (a proxy's) is shown as `***`, as messages show it. */
const shownHost = (host: string): string => {
  // Once per host, not per record: a run has one or two hosts and a redaction is five regex passes.
  let shown = SHOWN_HOSTS.get(host);
  if (shown === undefined) SHOWN_HOSTS.set(host, (shown = redact(host)));
  return shown;
};

function applyOutcome(base: FileRecord, outcome: LookupOutcome | undefined, now?: number, nsfwMask?: number): FileRecord {
  if (!outcome) return { ...base, status: "error", error: "not looked up" };
  switch (outcome.status) {
    case "not_found":
      if (outcome.lastFound) return goneRecord(base, outcome, outcome.lastFound, now, nsfwMask);
      return { ...base, status: "not_found", ...(outcome.host ? { host: shownHost(outcome.host) } : {}) };
    case "offline":
      return { ...base, status: "skipped", reason: OFFLINE_REASON };
    case "error":
      return { ...base, status: "error", error: outcome.error ?? "lookup failed" };
    case "found": {
      const fields = toCivitaiFields(outcome.versions, outcome.models, base.hashes.sha256 ?? null, {
        autov3: base.hashes.autov3,
        ...(now === undefined ? {} : { now }),
        ...(nsfwMask === undefined ? {} : { nsfwMask }),
      });
      if (!fields) return { ...base, status: "not_found" };
      const record: FileRecord = {
        ...base,
        status: "found",
        matchedBy: outcome.matchedBy ?? "sha256",
        ...(outcome.host ? { host: shownHost(outcome.host) } : {}),
        ...fields,
      };
      const update = updateOf(record, outcome.models, now);
      if (update) record.update = update;
      // Archived: Civitai still names the version, but it has no file to download (`files: []`).
      const first = outcome.versions[0];
      if (record.civitai!.availability.archived || (first !== undefined && first.files.length === 0)) {
        return { ...record, status: "gone", gone: { reason: "archived", lastSeenAt: null } };
      }
      return record;
    }
  }
}

/**
 * A file Civitai found before and does not find now: `gone`, with what it said then (the version
 * as it was cached; no model details) and when that was. Not an error, and not "never known".
 */
function goneRecord(
  base: FileRecord,
  outcome: LookupOutcome,
  last: NonNullable<LookupOutcome["lastFound"]>,
  now?: number,
  nsfwMask?: number,
): FileRecord {
  const fields = toCivitaiFields(last.versions, outcome.models, base.hashes.sha256 ?? null, {
    autov3: base.hashes.autov3,
    ...(now === undefined ? {} : { now }),
    ...(nsfwMask === undefined ? {} : { nsfwMask }),
  });
  const found = outcome.host ?? last.host;
  const host = found ? shownHost(found) : undefined;
  if (!fields) return { ...base, status: "not_found", ...(host ? { host } : {}) };
  return {
    ...base,
    status: "gone",
    matchedBy: last.matchedBy,
    ...(host ? { host } : {}),
    ...fields,
    gone: { reason: "not_found", lastSeenAt: new Date(last.at).toISOString() },
  };
}

/** A newer version of the record's model, from the versions list its model details brought (report/updates.ts). */
function updateOf(record: FileRecord, models: ReadonlyMap<number, LeanModel>, now?: number): FileRecord["update"] | null {
  const c = record.civitai;
  const model = c?.modelId != null ? models.get(c.modelId) : undefined;
  if (!c || !model) return null;
  const own = { modelId: c.modelId, versionId: c.versionId, baseModel: c.baseModel, publishedAt: c.publishedAt, createdAt: c.createdAt };
  return findUpdate(own, model.versions, now ?? Date.now());
}

function sidecarLabel(sidecar: Pick<SidecarInfo, "source">): SidecarLabel {
  return `sidecar:${sidecar.source}`;
}

/**
 * --trust-sidecars: the SHA-256 to use without hashing, when sidecars claim one for this file AND
 * record a size equal to the file's. Claims that disagree with each other trust nothing.
 */
export function trustedSidecarHash(
  sidecars: readonly SidecarInfo[] | undefined,
  fileName: string,
  size: number,
): { sha256: string; label: SidecarLabel } | null {
  if (!sidecars || sidecars.length === 0) return null;
  const claims = sidecarSha256Claims(sidecars, fileName, size).filter((c) => c.sizeMatches === true);
  const first = claims[0];
  if (!first || claims.some((c) => c.sha256 !== first.sha256)) return null;
  return { sha256: first.sha256, label: sidecarLabel(first) };
}

function sidecarPageUrl(modelId: number | null, versionId: number | null): string | null {
  if (versionId !== null) return modelPageUrl(modelId, versionId);
  return modelId !== null ? `${CIVITAI_ORIGIN}/models/${modelId}` : null;
}

/**
 * The identity of the first `ok` sidecar (in sidecarPaths order: Civitai Helper, LoRA Manager,
 * Stability Matrix, `.json`) that names a model and whose SHA-256 for this file is `sha256`.
 */
function sidecarIdentity(
  sidecars: readonly SidecarInfo[] | undefined,
  fileName: string,
  size: number,
  sha256: string | undefined,
  checkedBy: SidecarIdentity["checkedBy"],
): SidecarIdentity | null {
  if (!sidecars || !sha256) return null;
  const claims = sidecarSha256Claims(sidecars, fileName, size, checkedBy === "sha256" ? sha256 : undefined);
  for (const s of sidecars) {
    if (s.status !== "ok" || (s.modelId === null && s.versionId === null && s.modelName === null)) continue;
    if (!claims.some((c) => c.file === s.file && c.sha256 === sha256)) continue;
    return {
      source: s.source,
      file: s.file,
      checkedBy,
      modelId: s.modelId,
      modelName: s.modelName,
      modelType: s.modelType,
      versionId: s.versionId,
      versionName: s.versionName,
      baseModel: s.baseModel,
      trainedWords: s.trainedWords,
      creator: s.creator,
      nsfw: s.nsfw,
      deleted: s.deleted,
      pageUrl: sidecarPageUrl(s.modelId, s.versionId),
    };
  }
  return null;
}

/**
 * Adds `local`, and sets `knownFrom` / `sidecar`. `status` is never changed by a sidecar: it stays
 * what Civitai (or its cached answer) said, so "found" always means Civitai answered.
 */
function withLocal(record: FileRecord, local: LocalInfo): FileRecord {
  // Completed in place: buildRecords made `record` for this file alone (a copy per file was a
  // tenth of the records phase at 100,000 files).
  const out = record;
  const sha256 = record.hashes.sha256;
  const fileName = basenamePath(record.path);
  const size = record.size ?? 0;
  let info = local;
  // A SHA-256 taken from a sidecar cannot judge sidecars; one computed (here or by the machine that wrote the index) can.
  const fromSidecar = record.hashSource?.startsWith("sidecar:") === true;
  if (sha256 && local.sidecars && !fromSidecar) {
    // A sidecar whose hashes all differ from ours describes another file (renamed, replaced): say so.
    const claims = sidecarSha256Claims(local.sidecars, fileName, size, sha256);
    const stale = [...new Set(claims.map((c) => c.file))].filter((file) => !claims.some((c) => c.file === file && c.sha256 === sha256));
    if (stale.length > 0) {
      info = { ...local, warnings: [...local.warnings, ...stale.map((file) => `${file}: its SHA-256 differs from this file's; ignored`)] };
    }
  }
  out.local = info;
  if (record.status === "found" || record.status === "gone") out.knownFrom = "civitai";
  else {
    const identity = sidecarIdentity(local.sidecars, fileName, size, sha256, fromSidecar ? "size" : "sha256");
    if (identity) {
      out.knownFrom = sidecarLabel(identity);
      out.sidecar = identity;
    }
  }
  return out;
}
