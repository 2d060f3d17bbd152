import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { canonicalKey, ConfigError, parseConfig, type Config } from "./config.ts";
import { locateJsonError } from "./json-error.ts";
import { AppError, describeErrno, errnoCode } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { isPlainObject } from "../shared/json-guard.ts";
import { getConfigDir } from "./paths.ts";
import { dirnamePath, fsPath, resolvePath, showRawBytes } from "../shared/fs-path.ts";

/** A config's path for a message: raw bytes as `\xNN`, control characters escaped. */
const shown = (file: string): string => escapeControl(showRawBytes(file));

/**
 * Which config files apply, and how much each may decide (docs/security.md, "Where the key may go, and why"):
 * - `--config FILE`: that file alone, fully trusted (the user named it);
 * - else the user's own `$XDG_CONFIG_HOME/civitai-meta/config.json`, fully trusted;
 * - plus `./civitai-meta.json` from the current folder, on top, but only for what to scan and how
 *   to show it. A folder may be downloaded or shared: its file may not choose where requests (and
 *   so the API key) go, nor where the cache lives: not its folder, nor a shared cache (a Redis of
 *   its choosing would collect the hashes of every file scanned and serve forged answers), nor
 *   whose API key is sent. Those keys are ignored with one warning.
 */

export interface LoadedConfig {
  config: Config;
  /** The files read, in the order applied; empty when none exists. */
  files: string[];
  warnings: string[];
}

const FOLDER_CONFIG_NAME = "civitai-meta.json";

/** Top-level keys a folder config may not set (canonical names; aliases map onto them). */
// apiKey too: a stranger's key silently replaced the user's own (README: a folder config says only
// what to scan and how to report it).
const FOLDER_DENIED_KEYS = new Set(["apiKey", "apiUrl", "fallbackUrl", "logFile"]);
/** Keys of the `cache` section a folder config may not set. */
const FOLDER_DENIED_CACHE_KEYS = new Set(["dir", "url"]);

/** Which config a file is, for the advice its error gives. */
type ConfigSource = "named" | "user" | "folder";

/** Far more than any config needs; a larger "config" is a mistake (or a trap) and is not read. */
const MAX_CONFIG_BYTES = 1024 * 1024;

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

function cannotRead(file: string, why: string, source: ConfigSource): AppError {
  const advice =
    source === "named"
      ? "Fix the file, or the path given to --config."
      : source === "user"
        ? `Fix or remove ${shown(file)}, or name another with --config.`
        : "Fix or remove it, or run from another folder.";
  return new AppError(`Cannot read config ${shown(file)}: ${why}. ${advice}`, { exitCode: 2 });
}

/**
 * The text of a config file. Only a regular file (symlinks followed) of at most 1 MiB is read:
 * a FIFO there (a folder can carry one) made a plain read wait for a writer forever, deaf to
 * Ctrl-C and SIGTERM, and `--config /dev/zero` read until memory ran out. Opened without blocking,
 * then checked by fstat before a byte is read.
 */
function readConfigText(file: string, source: ConfigSource): string {
  let fd: number;
  try {
    fd = openSync(fsPath(file), constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw cannotRead(file, describeErrno(error), source);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw cannotRead(file, "it is a folder (EISDIR)", source);
    if (!stat.isFile()) throw cannotRead(file, "not a regular file (a FIFO, socket or device)", source);
    if (stat.size > MAX_CONFIG_BYTES) throw cannotRead(file, `larger than ${MAX_CONFIG_BYTES} bytes, so not a config file`, source);
    // One byte more than the limit: a file that grows while read is still caught.
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let read = 0;
    for (;;) {
      const n = readSync(fd, buffer, read, buffer.length - read, null);
      if (n === 0) break;
      read += n;
      if (read > MAX_CONFIG_BYTES) throw cannotRead(file, `larger than ${MAX_CONFIG_BYTES} bytes, so not a config file`, source);
    }
    let text: string;
    try {
      text = fatalUtf8.decode(buffer.subarray(0, read));
    } catch {
      throw cannotRead(file, "not UTF-8 text", source);
    }
    // A byte-order mark (Windows editors) is not JSON but means nothing: drop it.
    return text.replace(/^\uFEFF/, "");
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw cannotRead(file, describeErrno(error), source);
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether something sits at `file`, a dangling or looping symlink or an unreadable folder included:
 * existsSync said no to those, and the user's config then silently did not apply (their key and
 * hosts with it). Reading it then says what is wrong.
 */
function present(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (error) {
    const code = errnoCode(error);
    return code !== "ENOENT" && code !== "ENOTDIR";
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const at = locateJsonError(text);
    const where = at ? `line ${at.line}, column ${at.column}: ${at.what}` : (error as Error).message;
    throw new AppError(`Config ${shown(file)} is not valid JSON: ${escapeControl(where)}`, { exitCode: 2 });
  }
}

/** Removes what a folder config may not decide; returns the names removed, as written in the file. */
function withoutDeniedKeys(raw: unknown): { raw: unknown; ignored: string[] } {
  if (!isPlainObject(raw)) return { raw, ignored: [] };
  const ignored: string[] = [];
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (FOLDER_DENIED_KEYS.has(canonicalKey(key))) {
      ignored.push(key);
    } else if (key === "cache" && isPlainObject(value)) {
      const cache: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (FOLDER_DENIED_CACHE_KEYS.has(k)) ignored.push(`${key}.${k}`);
        else cache[k] = v;
      }
      kept[key] = cache;
    } else {
      kept[key] = value;
    }
  }
  return { raw: kept, ignored };
}

function loadFile(file: string, trusted: boolean, source: ConfigSource): { config: Config; warnings: string[] } {
  const raw = parseJson(readConfigText(file, source), file);
  const { raw: allowed, ignored } = trusted ? { raw, ignored: [] } : withoutDeniedKeys(raw);
  let parsed: { config: Config; warnings: string[] };
  try {
    parsed = parseConfig(allowed, shown(file));
  } catch (error) {
    if (error instanceof ConfigError) throw new AppError(error.message, { exitCode: 2 });
    throw error;
  }
  anchorPaths(parsed.config, dirnamePath(file));
  const warnings = [...parsed.warnings];
  if (ignored.length > 0) {
    const keys = ignored.map((k) => JSON.stringify(escapeControl(k))).join(", ");
    warnings.push(
      `Config ${shown(file)}: ${keys} ignored: a config found in the current folder may not choose where requests, the API key, the cache or the log go. If you wrote it, pass --config ${shown(file)} or move these settings to ${join(getConfigDir(), "config.json")}`,
    );
  }
  if (parsed.config.apiKey && process.platform !== "win32") {
    // A key in a file others can read is a key others have (CWE-732).
    const mode = statSync(fsPath(file)).mode;
    if (mode & 0o077)
      warnings.push(
        `Config ${shown(file)} holds an API key and is readable by others: run chmod 600 "${shown(file)}", or use CIVITAI_API_KEY instead`,
      );
  }
  return { config: parsed.config, warnings };
}

/**
 * Relative paths in a config are relative to its folder, as a person writing the file means them.
 * Taken against the working folder, the user's `"cache": {"dir": "cache"}` or `"logFile": "run.log"`
 * was created in whatever folder a scan ran in, model folders included. `~/…` is the home folder
 * (no shell expands it in a JSON file); left as it was, a `"dir": "~/cache"` made a folder named
 * `~` where the scan ran.
 */
function anchorPaths(config: Config, base: string): void {
  const anchor = (p: string) => (/^~(?=$|\/)/.test(p) ? homedir() + p.slice(1) : isAbsolute(p) ? p : resolvePath(base, p));
  if (config.cache?.dir !== undefined) config.cache.dir = anchor(config.cache.dir);
  if (config.logFile !== undefined) config.logFile = anchor(config.logFile);
  if (config.modelDirectories) config.modelDirectories = config.modelDirectories.map(anchor);
}

/** A folder config's settings over the user's: top-level keys replace, the cache section merges. */
function merge(base: Config, over: Config): Config {
  const merged: Config = { ...base, ...over };
  if (base.cache || over.cache) merged.cache = { ...base.cache, ...over.cache };
  return merged;
}

/** `--config FILE` alone, else the user's config and then the current folder's (restricted). */
export function loadConfig(explicit: string | undefined, cwd = process.cwd()): LoadedConfig {
  if (explicit) {
    // By its bytes: `--config $'c\xff.json'` comes from raw-argv.ts with the byte escaped.
    const file = resolvePath(cwd, explicit);
    return { ...loadFile(file, true, "named"), files: [file] };
  }
  const layers: { file: string; trusted: boolean; source: ConfigSource }[] = [];
  const user = join(getConfigDir(), "config.json");
  if (present(user)) layers.push({ file: user, trusted: true, source: "user" });
  const folder = join(cwd, FOLDER_CONFIG_NAME);
  if (present(folder)) layers.push({ file: folder, trusted: false, source: "folder" });
  let config: Config = {};
  const warnings: string[] = [];
  for (const layer of layers) {
    const loaded = loadFile(layer.file, layer.trusted, layer.source);
    config = merge(config, loaded.config);
    warnings.push(...loaded.warnings);
  }
  return { config, files: layers.map((l) => l.file), warnings };
}
