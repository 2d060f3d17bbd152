/**
 * The one Civitai API client (docs/civitai-api.md §1–§4). Endpoints, URL building, response shapes and
 * Civitai's error statuses live here; retries, timeouts, the 429 gate, redirects and redaction
 * live in the engine (http.ts).
 */
import type { CivitaiApi, VersionIdMatch } from "./api-types.ts";
import { ApiError } from "./api-types.ts";
import {
  classifyHtml,
  errorBodyText,
  isCivitaiId,
  isHexHash,
  isSha256Hex,
  looksLikeHtml,
  parseErrorBody,
  validateModel,
  validateModelPage,
  validateVersion,
  validateVersionIdList,
  validateVersionList,
} from "./api-validate.ts";
import type { ApiModel, ApiModelVersion } from "./civitai-types.ts";
import type { Redactor } from "../shared/redact.ts";
import { truncateText } from "../shared/format.ts";
import { serviceNameFor } from "./hosts.ts";
import { createHttpEngine, type HttpEngine, type HttpEngineOptions, type HttpStats } from "./http/http.ts";
import type { StatusContext } from "./http/classify.ts";

/** POST /model-versions/by-hash and /models?ids= both take at most 100 (docs/civitai-api.md §3.1, §2.4). */
const MAX_BATCH = 100;
/** POST /model-versions/by-hash/ids takes at most 10,000 (docs/civitai-api.md §3.2). */
const MAX_IDS_BATCH = 10_000;
/** Civitai's own error text is quoted up to this length. */
const MAX_QUOTED = 200;
const NOT_FOUND_RE = /model not found|missing model file/i;

export interface CivitaiClientOptions extends Omit<HttpEngineOptions, "trustedOrigins" | "serviceName" | "statusError"> {
  /** `civitai-meta/<version>`: a non-browser UA keeps Civitai's errors in JSON (docs/civitai-api.md §4.4). */
  userAgent: string;
  /** Origins allowed to receive the key (the configured primary and fallback hosts). */
  civitaiHosts: string[];
}

export interface CivitaiClient extends CivitaiApi {
  /** GET /api/v1/models/{id}: null on 404. */
  model(host: string, id: number): Promise<ApiModel | null>;
  /** GET /api/v1/model-versions/{id}: null on 404 "Model not found" / "Missing model file". */
  versionById(host: string, id: number): Promise<ApiModelVersion | null>;
  readonly stats: HttpStats;
  /** Current adaptive concurrency. */
  readonly concurrency: number;
}

function apiUrl(host: string, path: string): string {
  return `${host.replace(/\/+$/, "")}${path}`;
}

/** Civitai's message from an error body, redacted and cut, ready to quote; "" when there is none. */
function quoteBody(ctx: StatusContext, redact: Redactor): string {
  if (looksLikeHtml(ctx.contentType, ctx.body)) return "";
  const parsed = parseErrorBody(ctx.body);
  const text = parsed ? errorBodyText(parsed) : ctx.body.trim();
  if (!text) return "";
  // Control characters could drive the terminal (docs/cases.md D6).
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
  return clean ? `"${truncateText(redact(clean), MAX_QUOTED)}"` : "";
}

function civitaiStatusError(ctx: StatusContext, redact: Redactor, userAgent: string, hasKey: boolean): ApiError {
  const at = `${ctx.method} ${ctx.displayUrl}`;
  const quoted = quoteBody(ctx, redact);
  const html = looksLikeHtml(ctx.contentType, ctx.body);
  switch (ctx.status) {
    case 401:
      return new ApiError(
        hasKey
          ? `${at}: ${ctx.service} rejected the API key (401): check CIVITAI_API_KEY`
          : `${at}: ${ctx.service} requires an API key for this request (401): set CIVITAI_API_KEY`,
        "unauthorized",
        401,
      );
    case 403:
      return new ApiError(
        html || classifyHtml(ctx.body) === "cloudflare-challenge"
          ? `${at}: ${ctx.service} refused the request (403) with an HTML page: probably a Cloudflare/WAF block or challenge (check your network/VPN; User-Agent sent: "${userAgent}")`
          : `${at}: ${ctx.service} refused the request (403${quoted ? ` ${quoted}` : ""}): the API key lacks permission, or a Cloudflare/WAF rule blocks this network`,
        "forbidden",
        403,
      );
    case 451:
      return new ApiError(
        `${at}: ${ctx.service} is not available from here (451)${quoted ? `: ${quoted}` : ": blocked in your region"}`,
        "region_blocked",
        451,
      );
    default:
      return new ApiError(
        `${at}: ${ctx.service} answered ${ctx.status}${ctx.statusText ? ` ${ctx.statusText}` : ""}${quoted ? `: ${quoted}` : html ? " with an HTML page" : ""}`,
        "http",
        ctx.status,
      );
  }
}

function invalidInput(message: string): ApiError {
  return new ApiError(message, "http");
}

export function createCivitaiClient(options: CivitaiClientOptions): CivitaiClient {
  const engine = createHttpEngine({
    userAgent: options.userAgent,
    trustedOrigins: options.civitaiHosts,
    apiKey: options.apiKey,
    serviceName: serviceNameFor,
    timeoutMs: options.timeoutMs,
    maxAttempts: options.maxAttempts,
    maxRateLimitWaitMs: options.maxRateLimitWaitMs,
    concurrency: options.concurrency,
    concurrencyRecoverAfter: options.concurrencyRecoverAfter,
    signal: options.signal,
    logger: options.logger,
    random: options.random,
    sleep: options.sleep,
    now: options.now,
    fetch: options.fetch,
    maxBodyBytes: options.maxBodyBytes,
    onRateLimitPause: options.onRateLimitPause,
    statusError: (ctx) => civitaiStatusError(ctx, engine.redact, options.userAgent, Boolean(options.apiKey)),
  });

  return {
    versionsByHashes: (host, sha256s) => versionsByHashes(engine, host, sha256s),
    versionIdsByHashes: (host, sha256s) => versionIdsByHashes(engine, host, sha256s),
    versionByHash: (host, hash) => versionByHash(engine, host, hash),
    modelsByIds: (host, ids) => modelsByIds(engine, host, ids),
    model: (host, id) => model(engine, host, id),
    versionById: (host, id) => versionById(engine, host, id),
    get stats() {
      return engine.stats;
    },
    get concurrency() {
      return engine.concurrency;
    },
  };
}

async function versionsByHashes(engine: HttpEngine, host: string, sha256s: string[]): Promise<(ApiModelVersion | null)[]> {
  if (sha256s.length === 0) return [];
  if (sha256s.length > MAX_BATCH) throw invalidInput(`by-hash takes at most ${MAX_BATCH} hashes, got ${sha256s.length}`);
  const bad = sha256s.find((h) => !isSha256Hex(h));
  if (bad !== undefined) throw invalidInput(`not a SHA-256 (64 hex digits): ${JSON.stringify(truncateText(engine.redact(bad), 80))}`);
  return engine.request({
    method: "POST",
    url: apiUrl(host, "/api/v1/model-versions/by-hash"),
    body: sha256s.map((h) => h.toUpperCase()),
    validate: validateVersionList,
  });
}

async function versionIdsByHashes(engine: HttpEngine, host: string, sha256s: string[]): Promise<VersionIdMatch[]> {
  if (sha256s.length === 0) return [];
  if (sha256s.length > MAX_IDS_BATCH) throw invalidInput(`by-hash/ids takes at most ${MAX_IDS_BATCH} hashes, got ${sha256s.length}`);
  const bad = sha256s.find((h) => !isSha256Hex(h));
  if (bad !== undefined) throw invalidInput(`not a SHA-256 (64 hex digits): ${JSON.stringify(truncateText(engine.redact(bad), 80))}`);
  return engine.request({
    method: "POST",
    url: apiUrl(host, "/api/v1/model-versions/by-hash/ids"),
    body: sha256s.map((h) => h.toUpperCase()),
    validate: validateVersionIdList,
  });
}

/** A 404 whose error text says the version does not exist is the answer "none"; any other 404 stays an error. */
function versionNotFound(ctx: StatusContext): { value: null } | undefined {
  if (ctx.status !== 404) return undefined;
  const text = errorBodyText(parseErrorBody(ctx.body));
  return text && NOT_FOUND_RE.test(text) ? { value: null } : undefined;
}

async function versionByHash(engine: HttpEngine, host: string, hash: string): Promise<ApiModelVersion | null> {
  // Checked before it goes into a URL path: hex cannot smuggle "/", "?" or "..".
  if (!isHexHash(hash)) throw invalidInput(`not a hex hash: ${JSON.stringify(truncateText(engine.redact(hash), 80))}`);
  return engine.request<ApiModelVersion | null>({
    method: "GET",
    url: apiUrl(host, `/api/v1/model-versions/by-hash/${hash.toUpperCase()}`),
    validate: validateVersion,
    onStatus: versionNotFound,
  });
}

async function modelsByIds(engine: HttpEngine, host: string, ids: number[]): Promise<ApiModel[]> {
  if (ids.length === 0) return [];
  if (ids.length > MAX_BATCH) throw invalidInput(`/models takes at most ${MAX_BATCH} ids, got ${ids.length}`);
  const badId = ids.find((id) => !isCivitaiId(id));
  if (badId !== undefined) throw invalidInput(`not a Civitai model id: ${String(badId)}`);
  const query = new URLSearchParams();
  for (const id of ids) query.append("ids", String(id));
  query.set("nsfw", "true");
  query.set("limit", String(MAX_BATCH));
  return engine.request({ method: "GET", url: apiUrl(host, `/api/v1/models?${query}`), validate: validateModelPage });
}

async function model(engine: HttpEngine, host: string, id: number): Promise<ApiModel | null> {
  if (!isCivitaiId(id)) throw invalidInput(`not a Civitai model id: ${String(id)}`);
  return engine.request<ApiModel | null>({
    method: "GET",
    url: apiUrl(host, `/api/v1/models/${id}`),
    validate: validateModel,
    // `{"error":"No model with id N"}`; an HTML 404 is not Civitai's API and stays an error.
    onStatus: (ctx) => (ctx.status === 404 && parseErrorBody(ctx.body)?.error ? { value: null } : undefined),
  });
}

async function versionById(engine: HttpEngine, host: string, id: number): Promise<ApiModelVersion | null> {
  if (!isCivitaiId(id)) throw invalidInput(`not a Civitai version id: ${String(id)}`);
  return engine.request<ApiModelVersion | null>({
    method: "GET",
    url: apiUrl(host, `/api/v1/model-versions/${id}`),
    validate: validateVersion,
    // `{"error":"Model not found"}` or "Missing model file": no such published version.
    onStatus: versionNotFound,
  });
}
