import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import { toCivitaiFields } from "./civitai-record.ts";
import type { FileRecord, MatchedBy } from "./record-types.ts";
import type { HashResult, SkippedPath } from "./types.ts";
import { compareByteOrder } from "./path-filter.ts";

/** What a lookup says about one SHA-256 (services/lookup.ts LookupEntry fits this shape). */
export interface LookupOutcome {
  status: "found" | "not_found" | "error" | "offline";
  matchedBy?: MatchedBy;
  host?: string;
  versions: readonly ApiModelVersion[];
  models: ReadonlyMap<number, ApiModel>;
  error?: string;
}

export interface BuildRecordsInput {
  hashes: readonly HashResult[];
  skipped: readonly SkippedPath[];
  /** By lower-case SHA-256; null when no lookup ran (e.g. `hash`). */
  lookups: ReadonlyMap<string, LookupOutcome> | null;
  now?: number;
}

export const OFFLINE_REASON = "offline: not in the metadata cache, not looked up";

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
    if (h.error) {
      records.push({ ...base, error: h.error });
      continue;
    }
    const outcome = h.hashes.sha256 ? input.lookups?.get(h.hashes.sha256) : undefined;
    records.push(applyOutcome(base, outcome, input.now));
  }
  for (const s of input.skipped) {
    records.push({ path: s.path, aliases: [], size: null, mtime: null, hashes: {}, status: "skipped", reason: s.reason });
  }
  return records.sort((a, b) => compareByteOrder(a.path, b.path));
}

function applyOutcome(base: FileRecord, outcome: LookupOutcome | undefined, now?: number): FileRecord {
  if (!outcome) return { ...base, status: "error", error: "not looked up" };
  switch (outcome.status) {
    case "not_found":
      return { ...base, status: "not_found", ...(outcome.host ? { host: outcome.host } : {}) };
    case "offline":
      return { ...base, status: "skipped", reason: OFFLINE_REASON };
    case "error":
      return { ...base, status: "error", error: outcome.error ?? "lookup failed" };
    case "found": {
      const fields = toCivitaiFields(outcome.versions, outcome.models, base.hashes.sha256 ?? null, {
        autov3: base.hashes.autov3,
        ...(now === undefined ? {} : { now }),
      });
      if (!fields) return { ...base, status: "not_found" };
      return {
        ...base,
        status: "found",
        matchedBy: outcome.matchedBy ?? "sha256",
        ...(outcome.host ? { host: outcome.host } : {}),
        ...fields,
      };
    }
  }
}
