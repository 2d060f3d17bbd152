/**
 * Arguments as the user typed them, bytes included. Bun decodes argv as UTF-8 with U+FFFD for
 * bytes that are not, so `hash "$(printf 'bad\xff.safetensors')"` would name no file. On Linux
 * /proc/self/cmdline still holds the exact bytes: arguments that came out with U+FFFD are read
 * again from there, with their raw bytes escaped as fs-path.ts does for names on disk. Run by the
 * npm launcher (Node, which can pass only UTF-8 on), the bytes come from the launcher's own
 * /proc/self/cmdline in CIVITAI_META_RAW_ARGV instead: each argument as hex, comma-separated.
 */
import { readFileSync } from "node:fs";
import { decodeFsName } from "./fs-path.ts";

/** The NUL-separated command line: the launcher's arguments when it passed them, else our own. */
function ownCmdline(): Buffer {
  const fromLauncher = process.env.CIVITAI_META_RAW_ARGV;
  if (fromLauncher === undefined) return readFileSync("/proc/self/cmdline");
  return Buffer.concat(fromLauncher.split(",").flatMap((hex) => [Buffer.from(hex, "hex"), Buffer.from([0])]));
}

/** `args` (the user's arguments, the end of argv), with any lossy one replaced by its real bytes. */
export function userArgs(args: string[], cmdline: () => Buffer = ownCmdline): string[] {
  if (!args.some((a) => a.includes("\ufffd"))) return args;
  let raw: Buffer;
  try {
    raw = cmdline();
  } catch {
    return args; // not Linux, or /proc not mounted
  }
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0) {
      parts.push(decodeFsName(raw.subarray(start, i)));
      start = i + 1;
    }
  }
  if (start < raw.length) parts.push(decodeFsName(raw.subarray(start)));
  if (parts.length < args.length) return args;
  const tail = parts.slice(parts.length - args.length);
  // Every argument Bun decoded without loss must match, or this is not our command line.
  const agrees = tail.every((t, i) => args[i]!.includes("\ufffd") || t === args[i]);
  return agrees ? tail : args;
}
