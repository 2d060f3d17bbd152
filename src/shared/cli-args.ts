/**
 * citty 0.2 accepts unknown flags silently and turns `--bogus value` into a boolean plus a stray
 * positional, so a misspelt flag would change which paths are scanned. We check argv ourselves.
 */
export interface FlagSpec {
  name: string;
  aliases: string[];
  /** Boolean flags take no value; the others consume the next argument. */
  boolean: boolean;
}

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The known word closest to `typed` (edit distance ≤ 2), for "did you mean" hints; undefined when none is close. */
export function closestWord(typed: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = levenshtein(typed, name);
    if (d <= 2 && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

function suggest(flag: string, specs: FlagSpec[]): string | undefined {
  return closestWord(
    flag,
    specs.map((s) => kebab(s.name)),
  );
}

/**
 * A flag that takes a value but got none: the end of argv, an empty string (`--api-url "$UNSET"`),
 * or another option of this command (`-o --format md`). citty would take "" or the next option as
 * the value, and an empty value reads as "not given": `--api-url ""` would send the key to
 * civitai.com, `-o ""` write into the current folder.
 */
function missingValue(flag: string, long: string, value: string | undefined, isOption: (arg: string) => boolean): string | undefined {
  if (value === undefined) return `${flag} needs a value`;
  if (value === "") return `${flag} needs a value (got an empty one)`;
  if (isOption(value)) return `${flag} needs a value (got the option ${value}; write --${long}=VALUE for a value that starts with -)`;
  return undefined;
}

/**
 * Returns one message per unknown flag, with a "did you mean" when a known flag is close, per
 * flag whose value is missing (see missingValue), and per empty argument (`scan "$UNSET"`).
 */
export function findFlagProblems(rawArgs: string[], specs: FlagSpec[]): string[] {
  const long = new Map<string, FlagSpec>();
  const short = new Map<string, FlagSpec>();
  for (const spec of specs) {
    long.set(kebab(spec.name), spec);
    for (const alias of spec.aliases) (alias.length === 1 ? short : long).set(kebab(alias), spec);
  }
  const longSpec = (name: string): FlagSpec | undefined => {
    const spec = long.get(name);
    if (spec || !name.startsWith("no-")) return spec;
    const positive = long.get(name.slice(3));
    return positive?.boolean ? positive : undefined;
  };
  // An argument that is one of this command's options, so cannot be meant as a value.
  const isOption = (arg: string): boolean => {
    if (arg.startsWith("--")) return longSpec(kebab(arg.slice(2).split("=")[0]!)) !== undefined;
    return /^-[^-\d]/.test(arg) && short.has(arg[1]!);
  };
  const problems: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    if (arg.startsWith("--")) {
      const body = arg.slice(2);
      const eq = body.indexOf("=");
      const name = kebab(eq === -1 ? body : body.slice(0, eq));
      const spec = longSpec(name);
      if (!spec) {
        const hint = suggest(name, specs);
        problems.push(`Unknown option --${name}${hint ? ` (did you mean --${hint}?)` : ""}`);
        continue;
      }
      if (spec.boolean) {
        // citty reads `--no-cache=true` as the cache ON and `--offline=no` as offline: a value on
        // a switch is refused rather than guessed.
        if (eq !== -1)
          problems.push(`--${name} takes no value (got ${JSON.stringify(arg)}): write --${kebab(spec.name)} or --no-${kebab(spec.name)}`);
        continue;
      }
      const missing = missingValue(
        `--${name}`,
        kebab(spec.name),
        eq === -1 ? rawArgs[i + 1] : body.slice(eq + 1),
        eq === -1 ? isOption : () => false,
      );
      if (missing) problems.push(missing);
      if (eq === -1) i++;
    } else if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      const letters = arg.slice(1);
      for (let k = 0; k < letters.length; k++) {
        const spec = short.get(letters[k]!);
        if (!spec) {
          problems.push(`Unknown option -${letters[k]}`);
          break;
        }
        if (!spec.boolean) {
          if (k === letters.length - 1) {
            const missing = missingValue(`-${letters[k]} (--${kebab(spec.name)})`, kebab(spec.name), rawArgs[i + 1], isOption);
            if (missing) problems.push(missing);
            i++;
          }
          break;
        }
      }
    } else if (arg === "") {
      // `scan "$UNSET"`: resolved as a path, "" is the current folder, which was walked and hashed.
      problems.push('an empty argument ("") where a path or value belongs (an unset variable?)');
    }
  }
  return problems;
}

/**
 * Values of a repeatable string flag, in order (citty keeps only the last one).
 * Accepts `--name v`, `--name=v` and the aliases.
 */
export function collectRepeated(rawArgs: string[], names: string[]): string[] {
  const values: string[] = [];
  const longNames = names.filter((n) => n.length > 1).map(kebab);
  const shortNames = names.filter((n) => n.length === 1);
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break;
    for (const name of longNames) {
      if (arg === `--${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
      else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
    }
    for (const name of shortNames) {
      if (arg === `-${name}` && i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
    }
  }
  return values;
}

/** Parses a whole-number flag in min..max (from 1 unless said); returns an error message instead of throwing so callers name the flag. */
export function parseWholeNumber(value: unknown, flag: string, max = 1024, min = 1): number | string {
  const text = String(value).trim();
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    return `--${flag} takes a whole number from ${min} to ${max} (got "${text}")`;
  }
  return Number(text);
}
