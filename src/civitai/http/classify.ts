/**
 * What one HTTP answer means for a JSON API call: done (a value), retry (transient, with the error
 * to throw when no attempt is left) or fatal. Pure: the engine (http.ts) hands in the status,
 * headers and body it read, and acts on the outcome; the rate gate (rate-gate.ts) handles what a
 * 429 means for the other requests.
 */
import { ApiError } from "../api-types.ts";
import type { ValidationResult } from "../api-validate.ts";
import { classifyHtml, looksLikeHtml } from "../api-validate.ts";
import { isRetryableStatus, parseRetryAfter } from "./backoff.ts";
import type { Redactor } from "../../shared/redact.ts";
import { truncateText } from "../../shared/format.ts";

/** What the engine knows about a final (non-2xx, non-retryable) answer. */
export interface StatusContext {
  method: string;
  /** How messages name the server: "Civitai", or the host of a mirror or test server. */
  service: string;
  /** Redacted and shortened, ready for a message. */
  displayUrl: string;
  status: number;
  statusText: string;
  contentType: string | null;
  body: string;
}

export interface JsonRequest<T> {
  method: "GET" | "POST";
  url: string;
  /** Sent as JSON. */
  body?: unknown;
  validate: (data: unknown) => ValidationResult<T>;
  /** Turns a final status into a result (e.g. 404 → null); undefined → `statusError`. */
  onStatus?: (ctx: StatusContext) => { value: T } | undefined;
}

export type AttemptOutcome<T> =
  | { type: "done"; value: T }
  | { type: "fatal"; error: ApiError }
  | {
      type: "retry";
      /** For the debug line. */
      reason: string;
      /** Thrown when no attempt is left; " after N attempts" is appended. */
      final: ApiError;
      rateLimited?: boolean;
      retryAfterMs?: number;
      /** The server that answered (after redirects), for rate-limit messages. */
      service?: string;
    };

/** One answer as read by the engine (the body already read, and cut when it was an error body). */
export interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  body: string;
}

export interface ClassifyContext {
  /** Name of the server that answered, for messages ("Civitai", or another host). */
  service: string;
  userAgent: string;
  redact: Redactor;
  /** Removes the API key from a parsed answer's data (shared/redact.ts scrubSecrets). */
  scrub?: (data: unknown) => unknown;
  /** Redacted and shortened request URL. */
  displayUrl: string;
  now: number;
  /** Error for a final status no request handled. */
  statusError: (ctx: StatusContext) => ApiError;
}

/** Why a redirect must not be followed, or undefined when it may. */
export function redirectRefusal(from: string, to: string, trustedOrigins: ReadonlySet<string>): string | undefined {
  let source: URL;
  let target: URL;
  try {
    source = new URL(from);
    target = new URL(to, from);
  } catch {
    return "the redirect target is not a valid URL";
  }
  if (target.protocol !== "http:" && target.protocol !== "https:") return `the redirect uses ${target.protocol}`;
  if (source.protocol === "https:" && target.protocol === "http:") return "the redirect downgrades https to http";
  if (target.origin !== source.origin && !trustedOrigins.has(target.origin)) return `the redirect leads to another host (${target.host})`;
  return undefined;
}

/** One human phrase per network failure class, from the error code only (messages may hold URLs). */
export function describeNetworkError(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown; name?: unknown } } | undefined;
  const code = String(e?.cause?.code ?? e?.code ?? e?.cause?.name ?? e?.name ?? "unknown");
  if (/ECONNREFUSED|ConnectionRefused/i.test(code)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN|DNS|getaddrinfo/i.test(code)) return "host name not found (DNS)";
  if (/ECONNRESET|EPIPE|ConnectionClosed|terminated|ERR_STREAM_PREMATURE_CLOSE/i.test(code))
    return "connection closed before the answer was complete";
  if (/CERT|TLS|SSL/i.test(code)) return `TLS error (${code})`;
  if (/ETIMEDOUT|Timeout/i.test(code)) return "connection timed out";
  return `network error (${code.replace(/[^\w.-]/g, "").slice(0, 40) || "unknown"})`;
}

/** `2.5 s`, `42 s`, `15 min`, `3.5 h`, `25.5 days`: for messages about waits and timeouts. */
export function seconds(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${Math.round(s * 10) / 10} s`;
  if (s < 600) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 360) / 10} h`;
  return `${Math.round(s / 8640) / 10} days`;
}

/** Generic final-status error; the Civitai client maps its known statuses before this. */
export function genericStatusError(ctx: StatusContext): ApiError {
  return new ApiError(
    `${ctx.method} ${ctx.displayUrl}: ${ctx.service} answered ${ctx.status}${ctx.statusText ? ` ${ctx.statusText}` : ""}`,
    "http",
    ctx.status,
  );
}

/** A 2xx answer: JSON of the expected shape, or a retry (HTML page, truncated or odd JSON). */
function classifySuccess<T>(req: JsonRequest<T>, answer: Answer, ctx: ClassifyContext): AttemptOutcome<T> {
  const { method } = req;
  const { service, displayUrl: shown } = ctx;
  const { status, body } = answer;
  if (looksLikeHtml(answer.headers.get("content-type"), body)) {
    const kind = classifyHtml(body);
    const what =
      kind === "cloudflare-challenge" ? "a Cloudflare challenge page" : kind === "maintenance" ? "a maintenance page" : "an HTML page";
    return {
      type: "retry",
      reason: `HTML instead of JSON (${what})`,
      final: new ApiError(
        `${method} ${shown}: ${service} answered with ${what} instead of JSON. The request may be blocked or challenged by Cloudflare (check your network/VPN; User-Agent sent: "${ctx.userAgent}"), or ${service} may be under maintenance`,
        "bad_response",
        status,
      ),
    };
  }
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    return {
      type: "retry",
      reason: `invalid or truncated JSON (${body.length} bytes)`,
      final: new ApiError(`${method} ${shown}: ${service} sent invalid or truncated JSON (${body.length} bytes)`, "bad_response", status),
    };
  }
  // Before validation, so nothing derived from the answer (records, caches, sidecars) holds the key.
  if (ctx.scrub) data = ctx.scrub(data);
  const checked = req.validate(data);
  if (checked.ok) return { type: "done", value: checked.value };
  // Redacted before it is cut: a cut through the key would leave a prefix the redactor cannot recognise.
  const reason = truncateText(ctx.redact(checked.reason), 200);
  return {
    type: "retry",
    reason: `unexpected JSON: ${reason}`,
    final: new ApiError(`${method} ${shown}: ${service} sent JSON of an unexpected shape: ${reason}`, "bad_response", status),
  };
}

/** Status and body of one (non-redirect) answer → what the engine does next. */
export function classifyAnswer<T>(req: JsonRequest<T>, answer: Answer, ctx: ClassifyContext): AttemptOutcome<T> {
  const { method } = req;
  const { service, displayUrl: shown } = ctx;
  const { status } = answer;
  if (status >= 200 && status < 300) return classifySuccess(req, answer, ctx);

  if (isRetryableStatus(status)) {
    const rateLimited = status === 429;
    const retryAfterMs = parseRetryAfter(answer.headers.get("retry-after"), ctx.now);
    const label = `${status}${answer.statusText ? ` ${answer.statusText}` : ""}`;
    return {
      type: "retry",
      reason: rateLimited ? `429 Too Many Requests${retryAfterMs !== undefined ? ` (Retry-After ${seconds(retryAfterMs)})` : ""}` : label,
      rateLimited,
      retryAfterMs,
      service,
      final: new ApiError(
        status >= 500
          ? `${method} ${shown}: ${service} answered ${label}; it may be down or overloaded, try again later`
          : `${method} ${shown}: ${service} answered ${label}`,
        "http",
        status,
      ),
    };
  }

  const statusCtx: StatusContext = {
    method,
    service,
    displayUrl: shown,
    status,
    statusText: answer.statusText,
    contentType: answer.headers.get("content-type"),
    body: answer.body,
  };
  const handled = req.onStatus?.(statusCtx);
  if (handled) return { type: "done", value: handled.value };
  return { type: "fatal", error: ctx.statusError(statusCtx) };
}
