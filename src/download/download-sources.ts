import { isCivitaiId } from "../civitai/cache-keys.ts";
import { UsageError } from "../shared/errors.ts";

/**
 * What one `download` argument names. Pure: an argument is classified by its form alone, so a
 * file called `123` is a version id; use `./123.json` for an inventory.
 */
export type DownloadSource =
  | { kind: "inventory"; path: string }
  | { kind: "sha256"; sha256: string }
  /** `host` is the site the URL named (`https://civitai.red` for NSFW content), null for a bare id. */
  | { kind: "version"; versionId: number; fileId: number | null; host: string | null }
  /** A model without a version: its newest version is meant. */
  | { kind: "model"; modelId: number; host: string | null };

const CIVITAI_HOSTS = new Set(["civitai.com", "www.civitai.com", "civitai.red", "www.civitai.red"]);

const EXAMPLES =
  "an inventory .json from scan, a SHA-256 (64 hex), a version id, a Civitai URL (https://civitai.com/models/123?modelVersionId=456) or an AIR (urn:air:sdxl:lora:civitai:123@456)";

function id(text: string | null | undefined): number | null {
  if (text == null || !/^\d{1,10}$/.test(text)) return null;
  const n = Number(text);
  return isCivitaiId(n) ? n : null;
}

function bad(arg: string, why: string): UsageError {
  const shown = JSON.stringify(arg.length > 120 ? `${arg.slice(0, 119)}…` : arg);
  return new UsageError(`${shown} ${why}. A source is ${EXAMPLES}.`);
}

/** Classifies one source argument; throws UsageError naming the accepted forms otherwise. */
export function parseDownloadSource(arg: string): DownloadSource {
  const text = arg.trim();
  if (text === "") throw bad(arg, "is empty");
  if (/^[0-9a-fA-F]{64}$/.test(text)) return { kind: "sha256", sha256: text.toLowerCase() };
  if (/^\d+$/.test(text)) {
    const versionId = id(text);
    if (versionId === null) throw bad(arg, "is not a valid version id");
    return { kind: "version", versionId, fileId: null, host: null };
  }
  if (/^urn:air:/i.test(text)) return parseAir(arg, text);
  if (/^https?:\/\//i.test(text)) return parseCivitaiUrl(arg, text);
  if (/\.json$/i.test(text)) return { kind: "inventory", path: arg };
  throw bad(arg, "is not a recognised source");
}

/** `urn:air:{ecosystem}:{type}:civitai:{modelId}[@{versionId}][.{format}]`. */
function parseAir(arg: string, text: string): DownloadSource {
  const m = /^urn:air:[a-z0-9_.-]+:[a-z0-9_.-]+:([a-z0-9_.-]+):(\d+)(?:@(\d+))?(?:\.[a-z0-9]+)?$/i.exec(text);
  if (!m) throw bad(arg, "is not an AIR of the form urn:air:<ecosystem>:<type>:civitai:<model>@<version>");
  if (m[1]!.toLowerCase() !== "civitai") throw bad(arg, `names source "${m[1]}", not civitai`);
  const modelId = id(m[2]);
  if (modelId === null) throw bad(arg, "has an invalid model id");
  if (m[3] === undefined) return { kind: "model", modelId, host: null };
  const versionId = id(m[3]);
  if (versionId === null) throw bad(arg, "has an invalid version id");
  return { kind: "version", versionId, fileId: null, host: null };
}

function parseCivitaiUrl(arg: string, text: string): DownloadSource {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad(arg, "is not a valid URL");
  }
  const hostname = url.hostname.toLowerCase();
  if (!CIVITAI_HOSTS.has(hostname)) throw bad(arg, "is not a civitai.com or civitai.red URL");
  const host = `https://${hostname.replace(/^www\./, "")}`;
  const path = url.pathname.replace(/\/+$/, "");
  const q = (name: string) => url.searchParams.get(name);
  let m = /^\/api\/download\/models\/(\d+)$/.exec(path);
  if (m) {
    const versionId = id(m[1]);
    const fileIdText = q("fileId");
    const fileId = fileIdText === null ? null : id(fileIdText);
    if (versionId === null || (fileIdText !== null && fileId === null)) throw bad(arg, "has an invalid id");
    return { kind: "version", versionId, fileId, host };
  }
  m = /^\/(?:api\/v1\/)?model-versions\/(\d+)$/.exec(path);
  if (m) {
    const versionId = id(m[1]);
    if (versionId === null) throw bad(arg, "has an invalid version id");
    return { kind: "version", versionId, fileId: null, host };
  }
  m = /^\/(?:api\/v1\/)?models\/(\d+)(?:\/[^/]*)?$/.exec(path);
  if (m) {
    const modelId = id(m[1]);
    if (modelId === null) throw bad(arg, "has an invalid model id");
    const versionText = q("modelVersionId");
    if (versionText === null) return { kind: "model", modelId, host };
    const versionId = id(versionText);
    if (versionId === null) throw bad(arg, "has an invalid modelVersionId");
    return { kind: "version", versionId, fileId: null, host };
  }
  throw bad(arg, "is a Civitai URL that names no model or version");
}

/** A short, safe label for messages (never a query string beyond our own ids). */
export function describeSource(source: DownloadSource): string {
  switch (source.kind) {
    case "inventory":
      return `inventory ${source.path}`;
    case "sha256":
      return `SHA-256 ${source.sha256}`;
    case "version":
      return `version ${source.versionId}${source.fileId === null ? "" : ` file ${source.fileId}`}`;
    case "model":
      return `model ${source.modelId}`;
  }
}
