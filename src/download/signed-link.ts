import { DownloadFailure, QuotaFailure, RetryableFailure } from "./download-errors.ts";
import { DEFAULT_STALL_TIMEOUT_MS, type DownloadTask, type DownloaderOptions } from "./download-task.ts";
import { BodyTooLargeError, readCappedText } from "../shared/read-capped.ts";
import { API_ERROR_BODY_LIMIT, apiFailure, baseHeaders, dropBody, MAX_REDIRECTS, redirectTarget } from "./responses.ts";
import { stallGuard } from "./stall-guard.ts";
import { onApiHost } from "./download-plan.ts";
import { createRedactor } from "../shared/redact.ts";
import { errorMessage } from "../shared/errors.ts";

/**
 * Asks the download route for the file and returns the signed storage URL its redirect names. The
 * redirect is followed by hand so the key is sent only to `keyHosts`, never to storage; an https →
 * http downgrade is refused; an error answer becomes its own message (apiFailure).
 */
export async function resolveSignedLink(task: DownloadTask, options: DownloaderOptions): Promise<string> {
  if (options.quota?.reached) throw new DownloadFailure(`${task.url}: not asked for: ${options.quota.reached}`);
  const doFetch = options.fetch ?? fetch;
  const keyHosts = new Set((options.keyHosts ?? [options.apiHost]).map((h) => new URL(h).origin));
  let url = onApiHost(task.url, options.apiHost);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers = baseHeaders(options.userAgent);
    const target = new URL(url);
    if (options.apiKey && keyHosts.has(target.origin)) headers.Authorization = `Bearer ${options.apiKey}`;
    const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const guard = stallGuard(stallMs, options.signal);
    let res: Response;
    let body = "";
    let unread: string | undefined;
    try {
      res = await doFetch(url, { headers, redirect: "manual", signal: guard.signal, timeout: false });
      // Only an error's body is read (capped: T4); a redirect's or a 2xx's status says all we need.
      if (res.status < 400) await dropBody(res);
      else {
        try {
          body = await readCappedText(res, API_ERROR_BODY_LIMIT);
        } catch (err) {
          if (!(err instanceof BodyTooLargeError)) throw err;
          const cap = `${Math.round(err.limit / 1024)} KiB`;
          unread =
            err.declared !== null && err.declared > err.limit
              ? `declares ${err.declared} bytes, more than ${cap},`
              : `is larger than ${cap}`;
        }
      }
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      const why = guard.stalled() ? `no answer for ${Math.round(stallMs / 1000)} s` : errorMessage(err);
      throw new RetryableFailure(`cannot reach ${target.host}: ${why}`);
    } finally {
      guard.stop();
    }
    if (res.status >= 300 && res.status < 400) {
      const next = redirectTarget(url, res, task.url, "Civitai");
      // Same API host (e.g. a path normalisation): keep asking; any other host is the storage.
      if (keyHosts.has(next.origin)) {
        url = next.href;
        continue;
      }
      return next.href;
    }
    // The body is redacted before apiFailure cuts Civitai's message to quote it: a cut through the
    // key would leave a prefix of it that no later redaction recognises (docs/cases.md F6).
    const failure = apiFailure(task.url, res, createRedactor([options.apiKey])(body), Boolean(options.apiKey), unread);
    if (failure instanceof QuotaFailure && options.quota) {
      options.quota.reached = "Civitai's download quota was reached (429) earlier in this run; try again later";
    }
    throw failure;
  }
  throw new DownloadFailure(`${task.url}: too many redirects`);
}
