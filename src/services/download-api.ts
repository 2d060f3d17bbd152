import { isModel, isVersion } from "../core/civitai-record.ts";
import type { ApiModel, ApiModelVersion } from "../core/civitai-types.ts";
import { AppError, EXIT } from "../core/errors.ts";
import { createRedactor, truncateText } from "../core/redact.ts";
import { VERSION } from "../version.ts";

/** What `download` needs from Civitai to resolve a source to files. Null = "no such version". */
export interface DownloadApi {
  versionById(host: string, id: number): Promise<ApiModelVersion | null>;
  versionByHash(host: string, hash: string): Promise<ApiModelVersion | null>;
  /** The model with its versions, newest first (for a model URL or AIR without a version). */
  modelById(host: string, id: number): Promise<ApiModel | null>;
}

export interface DownloadApiOptions {
  apiKey: string | null;
  /** Origins that may receive the key; any other host gets no Authorization. */
  civitaiHosts: readonly string[];
  userAgent?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/**
 * A deliberately small client (plain GETs, one attempt, 404 → null) until the shared client is
 * wired in; errors name the host and status, never the key.
 */
export function createDownloadApi(options: DownloadApiOptions): DownloadApi {
  const doFetch = options.fetch ?? fetch;
  const redact = createRedactor([options.apiKey]);
  const allowed = new Set(options.civitaiHosts.map((h) => new URL(h).origin));

  async function get(host: string, path: string): Promise<unknown | null> {
    const url = `${host.replace(/\/+$/, "")}${path}`;
    const headers: Record<string, string> = { "User-Agent": options.userAgent ?? `civitai-meta/${VERSION}`, Accept: "application/json" };
    if (options.apiKey && allowed.has(new URL(url).origin)) headers.Authorization = `Bearer ${options.apiKey}`;
    const signals = [AbortSignal.timeout(options.timeoutMs ?? 30_000), ...(options.signal ? [options.signal] : [])];
    let res: Response;
    try {
      res = await doFetch(url, { headers, signal: AbortSignal.any(signals), redirect: "error" });
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw new AppError(redact(`cannot reach ${new URL(url).host}: ${(err as Error)?.message ?? err}`), { exitCode: EXIT.failure });
    }
    const text = await res.text();
    if (res.status === 404) return null;
    if (!res.ok) {
      let msg = "";
      try {
        const body = JSON.parse(text) as { error?: unknown; message?: unknown };
        msg = [body.error, body.message].filter((v) => typeof v === "string").join(": ");
      } catch {
        /* not JSON */
      }
      throw new AppError(redact(`${new URL(url).host}${path} answered ${res.status}${msg ? `: ${truncateText(msg, 200)}` : ""}`), { exitCode: EXIT.failure });
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new AppError(`${new URL(url).host}${path} answered with something that is not JSON (a block or challenge page?)`, { exitCode: EXIT.failure });
    }
  }

  return {
    async versionById(host, id) {
      const body = await get(host, `/api/v1/model-versions/${id}`);
      return isVersion(body) ? body : null;
    },
    async versionByHash(host, hash) {
      const body = await get(host, `/api/v1/model-versions/by-hash/${encodeURIComponent(hash)}`);
      return isVersion(body) ? body : null;
    },
    async modelById(host, id) {
      const body = await get(host, `/api/v1/models/${id}`);
      return isModel(body) ? body : null;
    },
  };
}
