/**
 * The shared metadata cache's address (`--cache-url`, CIVITAI_META_CACHE_URL, config `cache.url`,
 * issue 14): `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS). Pure: it checks
 * the text and says what to connect to, how to show it, and which parts are secret.
 *
 * The password is a secret like the API key: it is never echoed. The form we show (`redacted`)
 * drops the whole user part (`redis://***@host:6379/0`), because a user name may be a password
 * written in the wrong place; every error message names the value only in that form.
 */

export const CACHE_URL_ENV = "CIVITAI_META_CACHE_URL";
/** `--cache-url none` (or the same in the environment) turns a configured shared cache off for one run. */
export const CACHE_URL_OFF = "none";

const DEFAULT_PORT = 6379;
/** Redis has 16 databases by default; a server may be set up with more, never this many. */
const MAX_DB = 99_999;

export interface CacheUrl {
  tls: boolean;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** What we show: scheme, host, port and db; `***@` where the URL had credentials. */
  redacted: string;
  /** Every form of the password that could reach a log (as decoded and as written), for the redactor. */
  secrets: string[];
}

export class CacheUrlError extends Error {
  override name = "CacheUrlError";
  /** The message without the source's name in front ("must be …"), for callers that name it their own way. */
  readonly detail: string;
  constructor(source: string, detail: string) {
    super(`${source} ${detail}`);
    this.detail = detail;
  }
}

/**
 * Written without a `scheme://…@` example: every sink redacts the user part of a Redis URL, so
 * `redis://[user:password@]host` reached the terminal as `redis://***@]host`.
 */
const FORMAT =
  'redis://host[:port][/db] or rediss://… (TLS), with "user:password@" or ":password@" before the host when the server needs one';

/** `value` with any user part replaced by `***`: safe to print even when unreadable as a URL. */
export function redactCacheUrlText(value: string): string {
  return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, "$1***@");
}

/**
 * The address `value` names; throws CacheUrlError (naming `source`, never the password) when it is
 * not one. `none` is not handled here (see resolveCacheUrl).
 */
export function parseCacheUrl(value: string, source: string): CacheUrl {
  const shown = JSON.stringify(redactCacheUrlText(value.trim()).slice(0, 200));
  const fail = (why: string): never => {
    throw new CacheUrlError(source, `must be ${FORMAT} (got ${shown}): ${why}`);
  };
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return fail("not a URL");
  }
  const scheme = url.protocol.toLowerCase();
  if (scheme !== "redis:" && scheme !== "rediss:") fail("only redis:// and rediss:// are supported");
  if (url.hostname === "") fail("a host is needed");
  if (url.search !== "" || url.hash !== "") fail("options after ? or # are not taken");
  const port = url.port === "" ? DEFAULT_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) fail("the port must be 1 to 65535");
  const path = url.pathname;
  if (path !== "" && path !== "/" && !/^\/\d{1,5}$/.test(path)) fail("the path must be a database number, such as /0");
  const db = path.length > 1 ? Number(path.slice(1)) : 0;
  if (db > MAX_DB) fail("the database number is too large");
  const username = decodePart(url.username, fail);
  const password = decodePart(url.password, fail);
  // `redis://word@host`: a user name without a password is more often a password in the wrong place.
  if (username !== "" && password === "") fail("give user:password@ or :password@ (a user name alone is not taken)");
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const hasCredentials = username !== "" || password !== "";
  const redacted = `${scheme}//${hasCredentials ? "***@" : ""}${url.hostname}:${port}/${db}`;
  const secrets = password === "" ? [] : [...new Set([password, url.password])];
  return {
    tls: scheme === "rediss:",
    host,
    port,
    db,
    ...(username !== "" ? { username } : {}),
    ...(password !== "" ? { password } : {}),
    redacted,
    secrets,
  };
}

function decodePart(part: string, fail: (why: string) => never): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail("a %-escape in the user part is broken");
  }
}

/** The password forms in `value` if it is a cache URL with one, else none; never throws (for the redactor, before any check). */
export function cacheUrlSecrets(value: string | undefined): string[] {
  if (!value || value.trim() === CACHE_URL_OFF) return [];
  try {
    return parseCacheUrl(value, "cache URL").secrets;
  } catch {
    // Unreadable as a URL: still hide what sits where a password would.
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)@/.exec(value.trim());
    if (!m?.[1]) return [];
    const colon = m[1].indexOf(":");
    return [colon === -1 ? m[1] : m[1].slice(colon + 1)].filter((s) => s !== "");
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The shared cache for a run: `--cache-url`, else CIVITAI_META_CACHE_URL, else the config's
 * `cache.url`; `none` from any of them means none. Throws CacheUrlError for a bad value.
 */
export function resolveCacheUrl(flag: string | undefined, env: Env, configUrl: string | undefined): CacheUrl | null {
  const fromEnv = env[CACHE_URL_ENV]?.trim() || undefined;
  const [value, source] =
    flag !== undefined ? [flag, "--cache-url"] : fromEnv !== undefined ? [fromEnv, CACHE_URL_ENV] : [configUrl, "cache.url"];
  if (value === undefined || value.trim() === CACHE_URL_OFF) return null;
  return parseCacheUrl(value, source);
}
