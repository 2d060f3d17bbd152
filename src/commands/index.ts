import type { CommandDef } from "citty";

const load = (r: { default: CommandDef<any> }) => r.default;

/** Lazy loaders; a null prototype so `Object.hasOwn(commands, name)` is a safe guard on user input. */
export const commands: Record<string, () => Promise<CommandDef<any>>> = Object.assign(Object.create(null), {
  hash: () => import("./hash.ts").then(load),
  scan: () => import("./scan.ts").then(load),
  lookup: () => import("./lookup.ts").then(load),
  report: () => import("./report.ts").then(load),
  diff: () => import("./diff.ts").then(load),
  download: () => import("./download.ts").then(load),
  inspect: () => import("./inspect.ts").then(load),
  cache: () => import("./cache.ts").then(load),
  completion: () => import("./completion.ts").then(load),
});
