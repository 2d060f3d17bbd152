/**
 * The cells of the Markdown report's tables, one record at a time: each already escaped
 * (md-escape.ts), short, and the only links our civitai.com pages. Pure.
 */
import type { CivitaiInfo, FileRecord, SidecarIdentity } from "./record-types.ts";
import { MD_EMPTY, mdLink, mdText } from "./md-escape.ts";
import { formatBytes } from "../shared/format.ts";
import { guessLabel, localTriggerWords, SIDECAR_SOURCE_LABEL, trainingBaseModel } from "../local/local-summary.ts";
import { accessText, dateOnly, licenseText } from "./access-text.ts";
import type { NewerVersion } from "./updates.ts";

/** The path shown in tables: relative to the root when there is one root, else whole. */
export function shownPath(path: string, roots: readonly string[]): string {
  const root = roots.length === 1 ? roots[0] : undefined;
  if (root === undefined || root === "") return path;
  const prefix = root.endsWith("/") || root.endsWith("\\") ? root : `${root}/`;
  if (path.startsWith(prefix) && path.length > prefix.length) return path.slice(prefix.length);
  const windowsPrefix = `${root}\\`;
  if (path.startsWith(windowsPrefix) && path.length > windowsPrefix.length) return path.slice(windowsPrefix.length);
  return path;
}

/** The File cell: the path, then the file's other names (hard or soft links), each escaped. */
export function fileCell(record: Pick<FileRecord, "path" | "aliases">, roots: readonly string[]): string {
  const cell = mdText(shownPath(record.path, roots));
  const aliases = record.aliases ?? [];
  if (aliases.length === 0) return cell;
  return `${cell} (also: ${aliases.map((a) => mdText(shownPath(a, roots))).join(", ")})`;
}

export function sizeCell(size: number | null | undefined): string {
  return typeof size === "number" && Number.isFinite(size) && size >= 0 ? formatBytes(size) : MD_EMPTY;
}

export function modelTitle(info: Pick<CivitaiInfo, "modelName" | "modelId" | "versionId">): string {
  if (info.modelName && info.modelName.trim() !== "") return info.modelName;
  return info.modelId !== null ? `Model ${info.modelId}` : `Model version ${info.versionId}`;
}

/** "Model · version", linked to the version's page on civitai.com. */
export function modelCell(info: Pick<CivitaiInfo, "modelName" | "modelId" | "versionId" | "versionName" | "pageUrl">): string {
  // Each part trimmed on its own, as each would be shown alone.
  const label = `${modelTitle(info).trim()} · ${(info.versionName ?? `version ${info.versionId}`).trim()}`;
  return mdLink(label, info.pageUrl, mdText(label));
}

function listCell(values: readonly string[] | undefined): string {
  return values && values.length > 0 ? values.map((v) => mdText(v)).join(", ") : MD_EMPTY;
}

/** Civitai's trigger words, else the file's own (labelled), else `—`. */
export function triggerCell(record: FileRecord): string {
  const words = record.civitai?.trainedWords ?? [];
  if (words.length > 0) return listCell(words);
  const local = localTriggerWords(record.local);
  return local.length > 0 ? `${listCell(local)} (from the file)` : MD_EMPTY;
}

/** The licence in a few words (access-text.ts licenseText), the uploader's values escaped, our words as they are. */
export function licenseCell(info: CivitaiInfo | undefined): string {
  const license = info?.license;
  if (!license) return MD_EMPTY;
  const uses = Array.isArray(license.allowCommercialUse) ? license.allowCommercialUse : [];
  const restrictions = licenseText({ ...license, allowCommercialUse: [] })!
    .split("; ")
    .slice(1);
  return [uses.length > 0 ? `commercial: ${uses.map((u) => mdText(u)).join(", ")}` : "no commercial use", ...restrictions].join("; ");
}

/** A newer version in a few words: linked name, date, access. */
export function newerCell(v: NewerVersion | null | undefined, now: number, withBase = false): string {
  if (!v) return MD_EMPTY;
  const label = v.name ?? `version ${v.versionId}`;
  const parts = [mdLink(label, v.pageUrl, mdText(label))];
  if (withBase && v.baseModel) parts.push(mdText(v.baseModel));
  if (v.publishedAt) parts.push(mdText(dateOnly(v.publishedAt)));
  const access = accessText(v.access, now);
  if (access) parts.push(mdText(access));
  return parts.join(", ");
}

/** What a reader should know about a found or gone file beyond its name: short notes, "; "-joined. */
export function notesCell(record: FileRecord, now: number): string {
  const notes: string[] = [];
  const c = record.civitai;
  const update = record.update;
  if (update?.sameBaseModel && update.sameBaseModel.inLibrary.length === 0) {
    notes.push(`update: ${newerCell(update.sameBaseModel, now)}`);
  }
  if (update && update.newest.versionId !== update.sameBaseModel?.versionId && update.newest.inLibrary.length === 0) {
    notes.push(`newest: ${newerCell(update.newest, now, true)}`);
  }
  if (record.gone) {
    const seen = record.gone.lastSeenAt ? `, last seen ${mdText(dateOnly(record.gone.lastSeenAt))}` : "";
    notes.push(`**gone from Civitai** (${record.gone.reason === "archived" ? "archived" : "no longer found"}${seen})`);
  }
  const a = c?.availability;
  if (a?.archived && !record.gone) notes.push("archived on Civitai");
  if (a?.takenDown) notes.push("taken down");
  const access = accessText(c?.access, now) ?? (a?.earlyAccess ? "early access" : a?.paidAccess ? "paid access" : null);
  if (access) notes.push(mdText(access));
  if (record.duplicate) notes.push(`${record.duplicate.copies} copies`);
  const others = record.otherVersions?.length ?? 0;
  if (others > 0) notes.push(`${others} other ${others === 1 ? "version" : "versions"} in the library`);
  for (const other of record.ambiguous?.slice(1) ?? []) notes.push(`also claimed by ${modelCell(other)}`);
  if (record.local?.formatMismatch || (record.local?.errors.length ?? 0) > 0) notes.push("header warning");
  return notes.length > 0 ? notes.join("; ") : MD_EMPTY;
}

function sidecarText(side: SidecarIdentity): string {
  const name = [side.modelName, side.versionName]
    .filter((x): x is string => !!x && x.trim() !== "")
    .map((x) => x.trim())
    .join(" · ");
  const label = name || (side.versionId !== null ? `version ${side.versionId}` : "a model");
  const source = `${SIDECAR_SOURCE_LABEL[side.source] ?? String(side.source)} sidecar`;
  const checked = side.checkedBy === "sha256" ? "" : ", trusted by size";
  const facts = [side.modelType, side.baseModel].filter((x): x is string => !!x).map((x) => mdText(x));
  const more = facts.length > 0 ? ` (${facts.join(", ")})` : "";
  return `${mdLink(label, side.pageUrl, mdText(label))}${more}, from the ${mdText(source)}${checked}${side.deleted ? ", deleted on Civitai" : ""}`;
}

/** For a file Civitai did not identify: what a sidecar and the file's own header say. */
export function localCell(record: FileRecord): string {
  const parts: string[] = [];
  if (record.sidecar) parts.push(sidecarText(record.sidecar));
  const guess = guessLabel(record.local?.guess);
  if (guess) parts.push(mdText(guess));
  const words = localTriggerWords(record.local);
  if (words.length > 0) parts.push(`trigger words ${listCell(words)}`);
  const base = trainingBaseModel(record.local);
  if (base) parts.push(`trained on ${mdText(base)}`);
  for (const s of record.local?.sidecars ?? []) {
    if (s.status === "not-found") {
      parts.push(`${mdText(`${SIDECAR_SOURCE_LABEL[s.source] ?? String(s.source)} sidecar`)} says Civitai did not know it`);
    }
  }
  return parts.length > 0 ? parts.join("; ") : MD_EMPTY;
}
