import type { PlanItem } from "./download-plan.ts";
import type { LockOptions } from "./download-lock.ts";

/**
 * One file to transfer and how: the plan's item (what the downloader needs of it) and the options
 * every step of a transfer reads.
 */

/** `url` is our `https://civitai.com/api/download/models/…` link (named in messages and the resume state); `dest` the absolute final path. */
export type DownloadTask = Pick<PlanItem, "versionId" | "fileId" | "url" | "dest" | "size" | "sizeExact" | "sha256">;

export interface DownloadProgress {
  task: DownloadTask;
  /** Bytes in the `.part` so far (drops to 0 when a transfer restarts). */
  received: number;
  total: number | null;
}

export interface DownloaderOptions {
  /** Origin the download route is asked on (`https://civitai.com`, or a test server). */
  apiHost: string;
  apiKey: string | null;
  /** Origins that may receive the key; default `[apiHost]`. */
  keyHosts?: readonly string[];
  userAgent?: string;
  fetch?: typeof fetch;
  /** Hash on the main thread instead of a worker (tests that count threads, or no worker support). */
  inlineHash?: boolean;
  /** Longest wait for the next bytes (headers included), reset on each chunk; default 60 s. */
  stallTimeoutMs?: number;
  /** Failed attempts in a row, without a byte of progress, before giving up; default 5. */
  maxRetries?: number;
  /** First retry pause, doubled each time up to 30 s; default 1 s. */
  retryDelayMs?: number;
  /** Replace an existing target whose hash differs (only after the new file is verified). */
  force?: boolean;
  /** The destination folder: nothing is written outside its real path. */
  root?: string;
  signal?: AbortSignal;
  onProgress?: (progress: DownloadProgress) => void;
  onWarning?: (message: string) => void;
  freeSpace?: (dir: string) => Promise<number | null>;
  /** Most bytes accepted when neither Civitai nor the server gives the size; default UNKNOWN_SIZE_LIMIT (128 GiB). */
  unknownSizeLimit?: number;
  lock?: LockOptions;
  /**
   * Shared by every file of a run: set once Civitai said its download quota is reached, after which
   * the other files are not asked for (each would get the same 429).
   */
  quota?: { reached: string | null };
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;
