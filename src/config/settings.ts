import { apiKeyError, apiKeyProblem } from "./api-key.ts";
import { HTTP_URL_RE, type Config } from "./config.ts";

export const DEFAULT_API_URL = "https://civitai.com";
/** NSFW content moved to this host in 2026; misses are asked there once more. */
export const DEFAULT_FALLBACK_URL = "https://civitai.red";

export interface ApiFlags {
  apiUrl?: string;
  fallbackUrl?: string;
  /** `--no-fallback`. */
  fallback?: boolean;
  apiKey?: string;
}

export interface ApiSettings {
  apiKey: string | null;
  /** Where the key came from, for warnings (never the key itself). */
  keySource: "flag" | "env" | "config" | null;
  primary: string;
  fallback: string | null;
}

type Env = Readonly<Record<string, string | undefined>>;

function normaliseUrl(value: string, name: string): string {
  const trimmed = value.trim().replace(/\/+$/, "");
  if (!HTTP_URL_RE.test(trimmed)) throw new Error(`${name} must be an http(s) URL such as https://civitai.com (got "${value}")`);
  return trimmed;
}

/**
 * Flags beat the environment, which beats the config file. An explicit API URL (any source)
 * replaces both defaults: a user who points us at a mirror or a test server must not have misses
 * sent on to civitai.red behind their back, unless they name a fallback too.
 */
export function resolveApiSettings(flags: ApiFlags, env: Env, config: Config): ApiSettings {
  const explicitUrl = flags.apiUrl ?? (env.CIVITAI_API_URL || undefined) ?? config.apiUrl;
  const primary = explicitUrl
    ? normaliseUrl(explicitUrl, flags.apiUrl ? "--api-url" : env.CIVITAI_API_URL ? "CIVITAI_API_URL" : "apiUrl")
    : DEFAULT_API_URL;
  const explicitFallback = flags.fallbackUrl ?? config.fallbackUrl;
  let fallback: string | null = explicitFallback
    ? normaliseUrl(explicitFallback, flags.fallbackUrl ? "--fallback-url" : "fallbackUrl")
    : explicitUrl
      ? null
      : DEFAULT_FALLBACK_URL;
  if (flags.fallback === false || fallback === primary) fallback = null;

  const envName = env.CIVITAI_API_KEY?.trim() ? "CIVITAI_API_KEY" : env.CIVITAI_TOKEN?.trim() ? "CIVITAI_TOKEN" : undefined;
  const fromEnv = envName ? env[envName]?.trim() : undefined;
  const flagKey = flags.apiKey?.trim() || undefined;
  const apiKey = flagKey ?? fromEnv ?? config.apiKey ?? null;
  const keySource = flagKey ? "flag" : fromEnv ? "env" : config.apiKey ? "config" : null;
  // The config file's key was checked where the file is named (config.ts).
  if (apiKey !== null && keySource !== "config") {
    const problem = apiKeyProblem(apiKey);
    if (problem) throw new Error(apiKeyError(keySource === "flag" ? "--api-key" : (envName as string), problem));
  }
  return { apiKey, keySource, primary, fallback };
}

/** Host names that never leave this machine: `localhost` and its subdomains, 127.0.0.0/8, ::1. */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return host === "localhost" || host.endsWith(".localhost") || /^127(?:\.\d{1,3}){3}$/.test(host) || host === "::1";
}

/**
 * The API origins (shown without any user part) that the key would reach over plain HTTP across
 * a network: a user who names `http://mirror.lan` may not know the key then travels unencrypted,
 * readable by anyone on the path. Loopback is exempt (a local proxy or test server). Empty
 * without a key.
 */
export function plainHttpKeyOrigins(settings: ApiSettings): string[] {
  if (settings.apiKey === null) return [];
  const out: string[] = [];
  for (const origin of [settings.primary, settings.fallback]) {
    if (origin === null) continue;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      continue;
    }
    if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) out.push(`http://${url.host}`);
  }
  return out;
}
