import { posix } from "node:path";
import { isCivitaiId, normalizeSha256 } from "../civitai/cache-keys.ts";
import { fileDownloadUrl, fileHash, primaryDownloadUrl, versionFiles } from "../civitai/civitai-record.ts";
import type { ApiFile, ApiModelVersion } from "../civitai/civitai-types.ts";
import type { Inventory } from "../report/inventory-types.ts";
import { joinWithin, MAX_NAME_BYTES, sanitizeFileName, sanitizeRelativePath } from "./file-name.ts";
import { formatBytes, plural } from "../shared/format.ts";
import { rawSafe } from "../shared/fs-path.ts";

/**
 * What to fetch and where, from resolved versions or an inventory. Pure: existing files, locks
 * and free space are the downloader's business; this decides names, URLs and expectations.
 */

/** Room kept under the 255-byte cap for `.<versionId>.part.json` / `.part.lock` beside the final name (resume-state.ts names them). */
const PART_SUFFIX_RESERVE = 24;
const NAME_MAX_BYTES = MAX_NAME_BYTES - PART_SUFFIX_RESERVE;

/** One file we want under the destination. */
export interface WantedFile {
  versionId: number;
  fileId: number | null;
  /** Relative to the destination folder, `/`-separated, every component sanitised. */
  relPath: string;
  /** Bytes; null when unknown. */
  size: number | null;
  /** False when `size` came from Civitai's `sizeKB` (a float), so a few bytes' difference is rounding. */
  sizeExact: boolean;
  /** Lower-case hex, Civitai's; null when Civitai gives none (then only the size is checked). */
  sha256: string | null;
  /** For messages: model and version names, escaped by the printer. */
  label: string;
  /** Other names of the same file (hard or soft links in the scanned folder), like `relPath`. */
  aliases?: string[];
}

/** Another name of a planned file: restored as a hard link to it, else as a verified copy. */
export interface PlannedAlias {
  relPath: string;
  /** Absolute, inside the destination. */
  dest: string;
}

export interface PlanItem extends Omit<WantedFile, "aliases"> {
  /** Our link (`https://civitai.com/api/download/models/{v}?fileId={f}`): never a key, never a signed URL. */
  url: string;
  /** Absolute final path, inside the destination. */
  dest: string;
  aliases: PlannedAlias[];
}

interface PlanConflict {
  wanted: WantedFile;
  reason: string;
}

export interface DownloadPlan {
  items: PlanItem[];
  conflicts: PlanConflict[];
}

function downloadUrlFor(versionId: number, fileId: number | null): string {
  return fileId === null ? primaryDownloadUrl(versionId) : fileDownloadUrl(versionId, fileId);
}

/** Civitai's `sizeKB` is bytes/1024 as a float; ×1024 is exact for realistic sizes but we do not rely on it. */
export function bytesFromSizeKB(sizeKB: unknown): number | null {
  return typeof sizeKB === "number" && Number.isFinite(sizeKB) && sizeKB >= 0 ? Math.round(sizeKB * 1024) : null;
}

export interface PickFileOptions {
  fileId?: number | null;
  sha256?: string | null;
}

/** The file of a version a source means: by id, else by SHA-256, else the primary, else the first model file. */
export function pickFile(version: ApiModelVersion, opts: PickFileOptions = {}): ApiFile | null {
  const files = versionFiles(version);
  if (opts.fileId != null) return files.find((f) => f.id === opts.fileId) ?? null;
  const sha = normalizeSha256(opts.sha256);
  if (sha !== null) return files.find((f) => fileHash(f, "SHA256") === sha) ?? null;
  return files.find((f) => f.primary === true) ?? files.find((f) => f.type === "Model") ?? files[0] ?? null;
}

export type WantedResult = { ok: true; wanted: WantedFile } | { ok: false; reason: string };

/** The wanted file for one version as the API describes it; the name is the API's, sanitised. */
export function wantedFromVersion(version: ApiModelVersion, opts: PickFileOptions = {}): WantedResult {
  const file = pickFile(version, opts);
  const what = `version ${version.id}`;
  if (file === null) {
    if (opts.fileId != null) return { ok: false, reason: `${what} has no file ${opts.fileId}` };
    if (opts.sha256) return { ok: false, reason: `${what} has no file with SHA-256 ${opts.sha256}` };
    return { ok: false, reason: `${what} lists no downloadable file (archived or removed?)` };
  }
  const fileId = isCivitaiId(file.id) ? file.id : null;
  const name =
    sanitizeFileName(String(file.name ?? ""), { maxBytes: NAME_MAX_BYTES }) ??
    `civitai-${version.id}${fileId === null ? "" : `-${fileId}`}.bin`;
  const modelName = typeof version.model?.name === "string" ? version.model.name : null;
  const versionName = typeof version.name === "string" ? version.name : null;
  return {
    ok: true,
    wanted: {
      versionId: version.id,
      fileId,
      relPath: name,
      size: bytesFromSizeKB(file.sizeKB),
      sizeExact: false,
      sha256: fileHash(file, "SHA256"),
      label: [modelName, versionName].filter(Boolean).join(" / ") || what,
    },
  };
}

/** The root of `roots` that holds `path` (the longest), and the path relative to it. */
export function relativeToRoots(path: string, roots: readonly string[]): string {
  const p = path.replace(/\\/g, "/");
  let best: string | null = null;
  for (const raw of roots) {
    const root = raw.replace(/\\/g, "/").replace(/\/+$/, "");
    if (p === root) return rawSafe(posix.basename, p); // a file given as a root
    if (p.startsWith(`${root}/`) && (best === null || root.length > best.length)) best = root;
  }
  return best === null ? rawSafe(posix.basename, p) : p.slice(best.length + 1);
}

export interface InventoryWanted {
  wanted: WantedFile[];
  /** Found records we cannot fetch, one line each. */
  problems: string[];
  /** Paths (relative to the scanned root) of files Civitai did not know when scanned: nothing to download. */
  notOnCivitai: string[];
  /** Paths of files whose hash or lookup failed when scanned: a new scan may find them. */
  notLookedUp: string[];
}

/**
 * Every `found` record of an inventory, at its path relative to the scan root it came from. The
 * expected bytes are the scanned file's own (size and SHA-256 are exact) when Civitai matched it
 * by SHA-256; for an AutoV3 match they are Civitai's file's.
 */
export function wantedFromInventory(inventory: Inventory): InventoryWanted {
  const wanted: WantedFile[] = [];
  const problems: string[] = [];
  const notOnCivitai: string[] = [];
  const notLookedUp: string[] = [];
  // rawBytes: a name that was not valid UTF-8 on the scanned disk comes back with its exact bytes.
  const relative = (path: string) =>
    sanitizeRelativePath(relativeToRoots(path, inventory.roots), { maxBytes: NAME_MAX_BYTES, rawBytes: true });
  for (const record of inventory.records) {
    if (record.status === "gone") {
      problems.push(`${record.path}: gone from Civitai, it cannot be downloaded there any more`);
      continue;
    }
    if (record.status === "not_found") notOnCivitai.push(relativeToRoots(record.path, inventory.roots));
    if (record.status === "error") notLookedUp.push(relativeToRoots(record.path, inventory.roots));
    if (record.status !== "found" || !record.civitai) continue;
    const info = record.civitai;
    const rel = relative(record.path);
    if (rel === null || !isCivitaiId(info.versionId)) {
      problems.push(`${record.path}: no usable name or version id in the inventory`);
      continue;
    }
    // A Set, not a search of the list per name: a hostile 3 MB inventory of 100,000 names for one
    // file made that quadratic (minutes of CPU before a byte was fetched).
    const aliases = new Set<string>();
    for (const alias of record.aliases ?? []) {
      const aliasRel = relative(alias);
      if (aliasRel === null) problems.push(`${alias}: no usable name for this other name of ${record.path}`);
      else if (aliasRel !== rel) aliases.add(aliasRel);
    }
    const matched = info.matchedFile;
    const bySha = record.matchedBy !== "autov3";
    const sha256 = bySha ? normalizeSha256(record.hashes.sha256) : normalizeSha256(matched?.hashes?.SHA256 ?? matched?.hashes?.sha256);
    const exact = bySha && typeof record.size === "number";
    const names = [info.modelName, info.versionName].filter(Boolean).join(" / ");
    wanted.push({
      versionId: info.versionId,
      fileId: matched && isCivitaiId(matched.id) ? matched.id : null,
      relPath: rel,
      size: exact ? (record.size as number) : bytesFromSizeKB(matched?.sizeKB),
      sizeExact: exact,
      sha256,
      label: names || `version ${info.versionId}`,
      ...(aliases.size > 0 ? { aliases: [...aliases] } : {}),
    });
  }
  return { wanted, problems, notOnCivitai, notLookedUp };
}

/**
 * Items with absolute destinations under `destDir` (pass its realpath). The same file asked twice
 * is fetched once; two different files wanting one path (or paths equal but for case, which is one
 * file on macOS and Windows) keep the first and report the rest. Other names (aliases) are placed
 * after every file, so a file always wins a path over another file's alias.
 */
export function buildPlan(wanted: readonly WantedFile[], destDir: string): DownloadPlan {
  const items: PlanItem[] = [];
  const conflicts: PlanConflict[] = [];
  const keyOf = (dest: string) => dest.normalize("NFC").toLowerCase();
  /** Every path planned so far, a file's or another name's, and who holds it. */
  const taken = new Map<string, { versionId: number; relPath: string; item?: PlanItem }>();
  const holder = (relPath: string, prior: { versionId: number; relPath: string }) =>
    `${relPath}: the same path is already planned for version ${prior.versionId} (${prior.relPath})`;
  const withAliases: { w: WantedFile; item: PlanItem }[] = [];
  for (const w of wanted) {
    let dest: string;
    try {
      dest = joinWithin(destDir, w.relPath);
    } catch (err) {
      conflicts.push({ wanted: w, reason: (err as Error).message });
      continue;
    }
    const prior = taken.get(keyOf(dest));
    if (prior?.item) {
      const p = prior.item;
      const same = p.versionId === w.versionId && p.fileId === w.fileId && (p.sha256 === w.sha256 || w.sha256 === null);
      if (!same) conflicts.push({ wanted: w, reason: holder(w.relPath, prior) });
      else if (w.aliases?.length) withAliases.push({ w, item: p });
      continue;
    }
    const item: PlanItem = {
      versionId: w.versionId,
      fileId: w.fileId,
      relPath: w.relPath,
      size: w.size,
      sizeExact: w.sizeExact,
      sha256: w.sha256,
      label: w.label,
      url: downloadUrlFor(w.versionId, w.fileId),
      dest,
      aliases: [],
    };
    taken.set(keyOf(dest), { versionId: w.versionId, relPath: w.relPath, item });
    items.push(item);
    if (w.aliases?.length) withAliases.push({ w, item });
  }
  // Other names come after every file: a file always wins a path over another file's other name.
  // Each item's names by key, so a file with many names is not searched once per name.
  const namesOf = new Map<PlanItem, Set<string>>();
  for (const { w, item } of withAliases) {
    let names = namesOf.get(item);
    if (names === undefined) namesOf.set(item, (names = new Set([keyOf(item.dest)])));
    for (const relPath of w.aliases ?? []) {
      let dest: string;
      try {
        dest = joinWithin(destDir, relPath);
      } catch (err) {
        conflicts.push({ wanted: w, reason: `other name ${(err as Error).message}` });
        continue;
      }
      const key = keyOf(dest);
      if (names.has(key)) continue;
      const prior = taken.get(key);
      if (prior) {
        conflicts.push({ wanted: w, reason: `other name ${holder(relPath, prior)}` });
        continue;
      }
      taken.set(key, { versionId: w.versionId, relPath });
      names.add(key);
      item.aliases.push({ relPath, dest });
    }
  }
  return { items, conflicts };
}

export interface DryRunEntry {
  item: PlanItem;
  /** E.g. "exists: will be verified"; absent for a plain fetch. */
  note?: string;
}

/** `--dry-run`: one line per file (size, path, URL), then the total of what would be fetched. */
export function renderDryRun(entries: readonly DryRunEntry[], escape: (s: string) => string = (s) => s): string {
  const lines: string[] = [];
  let total = 0;
  let unknown = 0;
  for (const { item, note } of entries) {
    if (!note) {
      if (item.size === null) unknown++;
      else total += item.size;
    }
    const size = item.size === null ? "?" : formatBytes(item.size);
    lines.push(`${size.padStart(10)}  ${escape(item.relPath)}  ${item.url}${note ? `  (${note})` : ""}`);
    for (const alias of item.aliases)
      lines.push(`${"link".padStart(10)}  ${escape(alias.relPath)}  (another name of ${escape(item.relPath)})`);
  }
  const fetching = entries.filter((e) => !e.note).length;
  lines.push(`${plural(fetching, "file")} to fetch, ${formatBytes(total)}${unknown ? ` plus ${unknown} of unknown size` : ""}`);
  return `${lines.join("\n")}\n`;
}

/**
 * A download route URL (Civitai's answers name civitai.com) on the API host the user chose: where
 * this tool asks (signed-link.ts) and where a list or dry run for it should point.
 */
export function onApiHost(url: string, apiHost: string): string {
  const route = new URL(url);
  return `${apiHost.replace(/\/+$/, "")}${route.pathname}${route.search}`;
}

export type EmitFormat = "aria2" | "sh" | "urls";
export const EMIT_FORMATS: readonly EmitFormat[] = ["aria2", "sh", "urls"];

/** The placeholder a user's shell or `envsubst` fills in: the key itself is never written. */
export const KEY_PLACEHOLDER = "${CIVITAI_API_KEY}";

/** POSIX single-quoting: safe for any byte except NUL (names are sanitised, so none). */
export function shQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * A download list for tools other than this one. aria2 gets `?token=` (Civitai strips it before the
 * redirect, so the signed storage URL never carries it) because aria2 would forward an
 * Authorization header to the storage host, which rejects it; the sh script uses curl's header,
 * which curl drops on a cross-host redirect.
 */
export function renderEmit(items: readonly PlanItem[], format: EmitFormat, toolVersion = ""): string {
  const by = `civitai-meta${toolVersion ? ` ${toolVersion}` : ""}`;
  // Tab-separated so paths with spaces survive `cut -f` / `while IFS=$'\t' read url out sha`.
  if (format === "urls") {
    return items.map((i) => `${i.url}${i.url.includes("?") ? "&" : "?"}token=${KEY_PLACEHOLDER}\t${i.dest}\t${i.sha256 ?? ""}\n`).join("");
  }
  if (format === "aria2") {
    const head = [
      `# aria2 input file written by ${by}.`,
      `# Fill in the key and run: envsubst '$CIVITAI_API_KEY' < this-file | aria2c --input-file=- --check-integrity=true --continue=true`,
    ];
    const body = items.map((i) => {
      const sep = i.url.includes("?") ? "&" : "?";
      const lines = [
        `${i.url}${sep}token=${KEY_PLACEHOLDER}`,
        `  dir=${rawSafe(posix.dirname, i.dest.replace(/\\/g, "/"))}`,
        `  out=${rawSafe(posix.basename, i.dest.replace(/\\/g, "/"))}`,
      ];
      if (i.sha256) lines.push(`  checksum=sha-256=${i.sha256}`);
      return lines.join("\n");
    });
    return `${[...head, ...body].join("\n")}\n`;
  }
  const script = [
    "#!/bin/sh",
    `# Download list written by ${by}. Needs curl and sha256sum.`,
    "# Usage: CIVITAI_API_KEY=... sh this-file   (the key is read from the environment, never stored here)",
    "status=0",
    "fetch() {",
    "  url=$1; out=$2; sha=$3",
    '  if [ -e "$out" ]; then',
    '    if [ -n "$sha" ] && [ "$(sha256sum "$out" | cut -d" " -f1)" = "$sha" ]; then echo "already present, verified: $out" >&2; return 0; fi',
    '    echo "exists with another hash, left alone: $out" >&2; status=1; return 0',
    "  fi",
    '  mkdir -p "$(dirname "$out")" || { status=1; return 0; }',
    `  if ! curl --fail --location --retry 5 -C - -H "Authorization: Bearer ${KEY_PLACEHOLDER}" -o "$out.part" "$url"; then`,
    '    echo "download failed: $out ($url)" >&2; status=1; return 0',
    "  fi",
    '  if [ -n "$sha" ]; then',
    '    got=$(sha256sum "$out.part" | cut -d" " -f1)',
    '    if [ "$got" != "$sha" ]; then echo "SHA-256 mismatch for $out: expected $sha, got $got" >&2; rm -f "$out.part"; status=1; return 0; fi',
    "  fi",
    '  mv "$out.part" "$out"',
    "}",
    "# Other names of a file (hard or soft links where it was scanned): a hard link, else a copy.",
    "link() {",
    "  src=$1; out=$2",
    '  if [ -e "$out" ]; then echo "exists, left alone: $out" >&2; return 0; fi',
    '  if [ ! -f "$src" ]; then echo "not linked, $src is missing: $out" >&2; status=1; return 0; fi',
    '  mkdir -p "$(dirname "$out")" || { status=1; return 0; }',
    '  ln "$src" "$out" 2>/dev/null || cp "$src" "$out" || status=1',
    "}",
    ...items.map((i) => `fetch ${shQuote(i.url)} ${shQuote(i.dest)} ${shQuote(i.sha256 ?? "")}`),
    ...items.flatMap((i) => i.aliases.map((a) => `link ${shQuote(i.dest)} ${shQuote(a.dest)}`)),
    'exit "$status"',
  ];
  return `${script.join("\n")}\n`;
}
