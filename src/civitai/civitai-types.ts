/**
 * Civitai response shapes as docs/civitai-api.md §1.2/§2.1 describe them. Every field is optional and
 * may be null: the shape drifts (docs/civitai-api.md §1.4), so readers must tolerate absence.
 */
export interface ApiFile {
  id?: number;
  sizeKB?: number;
  name?: string;
  overrideName?: string | null;
  type?: string;
  primary?: boolean;
  metadata?: { format?: string | null; size?: string | null; fp?: string | null } | null;
  hashes?: Record<string, string>;
  downloadUrl?: string;
  pickleScanResult?: string;
  virusScanResult?: string;
}

export interface ApiImage {
  url?: string;
  nsfwLevel?: number;
  width?: number;
  height?: number;
  type?: string;
}

export interface ApiModelVersion {
  id: number;
  modelId?: number;
  name?: string;
  nsfwLevel?: number;
  createdAt?: string | null;
  updatedAt?: string | null;
  publishedAt?: string | null;
  status?: string;
  availability?: string;
  trainedWords?: string[] | null;
  baseModel?: string | null;
  baseModelType?: string | null;
  description?: string | null;
  usageControl?: string | null;
  paidAccess?: { permanent?: boolean; endsAt?: string | null } | null;
  earlyAccessEndsAt?: string | null;
  earlyAccessDeadline?: string | null;
  air?: string;
  model?: { name?: string; type?: string; nsfw?: boolean; poi?: boolean; mode?: string | null };
  files?: ApiFile[];
  images?: ApiImage[];
  downloadUrl?: string;
}

export interface ApiModel {
  id: number;
  name?: string;
  description?: string | null;
  type?: string;
  nsfw?: boolean;
  nsfwLevel?: number;
  poi?: boolean;
  mode?: string | null;
  availability?: string;
  allowNoCredit?: boolean;
  allowCommercialUse?: string[] | string | null;
  allowDerivatives?: boolean;
  allowDifferentLicense?: boolean;
  creator?: { username?: string; image?: string | null } | null;
  tags?: string[];
  modelVersions?: ApiModelVersion[];
}
