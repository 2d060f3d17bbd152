/**
 * Renders the zsh completion script from the command model: one `_arguments` function per command
 * (flags with descriptions, values, files or folders), commands offered with `_describe`. Works
 * both as a file in $fpath named _civitai-meta and when sourced after compinit.
 */
import { funcSuffix, isSafeWord, type CompletionCommand, type CompletionFlag, type CompletionPositional } from "./completion-model.ts";

/** Text inside '…' within an _arguments spec: brackets and colons are syntax there. */
function escapeDescription(text: string): string {
  return text
    .replace(/\\/g, "\\\\")
    .replace(/([[\]:])/g, "\\$1")
    .replace(/'/g, "'\\''");
}

const messageName = (flag: string): string => flag.replace(/^-+/, "").replace(/[^A-Za-z0-9-]/g, "") || "value";

function valueAction(name: string, f: { values?: { words: string[]; list: boolean }; kind: string }): string {
  if (f.values) {
    const list = f.values.words.filter(isSafeWord);
    return f.values.list ? `:${name}:_values -s , ${name} ${list.join(" ")}` : `:${name}:(${list.join(" ")})`;
  }
  if (f.kind === "file") return `:${name}:_files`;
  if (f.kind === "dir") return `:${name}:_files -/`;
  return `:${name}: `;
}

function flagSpecs(f: CompletionFlag): string[] {
  const desc = escapeDescription(f.description);
  const names = [...f.long, ...f.short].filter(isSafeWord);
  if (f.takesValue) {
    // Repeatable (--exclude, --algo …), so no exclusion list; "=" lets --flag=value and --flag value both work.
    const action = valueAction(messageName(f.long[0] ?? names[0] ?? "value"), f);
    return names.map((n) => (n.startsWith("--") ? `'*${n}=[${desc}]${action}'` : `'*${n}+[${desc}]${action}'`));
  }
  const group = [...names, ...(f.negation ? [f.negation.flag] : [])].join(" ");
  const specs = names.map((n) => `'(${group})${n}[${desc}]'`);
  if (f.negation) specs.push(`'(${group})${f.negation.flag}[${escapeDescription(f.negation.description)}]'`);
  return specs;
}

function positionalSpecs(list: CompletionPositional[]): string[] {
  return list.map((p, i) => {
    const index = p.variadic && i === list.length - 1 ? "*" : String(i + 1);
    return `'${index}${valueAction(messageName(p.name), { ...(p.words ? { values: { words: p.words, list: false } } : {}), kind: p.kind })}'`;
  });
}

function renderCommand(command: CompletionCommand, path: string[], fn: string, out: string[]): void {
  const name = `${fn}${path.length > 0 ? `__${funcSuffix(path)}` : ""}`;
  const specs = command.flags.flatMap(flagSpecs);
  const subs = command.subcommands.filter((s) => isSafeWord(s.name));
  const lines = [`${name}() {`];
  if (subs.length === 0) {
    lines.push(
      `  _arguments -s -S \\`,
      ...[...specs, ...positionalSpecs(command.positionals)].map((s) => `    ${s} \\`),
      `    && return 0`,
      `}`,
    );
    out.push(lines.join("\n"));
    return;
  }
  // _describe splits "name:description" at the first colon, so only quotes need care in the description.
  const described = subs.map((s) => `'${s.name}:${s.description.replace(/'/g, "'\\''")}'`);
  lines.push(
    `  local curcontext="$curcontext" state state_descr line ret=1`,
    `  typeset -A opt_args`,
    `  _arguments -C -s -S \\`,
    ...specs.map((s) => `    ${s} \\`),
    `    '1:command:->command' \\`,
    `    '*::argument:->argument' && ret=0`,
    `  case $state in`,
    `    command)`,
    `      local -a commands=(${described.join(" ")})`,
    `      _describe -t commands 'command' commands && ret=0`,
    `      ;;`,
    `    argument)`,
    `      case $words[1] in`,
    ...subs.map((s) => `        ${s.name}) ${fn}__${funcSuffix([...path, s.name])} && ret=0 ;;`),
    `      esac`,
    `      ;;`,
    `  esac`,
    `  return ret`,
    `}`,
  );
  out.push(lines.join("\n"));
  for (const sub of subs) renderCommand(sub, [...path, sub.name], fn, out);
}

export function renderZsh(root: CompletionCommand, version: string): string {
  const fn = `_${root.name}`;
  const functions: string[] = [];
  renderCommand(root, [], fn, functions);
  return `#compdef ${root.name}
# zsh completion for ${root.name} ${version}, generated from its command definitions by
# \`${root.name} completion zsh\`. Either put it in a folder of $fpath as _${root.name}
# (before compinit runs), or load it after compinit in ~/.zshrc:
#   source <(${root.name} completion zsh)
# Regenerate it after an upgrade.

${functions.join("\n\n")}

if [ "$funcstack[1]" = "${fn}" ]; then
  ${fn} "$@"
else
  compdef ${fn} ${root.name}
fi
`;
}
