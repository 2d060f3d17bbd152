import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { hasRawBytes, showRawBytes } from "../shared/fs-path.ts";

/**
 * Where our per-user state lives. Caches stay outside model folders so a scan never writes next
 * to the user's models. XDG rules: an empty or relative XDG_* value is ignored (the spec says
 * such a value is invalid); our own CIVITAI_META_CACHE_DIR is taken as given, resolved against cwd.
 */

const APP_DIR = "civitai-meta";

type Env = Readonly<Record<string, string | undefined>>;

function xdgBase(env: Env, name: string): string | undefined {
  const value = env[name];
  return value && isAbsolute(value) ? value : undefined;
}

/** `$CIVITAI_META_CACHE_DIR`, else `$XDG_CACHE_HOME/civitai-meta`, else `~/.cache/civitai-meta`. */
export function getCacheDir(env: Env = process.env, home: string = homedir()): string {
  const own = env.CIVITAI_META_CACHE_DIR;
  if (own) return resolve(own);
  return join(xdgBase(env, "XDG_CACHE_HOME") ?? join(home, ".cache"), APP_DIR);
}

/**
 * The cache folder for a run, most specific first: `--cache-dir`, `$CIVITAI_META_CACHE_DIR`, the
 * config's `cache.dir` (only ever from a config the user named or keeps under XDG_CONFIG_HOME),
 * then the XDG default.
 */
export function resolveCacheDir(
  flag: string | undefined,
  configDir: string | undefined,
  env: Env = process.env,
  home: string = homedir(),
): string {
  if (flag) {
    // raw-argv.ts keeps a byte that is not UTF-8, but the caches (SQLite included) open paths as
    // text: the byte became U+FFFD and the caches went silently to another folder.
    if (hasRawBytes(flag))
      throw new UsageError(
        `--cache-dir ${escapeControl(showRawBytes(flag))} is not valid UTF-8, and the caches can only be kept under a UTF-8 path. Choose another folder.`,
      );
    return flag;
  }
  if (env.CIVITAI_META_CACHE_DIR) return resolve(env.CIVITAI_META_CACHE_DIR);
  if (configDir) return configDir;
  return getCacheDir(env, home);
}

/** `$XDG_CONFIG_HOME/civitai-meta`, else `~/.config/civitai-meta`. */
export function getConfigDir(env: Env = process.env, home: string = homedir()): string {
  return join(xdgBase(env, "XDG_CONFIG_HOME") ?? join(home, ".config"), APP_DIR);
}
