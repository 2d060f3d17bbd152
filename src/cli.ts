#!/usr/bin/env bun
import { isTerminal } from "./shared/stdio.ts";

// Decide colours before citty and consola load: both read the environment at import time, and
// citty keeps colours on when piped unless told otherwise. Asked of the descriptors, not of
// process.stdout: building those streams costs ~18 ms of every start (shared/stdio.ts). A reader
// that leaves early (`… | head`) is handled where stdout and stderr are written (shared/stdio.ts).
if (!isTerminal(1) || !isTerminal(2)) process.env.NO_COLOR ??= "1";

const { runCli } = await import("./main.ts");
const { userArgs } = await import("./shared/raw-argv.ts");
const code = await runCli(userArgs(process.argv.slice(2)));
process.exitCode = code;
