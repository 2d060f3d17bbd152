import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { AppError, errnoCode, UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { readInventory } from "../report/inventory-read.ts";
import { chooseFormat, prepareOutput, writeReport } from "../report/report-output.ts";
import { fsPath } from "../shared/fs-path.ts";
import { logger } from "../ui/logger.ts";
import { globalArgs, reportArgs } from "./_shared.ts";
import { galleryArgs, galleryImageContext, parseNsfwArg, renderReportText, reportImageArgs } from "./_gallery.ts";

export default defineCommand({
  meta: {
    name: "report",
    description:
      "Re-render a saved JSON inventory as CSV, Markdown, JSON or an HTML gallery, with no network (but the gallery's preview images)",
  },
  args: {
    ...globalArgs,
    inventory: {
      type: "positional",
      required: false,
      description: "Inventory JSON written by scan (- for stdin)",
      valueHint: "inventory.json",
    },
    ...reportArgs,
    ...galleryArgs,
    ...reportImageArgs,
  },
  async run({ args }) {
    const source = args._[0];
    if (!source) throw new UsageError("report needs an inventory, e.g. civitai-meta report inventory.json --format md");
    if (args._.length > 1) throw new UsageError(`report takes one inventory (got ${args._.length})`);
    const format = chooseFormat(args.format, args.output);
    const target = prepareOutput(args.output);
    parseNsfwArg(args["nsfw-level"]); // a bad value is a usage error whatever the format
    let text: string;
    try {
      text = readFileSync(source === "-" ? 0 : fsPath(source), "utf8");
    } catch (error) {
      const code = errnoCode(error) ?? "error";
      throw new AppError(
        `Cannot read ${escapeControl(source)}: ${code}. Give the path of a JSON inventory written by "civitai-meta scan".`,
      );
    }
    const inventory = readInventory(text, escapeControl(source === "-" ? "stdin" : source));
    const rendered = await renderReportText(inventory, format, args, () => galleryImageContext(args));
    writeReport(rendered, target);
    if (target.kind !== "stdout")
      logger.success(
        `Wrote ${format === "html" ? "HTML gallery" : `${format.toUpperCase()} report`} to ${escapeControl(args.output ?? "")}`,
      );
  },
});
