import { MIN_API_KEY_LENGTH } from "./config/api-key.ts";
import { defineCommand, runCommand, type ArgsDef, type CommandDef } from "citty";
import { NAME, VERSION } from "./version.ts";
import { closestWord, collectRepeated, findFlagProblems, type FlagSpec } from "./shared/cli-args.ts";
import { AppError, EXIT, UsageError, describeErrno } from "./shared/errors.ts";
import { commands } from "./commands/index.ts";
import { globalArgs } from "./commands/_shared.ts";
import { commandParts, helpWidth, renderHelp } from "./commands/_help.ts";
import { addLogSecret, logger, openLogFile, prepareLogger, setLogLevel } from "./ui/logger.ts";
import { writeStdout } from "./shared/stdio.ts";
import { normalJitSoon } from "./shared/jit-policy.ts";
import { escapeControl } from "./shared/format.ts";
import { CACHE_URL_ENV, cacheUrlSecrets } from "./config/cache-url.ts";

const DESCRIPTION = "Find AI model files, identify them on Civitai by hash, write inventories.";

const main = defineCommand({
  meta: { name: NAME, version: VERSION, description: DESCRIPTION },
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

/** The global flags that take a value (`--log-file FILE`): the word after one is its value, not the command. */
const GLOBAL_VALUE_FLAGS = new Set(
  toSpecs(globalArgs).flatMap((s) => (s.boolean ? [] : [`--${s.name}`, ...s.aliases.map((a) => (a.length === 1 ? `-${a}` : `--${a}`))])),
);

/**
 * Where the command's name is in argv: the first word that is neither a flag nor a global flag's
 * value, so `civitai-meta --log-file run.log scan …` runs scan; -1 when there is none.
 */
function commandIndex(rawArgs: readonly string[]): number {
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") return -1;
    if (!arg.startsWith("-")) return i;
    if (GLOBAL_VALUE_FLAGS.has(arg)) i++;
  }
  return -1;
}

async function helpText(sub: CommandDef<any> | undefined, subName: string | undefined): Promise<string> {
  const width = helpWidth();
  if (sub && subName) return renderHelp({ ...(await commandParts(sub)), commandName: subName, width });
  const subCommands = [];
  for (const name of Object.keys(commands)) {
    const { meta } = await commandParts(await commands[name]!());
    subCommands.push({ name, description: meta.description ?? "" });
  }
  return renderHelp({ meta: { description: DESCRIPTION }, args: globalArgs, subCommands, width });
}

/** `civitai-meta help [command]`, as git, npm and cargo take it: that command's --help, or the overview. */
async function helpCommand(words: string[]): Promise<number> {
  const names = Object.keys(commands);
  const [name, ...extra] = words;
  if (name !== undefined && !Object.hasOwn(commands, name)) {
    const hint = closestWord(name, names);
    throw new UsageError(
      `Unknown command "${escapeControl(name)}"${hint ? ` (did you mean "${hint}"?)` : ""}. Commands: ${names.join(", ")}`,
    );
  }
  if (extra.length > 0) throw new UsageError(`help takes one command, e.g. ${NAME} help scan`);
  writeStdout(await helpText(name === undefined ? undefined : await commands[name]!(), name));
  return EXIT.ok;
}

/**
 * The key and the shared cache's password, wherever they were given, are known to the logger before
 * anything is logged: every sink redacts them even if a message quotes them. The config's are added
 * by createApiContext.
 */
function registerSecrets(rawArgs: string[]): void {
  // A key too short to be one is refused before any request (config/api-key.ts): hiding it would
  // only garble the message that says so.
  const keys = [process.env.CIVITAI_API_KEY, process.env.CIVITAI_TOKEN, ...collectRepeated(rawArgs, ["api-key"])];
  for (const key of keys) if (key !== undefined && key.trim().length >= MIN_API_KEY_LENGTH) addLogSecret(key);
  // The shared cache's password too (issue 14): the debug line below quotes the command line.
  for (const url of [process.env[CACHE_URL_ENV], ...collectRepeated(rawArgs, ["cache-url"])]) {
    for (const secret of cacheUrlSecrets(url)) addLogSecret(secret);
  }
}

/** `--log-file FILE` (the last one given): opened before the command runs, or one clear error. */
function openLogFileFlag(rawArgs: string[]): void {
  const file = collectRepeated(rawArgs, ["log-file"]).at(-1);
  if (file === undefined) return;
  try {
    openLogFile(file);
  } catch (error) {
    throw new UsageError(
      `Cannot open the log file ${escapeControl(file)}: ${describeErrno(error)}. Give --log-file a file in a folder that exists and is writable.`,
    );
  }
}

/**
 * Runs the CLI and returns the exit code. One boundary for every command: usage errors exit 2,
 * AppErrors print their message (the advice) and their code, anything else prints one line
 * (stack only with --verbose) and exits 1.
 */
export async function runCli(rawArgs: string[]): Promise<number> {
  prepareLogger();
  const verbose = rawArgs.includes("--verbose");
  setLogLevel({ verbose, quiet: rawArgs.includes("--quiet") || rawArgs.includes("-q") });
  registerSecrets(rawArgs);
  const at = commandIndex(rawArgs);
  const subName = at === -1 ? undefined : rawArgs[at];
  try {
    // `--version` anywhere before `--` (`civitai-meta scan --version`, as cargo and npm take it); `-v` alone.
    const flags = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
    if (flags.includes("--version") || (at === -1 && flags.includes("-v"))) {
      writeStdout(`${VERSION}\n`);
      return EXIT.ok;
    }
    if (subName === "help") return await helpCommand(rawArgs.slice(at + 1).filter((a) => !a.startsWith("-")));
    const sub = subName && Object.hasOwn(commands, subName) ? await commands[subName]!() : undefined;
    if (rawArgs.some((a) => HELP_FLAGS.has(a)) || rawArgs.length === 0) {
      writeStdout(await helpText(sub, sub ? subName : undefined));
      return rawArgs.length === 0 ? EXIT.usage : EXIT.ok;
    }
    if (!sub) {
      const names = Object.keys(commands);
      // Flags alone (`civitai-meta --bogus`, `-V`): the flag is what is wrong, not a command named "".
      const flagProblems = subName === undefined ? findFlagProblems(rawArgs, toSpecs(globalArgs)) : [];
      if (flagProblems.length > 0) throw new UsageError(`${flagProblems.map(escapeControl).join("; ")}. See: ${NAME} --help`);
      if (subName === undefined) throw new UsageError(`No command given. Commands: ${names.join(", ")}. See: ${NAME} --help`);
      const hint = closestWord(subName, names);
      throw new UsageError(
        `Unknown command "${escapeControl(subName)}"${hint ? ` (did you mean "${hint}"?)` : ""}. Commands: ${names.join(", ")}`,
      );
    }
    const specs = [...toSpecs(globalArgs), ...toSpecs(await resolveArgs(sub))];
    const problems = findFlagProblems(rawArgs, specs);
    if (problems.length > 0) throw new UsageError(`${problems.map(escapeControl).join("; ")}. See: ${NAME} ${subName} --help`);
    openLogFileFlag(rawArgs);
    logger.debug(`${NAME} ${VERSION}: ${rawArgs.map(escapeControl).join(" ")}`);
    process.exitCode = 0;
    // The start-up is over (modules loaded, arguments checked); a run that lasts gets the JIT's
    // normal policy, a short one ends before it would have paid for compiling (shared/jit-policy.ts).
    normalJitSoon();
    // The command goes first, so the flags given before it (`-q scan`) reach it too: citty hands a
    // command only the words after its name.
    await runCommand(main, { rawArgs: [subName!, ...rawArgs.slice(0, at), ...rawArgs.slice(at + 1)] });
    return Number(process.exitCode ?? 0);
  } catch (error) {
    return reportError(error);
  }
}

function reportError(error: unknown): number {
  // The stack goes to the debug level: stderr shows it with --verbose, the log file always.
  const stack = error instanceof Error && error.stack ? error.stack : undefined;
  if (error instanceof AppError) {
    logger.error(error.message);
    if (stack) logger.debug(stack);
    return error.exitCode;
  }
  if (error instanceof Error && error.name === "CLIError") {
    logger.error(`${error.message}. See: ${NAME} --help`);
    return EXIT.usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  logger.error(message);
  if (stack) logger.debug(stack);
  return EXIT.failure;
}
