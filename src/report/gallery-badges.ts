/**
 * The badges on a gallery card, from one record's schema-2 answers (issue 12). Pure; every label
 * is plain text (the renderer escapes it). Read by shape, since an inventory may be edited:
 * - `update`: the newest version for the file's own base model that the library does not already
 *   hold (the one to fetch; a new version for another base model is shown but is not an update);
 * - `duplicate`: other paths with the same bytes (`others`);
 * - `gone`: the model was removed from Civitai, with when it was last seen.
 * Besides those, what records already say: archived, taken down, early access, several
 * candidates (ambiguous), and a sidecar that says Civitai deleted the model.
 */
import type { FileRecord } from "./record-types.ts";
import { isPlainObject } from "../shared/json-guard.ts";

/** The badges a status filter can select (the rest are shown only). */
export type FilterBadge = "update" | "duplicate" | "gone";
export const FILTER_BADGE_LABEL: Readonly<Record<FilterBadge, string>> = {
  update: "Update available",
  duplicate: "Duplicate",
  gone: "Gone from Civitai",
};

export interface Badge {
  kind: FilterBadge | "newer-other-base" | "archived" | "taken-down" | "early-access" | "ambiguous";
  label: string;
  /** A longer explanation (a tooltip and the accessible description). */
  detail?: string;
  /** For `update`: the newer version on civitai.com (ids only; the renderer builds the URL). */
  link?: { modelId: number | null; versionId: number };
}

function id(value: unknown): number | null {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : null;
}

function text(value: unknown): string | null {
  return typeof value === "string" && value.trim() !== "" ? value : null;
}

/** A `NewerVersion` of updates.ts, read by shape; null when it is not one or the library already holds it. */
function newerToFetch(value: unknown): { versionId: number; name: string; baseModel: string | null } | null {
  if (!isPlainObject(value)) return null;
  const versionId = id(value.versionId);
  if (versionId === null) return null;
  if (Array.isArray(value.inLibrary) && value.inLibrary.length > 0) return null;
  return { versionId, name: text(value.name) ?? `version ${versionId}`, baseModel: text(value.baseModel) };
}

function updateBadge(value: unknown, modelId: number | null): Badge | null {
  if (!isPlainObject(value)) return null;
  const same = newerToFetch(value.sameBaseModel);
  if (same) {
    return {
      kind: "update",
      label: `Update: ${same.name}`,
      detail: `A newer version for the same base model is on Civitai: ${same.name}`,
      link: { modelId, versionId: same.versionId },
    };
  }
  const newest = newerToFetch(value.newest);
  if (!newest) return null;
  const base = newest.baseModel ? ` (${newest.baseModel})` : "";
  return {
    kind: "newer-other-base",
    label: `Newer for another base model: ${newest.name}${base}`,
    detail: `Civitai has a newer version for another base model: ${newest.name}${base}; not an update for this file`,
    link: { modelId, versionId: newest.versionId },
  };
}

/** The other paths of a `duplicate` and how many files hold the bytes (at least the paths listed plus this one). */
function duplicateOf(value: unknown): { others: string[]; copies: number } {
  if (!isPlainObject(value) || !Array.isArray(value.others)) return { others: [], copies: 0 };
  const others = value.others.filter((p): p is string => typeof p === "string" && p !== "");
  const copies = typeof value.copies === "number" && Number.isSafeInteger(value.copies) ? value.copies : 0;
  return { others, copies: Math.max(copies, others.length + 1) };
}

function goneBadge(value: unknown): Badge | null {
  if (value !== true && !isPlainObject(value)) return null;
  const seen = isPlainObject(value) ? text(value.lastSeenAt) : null;
  return {
    kind: "gone",
    label: "Gone from Civitai",
    detail: seen ? `Removed from Civitai; last seen ${seen.slice(0, 10)}` : "Removed from Civitai",
  };
}

/** Badges in a fixed order: update, duplicate, gone, then availability and ambiguity. */
export function recordBadges(record: FileRecord): Badge[] {
  const info = record.civitai;
  const badges: Badge[] = [];
  const update = updateBadge(record.update, info?.modelId ?? null);
  if (update) badges.push(update);
  const dup = duplicateOf(record.duplicate);
  if (dup.others.length > 0) {
    badges.push({
      kind: "duplicate",
      label: dup.copies === 2 ? "Duplicate" : `Duplicate ×${dup.copies}`,
      detail: `Same SHA-256 as: ${dup.others.join(", ")}${dup.copies > dup.others.length + 1 ? ", …" : ""}`,
    });
  }
  const gone = goneBadge(record.gone) ?? (record.status === "gone" || (record.sidecar?.deleted === true && !info) ? goneBadge({}) : null);
  if (gone) badges.push(gone);
  const a = info?.availability;
  if (a?.archived) badges.push({ kind: "archived", label: "Archived", detail: "Archived on Civitai: no download there" });
  if (a?.takenDown) badges.push({ kind: "taken-down", label: "Taken down", detail: "Taken down on Civitai" });
  if (a?.earlyAccess) badges.push({ kind: "early-access", label: "Early access", detail: "Early access on Civitai" });
  const candidates = record.ambiguous?.length ?? 0;
  if (candidates > 1) {
    badges.push({
      kind: "ambiguous",
      label: `${candidates} candidates`,
      detail: "Several Civitai versions list this file; the first is shown",
    });
  }
  return badges;
}
