import type { CommandDef } from "citty";

const load = (r: { default: CommandDef<any> }) => r.default;

/**
 * Lazy loaders: a command's modules are evaluated only when it runs (or its --help is shown). With
 * require, not import(): the binary evaluates every module imported dynamically at start all the
 * same (Bun 1.4.5). A null prototype so `Object.hasOwn(commands, name)` is a safe guard on user input.
 */
export const commands: Record<string, () => Promise<CommandDef<any>>> = Object.assign(Object.create(null), {
  hash: async () => load(require("./hash.ts")),
  scan: async () => load(require("./scan.ts")),
  lookup: async () => load(require("./lookup.ts")),
  report: async () => load(require("./report.ts")),
  diff: async () => load(require("./diff.ts")),
  download: async () => load(require("./download.ts")),
  inspect: async () => load(require("./inspect.ts")),
  cache: async () => load(require("./cache.ts")),
  completion: async () => load(require("./completion.ts")),
});
