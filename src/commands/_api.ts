import { join } from "node:path";
import type { ArgsDef } from "citty";
import { loadConfig, type LoadedConfig } from "../config/config-file.ts";
import { createCivitaiClient, type CivitaiClient } from "../civitai/civitai-client.ts";
import { createMetaCache, type MetaCache } from "../civitai/meta-cache.ts";
import { openSharedStore, type SharedStore } from "../civitai/meta-cache-redis.ts";
import { CACHE_URL_ENV, CacheUrlError, cacheUrlSecrets, resolveCacheUrl, type CacheUrl } from "../config/cache-url.ts";
import { resolveCacheDir } from "../config/paths.ts";
import { MAX_DURATION_MS, MAX_DURATION_TEXT, parseDuration } from "../config/config.ts";
import { parseWholeNumber } from "../shared/cli-args.ts";
import { UsageError, describeErrno, describePathError } from "../shared/errors.ts";
import { plainHttpKeyOrigins, resolveApiSettings, type ApiSettings } from "../config/settings.ts";
import { addLogSecret, hasLogFile, logger, openLogFile } from "../ui/logger.ts";
import { escapeControl } from "../shared/format.ts";
import { VERSION } from "../version.ts";

/**
 * For the test suite only (README, Development): `1` makes every retry's own backoff 0 ms, so the
 * tests of retries do not sleep for real; Retry-After is still honoured and the retry path (attempt
 * counts, classification, messages) runs unchanged. Users have no reason to set it. (The suite
 * preloaded a file that replaced Math.random before, ~4 ms of CPU at every one of its ~500 starts.)
 */
const TEST_NO_JITTER_ENV = "CIVITAI_META_TEST_NO_JITTER";

export const apiArgs = {
  "api-url": { type: "string", valueHint: "url", description: "Civitai API origin (default https://civitai.com; also CIVITAI_API_URL)" },
  "fallback-url": {
    type: "string",
    valueHint: "url",
    description: "Host asked again for misses (default https://civitai.red unless --api-url is given)",
  },
  fallback: {
    type: "boolean",
    default: true,
    negativeDescription: "Do not ask a fallback host",
    description: "Ask the fallback host for misses",
  },
  "api-key": {
    type: "string",
    valueHint: "key",
    description: "Civitai API key (prefer CIVITAI_API_KEY: flags show in ps and shell history)",
  },
  config: {
    type: "string",
    valueHint: "file",
    description:
      "Config file, read alone (default: $XDG_CONFIG_HOME/civitai-meta/config.json, with ./civitai-meta.json over it for what to scan and how to report)",
  },
  concurrency: { type: "string", valueHint: "n", description: "Requests in flight at once (default 4)" },
  offline: { type: "boolean", description: "Never touch the network: caches, files and sidecars only" },
  refresh: { type: "boolean", description: "Ignore cached metadata (answers are still cached)" },
  "cache-url": {
    type: "string",
    valueHint: "url",
    description:
      "Shared metadata cache on Redis, behind the local one: redis://[user:password@]host[:port][/db] or rediss:// (prefer CIVITAI_META_CACHE_URL: flags show in ps; none: off)",
  },
  details: {
    type: "boolean",
    default: true,
    negativeDescription: "Skip model details (tags, creator, description, license)",
    description: "Fetch model details",
  },
  timeout: { type: "string", valueHint: "duration", description: "Per-attempt request timeout (default 30s, at least 1s)" },
  "max-wait": { type: "string", valueHint: "duration", description: "Longest rate-limit pause to sit out before stopping (default 10m)" },
} as const satisfies ArgsDef;

/** Some of {@link apiArgs}, in the order given: for a command that needs only those (download). */
export function someApiArgs<K extends keyof typeof apiArgs>(...keys: K[]): Pick<typeof apiArgs, K> {
  return Object.fromEntries(keys.map((k) => [k, apiArgs[k]])) as Pick<typeof apiArgs, K>;
}

export interface ApiContext {
  settings: ApiSettings;
  config: LoadedConfig;
  client: CivitaiClient;
  metaCache: MetaCache;
  concurrency: number;
  cacheDir: string | false;
  /** The shared metadata cache as shown (no password), or null when none is used. */
  sharedCache: string | null;
  /** Closes what the context opened (the shared cache's connection). Never throws. */
  close(): Promise<void>;
}

interface ApiArgValues {
  "api-url"?: string;
  "fallback-url"?: string;
  fallback?: boolean;
  "api-key"?: string;
  config?: string;
  concurrency?: string;
  refresh?: boolean;
  timeout?: string;
  "max-wait"?: string;
  cache?: boolean;
  "cache-dir"?: string;
  "cache-url"?: string;
  offline?: boolean;
}

/**
 * A duration flag's value in ms; refuses unreadable, zero and absurd (over a year) values, and for
 * the timeouts (`atLeastOneSecond`) values under a second: `--timeout 0.0001s` failed every request
 * before any answer could arrive, and said so only after every retry.
 */
export function durationArg(value: string | undefined, flag: string, fallback: number, atLeastOneSecond = false): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === null) throw new UsageError(`--${flag} takes a duration such as 30s, 5m or 1h (got "${escapeControl(value)}")`);
  if (ms <= 0) throw new UsageError(`--${flag} takes a duration longer than 0, such as 30s, 5m or 1h (got "${escapeControl(value)}")`);
  if (ms > MAX_DURATION_MS) throw new UsageError(`--${flag} takes at most ${MAX_DURATION_TEXT} (got "${escapeControl(value)}")`);
  if (atLeastOneSecond && ms < 1000)
    throw new UsageError(`--${flag} takes at least 1s (got "${escapeControl(value)}"): a shorter wait fails before an answer can arrive`);
  return ms;
}

/**
 * The config's `logFile` (docs/cases.md T22), unless --log-file already chose one. A config found in the
 * current folder cannot set it (config-file.ts drops it with a warning): a downloaded folder must
 * not choose a file we append to (~/.bashrc).
 */
function openConfiguredLogFile(config: LoadedConfig): void {
  const file = config.config.logFile;
  if (!file || hasLogFile()) return;
  try {
    openLogFile(file);
  } catch (error) {
    // Only --config FILE or the user's own config sets logFile (a folder's is dropped): the first file read.
    const source = config.files[0] === undefined ? "Config" : `Config ${escapeControl(config.files[0])}`;
    throw new UsageError(
      `${source}: cannot open "logFile" ${escapeControl(file)}: ${describeErrno(error)}. Give it a file in a folder that exists and is writable.`,
    );
  }
}

/** What a command's display wants to hear about from the client. */
export interface ApiHooks {
  /** A 429 paused every request until `until` (epoch ms); `service` asked for it. */
  onRateLimitPause?: (pause: { until: number; service: string }) => void;
}

/** Config, key, hosts, client and metadata cache from flags + environment + config file. */
export function createApiContext(args: ApiArgValues, signal: AbortSignal, hooks: ApiHooks = {}): ApiContext {
  const config = loadConfig(args.config);
  for (const secret of cacheUrlSecrets(config.config.cache?.url)) addLogSecret(secret);
  openConfiguredLogFile(config);
  for (const w of config.warnings) logger.warn(w);
  let settings: ApiSettings;
  try {
    settings = resolveApiSettings(
      { apiUrl: args["api-url"], fallbackUrl: args["fallback-url"], fallback: args.fallback, apiKey: args["api-key"] },
      process.env,
      config.config,
    );
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  addLogSecret(settings.apiKey);
  if (args.offline !== true) {
    for (const origin of plainHttpKeyOrigins(settings)) {
      logger.warn(
        `the API key will be sent unencrypted to ${origin} (plain HTTP): anyone on the network path can read it. Use https://, or unset the key for this host`,
      );
    }
  }
  if (settings.keySource === "flag") {
    logger.warn(
      "--api-key is visible to other users in ps and in your shell history; prefer CIVITAI_API_KEY or a config file with mode 600",
    );
  }
  const concurrencyArg = args.concurrency ?? config.config.concurrency;
  const concurrency = concurrencyArg === undefined ? 4 : parseWholeNumber(concurrencyArg, "concurrency", 32);
  if (typeof concurrency === "string") throw new UsageError(concurrency);

  const cacheSettings = config.config.cache ?? {};
  const cacheEnabled = args.cache !== false && cacheSettings.enabled !== false;
  const cacheDir = cacheEnabled ? resolveCacheDir(args["cache-dir"], cacheSettings.dir) : false;
  const shared = openConfiguredSharedCache(args, cacheSettings.url, cacheEnabled);
  let warnedCache = false;
  const metaCache = createMetaCache({
    dir: cacheDir === false ? false : join(cacheDir, "meta"),
    origins: [settings.primary, ...(settings.fallback ? [settings.fallback] : [])],
    ttlFoundMs: cacheSettings.ttlMs,
    ttlNotFoundMs: cacheSettings.notFoundTtlMs,
    refresh: args.refresh === true,
    onWriteError: (err) => {
      if (warnedCache) return;
      warnedCache = true;
      logger.warn(`metadata cache not written: ${escapeControl(describePathError(err, join(cacheDir === false ? "" : cacheDir, "meta")))}`);
    },
    ...(shared ? { shared } : {}),
    onDebug: (m) => logger.debug(m),
  });
  const client = createCivitaiClient({
    apiKey: settings.apiKey ?? undefined,
    userAgent: `civitai-meta/${VERSION}`,
    civitaiHosts: [settings.primary, ...(settings.fallback ? [settings.fallback] : [])],
    timeoutMs: durationArg(args.timeout, "timeout", 30_000, true),
    maxRateLimitWaitMs: durationArg(args["max-wait"], "max-wait", 10 * 60_000),
    concurrency,
    signal,
    logger: { debug: (m: string) => logger.debug(m), warn: (m: string) => logger.warn(m) },
    onRateLimitPause: hooks.onRateLimitPause,
    ...(process.env[TEST_NO_JITTER_ENV] === "1" ? { random: () => 0 } : {}),
  });
  const close = async () => {
    await metaCache.close().catch(() => {});
  };
  return { settings, config, client, metaCache, concurrency, cacheDir, sharedCache: metaCache.shared, close };
}

/**
 * The shared metadata cache for this run (`--cache-url`, CIVITAI_META_CACHE_URL, config
 * `cache.url`), or none: not with --no-cache, and not with --offline (it is on the network). Its
 * password is known to the logger before anything could name it.
 */
function openConfiguredSharedCache(args: ApiArgValues, configUrl: string | undefined, cacheEnabled: boolean): SharedStore | null {
  let url: CacheUrl | null;
  try {
    url = resolveCacheUrl(args["cache-url"], process.env, configUrl);
  } catch (error) {
    if (error instanceof CacheUrlError) throw new UsageError(error.message);
    throw error;
  }
  if (url === null) return null;
  for (const secret of url.secrets) addLogSecret(secret);
  if (args["cache-url"] !== undefined && url.password !== undefined) {
    logger.warn(
      `--cache-url holds a password, visible to other users in ps and in your shell history; prefer ${CACHE_URL_ENV} or the config's cache.url`,
    );
  }
  if (!cacheEnabled || args.offline === true) {
    logger.debug(`shared metadata cache ${url.redacted} not used (${args.offline === true ? "--offline" : "caching is off"})`);
    return null;
  }
  logger.debug(`shared metadata cache: ${url.redacted}`);
  return openSharedStore({ url, onWarning: (m) => logger.warn(escapeControl(m)) });
}
