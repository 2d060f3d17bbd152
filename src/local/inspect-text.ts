/**
 * The human view of `inspect`: one labelled block per kind of knowledge, every untrusted string
 * escaped for the terminal. Pure: it formats an InspectResult (local/inspect.ts).
 */
import { describeFormat } from "./file-format.ts";
import type { GgufSummary, LocalInfo, ModelGuess, ModelSpecInfo, SidecarInfo, TrainingInfo } from "./local-types.ts";
import { sidecarSha256Claims } from "./sidecars.ts";
import { SIDECAR_SOURCE_LABEL } from "./local-summary.ts";
import { escapeControl, formatBytes, plural, TRUNCATION_MARK, truncateText } from "../shared/format.ts";
import { basenamePath } from "../shared/fs-path.ts";
import { INSPECT_ALGOS, type InspectResult } from "./inspect-types.ts";

/** Metadata values longer than this are cut in the human view (the JSON keeps the 1,000-char cut). */
const HUMAN_VALUE_MAX = 160;
const LABEL_WIDTH = 12;

const e = escapeControl;

/** One line, at most `max` characters and the ellipsis. */
function cut(text: string, max = HUMAN_VALUE_MAX): string {
  return truncateText(text.replace(/\r?\n/g, "\\n"), max + TRUNCATION_MARK.length);
}

function row(label: string, value: string): string {
  return `${label.padEnd(LABEL_WIDTH)}${value}\n`;
}

function more(value: string): string {
  return `${" ".repeat(LABEL_WIDTH)}${value}\n`;
}

function describeGuess(g: ModelGuess): string {
  const kind = {
    lora: "LoRA",
    lycoris: "LyCORIS",
    checkpoint: "full checkpoint",
    unet: "UNet / diffusion model only",
    "textual-inversion": "textual inversion",
    vae: "VAE",
    controlnet: "ControlNet",
    "text-encoder": "text encoder",
    unknown: "unknown kind",
  }[g.kind];
  const parts = [g.subtype ? `${kind} (${g.subtype})` : kind];
  if (g.family !== "unknown") parts.push(g.family);
  return `${parts.join(", ")} — a guess, ${g.confidence} confidence`;
}

/** The human view: one labelled block per kind of knowledge, untrusted text escaped. */
export function formatInspect(r: InspectResult): string {
  const { local } = r;
  return [
    fileRows(r),
    hashRows(r),
    local.training ? block("training", trainingLines(local.training)) : "",
    local.modelspec ? block("modelspec", modelspecLines(local.modelspec)) : "",
    local.gguf ? block("gguf", ggufLines(local.gguf)) : "",
    metadataRows(local),
    sidecarRows(r),
    ...local.warnings.filter((w) => w !== local.formatMismatch).map((w) => row("warning", e(w))),
    ...local.errors.map((err) => row("error", e(err))),
  ].join("");
}

/** The file, its format, the guess of what it is and its tensors. */
function fileRows(r: InspectResult): string {
  const { local } = r;
  let out = "";
  out += row("file", e(r.path));
  out += row("size", `${formatBytes(r.size)} (${r.size} bytes)`);

  let format = local.format === "unknown" ? "unknown (not safetensors, GGUF, zip or pickle)" : describeFormat(local.format);
  if (local.header) format += ` (header ${local.header.length} bytes; tensor data from byte ${local.header.dataOffset})`;
  if (local.format === "pickle") format += ": never loaded";
  // Only a first entry PyTorch writes (data.pkl, version, …) makes it a PyTorch archive; any other zip is just a zip.
  else if (local.zip?.torch) format += " (PyTorch) holding a pickle: never loaded";
  out += row("format", format);
  if (local.formatMismatch) out += more(`warning: ${e(local.formatMismatch)}`);
  if (local.zip?.firstEntry) out += more(`first zip entry: ${e(local.zip.firstEntry)}`);

  if (local.guess) {
    out += row("guess", describeGuess(local.guess));
    for (const ev of local.guess.evidence) out += more(`· ${e(ev)}`);
  }
  if (local.tensors) {
    const dtypes = Object.entries(local.tensors.dtypes)
      .map(([d, n]) => `${d} ×${n}`)
      .join(", ");
    out += row("tensors", `${local.tensors.count} (${dtypes}), ${local.tensors.parameters.toLocaleString("en-US")} parameters`);
  }
  return out;
}

/** The computed hashes (or why there are none), then the hashes the header itself claims. */
function hashRows(r: InspectResult): string {
  let out = "";
  if (r.hashes) {
    let first = true;
    for (const algo of INSPECT_ALGOS) {
      const v = r.hashes[algo];
      const line = `${algo.padEnd(8)}${v ?? "-"}`;
      out += first ? row("hashes", line) : more(line);
      first = false;
    }
  } else if (r.hashError) out += row("hashes", `error: ${e(r.hashError)}`);
  else out += row("hashes", "not computed (--no-hash)");

  for (const h of r.local.embeddedHashes ?? []) {
    let note = "";
    if (h.autov3 && r.hashes?.autov3)
      note =
        h.autov3 === r.hashes.autov3
          ? " (matches the computed AutoV3)"
          : " (differs from the computed AutoV3; some tools hash differently)";
    out += row("embedded", `${h.key} ${h.value}${h.autov3 ? ` → AutoV3 ${h.autov3}` : ""}${note}`);
  }
  return out;
}

function trainingLines(t: TrainingInfo): [string, string | null][] {
  return [
    ["output name", t.outputName],
    ["base model", [t.baseModelVersion, t.sourceModelName ? `trained on ${t.sourceModelName}` : null].filter(Boolean).join(", ") || null],
    [
      "network",
      [t.networkModule, t.networkDim !== null ? `dim ${t.networkDim}` : null, t.networkAlpha !== null ? `alpha ${t.networkAlpha}` : null]
        .filter(Boolean)
        .join(", ") || null,
    ],
    ["resolution", t.resolution],
    ["epochs", t.epoch !== null || t.numEpochs !== null ? `${t.epoch ?? "?"} of ${t.numEpochs ?? "?"}` : null],
    ["steps", t.steps !== null ? `${t.steps}${t.maxTrainSteps !== null ? ` of ${t.maxTrainSteps}` : ""}` : null],
    ["clip skip", t.clipSkip !== null ? String(t.clipSkip) : null],
    ["images", t.numTrainImages !== null ? String(t.numTrainImages) : null],
    ["optimizer", t.optimizer],
    ["learning rate", t.learningRate],
    ["class tokens", t.classTokens.length > 0 ? t.classTokens.join(", ") : null],
    ["top tags", t.topTags.length > 0 ? t.topTags.map((x) => `${x.tag} (${x.count})`).join(", ") : null],
    ["comment", t.comment],
  ];
}

function modelspecLines(m: ModelSpecInfo): [string, string | null][] {
  return [
    ["architecture", m.architecture],
    ["title", m.title],
    ["author", m.author],
    ["trigger", m.triggerPhrase],
    ["license", m.license],
    ["date", m.date],
    ["resolution", m.resolution],
    ["description", m.description],
  ];
}

function ggufLines(g: GgufSummary): [string, string | null][] {
  return [
    ["version", String(g.version)],
    ["architecture", g.architecture],
    ["name", g.name],
    ["file type", g.fileType !== null ? String(g.fileType) : null],
    ["tensors", String(g.tensorCount)],
    ["metadata", `${plural(g.kvCount, "key")}${g.truncated ? " (partly read)" : ""}`],
  ];
}

/** The header's metadata, sorted by key, each value cut to one short line. */
function metadataRows(local: LocalInfo): string {
  const meta = local.header?.metadata;
  if (!meta || Object.keys(meta).length === 0) return "";
  const shown = Object.keys(meta).length;
  const total = local.header?.metadataCount ?? shown;
  let out = row("metadata", `${plural(total, "key")}${total > shown ? ` (the first ${shown} shown)` : ""}`);
  for (const key of Object.keys(meta).sort()) out += more(`${e(cut(key, 60))}: ${e(cut(meta[key]!))}`);
  return out;
}

/** Each sidecar, and the SHA-256 it claims for this file checked against ours. */
function sidecarRows(r: InspectResult): string {
  const sidecars = r.local.sidecars;
  if (!sidecars || sidecars.length === 0) return "";
  const claims = sidecarSha256Claims(sidecars, basenamePath(r.path), r.size, r.hashes?.sha256);
  let out = "";
  let first = true;
  for (const s of sidecars) {
    const line = `${e(s.file)} (${SIDECAR_SOURCE_LABEL[s.source]}): ${describeSidecar(s)}`;
    out += first ? row("sidecars", line) : more(line);
    first = false;
    for (const c of claims.filter((claim) => claim.file === s.file)) {
      const agree = r.hashes?.sha256 ? (c.sha256 === r.hashes.sha256 ? "matches our sha256" : "DIFFERS from our sha256") : "not checked";
      out += more(`  claims sha256 ${c.sha256} (${agree})`);
    }
  }
  return out;
}

function block(title: string, lines: [string, string | null][]): string {
  let out = "";
  let first = true;
  for (const [label, value] of lines) {
    if (value === null) continue;
    const text = `${label.padEnd(14)}${e(cut(value))}`;
    out += first ? row(title, text) : more(text);
    first = false;
  }
  return out;
}

function describeSidecar(s: SidecarInfo): string {
  if (s.status === "invalid") return `unreadable (${e(s.error ?? "invalid")})`;
  const parts: string[] = [];
  if (s.status === "not-found") parts.push("Civitai did not know it");
  if (s.modelId !== null || s.modelName) parts.push(`model ${s.modelId ?? "?"}${s.modelName ? ` "${cut(s.modelName, 80)}"` : ""}`);
  if (s.versionId !== null || s.versionName)
    parts.push(`version ${s.versionId ?? "?"}${s.versionName ? ` "${cut(s.versionName, 80)}"` : ""}`);
  if (s.modelType) parts.push(s.modelType);
  if (s.baseModel) parts.push(s.baseModel);
  if (s.trainedWords.length > 0) parts.push(`trained words: ${cut(s.trainedWords.join(", "), 120)}`);
  if (s.activationText) parts.push(`activation text: ${cut(s.activationText, 120)}`);
  if (s.preferredWeight !== null) parts.push(`weight ${s.preferredWeight}`);
  if (s.deleted) parts.push("deleted on Civitai");
  return e(parts.join("; ") || "no details");
}
