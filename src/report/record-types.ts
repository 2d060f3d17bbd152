import type { LocalInfo, SidecarSource } from "../local/local-types.ts";
import type { FileHashes } from "../scan/types.ts";
import type { AccessInfo, UpdateInfo } from "./updates.ts";

/**
 * `gone`: Civitai knew the file before (a cached answer, or an earlier inventory) and no longer
 * serves it: the hash is not found any more, or its version is archived with no file to download.
 * The record keeps what was known in `civitai`, and says since when in `gone`.
 */
export type RecordStatus = "found" | "gone" | "not_found" | "error" | "skipped";

/** Every status, in the order reports list them. */
export const RECORD_STATUSES: readonly RecordStatus[] = ["found", "gone", "not_found", "error", "skipped"];
export type MatchedBy = "sha256" | "autov3";

/** The Civitai file entry whose SHA-256 equals ours (not blindly the primary one). */
export interface MatchedFile {
  id: number | null;
  name: string | null;
  sizeKB: number | null;
  type: string | null;
  primary: boolean;
  format: string | null;
  fp: string | null;
  size: string | null;
  hashes: Record<string, string>;
}

export interface LicenseFlags {
  allowNoCredit: boolean | null;
  allowCommercialUse: string[];
  allowDerivatives: boolean | null;
  allowDifferentLicense: boolean | null;
}

export interface Availability {
  archived: boolean;
  takenDown: boolean;
  earlyAccess: boolean;
  paidAccess: boolean;
}

/** One of a version's example images as Civitai lists it (at most 10 per version), for previews. */
export interface CivitaiImage {
  url: string;
  /** Civitai's rating as one bit: 1 PG, 2 PG-13, 4 R, 8 X, 16 XXX, 32 blocked; null when unrated. */
  nsfwLevel: number | null;
  width: number | null;
  height: number | null;
  /** "image" or "video" (videos are never used as previews); null when Civitai does not say. */
  type: string | null;
}

/** What Civitai says about one model version, as it matched one local file. */
export interface CivitaiInfo {
  modelId: number | null;
  modelName: string | null;
  modelType: string | null;
  versionId: number;
  versionName: string | null;
  baseModel: string | null;
  baseModelType: string | null;
  trainedWords: string[];
  nsfw: boolean | null;
  nsfwLevel: number | null;
  availability: Availability;
  createdAt: string | null;
  updatedAt: string | null;
  publishedAt: string | null;
  /** Plain text converted from Civitai's HTML (model description, else version description). */
  description: string | null;
  creator: string | null;
  tags: string[];
  license: LicenseFlags | null;
  pageUrl: string;
  air: string | null;
  matchedFile: MatchedFile | null;
  /** `https://civitai.com/api/download/models/{versionId}?fileId={fileId}`: never a key, never the API's host field. */
  downloadUrl: string | null;
  primaryDownloadUrl: string;
  /** The first still image within the preview rating limit (`options.nsfwLevel`, default PG-13). */
  previewImageUrl: string | null;
  /** Early or paid access still running when the scan ran (updates.ts accessOf); null: free to download. Absent before schema 2. */
  access?: AccessInfo | null;
  /**
   * The version's preview candidates in Civitai's order: the first still, rated image of each
   * rating (preview/choose-preview.ts); absent in inventories written before previews existed.
   */
  images?: CivitaiImage[];
}

/** A label naming one other tool's sidecar: `sidecar:civitai-helper`, `sidecar:lora-manager`, … */
export type SidecarLabel = `sidecar:${SidecarSource}`;
/** Where a record's hashes came from when not from reading the file (`hashSource`). */
export type HashSource = SidecarLabel | "index";

/**
 * Where the model identity shown for a file comes from, whatever its `status`: `civitai` when
 * Civitai answered "found" (now or from the metadata cache), a sidecar label when only another
 * tool's sidecar names it (offline, not found, lookup failed).
 */
export type KnownFrom = "civitai" | SidecarLabel;

/**
 * A model identity read from a sidecar another tool wrote (from Civitai, some time ago). A hint:
 * used only when the sidecar's SHA-256 for this file equals ours, or with --trust-sidecars.
 */
export interface SidecarIdentity {
  source: SidecarSource;
  /** The sidecar's file name, beside the model. */
  file: string;
  /**
   * `sha256`: we hashed the file and the sidecar's SHA-256 equals ours. `size`: --trust-sidecars,
   * the file was not hashed; only its size matched what the sidecar recorded.
   */
  checkedBy: "sha256" | "size";
  modelId: number | null;
  modelName: string | null;
  modelType: string | null;
  versionId: number | null;
  versionName: string | null;
  baseModel: string | null;
  trainedWords: string[];
  creator: string | null;
  nsfw: boolean | null;
  /** The sidecar says Civitai deleted the model (LoRA Manager `civitai_deleted`). */
  deleted: boolean | null;
  /** A civitai.com page we build from the sidecar's ids; null when it has none. */
  pageUrl: string | null;
}

export interface FileRecord {
  path: string;
  /** Other paths (hard or soft links) to the same file. */
  aliases: string[];
  size: number | null;
  mtime: string | null;
  hashes: FileHashes;
  status: RecordStatus;
  /** Why a file is `error`; never contains a secret. */
  error?: string;
  /** Why a file is `skipped`. */
  reason?: string;
  matchedBy?: MatchedBy;
  /** Host that answered (origin only, e.g. `https://civitai.com`). */
  host?: string;
  civitai?: CivitaiInfo;
  /** Set when several versions claim the same file: every candidate, `civitai` is the first. */
  ambiguous?: CivitaiInfo[];
  /**
   * Set when the hashes were not computed in this scan: taken from a sidecar (`sidecar:…`, scan
   * --trust-sidecars) or from a library index whose size and mtime matched (`index`, --use-index).
   */
  hashSource?: HashSource;
  /** Where the identity comes from; absent when nothing identifies the file. Independent of `status`. */
  knownFrom?: KnownFrom;
  /** Identity from a sidecar, when Civitai did not give one in this scan (`knownFrom` is its label). */
  sidecar?: SidecarIdentity;
  /** What the file and its sidecars say locally (scan only; absent for skipped paths). */
  local?: LocalInfo;
  /** Other files with the same bytes (same SHA-256, another inode); absent when there are none. */
  duplicate?: DuplicateInfo;
  /** Other versions of the same Civitai model held in the library; absent when there are none. */
  otherVersions?: HeldVersion[];
  /** A newer version of the model exists on Civitai (updates.ts); absent when none is known. */
  update?: UpdateInfo;
  /** Set with status `gone`: why, and when Civitai last served the file. */
  gone?: GoneInfo;
}

/** Why a file that Civitai knew is `gone`, and since when. */
interface GoneInfo {
  /** `not_found`: its hash is not found any more; `archived`: its version has no file to download. */
  reason: "not_found" | "archived";
  /** When Civitai was last seen serving it (ISO 8601); null when not known. */
  lastSeenAt: string | null;
}

/** Copies of a file: the same SHA-256 at other inodes (hard and soft links are `aliases`, not copies). */
interface DuplicateInfo {
  /** How many files hold these bytes, this one included. */
  copies: number;
  /** The other files' paths in byte order, at most 20 (`copies` says how many there are). */
  others: string[];
}

/** Another version of the same model that the library holds. */
export interface HeldVersion {
  versionId: number;
  versionName: string | null;
  /** The first file (by path) that holds it. */
  path: string;
}
