/**
 * The config file (JSON) and how it merges with flags and the environment. Pure: the loader in
 * config-file.ts reads the file; this validates and names the key that is wrong.
 */
import { apiKeyError, apiKeyProblem } from "./api-key.ts";
import { isPlainObject } from "../shared/json-guard.ts";
import { CACHE_URL_OFF, CacheUrlError, parseCacheUrl } from "./cache-url.ts";

export interface Config {
  apiKey?: string;
  apiUrl?: string;
  fallbackUrl?: string;
  modelDirectories?: string[];
  outputFormat?: "json" | "csv" | "md" | "html" | "junit";
  concurrency?: number;
  /** `url`: the shared metadata cache (cache-url.ts), as written; checked here, parsed where used. */
  cache?: { enabled?: boolean; dir?: string; url?: string; ttlMs?: number; notFoundTtlMs?: number };
  /** Issue 9 T22: append every log line (debug level) to this file, like --log-file. */
  logFile?: string;
}

export interface ConfigParseResult {
  config: Config;
  warnings: string[];
}

// The original design guide used snake_case keys; users may still have such files.
const ALIASES: Record<string, string> = {
  civitai_api_key: "apiKey",
  api_key: "apiKey",
  api_url: "apiUrl",
  fallback_url: "fallbackUrl",
  model_directories: "modelDirectories",
  output_format: "outputFormat",
};

/** The key a config key stands for (`api_url` → `apiUrl`); unknown keys stay as they are. */
export function canonicalKey(rawKey: string): string {
  return Object.hasOwn(ALIASES, rawKey) ? (ALIASES[rawKey] as string) : rawKey;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/**
 * The longest duration any setting takes: a year. Longer values are mistakes (or `--max-wait
 * 99999d`), and refusing them keeps every wait and date we compute from them finite and valid.
 */
export const MAX_DURATION_MS = 365 * UNIT_MS.d;
export const MAX_DURATION_TEXT = "365d";

/** `7d`, `12h`, `30m`, `45s`, `500ms`, or a number of seconds. Returns null when unreadable. */
export function parseDuration(value: unknown): number | null {
  let ms: number;
  if (typeof value === "number") ms = value * 1000;
  else if (typeof value === "string") {
    const m = DURATION_RE.exec(value.trim());
    if (!m) return null;
    ms = Number(m[1]) * UNIT_MS[(m[2] ?? "s") as keyof typeof UNIT_MS];
  } else return null;
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

/** An API origin as taken everywhere: http(s), a host, maybe a path; no spaces, query or fragment. */
export const HTTP_URL_RE = /^https?:\/\/[^\s/?#]+(?:\/[^\s?#]*)?$/;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Validates a parsed JSON value as our config. Throws ConfigError naming the file and the key. */
export function parseConfig(raw: unknown, file: string): ConfigParseResult {
  const fail = (key: string, what: string): never => {
    throw new ConfigError(`Config ${file}: "${key}" ${what}`);
  };
  if (!isPlainObject(raw)) {
    throw new ConfigError(`Config ${file}: must be a JSON object like {"apiUrl": "https://civitai.com"}`);
  }
  const warnings: string[] = [];
  const config: Config = {};
  // The test settings.ts applies later, here too: a URL it refuses must be refused naming this file.
  const isUrl = (v: unknown) => typeof v === "string" && HTTP_URL_RE.test(v.trim().replace(/\/+$/, ""));
  for (const [rawKey, value] of Object.entries(raw)) {
    const key = canonicalKey(rawKey);
    switch (key) {
      case "apiKey": {
        if (typeof value !== "string" || value.trim() === "") fail(rawKey, "must be a non-empty string");
        const apiKey = (value as string).trim();
        const problem = apiKeyProblem(apiKey);
        if (problem) throw new ConfigError(apiKeyError(`"${rawKey}" in ${file}`, problem));
        config.apiKey = apiKey;
        break;
      }
      case "apiUrl":
      case "fallbackUrl":
        if (!isUrl(value)) fail(rawKey, 'must be an http(s) URL such as "https://civitai.com"');
        config[key] = (value as string).replace(/\/+$/, "");
        break;
      case "modelDirectories":
        if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v !== ""))
          fail(rawKey, "must be an array of folder paths");
        config.modelDirectories = value as string[];
        break;
      case "outputFormat":
        if (value !== "json" && value !== "csv" && value !== "md" && value !== "html" && value !== "junit")
          fail(rawKey, 'must be "json", "csv", "md", "html" or "junit"');
        config.outputFormat = value as Config["outputFormat"];
        break;
      case "concurrency":
        if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 32)
          fail(rawKey, "must be a whole number from 1 to 32");
        config.concurrency = value as number;
        break;
      case "cache_enabled":
        if (typeof value !== "boolean") fail(rawKey, "must be true or false");
        config.cache = { ...config.cache, enabled: value as boolean };
        break;
      case "cache":
        config.cache = { ...config.cache, ...parseCacheSection(value, rawKey, fail) };
        break;
      case "logFile":
        if (typeof value !== "string" || value === "") fail(rawKey, "must be a file path");
        config.logFile = value as string;
        break;
      default:
        warnings.push(`Config ${file}: unknown key "${rawKey}" ignored`);
    }
  }
  return { config, warnings };
}

function parseCacheSection(value: unknown, rawKey: string, fail: (key: string, what: string) => never): Config["cache"] {
  if (!isPlainObject(value)) fail(rawKey, 'must be an object such as {"enabled": true}');
  const out: NonNullable<Config["cache"]> = {};
  for (const [k, v] of Object.entries(value as object)) {
    const path = `${rawKey}.${k}`;
    if (k === "enabled") {
      if (typeof v !== "boolean") fail(path, "must be true or false");
      out.enabled = v as boolean;
    } else if (k === "dir") {
      if (typeof v !== "string" || v === "") fail(path, "must be a folder path");
      out.dir = v as string;
    } else if (k === "url") {
      if (typeof v !== "string" || v.trim() === "") fail(path, 'must be a URL such as "redis://:password@cache.lan:6379/0"');
      if ((v as string).trim() !== CACHE_URL_OFF) {
        try {
          parseCacheUrl(v as string, path);
        } catch (error) {
          if (error instanceof CacheUrlError) fail(path, error.detail);
          throw error;
        }
      }
      out.url = (v as string).trim();
    } else if (k === "ttl" || k === "notFoundTtl") {
      const ms = parseDuration(v);
      if (ms === null) fail(path, 'must be a duration such as "7d", "12h" or a number of seconds');
      if ((ms as number) > MAX_DURATION_MS) fail(path, `must be at most ${MAX_DURATION_TEXT}`);
      if (k === "ttl") out.ttlMs = ms as number;
      else out.notFoundTtlMs = ms as number;
    } else {
      fail(path, "is not a known cache setting (enabled, dir, url, ttl, notFoundTtl)");
    }
  }
  return out;
}
