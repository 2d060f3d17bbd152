#!/usr/bin/env bun
// Decide colours before citty and consola load: both read the environment at import time, and
// citty keeps colours on when piped unless told otherwise.
if (!process.stdout.isTTY || !process.stderr.isTTY) process.env.NO_COLOR ??= "1";

// `civitai-meta … | head` closes stdout early: that is the reader leaving, not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const { runCli } = await import("./main.ts");
const { userArgs } = await import("./shared/raw-argv.ts");
const code = await runCli(userArgs(process.argv.slice(2)));
process.exitCode = code;
