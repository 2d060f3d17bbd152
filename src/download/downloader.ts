import { constants as FS, lstatSync, readFileSync, unlinkSync } from "node:fs";
import { lstat, mkdir, open, realpath, rename, type FileHandle } from "node:fs/promises";
import { dirname, isAbsolute, relative, sep } from "node:path";
import { sleep } from "../shared/sleep.ts";
import { errnoCode } from "../shared/errors.ts";
import { partPathFor } from "./download-plan.ts";
import { createRedactor, truncateText, type Redactor } from "../shared/redact.ts";
import { formatBytes } from "../shared/format.ts";
import { VERSION } from "../version.ts";
import { writeFileAtomic } from "../shared/atomic-write.ts";
import { freeBytes } from "./disk-space.ts";
import { acquireLock, type LockOptions, type LockOwner } from "./download-lock.ts";
import { fsyncDirSync } from "../shared/atomic-write.ts";
import { PartWriter } from "./part-writer.ts";
import { createStreamHasher, type StreamHasher } from "../hash/stream-hasher.ts";

/**
 * One verified, resumable transfer (docs/reliability.md §1.7, issue #6). The API answers with a 307 to a
 * signed storage URL; we follow it by hand so the key only ever goes to the Civitai host. Bytes go
 * to `<final>.<versionId>.part` beside the target, hashed as they are written; the final name
 * appears only when size and SHA-256 equal Civitai's.
 */

export interface DownloadTask {
  versionId: number;
  fileId: number | null;
  /** Our `https://civitai.com/api/download/models/…` link: named in messages and the sidecar. */
  url: string;
  /** Absolute final path. */
  dest: string;
  size: number | null;
  /** False when `size` is Civitai's rounded `sizeKB`: then the server's byte count decides, within 1 KiB. */
  sizeExact: boolean;
  sha256: string | null;
}

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
  lock?: LockOptions;
}

export type DownloadStatus = "downloaded" | "present" | "exists" | "locked" | "failed";

export interface DownloadResult {
  task: DownloadTask;
  status: DownloadStatus;
  /** Why it was skipped or failed; never a secret. */
  message?: string;
  /** Bytes received over the network in this run. */
  bytesReceived: number;
  lockOwner?: LockOwner | null;
}

/** Ends the transfer: the message is the advice. `keepPart` says the `.part` is worth resuming. */
export class DownloadFailure extends Error {
  override name = "DownloadFailure";
  constructor(
    message: string,
    readonly keepPart = true,
  ) {
    super(message);
  }
}

/** Worth another attempt (dropped connection, stall, 5xx); `expired` asks Civitai for a fresh link. */
class RetryableFailure extends Error {
  override name = "RetryableFailure";
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
  }
}

class StallError extends Error {
  override name = "StallError";
}

const MAX_REDIRECTS = 5;
const SIZE_TOLERANCE = 1024;
const MAX_RETRY_DELAY_MS = 30_000;

interface Sidecar {
  versionId: number;
  fileId: number | null;
  url: string;
  size: number | null;
  sha256: string | null;
  etag: string | null;
  lastModified: string | null;
}

export function sidecarPathFor(part: string): string {
  return `${part}.json`;
}

export function lockPathFor(part: string): string {
  return `${part}.lock`;
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* absent */
  }
}

/** SHA-256 of the first `length` bytes of `path` (all when omitted), streamed. */
export async function hashFile(path: string, length?: number): Promise<{ hasher: Bun.CryptoHasher; bytes: number }> {
  const hasher = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  const file = Bun.file(path);
  const stream = (length === undefined ? file : file.slice(0, length)).stream();
  for await (const chunk of stream) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
  }
  return { hasher, bytes };
}

function readSidecar(path: string): Sidecar | null {
  try {
    const doc = JSON.parse(readFileSync(path, "utf8")) as Partial<Sidecar>;
    if (typeof doc.versionId !== "number") return null;
    return {
      versionId: doc.versionId,
      fileId: typeof doc.fileId === "number" ? doc.fileId : null,
      url: String(doc.url ?? ""),
      size: typeof doc.size === "number" ? doc.size : null,
      sha256: typeof doc.sha256 === "string" ? doc.sha256 : null,
      etag: typeof doc.etag === "string" ? doc.etag : null,
      lastModified: typeof doc.lastModified === "string" ? doc.lastModified : null,
    };
  } catch {
    return null;
  }
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

function isWebPage(res: Response): boolean {
  const type = (res.headers.get("content-type") ?? "").toLowerCase();
  return (
    type.startsWith("text/html") ||
    type.startsWith("application/json") ||
    type.startsWith("application/xhtml") ||
    type.startsWith("text/plain")
  );
}

/** `bytes a-b/total` → {start, total}; total null for `*`. */
function parseContentRange(value: string | null): { start: number; total: number | null } | null {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec((value ?? "").trim());
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

function unsatisfiedTotal(value: string | null): number | null {
  const m = /^bytes\s+\*\/(\d+)$/i.exec((value ?? "").trim());
  return m ? Number(m[1]) : null;
}

/** Downloads one file; never throws except on abort (the signal's reason). */
export async function downloadFile(task: DownloadTask, options: DownloaderOptions): Promise<DownloadResult> {
  const redact = createRedactor([options.apiKey]);
  let bytesReceived = 0;
  const counted = (n: number) => {
    bytesReceived += n;
  };
  try {
    const outcome = await run(task, options, redact, counted);
    return { ...outcome, task, bytesReceived, message: outcome.message === undefined ? undefined : redact(outcome.message) };
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    const message = err instanceof DownloadFailure ? err.message : `${task.dest}: ${(err as Error)?.message ?? String(err)}`;
    return { task, status: "failed", message: redact(message), bytesReceived };
  }
}

async function run(
  task: DownloadTask,
  options: DownloaderOptions,
  redact: Redactor,
  counted: (n: number) => void,
): Promise<Omit<DownloadResult, "task" | "bytesReceived">> {
  const dir = dirname(task.dest);
  await mkdir(dir, { recursive: true });
  if (options.root !== undefined) {
    // A pre-planted symlinked sub-folder must not carry the write outside the destination (docs/cases.md F3).
    const realRoot = await realpath(options.root);
    const realDir = await realpath(dir);
    const rel = relative(realRoot, realDir);
    if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new DownloadFailure(`${task.dest}: its folder resolves outside ${options.root} (a symlink?); refusing to write there`, false);
    }
  }

  // The target: a verified copy is kept, anything else is left alone unless --force (docs/cases.md A11); a symlink is never written through (docs/cases.md F5).
  const existing = await lstat(task.dest).catch((err) => {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  });
  if (existing) {
    if (existing.isSymbolicLink()) throw new DownloadFailure(`${task.dest} is a symlink; refusing to write through it`, false);
    if (!existing.isFile()) throw new DownloadFailure(`${task.dest} exists and is not a regular file; left alone`, false);
    const verdict = await checkExisting(task, existing.size);
    if (verdict.ok) return { status: "present", message: verdict.message };
    if (!options.force)
      return { status: "exists", message: `${task.dest} exists (${verdict.message}); left alone, use --force to replace it` };
  }

  const part = partPathFor(task.dest, task.versionId);
  const partStat = lstatSync(part, { throwIfNoEntry: false });
  if (partStat && !partStat.isFile()) {
    throw new DownloadFailure(
      `${part} is ${partStat.isSymbolicLink() ? "a symlink" : "not a regular file"}; refusing to use it (remove it to download)`,
      false,
    );
  }

  const locked = acquireLock(lockPathFor(part), options.lock);
  if (!locked.ok) {
    const who = locked.owner ? `pid ${locked.owner.pid} since ${locked.owner.startedAt}` : "another process";
    return {
      status: "locked",
      message: `${task.dest} is being downloaded by ${who}; skipped (run again once it has finished)`,
      lockOwner: locked.owner,
    };
  }
  try {
    await transfer(task, part, options, redact, counted);
    return { status: "downloaded" };
  } finally {
    locked.lock.release();
  }
}

async function checkExisting(task: DownloadTask, size: number): Promise<{ ok: boolean; message: string }> {
  if (task.size !== null && task.sizeExact && size !== task.size) {
    return { ok: false, message: `${formatBytes(size)}, expected ${formatBytes(task.size)}` };
  }
  if (task.sha256 === null) {
    const near = task.size === null || Math.abs(size - task.size) <= SIZE_TOLERANCE;
    return near
      ? { ok: true, message: "already present (size matches; Civitai gives no SHA-256)" }
      : { ok: false, message: "size differs" };
  }
  const { hasher } = await hashFile(task.dest);
  const actual = hasher.digest("hex");
  return actual === task.sha256
    ? { ok: true, message: "already present, verified" }
    : { ok: false, message: `hash differs: SHA-256 ${actual}, expected ${task.sha256}` };
}

interface PartState {
  handle: FileHandle | null;
  /** Bytes on disk in the .part (and fed to the hasher). */
  offset: number;
  /** Bytes received and not yet written (at most one write batch). */
  buffered: number;
  hasher: StreamHasher;
  makeHasher: (seed?: { path: string; length: number }) => StreamHasher;
  sidecar: Sidecar;
}

async function openPart(part: string, create: boolean): Promise<FileHandle> {
  // O_NOFOLLOW on reopen and O_EXCL on create: a symlink planted at the part name is never followed (docs/cases.md F5).
  return create ? open(part, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, 0o644) : open(part, FS.O_WRONLY | FS.O_NOFOLLOW);
}

async function transfer(
  task: DownloadTask,
  part: string,
  options: DownloaderOptions,
  redact: Redactor,
  counted: (n: number) => void,
): Promise<void> {
  const sidecarPath = sidecarPathFor(part);
  const fresh: Sidecar = {
    versionId: task.versionId,
    fileId: task.fileId,
    url: task.url,
    size: task.size,
    sha256: task.sha256,
    etag: null,
    lastModified: null,
  };
  const makeHasher = (seed?: { path: string; length: number }) =>
    createStreamHasher({ ...(seed ? { seed } : {}), inline: options.inlineHash === true });
  const state: PartState = { handle: null, offset: 0, buffered: 0, hasher: makeHasher(), makeHasher, sidecar: fresh };

  // Resume only a .part whose sidecar says it holds the same file; anything else starts over.
  const old = readSidecar(sidecarPath);
  const partStat = lstatSync(part, { throwIfNoEntry: false });
  if (partStat) {
    const same = old !== null && old.versionId === task.versionId && old.fileId === task.fileId && old.sha256 === task.sha256;
    state.handle = await openPart(part, false);
    if (same && partStat.size > 0) {
      // The bytes already there are hashed by the hasher's worker while the request goes out.
      replaceHasher(state, { path: part, length: partStat.size });
      state.offset = partStat.size;
      state.sidecar = old;
    } else {
      await state.handle.truncate(0);
    }
  }
  const report = (total: number | null) => options.onProgress?.({ task, received: state.offset + state.buffered, total });
  report(task.size);

  const dir = dirname(task.dest);
  const freeSpace = options.freeSpace ?? freeBytes;
  if (task.size !== null) {
    const needed = task.size - state.offset;
    const free = await freeSpace(dir);
    if (free !== null && needed > free) {
      await state.handle?.close();
      throw new DownloadFailure(
        `${task.dest}: not enough disk space: needs ${formatBytes(needed)} more, ${formatBytes(free)} free on that disk`,
      );
    }
  }

  const maxRetries = options.maxRetries ?? 5;
  const baseDelay = options.retryDelayMs ?? 1000;
  let failures = 0;
  let storageUrl: string | null = null;
  let expiredInARow = 0;
  try {
    for (;;) {
      if (options.signal?.aborted) throw options.signal.reason;
      const before = state.offset;
      try {
        if (storageUrl === null) storageUrl = await resolveStorageUrl(task, options);
        const done = await attempt(task, part, storageUrl, state, options, counted, report);
        if (done) break;
        throw new RetryableFailure(`connection closed at ${formatBytes(state.offset)}`);
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (!(err instanceof RetryableFailure)) throw err;
        if (err.expired) {
          storageUrl = null;
          // A fresh link refused at once is not an expiry: stop rather than loop.
          if (++expiredInARow > 2)
            throw new DownloadFailure(`${task.url}: the storage host refuses the download link even after asking Civitai for a new one`);
          options.onWarning?.(
            redact(`${task.dest}: ${err.message}; asking Civitai for a new link, continuing at ${formatBytes(state.offset)}`),
          );
          continue;
        }
        if (state.offset > before) failures = 0;
        if (++failures > maxRetries)
          throw new DownloadFailure(
            redact(`${task.dest}: ${err.message}; gave up after ${maxRetries} retries (the .part is kept: run again to resume)`),
          );
        options.onWarning?.(
          redact(`${task.dest}: ${err.message}; resuming at ${formatBytes(state.offset)} (retry ${failures}/${maxRetries})`),
        );
        await sleep(Math.min(MAX_RETRY_DELAY_MS, baseDelay * 2 ** (failures - 1)), options.signal);
        continue;
      } finally {
        if (state.offset > before) expiredInARow = 0;
      }
    }
    await finish(task, part, state, options);
  } finally {
    await state.handle?.close().catch(() => {});
    state.handle = null;
    state.hasher.close();
  }
}

function replaceHasher(state: PartState, seed?: { path: string; length: number }): void {
  state.hasher.close();
  state.hasher = state.makeHasher(seed);
}

function baseHeaders(options: DownloaderOptions): Record<string, string> {
  // identity: a compressed answer would make Content-Length and Range offsets meaningless (docs/reliability.md §2.5).
  return { "User-Agent": options.userAgent ?? `civitai-meta/${VERSION}`, "Accept-Encoding": "identity" };
}

/** Fetch with a stall timer that also covers the wait for headers; returns the timer's controls. */
function stallGuard(options: DownloaderOptions): { signal: AbortSignal; kick: () => void; stop: () => void; stalled: () => boolean } {
  const controller = new AbortController();
  const ms = options.stallTimeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const kick = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort(new StallError(`no data for ${Math.round(ms / 1000)} s`));
    }, ms);
  };
  kick();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  return { signal, kick, stop: () => timer && clearTimeout(timer), stalled: () => stalled };
}

/**
 * Asks the API for the download and returns the storage URL from its redirect. The key is sent
 * only to `keyHosts`; an https → http downgrade is refused; errors become their own messages.
 */
async function resolveStorageUrl(task: DownloadTask, options: DownloaderOptions): Promise<string> {
  const doFetch = options.fetch ?? fetch;
  const keyHosts = new Set((options.keyHosts ?? [options.apiHost]).map((h) => new URL(h).origin));
  const ours = new URL(task.url);
  let url = `${options.apiHost.replace(/\/+$/, "")}${ours.pathname}${ours.search}`;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers = baseHeaders(options);
    const target = new URL(url);
    if (options.apiKey && keyHosts.has(target.origin)) headers.Authorization = `Bearer ${options.apiKey}`;
    const guard = stallGuard(options);
    let res: Response;
    let body = "";
    try {
      res = await doFetch(url, { headers, redirect: "manual", signal: guard.signal, timeout: false });
      if (res.status >= 300 && res.status < 400) await res.body?.cancel().catch(() => {});
      else body = await res.text();
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      const why = guard.stalled()
        ? `no answer for ${Math.round((options.stallTimeoutMs ?? 60_000) / 1000)} s`
        : ((err as Error)?.message ?? String(err));
      throw new RetryableFailure(`cannot reach ${target.host}: ${why}`);
    } finally {
      guard.stop();
    }
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get("location");
      if (!location) throw new DownloadFailure(`${task.url}: Civitai answered ${res.status} without a Location`, false);
      const next = new URL(location, url);
      if (target.protocol === "https:" && next.protocol !== "https:") {
        throw new DownloadFailure(`${task.url}: refusing a redirect from https to ${next.protocol.replace(":", "")} (${next.host})`, false);
      }
      if (next.protocol !== "https:" && next.protocol !== "http:")
        throw new DownloadFailure(`${task.url}: refusing a redirect to a ${next.protocol} URL`, false);
      // Same API host (e.g. a path normalisation): keep asking; any other host is the storage.
      if (keyHosts.has(next.origin)) {
        url = next.href;
        continue;
      }
      return next.href;
    }
    throw apiFailure(task, res, body, options);
  }
  throw new DownloadFailure(`${task.url}: too many redirects`, false);
}

function apiFailure(task: DownloadTask, res: Response, body: string, options: DownloaderOptions): Error {
  const { error, message } = civitaiMessage(body);
  const quoted = message || error;
  const say = quoted ? `: Civitai says "${quoted}"` : "";
  const what = task.url;
  const s = res.status;
  if (s >= 200 && s < 300) {
    if (isWebPage(res))
      return new DownloadFailure(
        `${what}: Civitai sent a web page instead of the file (a login or Cloudflare challenge page?); nothing was saved`,
        false,
      );
    return new DownloadFailure(`${what}: Civitai answered ${s} without redirecting to the file`, false);
  }
  if (s === 401) {
    const disabled = /disabled downloads/i.test(quoted);
    const advice = disabled
      ? "the creator does not allow downloads of this file"
      : options.apiKey
        ? "your API key was not accepted: check CIVITAI_API_KEY (civitai.com → Account settings → API keys)"
        : "set CIVITAI_API_KEY to an API key from civitai.com → Account settings → API keys";
    return new DownloadFailure(`${what}: login required (401)${say}; ${advice}`, false);
  }
  if (s === 403) {
    if (/early access/i.test(error) || /early access/i.test(message)) {
      return new DownloadFailure(
        `${what}: in Early Access (403)${say}; it can be downloaded when early access ends, or once bought on the site`,
        false,
      );
    }
    return new DownloadFailure(`${what}: download refused (403)${say}`, false);
  }
  if (s === 404) return new DownloadFailure(`${what}: not found on Civitai (404)${say}; the version or file may have been removed`, false);
  if (s === 410) return new DownloadFailure(`${what}: archived on Civitai (410)${say}; it is no longer available for download`, false);
  if (s === 429) return new DownloadFailure(`${what}: Civitai's download quota reached (429)${say}; try again later`, false);
  if (s === 451) return new DownloadFailure(`${what}: not available in your region (451)${say}`, false);
  if (s >= 500 || s === 408) return new RetryableFailure(`Civitai answered ${s}${say}`);
  return new DownloadFailure(`${what}: Civitai answered ${s}${say}`, false);
}

/** Storage errors: 403/400/401 (S3 AccessDenied, "Request has expired") mean the signed link is stale. */
function storageFailure(task: DownloadTask, res: Response, host: string): Error {
  const s = res.status;
  if (s === 403 || s === 400 || s === 401) return new RetryableFailure(`the storage host refused the signed link (${s}, expired?)`, true);
  if (s >= 500 || s === 408 || s === 429) return new RetryableFailure(`the storage host ${host} answered ${s}`);
  if (s === 404 || s === 410)
    return new DownloadFailure(`${task.url}: the storage host has no such file (${s}); try again later or report it to Civitai`, false);
  return new DownloadFailure(`${task.url}: the storage host ${host} answered ${s}`, false);
}

async function restart(state: PartState): Promise<void> {
  await state.handle?.truncate(0);
  state.offset = 0;
  replaceHasher(state);
}

/**
 * One GET against storage. Returns true when every expected byte is in the `.part`, false when
 * the body ended early (resumable); throws Retryable/DownloadFailure otherwise.
 */
async function attempt(
  task: DownloadTask,
  part: string,
  startUrl: string,
  state: PartState,
  options: DownloaderOptions,
  counted: (n: number) => void,
  report: (total: number | null) => void,
): Promise<boolean> {
  const doFetch = options.fetch ?? fetch;
  const guard = stallGuard(options);
  let url = startUrl;
  let res: Response | null = null;
  let host = new URL(url).host;
  try {
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers = baseHeaders(options);
      if (state.offset > 0) {
        headers.Range = `bytes=${state.offset}-`;
        const validator = state.sidecar.etag && !state.sidecar.etag.startsWith("W/") ? state.sidecar.etag : state.sidecar.lastModified;
        if (validator) headers["If-Range"] = validator;
      }
      // Never Authorization here: storage is another host, and R2 rejects requests that carry it.
      try {
        res = await doFetch(url, { headers, redirect: "manual", signal: guard.signal, timeout: false });
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason;
        throw new RetryableFailure(
          guard.stalled()
            ? `no answer from the storage host for ${Math.round((options.stallTimeoutMs ?? 60_000) / 1000)} s`
            : `cannot reach the storage host ${host}: ${(err as Error)?.message ?? err}`,
        );
      }
      if (res.status < 300 || res.status >= 400) break;
      await res.body?.cancel().catch(() => {});
      const location = res.headers.get("location");
      if (!location) throw new DownloadFailure(`${task.url}: the storage host answered ${res.status} without a Location`, false);
      const next = new URL(location, url);
      if (new URL(url).protocol === "https:" && next.protocol !== "https:") {
        throw new DownloadFailure(`${task.url}: refusing a redirect from https to ${next.protocol.replace(":", "")} (${next.host})`, false);
      }
      url = next.href;
      host = next.host;
      res = null;
    }
    if (res === null) throw new DownloadFailure(`${task.url}: too many redirects`, false);

    if (res.status === 416) {
      await res.body?.cancel().catch(() => {});
      return await onUnsatisfiable(task, part, state, res, options, report);
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel().catch(() => {});
      throw storageFailure(task, res, host);
    }
    // An error page must never become the model file (civitai/civitai#975, docs/cases.md A7).
    if (isWebPage(res)) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadFailure(
        `${task.url}: got a web page (${(res.headers.get("content-type") ?? "").split(";")[0]}) instead of the file; nothing was saved`,
        false,
      );
    }

    let total: number | null;
    if (res.status === 206) {
      const range = parseContentRange(res.headers.get("content-range"));
      if (!range || range.start !== state.offset) {
        await res.body?.cancel().catch(() => {});
        // Splicing bytes from another offset would corrupt the file silently (pip, docs/cases.md A4).
        await discardPart(part, state);
        throw new DownloadFailure(
          `${task.url}: the server resumed at the wrong offset (asked for byte ${state.offset}, got ${range ? range.start : "no Content-Range"}); the partial download was discarded, run again to start over`,
          false,
        );
      }
      total = range.total;
    } else {
      if (state.offset > 0) {
        const etag = res.headers.get("etag");
        const changed = state.sidecar.etag !== null && etag !== null && etag !== state.sidecar.etag;
        options.onWarning?.(
          `${task.dest}: ${changed ? "the remote file changed since the .part was started" : "the server ignored the resume request"}; restarting from 0`,
        );
        await restart(state);
        report(null);
      }
      const length = res.headers.get("content-length");
      total = length !== null && /^\d+$/.test(length) ? Number(length) : null;
    }
    checkTotal(task, total);

    if (state.handle === null) state.handle = await openPart(part, true);
    const etag = res.headers.get("etag");
    const lastModified = res.headers.get("last-modified");
    if (res.status === 200 || state.sidecar.etag !== etag || state.sidecar.lastModified !== lastModified) {
      state.sidecar = { ...state.sidecar, size: total ?? task.size, etag, lastModified };
    }
    writeFileAtomic(sidecarPathFor(part), `${JSON.stringify(state.sidecar)}\n`, { fsync: false });

    const expected = total ?? task.size;
    if (!res.body) return expected === null || state.offset >= expected;
    const reader = res.body.getReader();
    guard.kick();
    const writer = new PartWriter(state.handle, state.hasher, state.offset);
    const sync = () => {
      state.offset = writer.offset;
      state.buffered = writer.buffered;
    };
    // A write error is a disk problem: say how much room is needed; anything else is rethrown.
    const written = async (work: Promise<void>): Promise<void> => {
      try {
        await work;
      } catch (err) {
        sync();
        await reader.cancel().catch(() => {});
        if (errnoCode(err) === "ENOSPC" || errnoCode(err) === "EDQUOT") {
          const free = await (options.freeSpace ?? freeBytes)(dirname(task.dest));
          const needed = expected === null ? null : expected - state.offset;
          throw new DownloadFailure(
            `${task.dest}: disk full after ${formatBytes(state.offset)}: needs ${needed === null ? "more" : `${formatBytes(needed)} more`}, ${free === null ? "unknown" : formatBytes(free)} free; the .part is kept, free some space and run again to resume`,
          );
        }
        throw err;
      }
      sync();
    };
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        // What arrived before the cut (or Ctrl-C) is good: keep it so the resume starts after it.
        await written(writer.drain());
        if (options.signal?.aborted) throw options.signal.reason;
        throw new RetryableFailure(
          guard.stalled()
            ? `stalled: no data for ${Math.round((options.stallTimeoutMs ?? 60_000) / 1000)} s`
            : `connection lost (${(err as Error)?.message ?? err})`,
        );
      }
      if (chunk.done) break;
      guard.kick();
      const bytes = chunk.value;
      if (expected !== null && writer.offset + writer.buffered + bytes.byteLength > expected) {
        await reader.cancel().catch(() => {});
        await writer.drain().catch(() => {});
        sync();
        await discardPart(part, state);
        throw new DownloadFailure(
          `${task.url}: the server sent more than the expected ${expected} bytes; the partial download was discarded`,
          false,
        );
      }
      await written(writer.push(bytes));
      counted(bytes.byteLength);
      report(total);
    }
    await written(writer.drain());
    return expected === null || state.offset >= expected;
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof DownloadFailure || err instanceof RetryableFailure) throw err;
    if (guard.stalled()) throw new RetryableFailure(`stalled: no data for ${Math.round((options.stallTimeoutMs ?? 60_000) / 1000)} s`);
    if (
      err instanceof TypeError ||
      (err as Error)?.name === "FetchError" ||
      /ECONN|socket|closed|network/i.test(String((err as Error)?.message))
    ) {
      throw new RetryableFailure(`cannot reach the storage host ${host}: ${(err as Error)?.message ?? err}`);
    }
    throw err;
  } finally {
    guard.stop();
  }
}

function checkTotal(task: DownloadTask, total: number | null): void {
  if (total === null || task.size === null) return;
  const off = Math.abs(total - task.size);
  if (off === 0 || (!task.sizeExact && off <= SIZE_TOLERANCE)) return;
  throw new DownloadFailure(
    `${task.url}: the server's file is ${total} bytes but Civitai lists ${task.size}: the remote file changed? Look it up again (civitai-meta lookup) before downloading`,
    false,
  );
}

/** 416 on a resume: the `.part` may already be whole. Hash it, never trust the size alone (docs/cases.md A8). */
async function onUnsatisfiable(
  task: DownloadTask,
  part: string,
  state: PartState,
  res: Response,
  options: DownloaderOptions,
  report: (total: number | null) => void,
): Promise<boolean> {
  const total = unsatisfiedTotal(res.headers.get("content-range")) ?? (task.sizeExact ? task.size : null);
  if (state.offset > 0 && total !== null && state.offset === total) {
    const digest = await state.hasher.digest();
    if (task.sha256 === null || digest === task.sha256) return true;
  }
  options.onWarning?.(`${task.dest}: the .part (${formatBytes(state.offset)}) does not match the remote file; starting over`);
  await restart(state);
  report(null);
  throw new RetryableFailure("restarting from 0");
}

async function discardPart(part: string, state: PartState): Promise<void> {
  await state.handle?.close().catch(() => {});
  state.handle = null;
  tryUnlink(part);
  tryUnlink(sidecarPathFor(part));
  state.offset = 0;
  replaceHasher(state);
}

/** Size and SHA-256 must both equal Civitai's; then fsync, rename, fsync the folder. */
async function finish(task: DownloadTask, part: string, state: PartState, options: DownloaderOptions): Promise<void> {
  if (task.size !== null && task.sizeExact && state.offset !== task.size) {
    await discardPart(part, state);
    throw new DownloadFailure(
      `${task.url}: size mismatch: expected ${task.size} bytes, got ${state.offset}; the partial download was deleted`,
      false,
    );
  }
  // The fsync (writing 25 GB back to disk takes a while) overlaps the hasher finishing its queue;
  // syncing bytes that turn out wrong costs nothing, the rename below is what must wait for both.
  const synced = state.handle ? state.handle.sync() : Promise.resolve();
  const [actual] = await Promise.all([state.hasher.digest(), synced]);
  if (task.sha256 !== null && actual !== task.sha256) {
    await discardPart(part, state);
    throw new DownloadFailure(
      `${task.dest}: SHA-256 mismatch: expected ${task.sha256}, got ${actual}; nothing was saved under that name and the partial download was deleted`,
      false,
    );
  }
  if (task.sha256 === null) options.onWarning?.(`${task.dest}: Civitai gives no SHA-256 for this file; only its size was checked`);
  if (state.handle) {
    await state.handle.close();
    state.handle = null;
  }
  const now = lstatSync(task.dest, { throwIfNoEntry: false });
  if (now) {
    if (now.isSymbolicLink() || !now.isFile())
      throw new DownloadFailure(
        `${task.dest} became ${now.isSymbolicLink() ? "a symlink" : "something else"} during the download; refusing to replace it (the verified file is kept as ${part})`,
      );
    if (!options.force)
      throw new DownloadFailure(`${task.dest} appeared during the download; left alone (the verified file is kept as ${part})`);
  }
  await rename(part, task.dest);
  fsyncDirSync(dirname(task.dest));
  tryUnlink(sidecarPathFor(part));
}

/** For tests and the command: the part, sidecar and lock paths of a target. */
export function transferPaths(dest: string, versionId: number): { part: string; sidecar: string; lock: string } {
  const part = partPathFor(dest, versionId);
  return { part, sidecar: sidecarPathFor(part), lock: lockPathFor(part) };
}

/** True when `path` is a regular file that is not a symlink (for the command's dry run). */
export function isPlainFile(path: string): boolean {
  const s = lstatSync(path, { throwIfNoEntry: false });
  return s !== undefined && s.isFile();
}
