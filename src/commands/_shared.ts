import type { ArgsDef } from "citty";

/** Flags every command accepts; the root handles them once in runCli. */
export const globalArgs = {
  verbose: { type: "boolean", description: "Log debug details and print stacks on errors" },
  quiet: { type: "boolean", alias: "q", description: "Only print warnings and errors on stderr" },
  "log-file": {
    type: "string",
    valueHint: "file",
    description: "Also append every log line, debug level included, timestamped, to FILE (stderr keeps its level)",
  },
} as const satisfies ArgsDef;

export const walkArgs = {
  ext: {
    type: "string",
    valueHint: "list",
    description: "Model file extensions to include, comma-separated (default: .safetensors,.sft,.ckpt,.pt,.pth,.bin,.gguf)",
  },
  exclude: { type: "string", valueHint: "glob", description: "Leave out matching files or folders (repeatable)" },
} as const satisfies ArgsDef;

export const hashingArgs = {
  jobs: { type: "string", alias: "j", valueHint: "n", description: "Files hashed in parallel (default: number of cores)" },
  "cache-dir": {
    type: "string",
    valueHint: "dir",
    description: "Cache folder (default: $CIVITAI_META_CACHE_DIR or $XDG_CACHE_HOME/civitai-meta)",
  },
  cache: { type: "boolean", default: true, negativeDescription: "Do not read or write any cache", description: "Use the caches" },
} as const satisfies ArgsDef;

/** `--cache-dir` of the commands that read the config (scan, lookup, download, cache): its cache.dir is a default too. */
export const configuredCacheDirArg = {
  ...hashingArgs["cache-dir"],
  description: "Cache folder (default: $CIVITAI_META_CACHE_DIR, else the config's cache.dir, else $XDG_CACHE_HOME/civitai-meta)",
} as const;

/** Where and how a report is written (scan and report). */
export const reportArgs = {
  output: {
    type: "string",
    alias: "o",
    valueHint: "file",
    description: "Write to FILE (a file: atomically; a device or FIFO: directly; -: stdout) instead of stdout",
  },
  format: {
    type: "string",
    valueHint: "json|csv|md|html|junit",
    description: "Report format (default: from -o's extension .json, .csv, .md, .html or .xml for JUnit, else json)",
  },
  excel: { type: "boolean", description: "CSV: start with a UTF-8 BOM so Excel reads the encoding" },
} as const satisfies ArgsDef;
