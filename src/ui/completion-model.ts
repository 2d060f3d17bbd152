/**
 * What a shell needs to complete our command line, read from the citty definitions at run time so
 * the completion scripts never drift from the commands: every command, flag, alias and negation,
 * and the values of enum-like flags. Conventions read from an argument definition:
 *   type "enum" with options, or valueHint "a|b|c"    one value among these
 *   valueHint "a,b,c"                                 a comma-separated list of these (e.g. --algo)
 *   valueHint naming a file (file, *.json) / a dir    complete paths / folders
 *   a boolean with default true or negativeDescription  also offered as --no-<name>
 * Pure: no I/O; the renderers (completion-bash/zsh/fish.ts) turn the model into a script.
 */
import type { ArgDef, ArgsDef } from "citty";

type ValueKind = "file" | "dir" | "none";

export interface CompletionFlag {
  /** "--output", plus long aliases. */
  long: string[];
  /** "-o". */
  short: string[];
  description: string;
  takesValue: boolean;
  /** Enum-like values; `list` when several may be given comma-separated. */
  values?: { words: string[]; list: boolean };
  /** What to complete for a value when there is no list of words. */
  kind: ValueKind;
  negation?: { flag: string; description: string };
}

export interface CompletionPositional {
  name: string;
  words?: string[];
  kind: ValueKind;
  /** Takes any number of values (valueHint ending in "..."). */
  variadic: boolean;
}

export interface CompletionCommand {
  name: string;
  description: string;
  flags: CompletionFlag[];
  positionals: CompletionPositional[];
  subcommands: CompletionCommand[];
}

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Words a shell script can hold unquoted: anything else is left out rather than break the script. */
const SAFE_WORD = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const safeWords = (words: string[]): string[] => words.filter((w) => SAFE_WORD.test(w));

/**
 * One line for a menu: no control characters, no parenthesised asides (defaults), up to the first
 * ".", ";" or ":" that ends a clause, at most 100 characters.
 */
export function shortDescription(text: string | undefined): string {
  let flat = (text ?? "").replace(/[\u0000-\u001f\u007f]+/g, " ");
  for (let prev = ""; prev !== flat;) [prev, flat] = [flat, flat.replace(/\s*\([^()]*\)/g, "")];
  const clause = (flat.split(/[.;:](?:\s|$)/)[0] ?? flat).replace(/\s+/g, " ").trim();
  return clause.length > 100 ? `${clause.slice(0, 99).trimEnd()}…` : clause;
}

function valuesOf(def: ArgDef): { words: string[]; list: boolean } | undefined {
  if (def.type === "enum" && Array.isArray(def.options)) return { words: safeWords(def.options.map(String)), list: false };
  const hint = "valueHint" in def ? def.valueHint : undefined;
  if (!hint) return undefined;
  if (/^[^|,\s]+(\|[^|,\s]+)+$/.test(hint)) return { words: safeWords(hint.split("|")), list: false };
  if (/^[^|,\s]+(,[^|,\s]+)+$/.test(hint)) return { words: safeWords(hint.split(",")), list: true };
  return undefined;
}

function kindOf(hint: string | undefined, positional: boolean): ValueKind {
  const h = (hint ?? "").toLowerCase();
  if (/\bdir/.test(h) || /folder/.test(h)) return "dir";
  if (/file|path|\.json$|^source/.test(h)) return "file";
  // A positional with no telling hint is most often a path; a flag value (n, duration, url, key…) is not.
  return positional && !/^(hash|sha|id|key|url|n\b)/.test(h) ? "file" : "none";
}

/** The flags and positionals of one command's args. */
export function describeArgs(args: ArgsDef): Pick<CompletionCommand, "flags" | "positionals"> {
  const flags: CompletionFlag[] = [];
  const positionals: CompletionPositional[] = [];
  for (const [name, def] of Object.entries(args)) {
    const hint = "valueHint" in def ? def.valueHint : undefined;
    const values = valuesOf(def);
    if (def.type === "positional") {
      positionals.push({
        name: kebab(name),
        ...(values ? { words: values.words } : {}),
        kind: values ? "none" : kindOf(hint, true),
        variadic: hint?.endsWith("...") ?? false,
      });
      continue;
    }
    const aliases = "alias" in def && def.alias ? [def.alias].flat() : [];
    const boolean = def.type === "boolean";
    const negated = boolean && (def.default === true || "negativeDescription" in def);
    flags.push({
      long: [`--${kebab(name)}`, ...aliases.filter((a) => a.length > 1).map((a) => `--${kebab(a)}`)],
      short: aliases.filter((a) => a.length === 1).map((a) => `-${a}`),
      description: shortDescription(def.description),
      takesValue: !boolean,
      ...(values ? { values } : {}),
      kind: boolean || values ? "none" : kindOf(hint, false),
      ...(negated
        ? {
            negation: {
              flag: `--no-${kebab(name)}`,
              description: shortDescription(
                ("negativeDescription" in def ? def.negativeDescription : undefined) ?? `Turn off: ${def.description ?? name}`,
              ),
            },
          }
        : {}),
    });
  }
  return { flags, positionals };
}

/** Every flag name of a command, for the scripts' "is this a flag that takes a value" tests. */
export function flagNames(flag: CompletionFlag): string[] {
  return [...flag.long, ...flag.short];
}

/** The flag the root accepts alone besides the global ones; `--help` goes everywhere. */
export const HELP_FLAG: CompletionFlag = { long: ["--help"], short: ["-h"], description: "Show help", takesValue: false, kind: "none" };
export const VERSION_FLAG: CompletionFlag = {
  long: ["--version"],
  short: ["-v"],
  description: "Print the version",
  takesValue: false,
  kind: "none",
};

/** Shell-safe identifier for a command path ("cache", "config show" → "cache", "config_show"). */
export const funcSuffix = (path: string[]): string => path.map((p) => p.replace(/[^A-Za-z0-9]/g, "_")).join("__");

export const isSafeWord = (w: string): boolean => SAFE_WORD.test(w) || /^--?[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(w);
