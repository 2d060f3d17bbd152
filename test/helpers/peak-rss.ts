/**
 * Runs a command and writes its peak resident memory (bytes) to the file named first. A child's
 * ru_maxrss starts from the memory of the process that spawned it (Linux keeps the pre-exec high
 * water mark), so a test process that just wrote 400 MB of files would inflate every child it
 * spawns. This small launcher stands between them: the figure is the command's own, plus at most
 * this launcher's ~40 MB, never less.
 *   bun test/helpers/peak-rss.ts OUT_FILE cmd args...
 */
import { writeFileSync } from "node:fs";

const [out, ...cmd] = process.argv.slice(2);
if (!out || cmd.length === 0) throw new Error("usage: peak-rss.ts OUT_FILE cmd args...");
const child = Bun.spawn(cmd, { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
const code = await child.exited;
writeFileSync(out, String(child.resourceUsage()?.maxRSS ?? 0));
process.exit(code);
