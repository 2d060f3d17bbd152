import { basename } from "node:path";
import type { Inventory } from "./inventory-types.ts";
import type { CivitaiInfo, FileRecord, LicenseFlags, RecordStatus, SidecarIdentity } from "./record-types.ts";
import { escapeHtml, htmlMultiline, htmlText, jsonForScript } from "./html-escape.ts";
import { isCivitaiUrl, toSingleLine } from "./md-escape.ts";
import { shownPath } from "./md-cells.ts";
import { FILTER_BADGE_LABEL, recordBadges, type Badge, type FilterBadge } from "./gallery-badges.ts";
import { GALLERY_CSS, GALLERY_JS } from "./gallery-assets.ts";
import { guessLabel, SIDECAR_SOURCE_LABEL } from "../local/local-summary.ts";
import { compareByteOrder } from "../scan/path-filter.ts";
import { formatBytes, truncateText } from "../shared/format.ts";
import { modelPageUrl } from "../civitai/civitai-record.ts";
import type { PreviewOutcome } from "../preview/previews.ts";
import { isPlainObject } from "../shared/json-guard.ts";

/**
 * The HTML gallery: one self-contained file that opens from disk with no server and makes no
 * network request. Pure: the page is built as a string from the inventory and the preview images
 * already fetched (preview/previews.ts).
 * - A Content-Security-Policy forbids every fetch (`default-src 'none'`), allows images only as
 *   `data:` URIs, and allows exactly our own style sheet and script by hash (gallery-assets.ts):
 *   even a name that slipped through escaping could not load or run anything.
 * - Every card is rendered here, so with JavaScript off the page is a complete plain list; the
 *   script only adds search, filters, sorting and copy buttons.
 * - Untrusted text goes through html-escape.ts; the only links are civitai.com URLs built from
 *   numeric ids, never a URL read from Civitai or from the inventory file.
 */

/** Descriptions are a glance: the model page has the rest. */
export const HTML_DESCRIPTION_MAX_CHARS = 600;
/**
 * Names, versions and trigger words longer than this are cut to a few lines by the style sheet
 * (a 2,000-character name made its card 6,900 px tall); their whole text is then in a tooltip,
 * and names and versions are also under "More".
 */
const LONG_TEXT_CHARS = 80;

export interface HtmlOptions {
  /**
   * Preview of each record, by path. Absent: images were left out (--no-images) and cards have
   * no picture area at all.
   */
  previews?: ReadonlyMap<string, PreviewOutcome>;
  /** The rating limit applied, for the header ("PG-13"). */
  nsfwLabel?: string;
}

const STATUS_LABEL: Record<RecordStatus, string> = {
  found: "Found",
  gone: "Gone",
  not_found: "Not found",
  error: "Error",
  skipped: "Skipped",
};
const STATUS_ORDER: readonly RecordStatus[] = ["found", "gone", "not_found", "error", "skipped"];
const FILTER_BADGES: readonly FilterBadge[] = ["update", "duplicate", "gone"];
const UNKNOWN = "Unknown";

const sha256Base64 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("base64");
const CSS_HASH = sha256Base64(GALLERY_CSS);
const JS_HASH = sha256Base64(GALLERY_JS);

/** The page's policy: nothing from anywhere, images from `data:` only, our two inline blocks by hash. */
export const GALLERY_CSP = [
  "default-src 'none'",
  "img-src data:",
  `style-src 'sha256-${CSS_HASH}'`,
  `script-src 'sha256-${JS_HASH}'`,
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/**
 * What the script filters and sorts on, one entry per card, in card order. The cards are already
 * in name order (compareNames), so the script's name sort and its tie-breaks keep card order.
 */
interface CardData {
  /** Lower-case search text: names, file, trigger words, tags, creator, type, base model. */
  s: string;
  t: string;
  b: string;
  /** Status and filterable badges. */
  st: string[];
  z: number | null;
  p: string;
  d: string | null;
}

/**
 * What one card shows, read defensively: `report` renders inventories read from disk, which may
 * have been edited, so every field the renderer uses is type-checked here once (inventory-read.ts
 * checks only the fields every format needs).
 */
interface Card {
  record: FileRecord;
  name: string;
  type: string;
  base: string;
  version: string | null;
  words: string[];
  tags: string[];
  creator: string | null;
  description: string | null;
  license: LicenseFlags | null;
  /** A civitai.com page built from ids; null when there are none. */
  page: string | null;
  /** The identity comes from another tool's sidecar, not from Civitai. */
  fromSidecar: boolean;
  modelId: number | null;
  publishedAt: string | null;
  badges: Badge[];
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function strList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string" && v.trim() !== "") : [];
}

function cardOf(record: FileRecord): Card {
  const c: Partial<CivitaiInfo> | undefined = isPlainObject(record.civitai) ? record.civitai : undefined;
  const side: Partial<SidecarIdentity> | undefined = !c && isPlainObject(record.sidecar) ? record.sidecar : undefined;
  const fileName = basename(record.path);
  // What the file's own header suggests, labelled as a guess, when nobody names the model.
  const guess = isPlainObject(record.local?.guess) ? record.local.guess : undefined;
  const label = guessLabel(guess);
  const guessedKind = label ? `${label.replace(/,.*$/, "").replace(/ \(guess\)$/, "")} (guess)` : null;
  const guessedBase = typeof guess?.family === "string" && guess.family !== "unknown" ? `${guess.family} (guess)` : null;
  // One line, controls visible: the same text in the card, the filter options and the card data.
  const name = oneLine(c?.modelName) ?? oneLine(side?.modelName) ?? oneLine(fileName) ?? "(no name)";
  const type = oneLine(c?.modelType) ?? oneLine(side?.modelType) ?? guessedKind ?? UNKNOWN;
  const base = oneLine(c?.baseModel) ?? oneLine(side?.baseModel) ?? guessedBase ?? UNKNOWN;
  const description = str(c?.description)?.trim();
  const modelId = c ? c.modelId : side?.modelId;
  return {
    record,
    name,
    type,
    base,
    version: str(c?.versionName) ?? str(side?.versionName),
    words: strList(c ? c.trainedWords : side?.trainedWords),
    tags: strList(c?.tags),
    creator: str(c?.creator) ?? str(side?.creator),
    description: description ? truncateText(description, HTML_DESCRIPTION_MAX_CHARS) : null,
    license: isPlainObject(c?.license) ? (c.license as LicenseFlags) : null,
    page: c ? pageUrl(c.modelId, c.versionId) : side ? pageUrl(side.modelId, side.versionId) : null,
    fromSidecar: side !== undefined,
    modelId: typeof modelId === "number" && Number.isSafeInteger(modelId) ? modelId : null,
    publishedAt: str(c?.publishedAt),
    badges: recordBadges(record),
  };
}

function oneLine(text: unknown): string | null {
  if (typeof text !== "string") return null;
  const line = toSingleLine(text).trim();
  return line === "" ? null : line;
}

/** A civitai.com page from ids alone; null when they are not plain positive integers. */
function pageUrl(modelId: unknown, versionId: unknown): string | null {
  const ok = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v > 0;
  if (ok(versionId)) {
    const url = modelPageUrl(ok(modelId) ? modelId : null, versionId);
    return isCivitaiUrl(url) ? url : null;
  }
  return ok(modelId) ? `https://civitai.com/models/${modelId}` : null;
}

function link(text: string, url: string | null): string {
  if (url === null || !isCivitaiUrl(url)) return "";
  return `<a href="${escapeHtml(url)}" rel="noopener noreferrer" target="_blank">${escapeHtml(text)}</a>`;
}

function licenseText(license: LicenseFlags | null | undefined): string | null {
  if (!license) return null;
  const parts: string[] = [];
  const commercial = Array.isArray(license.allowCommercialUse) ? license.allowCommercialUse : [];
  parts.push(commercial.length > 0 ? `commercial use: ${commercial.join(", ")}` : "no commercial use");
  if (license.allowNoCredit === false) parts.push("credit required");
  if (license.allowNoCredit === true) parts.push("no credit needed");
  if (license.allowDerivatives === false) parts.push("no derivatives");
  if (license.allowDerivatives === true) parts.push("derivatives allowed");
  if (license.allowDifferentLicense === false) parts.push("merges keep these terms");
  return parts.join("; ");
}

function statusText(record: FileRecord): string {
  const label = STATUS_LABEL[record.status] ?? String(record.status);
  if (record.status === "error" && record.error) return `${label}: ${record.error}`;
  if (record.status === "skipped" && record.reason) return `${label}: ${record.reason}`;
  if (record.status !== "found" && record.sidecar) {
    return `${label} on Civitai; known from a ${SIDECAR_SOURCE_LABEL[record.sidecar.source] ?? String(record.sidecar.source)} sidecar`;
  }
  return label;
}

function sizeText(size: number | null): string | null {
  return typeof size === "number" && Number.isFinite(size) && size >= 0 ? formatBytes(size) : null;
}

function fact(label: string, value: string | null, cls = ""): string {
  if (value === null || value.trim() === "") return "";
  return `<dt>${label}</dt><dd${cls ? ` class="${cls}"` : ""}>${htmlText(value)}</dd>`;
}

/** A path that may wrap after each separator (escaped, with `<wbr>`), rather than mid-name. */
function pathHtml(path: string): string {
  return htmlText(path).split("/").join("/<wbr>");
}

function figure(record: FileRecord, previews: ReadonlyMap<string, PreviewOutcome> | undefined): string {
  if (!previews) return "";
  const p = previews.get(record.path);
  if (p?.kind === "image") {
    const src = `data:${p.image.mime};base64,${Buffer.from(p.bytes).toString("base64")}`;
    return `<figure class="thumb"><img src="${src}" alt="" loading="lazy" decoding="async"></figure>`;
  }
  const failed = p?.kind === "failed";
  const reason = p ? p.reason : "no preview";
  return `<figure class="thumb${failed ? " failed" : ""}"><figcaption>${failed ? "Preview not loaded: " : "No preview: "}${htmlText(reason)}</figcaption></figure>`;
}

function badgeList(card: Card, modelId: number | null): string {
  if (card.badges.length === 0) return "";
  const items = card.badges.map((b) => {
    const title = b.detail ? ` title="${htmlText(b.detail)}"` : "";
    const target = b.link ? pageUrl(b.link.modelId ?? modelId, b.link.versionId) : null;
    const inner = target ? link(b.label, target) : htmlText(b.label);
    return `<li class="badge b-${b.kind}"${title}>${inner}</li>`;
  });
  return `<ul class="badges" aria-label="Badges">${items.join("")}</ul>`;
}

/** A ` title="…"` with the whole text when the style sheet may cut it short; else nothing. */
function fullTitle(text: string | null): string {
  return text !== null && text.length > LONG_TEXT_CHARS ? ` title="${htmlText(text)}"` : "";
}

function triggerWords(words: readonly string[]): string {
  if (words.length === 0) return "";
  const items = words.map((w) => {
    const text = htmlText(w);
    return `<li><code${fullTitle(w)}>${text}</code><button type="button" class="copy" aria-label="Copy trigger word: ${text}" hidden>Copy</button></li>`;
  });
  return `<div class="words"><h3>Trigger words</h3><ul>${items.join("")}</ul></div>`;
}

function renderCard(card: Card, index: number, roots: readonly string[], opts: HtmlOptions): string {
  const r = card.record;
  const aliases =
    Array.isArray(r.aliases) && r.aliases.length > 0 ? ` (+${r.aliases.length} link${r.aliases.length === 1 ? "" : "s"})` : "";
  const facts = [
    fact("Type", card.type),
    fact("Base model", card.base),
    fact("Size", sizeText(r.size)),
    fact("Status", statusText(r), `st-${r.status}`),
    `<dt>File</dt><dd>${pathHtml(shownPath(r.path, roots))}${aliases}</dd>`,
  ].join("");
  // Creator, licence and description are a click away: the card stays short enough to scan.
  const more = [
    card.name.length > LONG_TEXT_CHARS ? fact("Name", card.name) : "",
    card.version !== null && card.version.length > LONG_TEXT_CHARS ? fact("Version", card.version) : "",
    fact("Creator", card.creator),
    fact("Licence", licenseText(card.license)),
  ].join("");
  const description = card.description ? `<p>${htmlMultiline(card.description)}</p>` : "";
  const details =
    more || description ? `<details><summary>More</summary>${more ? `<dl class="facts">${more}</dl>` : ""}${description}</details>` : "";
  const pageLabel = card.fromSidecar ? "Civitai page (from sidecar)" : "Civitai page";
  return [
    `<article class="card" id="card-${index}" aria-labelledby="name-${index}">`,
    figure(r, opts.previews),
    `<div class="body">`,
    `<h2 id="name-${index}"${fullTitle(card.name)}>${htmlText(card.name)}</h2>`,
    card.version ? `<p class="ver"${fullTitle(card.version)}>${htmlText(card.version)}</p>` : "",
    badgeList(card, card.modelId),
    `<dl class="facts">${facts}</dl>`,
    triggerWords(card.words),
    details,
    card.page ? `<p class="links">${link(pageLabel, card.page)}</p>` : "",
    `</div></article>`,
  ].join("");
}

function cardData(card: Card, roots: readonly string[]): CardData {
  const r = card.record;
  const parts = [card.name, card.version, shownPath(r.path, roots), ...card.words, ...card.tags, card.creator, card.type, card.base];
  const sha = str(r.hashes?.sha256);
  if (sha) parts.push(sha.slice(0, 10));
  const st: string[] = [r.status];
  for (const b of card.badges) if ((FILTER_BADGES as readonly string[]).includes(b.kind) && !st.includes(b.kind)) st.push(b.kind);
  return {
    s: parts
      .filter((p): p is string => typeof p === "string")
      .join("\n")
      .toLowerCase(),
    t: card.type,
    b: card.base,
    st,
    z: typeof r.size === "number" ? r.size : null,
    p: r.path,
    d: card.publishedAt,
  };
}

function options(values: Iterable<string>, allLabel: string): string {
  const sorted = [...new Set(values)].sort((a, b) => compareByteOrder(a.toLowerCase(), b.toLowerCase()) || compareByteOrder(a, b));
  return [`<option value="">${allLabel}</option>`, ...sorted.map((v) => `<option value="${htmlText(v, "")}">${htmlText(v)}</option>`)].join(
    "",
  );
}

function statusOptions(cards: readonly Card[]): string {
  const present = new Set<string>();
  for (const card of cards) {
    present.add(card.record.status);
    for (const b of card.badges) present.add(b.kind);
  }
  const items = [`<option value="">All statuses</option>`];
  for (const s of STATUS_ORDER) if (present.has(s)) items.push(`<option value="${s}">${STATUS_LABEL[s]}</option>`);
  for (const b of FILTER_BADGES) if (present.has(b)) items.push(`<option value="${b}">${FILTER_BADGE_LABEL[b]}</option>`);
  return items.join("");
}

function summary(cards: readonly Card[], opts: HtmlOptions): string {
  const items: string[] = [];
  const n = (v: number) => v.toLocaleString("en-US");
  items.push(`<li><b>${n(cards.length)}</b> files</li>`);
  const byStatus: Record<string, number> = {};
  for (const card of cards) byStatus[card.record.status] = (byStatus[card.record.status] ?? 0) + 1;
  for (const s of STATUS_ORDER) if (byStatus[s]) items.push(`<li><b>${n(byStatus[s]!)}</b> ${STATUS_LABEL[s].toLowerCase()}</li>`);
  const bytes = cards.reduce((sum, c) => sum + (typeof c.record.size === "number" && c.record.size > 0 ? c.record.size : 0), 0);
  items.push(`<li><b>${htmlText(formatBytes(bytes))}</b> in all</li>`);
  for (const b of FILTER_BADGES) {
    const count = cards.filter((c) => c.badges.some((x) => x.kind === b)).length;
    if (count > 0) items.push(`<li><b>${n(count)}</b> ${FILTER_BADGE_LABEL[b].toLowerCase()}</li>`);
  }
  const notes: string[] = [];
  if (opts.previews) {
    const outcomes = cards.map((c) => opts.previews!.get(c.record.path));
    const shown = outcomes.filter((o) => o?.kind === "image").length;
    const failed = outcomes.filter((o) => o?.kind === "failed") as Extract<PreviewOutcome, { kind: "failed" }>[];
    items.push(`<li><b>${n(shown)}</b> previews</li>`);
    if (failed.length > 0) {
      const reasons = new Map<string, number>();
      for (const f of failed) reasons.set(f.reason, (reasons.get(f.reason) ?? 0) + 1);
      const top = [...reasons].sort((a, b) => b[1] - a[1] || compareByteOrder(a[0], b[0])).slice(0, 5);
      notes.push(
        `${n(failed.length)} preview${failed.length === 1 ? "" : "s"} could not be loaded (the cards say why): ${top
          .map(([reason, count]) => `${htmlText(reason)} ×${n(count)}`)
          .join("; ")}`,
      );
    }
    if (opts.nsfwLabel) notes.push(`Previews show images rated ${htmlText(opts.nsfwLabel)} or lower.`);
  } else {
    notes.push("Images left out (--no-images).");
  }
  const noteList = notes.length > 0 ? `<ul class="notes">${notes.map((x) => `<li>${x}</li>`).join("")}</ul>` : "";
  return `<ul class="summary" aria-label="Summary">${items.join("")}</ul>${noteList}`;
}

const DIGITS = /(\d+)/;

/**
 * Names in reading order, the same on every machine (no locale): case-insensitive, runs of digits
 * compared as numbers ("Model 2" before "Model 10"), the rest in byte order; ties in byte order.
 */
function compareNames(a: string, b: string): number {
  // split with a capturing group: text at even indexes, digit runs at odd ones.
  const x = a.toLowerCase().split(DIGITS);
  const y = b.toLowerCase().split(DIGITS);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    if (i % 2 === 1) {
      const m = p.replace(/^0+(?=\d)/, "");
      const n = q.replace(/^0+(?=\d)/, "");
      if (m.length !== n.length) return m.length - n.length;
      if (m !== n) return m < n ? -1 : 1;
      continue;
    }
    return compareByteOrder(p, q);
  }
  return x.length - y.length || compareByteOrder(a, b);
}

/** The gallery page. Deterministic: the same inventory and previews give the same bytes. */
export function renderHtml(inv: Inventory, opts: HtmlOptions = {}): string {
  const roots = Array.isArray(inv.roots) ? inv.roots : [];
  const cards = inv.records.map(cardOf).sort((a, b) => compareNames(a.name, b.name) || compareByteOrder(a.record.path, b.record.path));
  const tool = `${inv.tool?.name ?? "civitai-meta"} ${inv.tool?.version ?? ""}`.trim();
  const rootText = roots.length > 0 ? ` · ${roots.map((r) => htmlText(r)).join(", ")}` : "";
  const body = cards.map((card, i) => renderCard(card, i, roots, opts)).join("\n");
  return [
    "<!DOCTYPE html>",
    `<html lang="en">`,
    "<head>",
    `<meta charset="utf-8">`,
    `<meta http-equiv="Content-Security-Policy" content="${GALLERY_CSP}">`,
    `<meta name="referrer" content="no-referrer">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<meta name="generator" content="${htmlText(tool)}">`,
    `<title>Model library · ${cards.length} files</title>`,
    `<link rel="icon" href="data:,">`,
    `<style>${GALLERY_CSS}</style>`,
    "</head>",
    "<body>",
    `<a class="skip" href="#cards">Skip to the models</a>`,
    "<header>",
    "<h1>Model library</h1>",
    `<p class="meta">Generated ${htmlText(inv.generatedAt)} by ${htmlText(tool)}${rootText}</p>`,
    summary(cards, opts),
    // Shown until the script hides it: a <noscript> is not shown when a browser only stops running scripts.
    `<p class="notes" id="nojs">JavaScript is off: every model is listed below. Search, filters, sorting and copy buttons need JavaScript.</p>`,
    "</header>",
    `<div class="controls" id="controls" role="search" hidden>`,
    `<label for="q">Search<input id="q" type="search" placeholder="name, trigger word, tag, file…" autocomplete="off" spellcheck="false"></label>`,
    `<label for="f-type">Type<select id="f-type">${options(
      cards.map((c) => c.type),
      "All types",
    )}</select></label>`,
    `<label for="f-base">Base model<select id="f-base">${options(
      cards.map((c) => c.base),
      "All base models",
    )}</select></label>`,
    `<label for="f-status">Status<select id="f-status">${statusOptions(cards)}</select></label>`,
    `<label for="sort">Sort by<select id="sort"><option value="name">Name</option><option value="newest">Newest on Civitai</option><option value="size">Size, largest first</option><option value="type">Type</option><option value="base">Base model</option><option value="path">File path</option></select></label>`,
    `<button type="button" id="reset">Clear filters</button>`,
    `<p id="count" role="status" aria-live="polite"></p>`,
    "</div>",
    `<p id="announce" class="vh" role="status" aria-live="polite"></p>`,
    `<main id="cards" class="grid" tabindex="-1">`,
    body,
    "</main>",
    `<p id="none" class="empty" hidden>No model matches the search and filters.</p>`,
    cards.length === 0 ? `<p class="empty">No model files in this inventory.</p>` : "",
    `<script type="application/json" id="gallery-data">${jsonForScript(cards.map((c) => cardData(c, roots)))}</script>`,
    `<script>${GALLERY_JS}</script>`,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
