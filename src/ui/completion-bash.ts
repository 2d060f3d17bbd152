/**
 * Renders the bash completion script from the command model. The data (commands, flags, values)
 * is written into four small `case` functions; one fixed function walks the words before the
 * cursor (commands move down the tree, a flag that takes a value skips it, `--` ends the flags)
 * and completes a command, a flag, a flag's value or a positional. Works with plain bash 3.2+
 * (no bash-completion package needed); `compopt` is used only where bash has it.
 */
import { flagNames, funcSuffix, isSafeWord, type CompletionCommand, type CompletionFlag } from "./completion-model.ts";

interface Node {
  key: string;
  path: string[];
  command: CompletionCommand;
}

/** Every command with a key naming its path; the root's key is `__root`. */
function walk(root: CompletionCommand): Node[] {
  const out: Node[] = [];
  const visit = (command: CompletionCommand, path: string[]) => {
    out.push({ key: path.length === 0 ? "__root" : funcSuffix(path), path, command });
    for (const sub of command.subcommands) visit(sub, [...path, sub.name]);
  };
  visit(root, []);
  return out;
}

const words = (list: string[]): string => list.filter(isSafeWord).join(" ");

function valueCase(key: string, flag: CompletionFlag): string | null {
  if (!flag.takesValue) return null;
  const pattern = flagNames(flag)
    .filter(isSafeWord)
    .map((n) => `${key}:${n}`)
    .join("|");
  if (pattern === "") return null;
  if (flag.values) return `    ${pattern}) REPLY='${flag.values.list ? "list" : "enum"}'; WORDS='${words(flag.values.words)}' ;;`;
  return `    ${pattern}) REPLY='${flag.kind}'; WORDS='' ;;`;
}

function positionalCases(node: Node): string[] {
  const out: string[] = [];
  node.command.positionals.forEach((p, i) => {
    const last = i === node.command.positionals.length - 1;
    const index = p.variadic && last ? "*" : String(i);
    out.push(
      p.words
        ? `    ${node.key}:${index}) REPLY='enum'; WORDS='${words(p.words)}' ;;`
        : `    ${node.key}:${index}) REPLY='${p.kind}'; WORDS='' ;;`,
    );
  });
  return out;
}

/** The bash completion script for `root`: lookup functions generated from the tree, then the fixed walker. */
// Long because most of it is the script's fixed text, kept in one piece to be read as bash.
export function renderBash(root: CompletionCommand, version: string): string {
  const nodes = walk(root);
  const name = root.name;
  const fn = `_${name.replace(/[^A-Za-z0-9]/g, "_")}`;
  const flagsCases = nodes.map((n) => {
    const all = n.command.flags.flatMap((f) => [...flagNames(f), ...(f.negation ? [f.negation.flag] : [])]);
    return `    ${n.key}) REPLY='${words(all)}' ;;`;
  });
  const childCases = nodes.flatMap((n) =>
    n.command.subcommands
      .filter((s) => isSafeWord(s.name))
      .map((s) => `    ${n.key}:${s.name}) REPLY='${funcSuffix([...n.path, s.name])}' ;;`),
  );
  const subsCases = nodes
    .filter((n) => n.command.subcommands.length > 0)
    .map((n) => `    ${n.key}) REPLY='${words(n.command.subcommands.map((s) => s.name))}' ;;`);
  const valueCases = nodes.flatMap((n) => n.command.flags.map((f) => valueCase(n.key, f)).filter((c) => c !== null));
  const posCases = nodes.flatMap(positionalCases);

  return `# bash completion for ${name} ${version}, generated from its command definitions by
# \`${name} completion bash\`. Load it from ~/.bashrc:
#   source <(${name} completion bash)
# or install it once (regenerate after an upgrade):
#   ${name} completion bash > ~/.local/share/bash-completion/completions/${name}
# compgen's lines are read into COMPREPLY one by one (mapfile would need bash 4): never through an
# unquoted $(…), which would expand a file named "[x]" or "a*" as a glob, and whose failure (no
# match) would end a shell that runs with set -e.

# All flags of a command (REPLY).
${fn}_flags() {
  case $1 in
${flagsCases.join("\n")}
    *) REPLY='' ;;
  esac
}

# The subcommand key for word $2 under command $1 (REPLY), or status 1.
${fn}_child() {
  case "$1:$2" in
${childCases.join("\n")}
    *) return 1 ;;
  esac
}

# The subcommand names of command $1 (REPLY), or status 1.
${fn}_subcommands() {
  case $1 in
${subsCases.join("\n")}
    *) return 1 ;;
  esac
}

# What flag $2 of command $1 takes: REPLY is enum, list (comma-separated), file, dir or none, and
# WORDS the values; status 1 when the flag takes no value.
${fn}_value() {
  case "$1:$2" in
${valueCases.join("\n")}
    *) return 1 ;;
  esac
}

# What positional number $2 (from 0) of command $1 takes, as for flags; status 1 for nothing.
${fn}_positional() {
  case "$1:$2" in
${posCases.join("\n")}
    *) return 1 ;;
  esac
}

# COMPREPLY is what \`compgen "$@"\` prints, one line each (no glob, no word splitting); status 0.
${fn}_compgen() {
  local line
  COMPREPLY=()
  while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen "$@" 2>/dev/null)
  return 0
}

# Fills COMPREPLY: $1 kind, $2 words, $3 the word being completed, $4 a prefix to keep ("--flag=").
${fn}_reply() {
  local kind=$1 list=$2 cur=$3 prefix=$4 head=''
  case $kind in
    enum) ${fn}_compgen -P "$prefix" -W "$list" -- "$cur" ;;
    list)
      case $cur in *,*) head=\${cur%,*}, ;; esac
      ${fn}_compgen -P "$prefix$head" -W "$list" -- "\${cur##*,}"
      compopt -o nospace 2>/dev/null || true
      ;;
    file | dir)
      local opt=-f i q
      [ "$kind" = dir ] && opt=-d
      ${fn}_compgen $opt -- "$cur"
      if [ -z "$prefix" ]; then
        compopt -o filenames 2>/dev/null || true
      else
        # "--flag=name" whole (a COMP_WORDBREAKS without "="): bash inserts these as they are, so
        # quote the name here, or one holding $(…) or backticks would run when the line is entered.
        for i in "\${!COMPREPLY[@]}"; do
          printf -v q '%q' "\${COMPREPLY[i]}"
          COMPREPLY[i]=$prefix$q
        done
      fi
      ;;
    *) COMPREPLY=() ;;
  esac
  return 0
}

${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cword=$COMP_CWORD
  local node=__root npos=0 i=1 w REPLY WORDS ended=0 flag='' prefix=''
  COMPREPLY=()
  # Walk the words before the cursor: commands move down the tree, a flag that takes a value skips
  # it (bash splits "--flag=value" into "--flag" "=" "value"), and after "--" all are positionals.
  while [ "$i" -lt "$cword" ]; do
    w=\${COMP_WORDS[i]}
    if [ "$ended" = 1 ]; then
      npos=$((npos + 1))
    elif [ "$w" = -- ]; then
      ended=1
    elif [[ $w == -* ]]; then
      if [[ $w != *=* ]] && ${fn}_value "$node" "$w"; then
        if [ "\${COMP_WORDS[i + 1]}" = = ]; then i=$((i + 2)); else i=$((i + 1)); fi
      fi
    elif [ "$npos" = 0 ] && ${fn}_child "$node" "$w"; then
      node=$REPLY
    else
      npos=$((npos + 1))
    fi
    i=$((i + 1))
  done

  if [ "$ended" = 0 ]; then
    if [ "$cur" = = ] && [ "$cword" -ge 1 ]; then
      flag=\${COMP_WORDS[cword - 1]}
      cur=''
    elif [ "$cword" -ge 2 ] && [ "\${COMP_WORDS[cword - 1]}" = = ]; then
      flag=\${COMP_WORDS[cword - 2]}
    elif [[ $cur == --*=* ]]; then
      flag=\${cur%%=*}
      prefix=$flag=
      cur=\${cur#*=}
    elif [ "$cword" -ge 2 ] && [[ \${COMP_WORDS[cword - 1]} == -* ]]; then
      flag=\${COMP_WORDS[cword - 1]}
    fi
    if [ -n "$flag" ] && ${fn}_value "$node" "$flag"; then
      ${fn}_reply "$REPLY" "$WORDS" "$cur" "$prefix"
      return 0
    fi
    if [[ $cur == -* ]]; then
      ${fn}_flags "$node"
      ${fn}_compgen -W "$REPLY" -- "$cur"
      return 0
    fi
    if [ "$npos" = 0 ] && ${fn}_subcommands "$node"; then
      ${fn}_compgen -W "$REPLY" -- "$cur"
      return 0
    fi
  fi
  ${fn}_positional "$node" "$npos" || return 0
  ${fn}_reply "$REPLY" "$WORDS" "$cur" ''
}

complete -F ${fn} ${name}
`;
}
