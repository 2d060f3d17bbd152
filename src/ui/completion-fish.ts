/**
 * Renders the fish completion script from the command model: `complete` lines conditioned on the
 * subcommand seen so far, with descriptions, enum values, comma lists (__fish_complete_list),
 * files or folders.
 */
import { isSafeWord, type CompletionCommand, type CompletionFlag, type CompletionPositional } from "./completion-model.ts";

const quote = (text: string): string => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

interface Context {
  name: string;
  fn: string;
  lines: string[];
  helpers: string[];
}

/** The condition under which a command's own completions apply. */
function condition(path: string[], subs: CompletionCommand[]): string {
  const names = subs.map((s) => s.name).filter(isSafeWord);
  if (path.length === 0) return names.length > 0 ? "__fish_use_subcommand" : "true";
  const seen = path.map((p) => `__fish_seen_subcommand_from ${p}`).join("; and ");
  return names.length > 0 ? `${seen}; and not __fish_seen_subcommand_from ${names.join(" ")}` : seen;
}

function valueOptions(ctx: Context, v: { values?: { words: string[]; list: boolean }; kind: string }): string {
  if (v.values) {
    const words = v.values.words.filter(isSafeWord);
    if (!v.values.list) return `-f -a ${quote(words.join(" "))}`;
    const helper = `${ctx.fn}_values_${ctx.helpers.length + 1}`;
    ctx.helpers.push(`function ${helper}\n    printf '%s\\n' ${words.join(" ")}\nend`);
    return `-f -a ${quote(`(__fish_complete_list , ${helper})`)}`;
  }
  if (v.kind === "file") return "-F";
  if (v.kind === "dir") return `-f -a ${quote("(__fish_complete_directories)")}`;
  return "-f";
}

function flagLines(ctx: Context, cond: string, f: CompletionFlag): string[] {
  const names = [...f.long.filter(isSafeWord).map((n) => `-l ${n.slice(2)}`), ...f.short.filter(isSafeWord).map((n) => `-s ${n.slice(1)}`)];
  if (names.length === 0) return [];
  const base = `complete -c ${ctx.name} -n ${quote(cond)} ${names.join(" ")}`;
  const lines = [`${base}${f.takesValue ? ` -r ${valueOptions(ctx, f)}` : ""} -d ${quote(f.description)}`];
  if (f.negation)
    lines.push(`complete -c ${ctx.name} -n ${quote(cond)} -l ${f.negation.flag.slice(2)} -d ${quote(f.negation.description)}`);
  return lines;
}

function positionalLines(ctx: Context, cond: string, list: CompletionPositional[]): string[] {
  // fish does not count positionals; offer what the first one takes (later ones are the same kind or free text).
  const first = list[0];
  if (!first || (!first.words && first.kind === "none")) return [];
  const opts = valueOptions(ctx, { ...(first.words ? { values: { words: first.words, list: false } } : {}), kind: first.kind });
  return [`complete -c ${ctx.name} -n ${quote(cond)} ${opts}`];
}

function renderCommand(ctx: Context, command: CompletionCommand, path: string[]): void {
  const subs = command.subcommands.filter((s) => isSafeWord(s.name));
  const cond = condition(path, subs);
  ctx.lines.push("", `# ${path.length === 0 ? ctx.name : path.join(" ")}`);
  for (const s of subs) ctx.lines.push(`complete -c ${ctx.name} -n ${quote(cond)} -f -a ${s.name} -d ${quote(s.description)}`);
  for (const f of command.flags) ctx.lines.push(...flagLines(ctx, cond, f));
  if (subs.length === 0) ctx.lines.push(...positionalLines(ctx, cond, command.positionals));
  for (const s of subs) renderCommand(ctx, s, [...path, s.name]);
}

export function renderFish(root: CompletionCommand, version: string): string {
  const ctx: Context = { name: root.name, fn: `__${root.name.replace(/[^A-Za-z0-9]/g, "_")}`, lines: [], helpers: [] };
  renderCommand(ctx, root, []);
  return `# fish completion for ${root.name} ${version}, generated from its command definitions by
# \`${root.name} completion fish\`. Install it (regenerate after an upgrade):
#   ${root.name} completion fish > ~/.config/fish/completions/${root.name}.fish

complete -c ${root.name} -e
complete -c ${root.name} -f
${ctx.helpers.join("\n")}
${ctx.lines.join("\n")}
`;
}
