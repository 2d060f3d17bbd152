import { AppError, EXIT } from "../shared/errors.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";

/**
 * What the lookup needs from Civitai, per host. The HTTP client implements it; lookup tests may
 * implement it in memory. Every method retries transient failures itself and throws ApiError
 * for failures that are not a result.
 */
export interface CivitaiApi {
  /** POST /api/v1/model-versions/by-hash with ≤ 100 SHA-256s: unordered, may repeat, may hold null. */
  versionsByHashes(host: string, sha256s: string[]): Promise<(ApiModelVersion | null)[]>;
  /**
   * POST /api/v1/model-versions/by-hash/ids with ≤ 10,000 SHA-256s: which are known, and to which
   * version, without the versions (docs/civitai-api.md §3.2). Unknown hashes are absent.
   */
  versionIdsByHashes(host: string, sha256s: string[]): Promise<VersionIdMatch[]>;
  /** GET /api/v1/model-versions/by-hash/{hash}: null on 404 "Model not found" / "Missing model file". */
  versionByHash(host: string, hash: string): Promise<ApiModelVersion | null>;
  /** GET /api/v1/models?ids=…&nsfw=true (≤ 100 ids); models Civitai omits are simply absent. */
  modelsByIds(host: string, ids: number[]): Promise<ApiModel[]>;
}

/** One row of POST by-hash/ids: `hash` is Civitai's (upper-case) SHA-256 of a matching file. */
export interface VersionIdMatch {
  modelVersionId: number;
  modelId?: number;
  hash: string;
}

/** What `download` needs to resolve a source to files (the Civitai client provides all three). */
export interface DownloadApi {
  /** GET /api/v1/model-versions/{id}; null when there is no such published version. */
  versionById(host: string, id: number): Promise<ApiModelVersion | null>;
  versionByHash(host: string, hash: string): Promise<ApiModelVersion | null>;
  /** The model with its versions, newest first (for a model URL or AIR without a version). */
  modelById(host: string, id: number): Promise<ApiModel | null>;
}

export type ApiErrorKind =
  | "network" // refused, DNS, reset, timeout after retries
  | "rate_limited" // 429 with a wait longer than the limit
  | "unauthorized" // 401
  | "forbidden" // 403
  | "region_blocked" // 451
  | "bad_response" // HTML, truncated or wrong-shaped JSON after retries
  | "http" // other status
  | "aborted" // Ctrl-C
  | "fallback_unavailable"; // a miss on the primary that the failed fallback host could not check

/**
 * A failure talking to Civitai. `message` is safe to print: no key, no signed URL. An AppError, so
 * one that reaches the CLI boundary prints its message alone and exits 1 (130 when aborted).
 */
export class ApiError extends AppError {
  override name = "ApiError";
  constructor(
    message: string,
    readonly kind: ApiErrorKind,
    readonly status?: number,
    /** For rate_limited: when Civitai said we may try again. */
    readonly retryAt?: Date,
  ) {
    super(message, { exitCode: kind === "aborted" ? EXIT.interrupted : EXIT.failure });
  }
}
