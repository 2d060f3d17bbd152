import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError, parseConfig, type Config } from "./config.ts";
import { AppError } from "../shared/errors.ts";
import { getConfigDir } from "./paths.ts";

export interface LoadedConfig {
  config: Config;
  /** The file read, or null when none exists. */
  file: string | null;
  warnings: string[];
}

/** `--config FILE`, else `./civitai-meta.json`, else `<XDG config>/civitai-meta/config.json`. */
export function findConfigFile(explicit: string | undefined, cwd = process.cwd()): string | null {
  if (explicit) return resolve(cwd, explicit);
  const local = join(cwd, "civitai-meta.json");
  if (existsSync(local)) return local;
  const global = join(getConfigDir(), "config.json");
  return existsSync(global) ? global : null;
}

export function loadConfig(explicit: string | undefined, cwd = process.cwd()): LoadedConfig {
  const file = findConfigFile(explicit, cwd);
  if (!file) return { config: {}, file: null, warnings: [] };
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new AppError(`Cannot read config ${file}: ${code}. Fix the path given to --config or create the file.`, { exitCode: 2 });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new AppError(`Config ${file} is not valid JSON: ${(error as Error).message}`, { exitCode: 2 });
  }
  try {
    const { config, warnings } = parseConfig(raw, file);
    if (config.apiKey && process.platform !== "win32") {
      // A key in a file others can read is a key others have (CWE-732).
      const mode = statSync(file).mode;
      if (mode & 0o077)
        warnings.push(`Config ${file} holds an API key and is readable by others: run chmod 600 "${file}", or use CIVITAI_API_KEY instead`);
    }
    return { config, file, warnings };
  } catch (error) {
    if (error instanceof ConfigError) throw new AppError(error.message, { exitCode: 2 });
    throw error;
  }
}
