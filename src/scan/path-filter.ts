// Pure name/path rules for the folder walker: which names are model files, which are
// downloads still in progress, which paths the user excluded, and a locale-free sort order.
import { UsageError } from "../shared/errors.ts";
import { encodeFsName, hasRawBytes } from "../shared/fs-path.ts";
import { isTempName } from "../shared/temp-name.ts";

/** Model file extensions we look for unless `--ext` says otherwise; matched case-insensitively. */
export const DEFAULT_EXTENSIONS: readonly string[] = [".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf"];

/** Suffixes downloaders append while a file is incomplete (aria2's is a companion, not a suffix). */
const IN_PROGRESS_SUFFIXES: readonly string[] = [".part", ".incomplete", ".tmp", ".crdownload"];

/** aria2 keeps `<name>.aria2` next to a file it is still writing; the file itself has its final name. */
export const ARIA2_CONTROL_SUFFIX = ".aria2";

/**
 * `--ext` values → lower-case extensions with a leading dot, deduplicated, in first-seen order.
 * Accepts "safetensors", ".safetensors", "SafeTensors" and comma-separated lists, repeated.
 * Nothing given (or only blanks) means DEFAULT_EXTENSIONS.
 */
export function normaliseExtensions(values: readonly string[] | string | undefined): string[] {
  const list = typeof values === "string" ? [values] : (values ?? []);
  const out: string[] = [];
  for (const value of list) {
    for (const raw of value.split(",")) {
      const trimmed = raw.trim();
      if (trimmed === "") continue;
      const ext = (trimmed.startsWith(".") ? trimmed : `.${trimmed}`).toLowerCase();
      if (ext === "." || /[/\\\s]/.test(ext) || ext.includes("*")) {
        throw new UsageError(`--ext "${trimmed}" is not a file extension (expected e.g. "safetensors" or ".gguf").`);
      }
      if (!out.includes(ext)) out.push(ext);
    }
  }
  return out.length > 0 ? out : [...DEFAULT_EXTENSIONS];
}

/**
 * True when `name` ends in one of `extensions` (already normalised: lower case, leading dot).
 * The name must have something before the extension: a file called just ".safetensors" is not a model.
 */
export function hasModelExtension(name: string, extensions: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return extensions.some((ext) => lower.length > ext.length && lower.endsWith(ext));
}

/**
 * For `x.safetensors.part` returns ".part": the name is a model name plus a download suffix.
 * A `.part` whose stem is not a model name (e.g. `video.mp4.part`) is none of our business → undefined.
 * The returned suffix is the canonical lower-case one, for a stable skip reason.
 */
export function inProgressSuffix(name: string, extensions: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  for (const suffix of IN_PROGRESS_SUFFIXES) {
    if (lower.endsWith(suffix) && hasModelExtension(name.slice(0, -suffix.length), extensions)) return suffix;
  }
  return undefined;
}

/** A temp file we write ourselves (shared/temp-name.ts); never a user's model. */
export function isOwnTempName(name: string): boolean {
  return isTempName(name);
}

/** Decides whether a path found under a root is excluded. `relPath` uses `/` separators. */
export type ExcludeMatcher = (relPath: string, isDirectory: boolean) => boolean;

/**
 * Builds the `--exclude` matcher, gitignore-like so users need not learn a new dialect:
 * - a pattern without `/` (e.g. `*.bin`, `backup`) is matched against the NAME of every file and
 *   folder at any depth — the walker never descends into an excluded folder, so matching the name at
 *   each level is the same as matching any path segment;
 * - a pattern with `/` (e.g. `loras/old/**`, `sd15/old-*.pt`) is matched against the path relative to
 *   the root it was found under, with `/` separators; a leading `/` or `./` just anchors it there;
 * - a trailing `/` (e.g. `cache/`) restricts the pattern to folders;
 * - `dir/**` also matches `dir` itself, so the folder is skipped instead of walked for nothing.
 * Matching is case-sensitive (like the file systems it runs on) and uses Bun.Glob syntax
 * (`*`, `?`, `**`, `[abc]`, `{a,b}`).
 */
export function createExcludeMatcher(patterns: readonly string[]): ExcludeMatcher {
  interface Rule {
    glob: InstanceType<typeof Bun.Glob>;
    byName: boolean;
    dirOnly: boolean;
    /** For a `dir/**` pattern: `dir`, matched against the folder itself. */
    self?: InstanceType<typeof Bun.Glob>;
  }
  const rules: Rule[] = [];
  for (const original of patterns) {
    let pattern = original.trim();
    const dirOnly = pattern.endsWith("/");
    pattern = pattern.replace(/\/+$/, "");
    // Decided before stripping a leading "/": "/models" is anchored to the root, not a name.
    const byName = !pattern.includes("/");
    pattern = pattern.replace(/^(\.\/|\/)+/, "");
    if (pattern === "" || pattern === ".") {
      throw new UsageError(`--exclude "${original}" is empty; give a name or a glob such as "*.bin" or "old/**".`);
    }
    const rule: Rule = { glob: new Bun.Glob(pattern), byName, dirOnly };
    if (pattern.endsWith("/**")) rule.self = new Bun.Glob(pattern.slice(0, -3));
    rules.push(rule);
  }
  if (rules.length === 0) return () => false;
  return (relPath, isDirectory) => {
    const slash = relPath.lastIndexOf("/");
    const name = slash === -1 ? relPath : relPath.slice(slash + 1);
    return rules.some((rule) => {
      if (rule.dirOnly && !isDirectory) return false;
      if (rule.byName) return rule.glob.match(name);
      if (rule.glob.match(relPath)) return true;
      return isDirectory && rule.self !== undefined && rule.self.match(relPath);
    });
  };
}

/** Where UTF-16 order and UTF-8 byte order part: surrogates (astral characters, raw bytes) and U+E000 up. */
export const ORDER_DIFFERS_RE = /[\ud800-\uffff]/;

/**
 * Whether `list` is in byte order (compareByteOrder), the engine's own comparison standing in for
 * it where it must agree: when `a < b` in UTF-16 and `b` holds no unit from U+D800 up, the first
 * unit where they differ is below U+D800 in both, where the two orders are the same.
 */
export function isInByteOrder(list: readonly string[]): boolean {
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!;
    const b = list[i]!;
    if (a < b && !ORDER_DIFFERS_RE.test(b)) continue;
    if (compareByteOrder(a, b) > 0) return false;
  }
  return true;
}

/**
 * Compares strings by Unicode code point, which is UTF-8 byte order: the same on every machine
 * and locale, unlike localeCompare, and unlike `<` on UTF-16 units for astral characters.
 */
export function compareByteOrder(a: string, b: string): number {
  // Escaped raw bytes (names that are not UTF-8) sort by their real bytes.
  if (hasRawBytes(a) || hasRawBytes(b)) return Buffer.compare(encodeFsName(a), encodeFsName(b));
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (astral code points) must sort after U+E000–U+FFFF, as their UTF-8 bytes do. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
