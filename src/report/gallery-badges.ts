/**
 * The badges on a gallery card, from one record. Pure; every label is plain text (the renderer
 * escapes it). One function, so names can follow the answers issue when it lands: it is read
 * tolerantly, by shape, from fields a record may carry:
 * - `update`: a newer version exists, `{ versionId, name | versionName, modelId? }`;
 * - `duplicate`: other paths with the same SHA-256, a list of paths or `{ paths: [...] }`;
 * - `gone`: the model was removed from Civitai, `true` or `{ lastSeenAt }`.
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
  kind: FilterBadge | "archived" | "taken-down" | "early-access" | "ambiguous";
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

function updateBadge(value: unknown, modelId: number | null): Badge | null {
  if (!isPlainObject(value)) return null;
  const versionId = id(value.versionId);
  if (versionId === null) return null;
  const name = text(value.name) ?? text(value.versionName) ?? `version ${versionId}`;
  return {
    kind: "update",
    label: `Update: ${name}`,
    detail: `A newer version is on Civitai: ${name}`,
    link: { modelId: id(value.modelId) ?? modelId, versionId },
  };
}

function duplicatePaths(value: unknown): string[] {
  const list = Array.isArray(value) ? value : isPlainObject(value) ? (value.paths ?? value.others) : null;
  return Array.isArray(list) ? list.filter((p): p is string => typeof p === "string" && p !== "") : [];
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
  const extra = record as FileRecord & { update?: unknown; duplicate?: unknown; gone?: unknown };
  const info = record.civitai;
  const badges: Badge[] = [];
  const update = updateBadge(extra.update, info?.modelId ?? null);
  if (update) badges.push(update);
  const dups = duplicatePaths(extra.duplicate);
  if (dups.length > 0) {
    badges.push({
      kind: "duplicate",
      label: dups.length === 1 ? "Duplicate" : `Duplicate ×${dups.length + 1}`,
      detail: `Same SHA-256 as: ${dups.join(", ")}`,
    });
  }
  const gone = goneBadge(extra.gone) ?? (record.sidecar?.deleted === true && !info ? goneBadge({}) : null);
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
