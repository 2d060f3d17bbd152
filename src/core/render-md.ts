import type { Inventory } from "./inventory-types.ts";
import type { CivitaiInfo, FileRecord, RecordStatus } from "./record-types.ts";
import { truncateText } from "./html-text.ts";
import { MD_EMPTY, isCivitaiUrl, mdCode, mdLink, mdTable, mdText, toSingleLine } from "./md-escape.ts";
import { compareByteOrder } from "./path-filter.ts";
import { sortRecords } from "./render-json.ts";
import { formatBytes } from "./format.ts";

/**
 * The Markdown inventory, meant to be read rendered (GitHub, VS Code) and still readable raw:
 * a summary table, one table of all files, a section per model found, then the files that were
 * not found, failed or were skipped, with reasons. Every untrusted string goes through
 * md-escape.ts; the only links are civitai.com URLs we built; no images, no HTML.
 */

/** Descriptions are a glance; the model page has the rest. */
export const MD_DESCRIPTION_MAX_CHARS = 300;

const STATUS_LABEL: Record<RecordStatus, string> = {
  found: "found",
  not_found: "not found",
  error: "error",
  skipped: "skipped",
};

const SUMMARY_LABEL: Record<RecordStatus, string> = {
  found: "Found on Civitai",
  not_found: "Not found",
  error: "Errors",
  skipped: "Skipped",
};

const STATUS_ORDER: readonly RecordStatus[] = ["found", "not_found", "error", "skipped"];

function count(value: unknown): string {
  return typeof value === "number" && Number.isFinite(value) ? String(value) : MD_EMPTY;
}

function bytesText(bytes: unknown): string {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return MD_EMPTY;
  return mdText(bytes < 1024 ? formatBytes(bytes) : `${formatBytes(bytes)} (${bytes} bytes)`);
}

/** The path shown in the files table: relative to the root when there is one root, else whole. */
function shownPath(path: string, roots: readonly string[]): string {
  const root = roots.length === 1 ? roots[0] : undefined;
  if (root === undefined || root === "") return path;
  const prefix = root.endsWith("/") || root.endsWith("\\") ? root : `${root}/`;
  if (path.startsWith(prefix) && path.length > prefix.length) return path.slice(prefix.length);
  const windowsPrefix = `${root}\\`;
  if (path.startsWith(windowsPrefix) && path.length > windowsPrefix.length) return path.slice(windowsPrefix.length);
  return path;
}

function statusText(record: FileRecord): string {
  const label = STATUS_LABEL[record.status] ?? String(record.status);
  const candidates = record.ambiguous?.length ?? 0;
  return candidates > 1 ? `${label}, ambiguous (${candidates} candidates)` : label;
}

function modelTitle(info: CivitaiInfo): string {
  if (info.modelName && info.modelName.trim() !== "") return info.modelName;
  return info.modelId !== null ? `Model ${info.modelId}` : `Model version ${info.versionId}`;
}

/** A model page of our own making (no version pinned); null when the id is unknown. */
function modelPageUrl(info: CivitaiInfo): string | null {
  return typeof info.modelId === "number" && Number.isSafeInteger(info.modelId) ? `https://civitai.com/models/${info.modelId}` : null;
}

/** Plain one-paragraph description cut to {@link MD_DESCRIPTION_MAX_CHARS} (before escaping). */
export function shortDescription(description: string | null | undefined): string | null {
  if (!description) return null;
  const line = toSingleLine(description).replace(/\s+/g, " ").trim();
  return line === "" ? null : truncateText(line, MD_DESCRIPTION_MAX_CHARS);
}

function listText(values: readonly string[] | undefined): string {
  if (!values || values.length === 0) return MD_EMPTY;
  return values.map((v) => mdText(v)).join(", ");
}

function availabilityText(info: CivitaiInfo): string | null {
  const a = info.availability;
  if (!a) return null;
  const flags: string[] = [];
  if (a.archived) flags.push("archived (no download on Civitai)");
  if (a.takenDown) flags.push("taken down");
  if (a.earlyAccess) flags.push("early access");
  if (a.paidAccess) flags.push("paid access");
  return flags.length > 0 ? flags.join(", ") : null;
}

function nsfwText(nsfw: boolean | null): string {
  return nsfw === true ? "yes" : nsfw === false ? "no" : MD_EMPTY;
}

function renderSummary(inv: Inventory): string {
  const s = inv.summary;
  const rows: string[][] = [["Files", count(s?.files)]];
  for (const status of STATUS_ORDER) rows.push([mdText(SUMMARY_LABEL[status]), count(s?.byStatus?.[status])]);
  rows.push(["Total size", bytesText(s?.bytes)]);
  rows.push(["Roots", inv.roots.length > 0 ? inv.roots.map((r) => mdText(r)).join(", ") : MD_EMPTY]);
  rows.push(["Generated at", mdText(inv.generatedAt)]);
  rows.push(["Tool", mdText(`${inv.tool?.name ?? "?"} ${inv.tool?.version ?? "?"}`)]);
  const mode = inv.options?.offline ? "offline (metadata cache only)" : inv.options?.apiUrl ? `online (${inv.options.apiUrl})` : "online";
  rows.push(["Mode", mdText(mode)]);
  return mdTable(["Summary", "Value"], rows);
}

function renderFilesTable(inv: Inventory, records: readonly FileRecord[]): string {
  if (records.length === 0) return "No files.";
  const rows = records.map((r) => {
    const c = r.civitai;
    return [
      mdText(shownPath(r.path, inv.roots)),
      c ? mdText(c.modelName) : MD_EMPTY,
      c ? mdText(c.versionName) : MD_EMPTY,
      c ? mdText(c.modelType) : MD_EMPTY,
      c ? mdText(c.baseModel) : MD_EMPTY,
      mdText(statusText(r)),
      c ? mdLink("page", c.pageUrl) : MD_EMPTY,
    ];
  });
  return mdTable(["File", "Model", "Version", "Type", "Base model", "Status", "Link"], rows);
}

interface VersionGroup {
  info: CivitaiInfo;
  records: FileRecord[];
}

interface ModelGroup {
  key: string;
  info: CivitaiInfo;
  versions: Map<number, VersionGroup>;
}

function groupFound(records: readonly FileRecord[]): ModelGroup[] {
  const groups = new Map<string, ModelGroup>();
  for (const record of records) {
    const info = record.civitai;
    if (record.status !== "found" || !info) continue;
    const key = info.modelId !== null ? `m${info.modelId}` : `v${info.versionId}`;
    let group = groups.get(key);
    if (!group) {
      group = { key, info, versions: new Map() };
      groups.set(key, group);
    }
    let version = group.versions.get(info.versionId);
    if (!version) {
      version = { info, records: [] };
      group.versions.set(info.versionId, version);
    }
    version.records.push(record);
  }
  return [...groups.values()].sort(
    (a, b) => compareByteOrder(modelTitle(a.info), modelTitle(b.info)) || compareByteOrder(a.key, b.key),
  );
}

function renderVersion(version: VersionGroup): string {
  const info = version.info;
  const lines = [`#### ${mdText(info.versionName ?? `Version ${info.versionId}`)}`, ""];
  lines.push(`- **Version id:** ${count(info.versionId)}`);
  lines.push(`- **Base model:** ${mdText(info.baseModel)}`);
  lines.push(`- **Trigger words:** ${listText(info.trainedWords)}`);
  const availability = availabilityText(info);
  if (availability) lines.push(`- **Availability:** ${mdText(availability)}`);
  lines.push(`- **Page:** ${mdLink("version page", info.pageUrl)}`);
  const fileName = info.matchedFile?.name ?? "download";
  const download = isCivitaiUrl(info.downloadUrl) ? mdLink(fileName, info.downloadUrl) : mdLink("primary file of this version", info.primaryDownloadUrl);
  lines.push(`- **Download:** ${download}`);
  lines.push("- **Local files:**");
  for (const record of version.records) {
    const sha = record.hashes.sha256;
    lines.push(`  - ${mdCode(record.path)}${sha ? ` (SHA-256 ${mdCode(sha)})` : ""}`);
    for (const other of record.ambiguous?.slice(1) ?? []) {
      const label = `${modelTitle(other)} — ${other.versionName ?? `version ${other.versionId}`}`;
      lines.push(`    - also claimed by ${mdLink(label, other.pageUrl, mdText(label))}`);
    }
  }
  return lines.join("\n");
}

function renderModel(group: ModelGroup): string {
  const info = group.info;
  const lines = [`### ${mdText(modelTitle(info))}`, ""];
  lines.push(`- **Model id:** ${count(info.modelId)}`);
  lines.push(`- **Type:** ${mdText(info.modelType)}`);
  lines.push(`- **Creator:** ${mdText(info.creator)}`);
  lines.push(`- **NSFW:** ${nsfwText(info.nsfw)}`);
  lines.push(`- **Tags:** ${listText(info.tags)}`);
  lines.push(`- **Page:** ${mdLink("model page", modelPageUrl(info) ?? info.pageUrl)}`);
  const description = shortDescription(info.description);
  if (description) lines.push("", mdText(description));
  const versions = [...group.versions.values()].sort((a, b) => a.info.versionId - b.info.versionId);
  for (const version of versions) lines.push("", renderVersion(version));
  return lines.join("\n");
}

function renderOthers(records: readonly FileRecord[], status: RecordStatus): string {
  const lines: string[] = [];
  for (const r of records) {
    if (r.status !== status) continue;
    const parts = [mdCode(r.path)];
    if (status === "not_found") {
      if (typeof r.size === "number") parts.push(mdText(formatBytes(r.size)));
      parts.push(r.hashes.sha256 ? `SHA-256 ${mdCode(r.hashes.sha256)}` : "no SHA-256");
    } else {
      parts.push(mdText(status === "error" ? (r.error ?? "unknown error") : (r.reason ?? "no reason given")));
    }
    lines.push(`- ${parts.join(" — ")}`);
  }
  return lines.join("\n");
}

/** The Markdown report; same inventory, same text. */
export function renderMarkdown(inventory: Inventory): string {
  const records = sortRecords(inventory.records);
  const out: string[] = ["# Civitai model inventory", "", renderSummary(inventory), "", "## Files", "", renderFilesTable(inventory, records)];

  const groups = groupFound(records);
  out.push("", `## Models found (${groups.length})`, "");
  out.push(groups.length > 0 ? groups.map(renderModel).join("\n\n") : "No file was identified on Civitai.");

  const sections: [RecordStatus, string][] = [
    ["not_found", "Not found on Civitai"],
    ["error", "Errors"],
    ["skipped", "Skipped"],
  ];
  for (const [status, title] of sections) {
    const n = records.filter((r) => r.status === status).length;
    if (n === 0) continue;
    out.push("", `## ${title} (${n})`, "", renderOthers(records, status));
  }
  return `${out.join("\n")}\n`;
}
