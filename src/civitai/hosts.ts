/**
 * How messages name the server they talk about: "Civitai" for Civitai's own hosts, the host
 * itself (`127.0.0.1:8080`, `mirror.example`) for anything else, so a message never blames
 * civitai.com for what a mirror or a test server did (issue 9, docs/cases.md T21). Pure.
 */
import { DEFAULT_API_URL, DEFAULT_FALLBACK_URL } from "../config/settings.ts";

const OFFICIAL_ORIGINS: ReadonlySet<string> = new Set([DEFAULT_API_URL, "https://www.civitai.com", DEFAULT_FALLBACK_URL]);

/** "Civitai", or the host of `url` when it is not one of Civitai's. */
export function serviceNameFor(url: string): string {
  try {
    const parsed = new URL(url);
    return OFFICIAL_ORIGINS.has(parsed.origin) ? "Civitai" : parsed.host;
  } catch {
    return "the API host";
  }
}
