import type { FileHashes } from "./types.ts";

export type RecordStatus = "found" | "not_found" | "error" | "skipped";
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
  previewImageUrl: string | null;
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
}
