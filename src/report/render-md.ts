import type { Inventory } from "./inventory-types.ts";
import type { CivitaiInfo, FileRecord, RecordStatus } from "./record-types.ts";
import { MD_EMPTY, isCivitaiUrl, mdCode, mdLink, mdTable, mdText, toSingleLine } from "./md-escape.ts";
import { compareByteOrder } from "../scan/path-filter.ts";
import { sortRecords } from "./render-json.ts";
import { formatBytes, truncateText } from "../shared/format.ts";
import { guessLabel, localTriggerWords, SIDECAR_SOURCE_LABEL, trainingBaseModel } from "../local/local-summary.ts";
import type { SidecarIdentity } from "./record-types.ts";

/**
 * The Markdown inventory, meant to be read rendered (GitHub, VS Code) and still readable raw:
 * a summary table, one table of all files, a section per model found, then the files that were
 * not found, failed or were skipped, with reasons. Every untrusted string goes through
 * md-escape.ts (text from a file's header or a sidecar exactly like names from Civitai); the only
 * links are civitai.com URLs we built; no images, no HTML.
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
function fileCell(record: FileRecord, roots: readonly string[]): string {
  const cell = mdText(shownPath(record.path, roots));
  const aliases = record.aliases ?? [];
  if (aliases.length === 0) return cell;
  return `${cell} (also: ${aliases.map((a) => mdText(shownPath(a, roots))).join(", ")})`;
}

/** List items naming the file's other paths, for the sections that show full paths. */
function aliasLines(record: FileRecord): string[] {
  return (record.aliases ?? []).map((a) => `also at ${mdCode(a)}`);
}

function statusText(record: FileRecord): string {
  const label = STATUS_LABEL[record.status] ?? String(record.status);
  const candidates = record.ambiguous?.length ?? 0;
  if (candidates > 1) return `${label}, ambiguous (${candidates} candidates)`;
  if (record.status !== "found" && record.sidecar) return `${label}; known from ${sidecarSourceText(record.sidecar)}`;
  return label;
}

function sidecarSourceText(sidecar: Pick<SidecarIdentity, "source">): string {
  return `${SIDECAR_SOURCE_LABEL[sidecar.source] ?? String(sidecar.source)} sidecar`;
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
function shortDescription(description: string | null | undefined): string | null {
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
    // A name only a sidecar gives is labelled in its cell: the status column says which sidecar.
    const side = !c && r.status !== "found" ? r.sidecar : undefined;
    if (side) {
      return [
        fileCell(r, inv.roots),
        side.modelName ? `${mdText(side.modelName)} ${mdText("(sidecar)")}` : MD_EMPTY,
        mdText(side.versionName),
        mdText(side.modelType),
        mdText(side.baseModel),
        mdText(statusText(r)),
        mdLink("page", side.pageUrl),
      ];
    }
    return [
      fileCell(r, inv.roots),
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
  return [...groups.values()].sort((a, b) => compareByteOrder(modelTitle(a.info), modelTitle(b.info)) || compareByteOrder(a.key, b.key));
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
  const download = isCivitaiUrl(info.downloadUrl)
    ? mdLink(fileName, info.downloadUrl)
    : mdLink("primary file of this version", info.primaryDownloadUrl);
  lines.push(`- **Download:** ${download}`);
  lines.push("- **Local files:**");
  for (const record of version.records) {
    const sha = record.hashes.sha256;
    lines.push(`  - ${mdCode(record.path)}${sha ? ` (SHA-256 ${mdCode(sha)})` : ""}`);
    for (const line of aliasLines(record)) lines.push(`    - ${line}`);
    for (const other of record.ambiguous?.slice(1) ?? []) {
      const label = `${modelTitle(other)} — ${other.versionName ?? `version ${other.versionId}`}`;
      lines.push(`    - also claimed by ${mdLink(label, other.pageUrl, mdText(label))}`);
    }
    for (const line of localLines(record, info.trainedWords.length === 0)) lines.push(`    - ${line}`);
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
    for (const line of aliasLines(r)) lines.push(`  - ${line}`);
    for (const line of sidecarLines(r)) lines.push(`  - ${line}`);
    for (const line of localLines(r, true)) lines.push(`  - ${line}`);
  }
  return lines.join("\n");
}

/**
 * What the file itself says, one list item each: format (with a mismatch warning), the guess
 * (labelled), trigger words from the header (only where Civitai gave none), training base model,
 * and header errors. Every value escaped.
 */
function localLines(record: FileRecord, showTriggerWords: boolean): string[] {
  const local = record.local;
  if (!local) return [];
  const lines: string[] = [];
  lines.push(`**Format:** ${mdText(local.format)}${local.formatMismatch ? ` — **warning:** ${mdText(local.formatMismatch)}` : ""}`);
  const guess = guessLabel(local.guess);
  if (guess) lines.push(`**Guess:** ${mdText(guess)}`);
  const words = localTriggerWords(local);
  if (showTriggerWords && words.length > 0) lines.push(`**Trigger words (from the file):** ${listText(words)}`);
  const base = trainingBaseModel(local);
  if (base) lines.push(`**Training base model (from the file):** ${mdText(base)}`);
  for (const error of local.errors) lines.push(`**Header error:** ${mdText(error)}`);
  return lines;
}

/** The identity a sidecar gives, and sidecars that say Civitai did not know the file. */
function sidecarLines(record: FileRecord): string[] {
  const lines: string[] = [];
  const side = record.sidecar;
  if (side) {
    const checked = side.checkedBy === "sha256" ? "its SHA-256 matches the file" : "trusted by size, file not hashed";
    const name = [side.modelName, side.versionName]
      .filter((x): x is string => !!x && x.trim() !== "")
      .map((x) => mdText(x))
      .join(" — ");
    const ids = [
      side.modelId !== null ? `model ${side.modelId}` : null,
      side.versionId !== null ? `version ${side.versionId}` : null,
    ].filter((x) => x !== null);
    let line = `**Known from ${mdText(sidecarSourceText(side))}** (${mdCode(side.file)}, ${mdText(checked)}): ${name || MD_EMPTY}`;
    if (ids.length > 0) line += ` (${mdText(ids.join(", "))})`;
    const page = mdLink("page", side.pageUrl, "");
    if (page) line += ` — ${page}`;
    lines.push(line);
    const facts: string[] = [];
    if (side.modelType) facts.push(`type ${mdText(side.modelType)}`);
    if (side.baseModel) facts.push(`base model ${mdText(side.baseModel)}`);
    if (side.trainedWords.length > 0) facts.push(`trigger words ${listText(side.trainedWords)}`);
    if (side.creator) facts.push(`creator ${mdText(side.creator)}`);
    if (side.deleted) facts.push("deleted on Civitai");
    if (facts.length > 0) lines.push(`**From the sidecar:** ${facts.join("; ")}`);
  }
  for (const s of record.local?.sidecars ?? []) {
    if (s.status === "not-found") lines.push(`${mdText(sidecarSourceText(s))} ${mdCode(s.file)} says Civitai did not know this file`);
  }
  return lines;
}

/** The Markdown report; same inventory, same text. */
export function renderMarkdown(inventory: Inventory): string {
  const records = sortRecords(inventory.records);
  const out: string[] = [
    "# Civitai model inventory",
    "",
    renderSummary(inventory),
    "",
    "## Files",
    "",
    renderFilesTable(inventory, records),
  ];

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
