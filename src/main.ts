import { defineCommand, renderUsage, runCommand, type ArgsDef, type CommandDef } from "citty";
import { NAME, VERSION } from "./version.ts";
import { findUnknownFlags, type FlagSpec } from "./shared/cli-args.ts";
import { AppError, EXIT, UsageError } from "./shared/errors.ts";
import { commands } from "./commands/index.ts";
import { globalArgs } from "./commands/_shared.ts";
import { logger, setLogLevel } from "./ui/logger.ts";
import { escapeControl } from "./shared/format.ts";

export { NAME, VERSION };

export const main = defineCommand({
  meta: { name: NAME, version: VERSION, description: "Find AI model files, identify them on Civitai by hash, write inventories." },
  args: globalArgs,
  subCommands: commands,
});

async function resolveArgs(cmd: CommandDef<any>): Promise<ArgsDef> {
  const args = typeof cmd.args === "function" ? await cmd.args() : await cmd.args;
  return args ?? {};
}

function toSpecs(args: ArgsDef): FlagSpec[] {
  return Object.entries(args)
    .filter(([, def]) => def.type !== "positional")
    .map(([name, def]) => ({
      name,
      aliases: "alias" in def && def.alias ? [def.alias].flat() : [],
      boolean: def.type === "boolean",
    }));
}

const HELP_FLAGS = new Set(["--help", "-h"]);

/**
 * Runs the CLI and returns the exit code. One boundary for every command: usage errors exit 2,
 * AppErrors print their message (the advice) and their code, anything else prints one line
 * (stack only with --verbose) and exits 1.
 */
export async function runCli(rawArgs: string[]): Promise<number> {
  const verbose = rawArgs.includes("--verbose");
  setLogLevel({ verbose, quiet: rawArgs.includes("--quiet") || rawArgs.includes("-q") });
  const subName = rawArgs.find((a) => !a.startsWith("-"));
  try {
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      process.stdout.write(`${VERSION}\n`);
      return EXIT.ok;
    }
    const sub = subName && Object.hasOwn(commands, subName) ? await commands[subName]!() : undefined;
    if (rawArgs.some((a) => HELP_FLAGS.has(a)) || rawArgs.length === 0) {
      process.stdout.write(`${await renderUsage(sub ?? main, sub ? main : undefined)}\n`);
      return rawArgs.length === 0 ? EXIT.usage : EXIT.ok;
    }
    if (!sub) throw new UsageError(`Unknown command "${escapeControl(subName ?? "")}". Commands: ${Object.keys(commands).join(", ")}`);
    const specs = [...toSpecs(globalArgs), ...toSpecs(await resolveArgs(sub))];
    const unknown = findUnknownFlags(rawArgs, specs);
    if (unknown.length > 0) throw new UsageError(`${unknown.map(escapeControl).join("; ")}. See: ${NAME} ${subName} --help`);
    process.exitCode = 0;
    await runCommand(main, { rawArgs });
    return Number(process.exitCode ?? 0);
  } catch (error) {
    return reportError(error, verbose);
  }
}

function reportError(error: unknown, verbose: boolean): number {
  if (error instanceof AppError) {
    logger.error(error.message);
    if (verbose && error.stack) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  if (error instanceof Error && error.name === "CLIError") {
    logger.error(`${error.message}. See: ${NAME} --help`);
    return EXIT.usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  logger.error(message);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return EXIT.failure;
}
