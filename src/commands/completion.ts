import { defineCommand, type ArgsDef, type CommandDef } from "citty";
import { UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { HELP_FLAG, VERSION_FLAG, describeArgs, shortDescription, type CompletionCommand } from "../ui/completion-model.ts";
import { renderBash } from "../ui/completion-bash.ts";
import { renderFish } from "../ui/completion-fish.ts";
import { renderZsh } from "../ui/completion-zsh.ts";
import { NAME, VERSION } from "../version.ts";
import { globalArgs } from "./_shared.ts";
import { commands } from "./index.ts";
import { writeStdout } from "../shared/stdio.ts";

const SHELLS = { bash: renderBash, zsh: renderZsh, fish: renderFish } as const;
type Shell = keyof typeof SHELLS;

type Resolvable<T> = T | Promise<T> | (() => T) | (() => Promise<T>);
const resolve = async <T>(value: Resolvable<T>): Promise<T> =>
  typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;

/**
 * Reads one command (and its subcommands) from its citty definition, as the CLI itself would run
 * it: so a command or flag added anywhere appears in the scripts with no edit here.
 */
async function describeCommand(name: string, def: CommandDef<any>): Promise<CompletionCommand> {
  const meta = (await resolve(def.meta ?? {})) as { description?: string };
  const args = ((await resolve(def.args ?? {})) ?? {}) as ArgsDef;
  const { flags, positionals } = describeArgs({ ...globalArgs, ...args });
  const subDefs = (await resolve(def.subCommands ?? {})) as Record<string, Resolvable<CommandDef<any>>>;
  const subcommands: CompletionCommand[] = [];
  for (const [subName, sub] of Object.entries(subDefs)) subcommands.push(await describeCommand(subName, await resolve(sub)));
  return { name, description: shortDescription(meta.description), flags: [...flags, HELP_FLAG], positionals, subcommands };
}

/** The whole command tree, root first; exported for the tests. */
async function completionModel(): Promise<CompletionCommand> {
  const subcommands: CompletionCommand[] = [];
  for (const [name, load] of Object.entries(commands)) subcommands.push(await describeCommand(name, await load()));
  const { flags } = describeArgs(globalArgs);
  return { name: NAME, description: "", flags: [...flags, HELP_FLAG, VERSION_FLAG], positionals: [], subcommands };
}

export default defineCommand({
  meta: {
    name: "completion",
    description: "Print a shell completion script (bash, zsh or fish) for every command, flag and flag value of this version",
  },
  args: {
    ...globalArgs,
    shell: { type: "positional", required: false, description: "bash, zsh or fish", valueHint: "bash|zsh|fish" },
  },
  async run({ args }) {
    const shell = args._[0];
    if (!shell || !Object.hasOwn(SHELLS, shell) || args._.length > 1) {
      throw new UsageError(
        `completion takes one of bash, zsh or fish${shell ? ` (got "${escapeControl(args._.join(" "))}")` : ""}, e.g. source <(${NAME} completion bash)`,
      );
    }
    writeStdout(SHELLS[shell as Shell](await completionModel(), VERSION));
  },
});
