/**
 * The shared metadata cache on Redis (issue 14), through unstorage's redis driver (ioredis). It
 * moves text only: what the entries mean, and whether one read from here may be served, is for
 * meta-cache.ts to decide (parseMetaEntry, as for every stored entry: other machines wrote these).
 *
 * A shared cache must never cost a run more than a few seconds, nor end it:
 * - every call is bounded: connect and command timeouts in ioredis, and our own timer over each call
 *   in case a server accepts a connection and then says nothing;
 * - no reconnect, no offline queue, no retries: the first failure (down, killed, slow, wrong
 *   password, not Redis) turns the store off for the rest of the run with ONE warning, and the run
 *   goes on with the local cache;
 * - a server that refuses writes (maxmemory with noeviction, a read-only replica, an ACL) is still
 *   read from: one warning, writes stop;
 * - each value is one SET with its expiry (EX), whole or not at all: nothing half-written.
 * The password never leaves this file except to ioredis: messages name the store by its redacted URL.
 */
import type { Redis } from "ioredis";
import { isIP } from "node:net";
import type redisDriverType from "unstorage/drivers/redis";
import type { CacheUrl } from "../config/cache-url.ts";
import { guardReplies, REPLY_BUDGET_BYTES } from "./redis-reply-guard.ts";

type RedisDriverModule = (typeof import("unstorage/drivers/redis"))["default"] | typeof import("unstorage/drivers/redis");

/** Every key we write starts so: a team's Redis may hold other things, and ACLs can name `civitai-meta:*`. */
export const SHARED_KEY_BASE = "civitai-meta";
const CONNECT_TIMEOUT_MS = 3000;
const COMMAND_TIMEOUT_MS = 3000;
/**
 * For the test suite only (README, Development): replaces both timeouts above, in ms, so the tests of
 * a server that never answers do not wait seconds. Users have no reason to set it.
 */
const TEST_TIMEOUT_ENV = "CIVITAI_META_TEST_REDIS_TIMEOUT_MS";

/** The test suite's timeout (TEST_TIMEOUT_ENV), when set to a positive whole number of ms. */
function testTimeoutMs(): number | undefined {
  const raw = process.env[TEST_TIMEOUT_ENV];
  return raw && /^[1-9]\d{0,6}$/.test(raw) ? Number(raw) : undefined;
}
/** Our guard over each call, a little beyond ioredis's own timeouts (they should fire first). */
const GUARD_MARGIN_MS = 1000;
/** How long closing waits for QUIT's answer before it drops the connection. */
const QUIT_WAIT_MS = 500;
/** `cache info` and `cache clear` walk the whole namespace (SCAN): each command is bounded, the walk by this. */
const WALK_LIMIT_MS = 5 * 60_000;
const CLEAR_CHUNK = 1000;
/** A value longer than this is not an entry of ours (ours are a few KB; a model with 1,000 versions is ~300 KB). */
export const MAX_SHARED_VALUE_CHARS = 2_000_000;

export interface SharedWrite {
  /** Without the base (`v3:<scope>:<key>`). */
  key: string;
  value: string;
  /** Redis expiry, whole seconds (≥ 1). */
  ttlSeconds: number;
}

interface SharedStoreStats {
  reads: number;
  writes: number;
  /** The first failure, as shown in the warning (redacted). */
  failure?: string;
}

export interface SharedStore {
  /** The URL as we show it (no password). */
  readonly label: string;
  readonly stats: Readonly<SharedStoreStats>;
  /** The values under `keys` (null where none), or null when the store is off (it warned). */
  read(keys: readonly string[]): Promise<(string | null)[] | null>;
  /** Stores each value with its expiry; never throws (a failure warns once). */
  write(items: readonly SharedWrite[]): Promise<void>;
  /** Keys under `prefix` (without the base); throws with the reason when the store cannot be asked. */
  count(prefix: string): Promise<number>;
  /** Removes every key under `prefix`; returns how many there were. Throws as count. */
  clear(prefix: string): Promise<number>;
  /** Closes the connection; the store answers nothing afterwards. */
  close(): Promise<void>;
}

export interface SharedStoreOptions {
  url: CacheUrl;
  /** Called at most once: the store is off (or read-only) for the rest of the run. */
  onWarning: (message: string) => void;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** How long close() waits for QUIT's answer (default QUIT_WAIT_MS). */
  quitWaitMs?: number;
}

type Driver = ReturnType<typeof redisDriverType>;

/**
 * A store for `options.url`. Nothing connects until the first call, so commands that never read
 * the metadata cache (download) never touch the network for it.
 */
// Long because the store's methods share one closure (the driver, its connection, the failure state).
export function openSharedStore(options: SharedStoreOptions): SharedStore {
  const { url } = options;
  const commandTimeoutMs = options.commandTimeoutMs ?? testTimeoutMs() ?? COMMAND_TIMEOUT_MS;
  const connectTimeoutMs = options.connectTimeoutMs ?? testTimeoutMs() ?? CONNECT_TIMEOUT_MS;
  const stats: SharedStoreStats = { reads: 0, writes: 0 };
  let driver: Driver | null = null;
  let client: Redis | null = null;
  let connecting: Promise<Redis> | null = null;
  /** Off for the rest of the run (after the one warning). */
  let off = false;
  let writesOff = false;
  let warned = false;
  /** What the connection said before it closed: a rejected call only says "Connection is closed". */
  let lastEvent: string | null = null;

  const warnOnce = (message: string) => {
    if (warned) return;
    warned = true;
    options.onWarning(message);
  };

  function connect(): Promise<Redis> {
    connecting ??= (async () => {
      // Loaded here, not at start-up: ioredis is a tenth of every command's start, and only a run
      // with a shared cache uses it. With require: the binary evaluates a module imported
      // dynamically at start all the same (Bun 1.4.5), a required one only when required.
      // Its CommonJS build exports the driver itself; an ES module would give it as `default`.
      const loaded = require("unstorage/drivers/redis") as RedisDriverModule;
      const redisDriver = typeof loaded === "function" ? loaded : loaded.default;
      driver = redisDriver({
        base: SHARED_KEY_BASE,
        host: url.host,
        port: url.port,
        db: url.db,
        ...(url.username !== undefined ? { username: url.username } : {}),
        ...(url.password !== undefined ? { password: url.password } : {}),
        // SNI names a host, never an address (RFC 6066): Node refuses an IP as servername, which
        // made every rediss:// URL with an IP fail before the handshake. The certificate is still
        // checked against the address (its IP SANs) without it.
        ...(url.tls ? { tls: isIP(url.host) ? {} : { servername: url.host } } : {}),
        lazyConnect: true,
        connectTimeout: connectTimeoutMs,
        commandTimeout: commandTimeoutMs,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        enableReadyCheck: false,
        retryStrategy: () => null,
        reconnectOnError: () => false,
        // close() has already waited for QUIT (QUIT_WAIT_MS); ioredis's own wait for the socket to
        // close (2 s by default) then kept every run whose Redis had failed alive 2 s past its end.
        disconnectTimeout: 0,
        scanCount: 1000,
      } as Parameters<typeof redisDriverType>[0]);
      const redis = driver.getInstance!() as Redis;
      client = redis;
      // Without a listener ioredis prints every error itself; with one, it is ours to word.
      redis.on("error", (err: Error) => {
        lastEvent ??= oneLine(err);
      });
      // A reply too deep or too large to parse closes the connection; the calls then fail with "Connection is closed".
      guardReplies(redis, REPLY_BUDGET_BYTES, (reason) => {
        lastEvent = `the server sent ${reason}`;
      });
      await redis.connect();
      // An idle connection must not keep the process alive (a command that forgets to close the
      // store must still exit); during each call, our guard's timer does.
      unrefSocket(redis);
      // Our own ready check: AUTH and SELECT answered (a wrong password closes the connection here).
      await redis.ping();
      return redis;
    })();
    return connecting;
  }

  /** Runs `call` bounded in time; its failure turns the store off (or its writes) and warns once. */
  async function guarded<T>(what: "read" | "write", call: () => Promise<T>): Promise<T | null> {
    if (off || (what === "write" && writesOff)) return null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const limit = connectTimeoutMs + commandTimeoutMs + GUARD_MARGIN_MS;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(limit / 1000)} s`)), limit);
      });
      return await Promise.race([connect().then(call), timeout]);
    } catch (err) {
      fail(what, err);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  function fail(what: "read" | "write", err: unknown): void {
    const reason = describe(err, lastEvent, url.tls);
    stats.failure ??= reason;
    if (what === "write" && isRefusal(err) && client?.status === "ready") {
      // The server is there but will not store (full, read-only, not allowed): keep reading it.
      writesOff = true;
      warnOnce(`shared metadata cache ${url.redacted} refuses writes (${reason}); answers are kept in the local cache only`);
      return;
    }
    off = true;
    warnOnce(`shared metadata cache ${url.redacted} unavailable (${reason}); this run uses the local cache only`);
    client?.disconnect();
  }

  /** For `cache info` and `cache clear`: the same bounds, but the caller reports the failure. */
  async function direct<T>(call: (d: Driver) => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = WALK_LIMIT_MS;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(limit / 1000)} s`)), limit);
      });
      return await Promise.race([connect().then(() => call(driver!)), timeout]);
    } catch (err) {
      throw new Error(describe(err, lastEvent, url.tls), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    label: url.redacted,
    stats,
    async read(keys) {
      if (keys.length === 0) return [];
      const items = await guarded("read", async () =>
        driver!.getItems!(
          keys.map((key) => ({ key })),
          {},
        ),
      );
      if (items === null) return null;
      stats.reads += keys.length;
      // MGET answers in order; anything but a string (or nil) is not ours.
      return items.map((item: { value: unknown }) => (typeof item.value === "string" ? item.value : null));
    },
    async write(items) {
      if (items.length === 0) return;
      const done = await guarded("write", async () => {
        // One SET … EX per entry; ioredis sends them back to back on one connection.
        await Promise.all(items.map((item) => driver!.setItem!(item.key, item.value, { ttl: Math.max(1, item.ttlSeconds) })));
        return true;
      });
      if (done) stats.writes += items.length;
    },
    async count(prefix) {
      return direct(async (d) => (await d.getKeys(prefix, {})).length);
    },
    async clear(prefix) {
      return direct(async (d) => {
        const keys = await d.getKeys(prefix, {});
        // UNLINK frees in the background; chunks keep each command small on a large cache.
        for (let i = 0; i < keys.length; i += CLEAR_CHUNK) {
          await client!.unlink(...keys.slice(i, i + CLEAR_CHUNK).map((key: string) => `${SHARED_KEY_BASE}:${key}`));
        }
        return keys.length;
      });
    },
    async close() {
      off = true;
      const redis = client;
      client = null;
      if (!redis) return;
      // QUIT lets the server finish what it has; a dead one is simply dropped. The wait is cleared
      // once QUIT answers: left running, it kept every run that used Redis alive 0.5 s longer.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([redis.quit().catch(() => {}), new Promise((r) => (timer = setTimeout(r, options.quitWaitMs ?? QUIT_WAIT_MS)))]);
      clearTimeout(timer);
      redis.disconnect();
    },
  };
}

function unrefSocket(redis: Redis): void {
  (redis as unknown as { stream?: { unref?: () => void } }).stream?.unref?.();
}

/** A server's refusal to store, as opposed to a connection that failed. */
function isRefusal(err: unknown): boolean {
  return err instanceof Error && err.name === "ReplyError" && /^(OOM|READONLY|NOPERM|MISCONF|NOSCRIPT)\b/.test(err.message);
}

/** One line that says why; the connection's own error when the call only saw it close. */
/**
 * The reason a warning gives: ioredis's own text without its "Please report this." (meant for its
 * maintainers, not our users), and for a rediss:// URL that never got an answer, the likely cause.
 */
function describe(err: unknown, lastEvent: string | null, tls: boolean): string {
  const own = oneLine(err).replace(/\s*Please report this\.?/i, "");
  const reason = lastEvent && /Connection is closed|Stream isn't writeable/i.test(own) ? lastEvent : own;
  if (tls && /ETIMEDOUT|timed out|no answer/i.test(reason))
    return `${reason}; rediss:// needs TLS on that port: is it a Redis without TLS (redis://)?`;
  return reason;
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0]!.slice(0, 300);
}
