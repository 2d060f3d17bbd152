import { truncateText } from "../shared/format.ts";
import { VERSION } from "../version.ts";
import { parseRetryAfter } from "../civitai/http/backoff.ts";
import { DownloadFailure, QuotaFailure, RetryableFailure } from "./download-errors.ts";

/**
 * Reading the answers of a download: which headers we send, what a status, a redirect, a
 * Content-Type or a Content-Range means, and the message each failure gets. Pure: it looks at
 * Response objects the caller already has.
 */

export const MAX_REDIRECTS = 5;

export function baseHeaders(userAgent?: string): Record<string, string> {
  // identity: a compressed answer would make Content-Length and Range offsets meaningless (docs/reliability.md §2.5).
  return { "User-Agent": userAgent ?? `civitai-meta/${VERSION}`, "Accept-Encoding": "identity" };
}

/** An HTML, JSON or text answer where file bytes were expected: an error page, never the model (docs/cases.md A7). */
export function isWebPage(res: Response): boolean {
  const type = (res.headers.get("content-type") ?? "").toLowerCase();
  return (
    type.startsWith("text/html") ||
    type.startsWith("application/json") ||
    type.startsWith("application/xhtml") ||
    type.startsWith("text/plain")
  );
}

/** `bytes a-b/total` → {start, total}; total null for `*`. */
export function parseContentRange(value: string | null): { start: number; total: number | null } | null {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec((value ?? "").trim());
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

/** The total of a 416's `bytes * /total`, or null. */
export function unsatisfiedTotal(value: string | null): number | null {
  const m = /^bytes\s+\*\/(\d+)$/i.exec((value ?? "").trim());
  return m ? Number(m[1]) : null;
}

/** The Content-Length of a 200, or null when absent or not a plain number. */
export function contentLength(res: Response): number | null {
  const length = res.headers.get("content-length");
  return length !== null && /^\d+$/.test(length) ? Number(length) : null;
}

/**
 * The next URL of a redirect (3xx), checked at every hop: a Location is required, only http and
 * https are followed (fetch would read a `file:` URL from the local disk, or a `data:` URL the
 * server wrote, into the `.part`), and an https → http downgrade is refused. `who` names the
 * answering side in messages ("Civitai", "the storage host").
 */
export function redirectTarget(url: string, res: Response, what: string, who: string): URL {
  const location = res.headers.get("location");
  if (!location) throw new DownloadFailure(`${what}: ${who} answered ${res.status} without a Location`);
  const from = new URL(url);
  let next: URL;
  try {
    next = new URL(location, url);
  } catch {
    throw new DownloadFailure(`${what}: ${who} redirected to something that is not a URL`);
  }
  if (next.protocol !== "https:" && next.protocol !== "http:") {
    throw new DownloadFailure(`${what}: refusing a redirect to a ${next.protocol} URL; only http and https are followed`);
  }
  if (from.protocol === "https:" && next.protocol !== "https:") {
    throw new DownloadFailure(`${what}: refusing a redirect from https to ${next.protocol.replace(":", "")} (${next.host})`);
  }
  return next;
}

/** `{error, message}` of a Civitai JSON error body, quoted; "" when there is none. */
function civitaiMessage(body: string): { error: string; message: string } {
  try {
    const doc = JSON.parse(body) as { error?: unknown; message?: unknown };
    return {
      error: typeof doc.error === "string" ? truncateText(doc.error, 200) : "",
      message: typeof doc.message === "string" ? truncateText(doc.message, 300) : "",
    };
  } catch {
    return { error: "", message: "" };
  }
}

/**
 * Most we read of an error answer from the download route: Civitai's are JSON of 25–130 bytes
 * (docs/civitai-api.md §4.4; the fixtures), a Cloudflare page a few KiB. A longer body is not read at
 * all (a hostile or broken server sent an endless one: 3.6 GB in 3 s), only its status counts.
 */
export const API_ERROR_BODY_LIMIT = 64 * 1024;

/**
 * What a non-redirect answer of the download route means; `what` is our link, named in the message.
 * `unread` says why the body was not read (over the limit), when it was not.
 */
/**
 * The longest Retry-After of a 429 from the download route that we sit out before asking again
 * (an edge rate limit); a longer one, or none (the quota, docs/civitai-api.md), ends the run's asking.
 */
const SHORT_429_WAIT_MS = 60_000;

export function apiFailure(what: string, res: Response, body: string, hasKey: boolean, unread?: string, nowMs = Date.now()): Error {
  const { error, message } = civitaiMessage(body);
  const quoted = message || error;
  const say = quoted ? `: Civitai says "${quoted}"` : unread ? `; Civitai's answer ${unread} and was not read` : "";
  const s = res.status;
  if (s >= 200 && s < 300) {
    if (isWebPage(res))
      return new DownloadFailure(
        `${what}: Civitai sent a web page instead of the file (a login or Cloudflare challenge page?); nothing was saved`,
      );
    return new DownloadFailure(`${what}: Civitai answered ${s} without redirecting to the file`);
  }
  if (s === 401) {
    const disabled = /disabled downloads/i.test(quoted);
    const advice = disabled
      ? "the creator does not allow downloads of this file"
      : hasKey
        ? "your API key was not accepted: check CIVITAI_API_KEY (civitai.com → Account settings → API keys)"
        : "set CIVITAI_API_KEY to an API key from civitai.com → Account settings → API keys";
    return new DownloadFailure(`${what}: login required (401)${say}; ${advice}`);
  }
  if (s === 403) {
    if (/early access/i.test(error) || /early access/i.test(message)) {
      return new DownloadFailure(
        `${what}: in Early Access (403)${say}; it can be downloaded when early access ends, or once bought on the site`,
      );
    }
    return new DownloadFailure(`${what}: download refused (403)${say}`);
  }
  if (s === 404) return new DownloadFailure(`${what}: not found on Civitai (404)${say}; the version or file may have been removed`);
  if (s === 410) return new DownloadFailure(`${what}: archived on Civitai (410)${say}; it is no longer available for download`);
  if (s === 429) return tooMany(what, say, parseRetryAfter(res.headers.get("retry-after"), nowMs), nowMs);
  if (s === 451) return new DownloadFailure(`${what}: not available in your region (451)${say}`);
  if (s >= 500 || s === 408) return new RetryableFailure(`Civitai answered ${s}${say}`);
  return new DownloadFailure(`${what}: Civitai answered ${s}${say}`);
}

/** A 429 from the download route: wait a short Retry-After out; else the quota, which ends the run's asking. */
function tooMany(what: string, say: string, waitMs: number | undefined, nowMs: number): Error {
  if (waitMs !== undefined && waitMs <= SHORT_429_WAIT_MS) {
    return new RetryableFailure(`Civitai asks to wait ${Math.ceil(waitMs / 1000)} s (429)${say}`, false, waitMs);
  }
  const until = waitMs === undefined ? "try again later" : `try again after ${new Date(nowMs + waitMs).toISOString()}`;
  return new QuotaFailure(`${what}: Civitai's download quota reached (429)${say}; ${until}`);
}

/** Storage errors: 403/400/401 (S3 AccessDenied, "Request has expired") mean the signed link is stale. */
export function storageFailure(what: string, res: Response, host: string): Error {
  const s = res.status;
  if (s === 403 || s === 400 || s === 401) return new RetryableFailure(`the storage host refused the signed link (${s}, expired?)`, true);
  if (s >= 500 || s === 408 || s === 429) return new RetryableFailure(`the storage host ${host} answered ${s}`);
  if (s === 404 || s === 410)
    return new DownloadFailure(`${what}: the storage host has no such file (${s}); try again later or report it to Civitai`);
  return new DownloadFailure(`${what}: the storage host ${host} answered ${s}`);
}

/** Cancels a body we will not read (frees the connection); never throws. */
export async function dropBody(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}
