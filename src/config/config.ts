/**
 * The config file (JSON) and how it merges with flags and the environment. Pure: the loader in
 * services/config-file.ts reads the file; this validates and names the key that is wrong.
 */
export interface Config {
  apiKey?: string;
  apiUrl?: string;
  fallbackUrl?: string;
  modelDirectories?: string[];
  outputFormat?: "json" | "csv" | "md" | "html";
  concurrency?: number;
  cache?: { enabled?: boolean; dir?: string; ttlMs?: number; notFoundTtlMs?: number };
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

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `7d`, `12h`, `30m`, `45s`, `500ms`, or a number of seconds. Returns null when unreadable. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value * 1000 : null;
  if (typeof value !== "string") return null;
  const m = DURATION_RE.exec(value.trim());
  if (!m) return null;
  return Number(m[1]) * UNIT_MS[(m[2] ?? "s") as keyof typeof UNIT_MS];
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Validates a parsed JSON value as our config. Throws ConfigError naming the file and the key. */
export function parseConfig(raw: unknown, file: string): ConfigParseResult {
  const fail = (key: string, what: string): never => {
    throw new ConfigError(`Config ${file}: "${key}" ${what}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`Config ${file}: must be a JSON object like {"apiUrl": "https://civitai.com"}`);
  }
  const warnings: string[] = [];
  const config: Config = {};
  const isUrl = (v: unknown) => typeof v === "string" && /^https?:\/\/[^\s/]+/.test(v);
  for (const [rawKey, value] of Object.entries(raw)) {
    const key = ALIASES[rawKey] ?? rawKey;
    switch (key) {
      case "apiKey":
        if (typeof value !== "string" || value.trim() === "") fail(rawKey, "must be a non-empty string");
        config.apiKey = (value as string).trim();
        break;
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
        if (value !== "json" && value !== "csv" && value !== "md" && value !== "html")
          fail(rawKey, 'must be "json", "csv", "md" or "html"');
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
      default:
        warnings.push(`Config ${file}: unknown key "${rawKey}" ignored`);
    }
  }
  return { config, warnings };
}

function parseCacheSection(value: unknown, rawKey: string, fail: (key: string, what: string) => never): Config["cache"] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(rawKey, 'must be an object such as {"enabled": true}');
  const out: NonNullable<Config["cache"]> = {};
  for (const [k, v] of Object.entries(value as object)) {
    const path = `${rawKey}.${k}`;
    if (k === "enabled") {
      if (typeof v !== "boolean") fail(path, "must be true or false");
      out.enabled = v as boolean;
    } else if (k === "dir") {
      if (typeof v !== "string" || v === "") fail(path, "must be a folder path");
      out.dir = v as string;
    } else if (k === "ttl" || k === "notFoundTtl") {
      const ms = parseDuration(v);
      if (ms === null) fail(path, 'must be a duration such as "7d", "12h" or a number of seconds');
      if (k === "ttl") out.ttlMs = ms as number;
      else out.notFoundTtlMs = ms as number;
    } else {
      fail(path, "is not a known cache setting (enabled, dir, ttl, notFoundTtl)");
    }
  }
  return out;
}
