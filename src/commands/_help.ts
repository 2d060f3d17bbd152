/**
 * `--help` text, rendered by us rather than by citty: citty pads every option line to the longest
 * one (~260 columns here), lists a negatable option twice and has no examples. Here each option is
 * listed once, text wraps at word boundaries to the terminal's width (80 when stdout is not a
 * terminal), and every help ends with a few examples.
 */
import type { ArgDef, ArgsDef, CommandDef, CommandMeta } from "citty";
import { wrapText } from "../shared/format.ts";
import { isTerminal } from "../shared/stdio.ts";

/** Two or three lines a user can copy; each fits 60 columns so it stays whole on narrow terminals. */
const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  "": [
    "civitai-meta scan ~/ComfyUI/models -o inventory.md",
    "civitai-meta hash --algo sha256 lora.safetensors",
    "civitai-meta download inventory.json --dest /new/models",
  ],
  scan: [
    "civitai-meta scan ~/ComfyUI/models -o inventory.json",
    "civitai-meta scan /models --offline --format csv > inv.csv",
    "civitai-meta scan /models --fail-on not-found,error -q",
  ],
  hash: ["civitai-meta hash --algo sha256 ~/models > SHA256SUMS", "civitai-meta hash --json --algo autov2,autov3 lora.safetensors"],
  lookup: ["civitai-meta lookup 5b4cd3d7db", "civitai-meta lookup $(sha256sum m.safetensors | cut -c1-64)"],
  report: ["civitai-meta report inventory.json --format md -o inv.md", "civitai-meta report inventory.json --format csv --excel"],
  inspect: ["civitai-meta inspect ~/models/loras/style.safetensors", "civitai-meta inspect --json --no-hash model.gguf"],
  download: [
    "civitai-meta download inventory.json --dest /new/models",
    "civitai-meta download 3198110 --dest ./loras --dry-run",
    "civitai-meta download inv.json --dest /m --emit aria2",
  ],
  cache: ["civitai-meta cache info", "civitai-meta cache prune", "civitai-meta cache clear --hashes"],
  diff: ["civitai-meta diff yesterday.json today.json", "civitai-meta diff old.json new.json --format md > pr.md"],
  completion: ["source <(civitai-meta completion bash)", "civitai-meta completion fish > civitai-meta.fish"],
};

/** Width to wrap to: the terminal's, else 80; never below 40 so the columns stay readable. */
export function helpWidth(stream?: { isTTY?: boolean; columns?: number }): number {
  // process.stdout is built only on a terminal (shared/stdio.ts): piped help is 80 wide anyway.
  const out = stream ?? (isTerminal(1) ? process.stdout : { isTTY: false });
  const columns = out.isTTY ? (out.columns ?? 80) : 80;
  return Math.max(40, columns);
}

interface Row {
  left: string;
  text: string;
}

/** Left column, then the description beside it or, when the left column is long, on the next line. */
function renderRows(rows: readonly Row[], width: number): string[] {
  const indent = Math.min(24, Math.floor(width / 3));
  const out: string[] = [];
  for (const { left, text } of rows) {
    const body = wrapText(text, width - indent);
    const head = `  ${left}`;
    if (head.length + 2 <= indent && body[0] !== undefined) {
      out.push(`${head.padEnd(indent)}${body[0]}`.trimEnd());
      body.shift();
    } else {
      out.push(...wrapText(left, width - 2).map((l) => `  ${l}`));
    }
    for (const line of body) if (line !== "") out.push(`${" ".repeat(indent)}${line}`);
  }
  return out;
}

function optionRow(name: string, def: ArgDef): Row {
  const aliases = "alias" in def && def.alias ? [def.alias].flat() : [];
  const flag = `--${name}`;
  if (def.type === "boolean") {
    // A default-on flag is only ever given to turn it off: list that form alone.
    if (def.default === true) return { left: `--no-${name}`, text: def.negativeDescription ?? `Do not ${def.description ?? name}` };
    return { left: [...aliases.map((a) => `-${a}`), flag].join(", "), text: def.description ?? "" };
  }
  const hint = "valueHint" in def && def.valueHint ? ` <${def.valueHint}>` : " <value>";
  return { left: `${[...aliases.map((a) => `-${a}`), flag].join(", ")}${hint}`, text: def.description ?? "" };
}

function section(title: string, lines: readonly string[]): string[] {
  return lines.length > 0 ? [title, ...lines, ""] : [];
}

/**
 * The help of `cmd` (a sub-command when `commandName` is given, the root otherwise) at `width`.
 * `subCommands` (root only) maps names to their one-line descriptions.
 */
export function renderHelp(opts: {
  meta: CommandMeta;
  args: ArgsDef;
  commandName?: string;
  subCommands?: readonly { name: string; description: string }[];
  width: number;
}): string {
  const { meta, args, width, commandName } = opts;
  const full = commandName ? `civitai-meta ${commandName}` : "civitai-meta";
  const positionals = Object.entries(args).filter(([, d]) => d.type === "positional");
  const options = Object.entries(args).filter(([, d]) => d.type !== "positional");
  const usage = [full, opts.subCommands ? "<command>" : "", "[options]", ...positionals.map(([n, d]) => `[${d.valueHint ?? n}]`)]
    .filter(Boolean)
    .join(" ");

  const out: string[] = [...wrapText(`${full}: ${meta.description ?? ""}`, width), ""];
  out.push(
    ...section(
      "USAGE",
      wrapText(usage, width - 2).map((l) => `  ${l}`),
    ),
  );
  out.push(
    ...section(
      "ARGUMENTS",
      renderRows(
        positionals.map(([n, d]) => ({ left: d.valueHint ?? n, text: d.description ?? "" })),
        width,
      ),
    ),
  );
  if (opts.subCommands) {
    out.push(
      ...section(
        "COMMANDS",
        renderRows(
          opts.subCommands.map((c) => ({ left: c.name, text: c.description })),
          width,
        ),
      ),
    );
  }
  const optionRows = options.map(([n, d]) => optionRow(n, d));
  optionRows.push({ left: "-h, --help", text: "Show this help" });
  if (!commandName) optionRows.push({ left: "-v, --version", text: "Print the version" });
  out.push(...section("OPTIONS", renderRows(optionRows, width)));
  if (opts.subCommands) out.push(...wrapText(`Run "${full} <command> --help" for a command's options.`, width), "");
  const examples = EXAMPLES[commandName ?? ""] ?? [];
  out.push(
    ...section(
      "EXAMPLES",
      examples.flatMap((e) => wrapText(e, width - 4).map((l, i) => `${i === 0 ? "  " : "    "}${l}`)),
    ),
  );
  return `${out.join("\n").trimEnd()}\n`;
}

/** Resolves a command's meta and args (citty allows values, promises and functions). */
export async function commandParts(cmd: CommandDef<any>): Promise<{ meta: CommandMeta; args: ArgsDef }> {
  const resolve = async <T>(v: unknown): Promise<T> => (typeof v === "function" ? await v() : await v) as T;
  return { meta: (await resolve<CommandMeta>(cmd.meta)) ?? {}, args: (await resolve<ArgsDef>(cmd.args)) ?? {} };
}
