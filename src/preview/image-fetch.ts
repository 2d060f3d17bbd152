/**
 * Fetches one preview image, defensively: only from allowed hosts (image-url.ts), redirects
 * followed by hand and checked like the first URL, never with the API key or a cookie, one
 * timeout per attempt covering headers and body, the body capped while it streams, and the bytes
 * accepted only when their magic number says image and the image looks complete (image-sniff.ts).
 * Every failure is a short reason a card can show; none throws, except the user's Ctrl-C.
 */
import { BodyTooLargeError, readCapped } from "../shared/read-capped.ts";
import { sleep } from "../shared/sleep.ts";
import { describeNetworkError } from "../civitai/http/classify.ts";
import { hostOf, imageUrlRefusal, type ImageHostPolicy } from "./image-url.ts";
import { describeNotImage, looksComplete, sniffImage, type SniffedImage } from "./image-sniff.ts";
import { formatBytes } from "../shared/format.ts";

/** A 450-px still is tens of KB; anything near this is not a thumbnail. */
export const MAX_IMAGE_BYTES = 1024 * 1024;
const DEFAULT_IMAGE_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Two attempts: one more after a 429, a 5xx or a dropped connection, a second apart. */
const ATTEMPTS = 2;
const RETRY_DELAY_MS = 1000;

export interface ImageFetchOptions {
  policy: ImageHostPolicy;
  userAgent: string;
  timeoutMs?: number;
  maxBytes?: number;
  /** The run's abort signal (Ctrl-C): rethrown, never turned into a reason. */
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
  retryDelayMs?: number;
}

export type FetchedImage =
  | { ok: true; bytes: Uint8Array; image: SniffedImage }
  /** `unreachable`: the host did not answer (timeout, connection failure, 5xx, 429), as opposed to answering badly. */
  | { ok: false; reason: string; unreachable?: boolean };

type Attempt = FetchedImage | { ok: false; reason: string; retry: true };

export async function fetchImage(url: string, options: ImageFetchOptions): Promise<FetchedImage> {
  const refusal = imageUrlRefusal(url, options.policy);
  if (refusal !== null) return { ok: false, reason: refusal };
  let last: FetchedImage = { ok: false, reason: "not fetched" };
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    options.signal?.throwIfAborted();
    const result = await attemptOnce(url, options);
    if (result.ok || !("retry" in result)) return result;
    last = { ok: false, reason: result.reason, unreachable: true };
    if (attempt < ATTEMPTS) await sleep(options.retryDelayMs ?? RETRY_DELAY_MS, options.signal);
  }
  return last;
}

async function attemptOnce(url: string, options: ImageFetchOptions): Promise<Attempt> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_IMAGE_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const doFetch = options.fetch ?? globalThis.fetch;
  let current = url;
  try {
    for (let hop = 0; ; hop++) {
      const response = await doFetch(current, {
        redirect: "manual",
        signal,
        // Only these headers: no Authorization, no cookies. The CDN picks WebP or JPEG from Accept.
        headers: { accept: "image/webp,image/jpeg,image/png,image/gif;q=0.8", "user-agent": options.userAgent },
      });
      if (REDIRECT_STATUSES.has(response.status)) {
        await response.body?.cancel().catch(() => {});
        const location = response.headers.get("location");
        if (!location) return { ok: false, reason: `HTTP ${response.status} without a Location` };
        if (hop >= MAX_REDIRECTS) return { ok: false, reason: "too many redirects" };
        const next = new URL(location, current).toString();
        const refusal = imageUrlRefusal(next, options.policy);
        if (refusal !== null) return { ok: false, reason: `redirected away: ${refusal}` };
        current = next;
        continue;
      }
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => {});
        const reason = `HTTP ${response.status} from ${hostOf(current)}${response.status === 404 ? " (the image is gone)" : ""}`;
        return response.status === 429 || response.status >= 500 ? { ok: false, reason, retry: true } : { ok: false, reason };
      }
      return await checkBody(response, options.maxBytes ?? MAX_IMAGE_BYTES);
    }
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof BodyTooLargeError) return { ok: false, reason: `larger than ${formatBytes(err.limit)}` };
    if (timeout.aborted) return { ok: false, reason: `no complete answer within ${Math.round(timeoutMs / 100) / 10} s`, unreachable: true };
    return { ok: false, reason: `${describeNetworkError(err)} (${hostOf(current)})`, retry: true };
  }
}

async function checkBody(response: Response, maxBytes: number): Promise<FetchedImage> {
  const header = response.headers.get("content-length");
  const declared = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null;
  const bytes = await readCapped(response, maxBytes);
  if (declared !== null && bytes.length < declared) return { ok: false, reason: `truncated (${bytes.length} of ${declared} bytes)` };
  const image = sniffImage(bytes);
  if (image === null) return { ok: false, reason: describeNotImage(bytes, response.headers.get("content-type")) };
  if (!looksComplete(bytes, image.kind)) return { ok: false, reason: `truncated ${image.kind.toUpperCase()} image` };
  return { ok: true, bytes, image };
}
