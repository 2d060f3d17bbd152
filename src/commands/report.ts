import { defineCommand } from "citty";
import { UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { openInventory } from "../report/inventory-file.ts";
import { chooseFormat, prepareOutput, refuseOverInput, writeReport, writeReportChunks } from "../report/report-output.ts";
import { reportChunks } from "../report/render.ts";
import { logger } from "../ui/logger.ts";
import { globalArgs, reportArgs } from "./_shared.ts";
import { galleryArgs, galleryImageContext, parseNsfwArg, renderGallery, reportImageArgs } from "./_gallery.ts";
import { withInterrupt } from "./_interrupt.ts";

export default defineCommand({
  meta: {
    name: "report",
    description:
      "Re-render a saved JSON inventory as CSV, Markdown, JSON, JUnit XML or an HTML gallery, with no network (but the gallery's preview images)",
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
    if (format !== "json") refuseOverInput(target, [source], `${format === "html" ? "gallery" : format.toUpperCase()} report`);
    parseNsfwArg(args["nsfw-level"]); // a bad value is a usage error whatever the format
    const opened = openInventory(source);
    try {
      await withInterrupt(async (signal) => {
        if (format === "html") {
          const inventory = { ...opened.source.head, records: [...opened.source.records("path")] };
          writeReport(await renderGallery(inventory, args, () => galleryImageContext(args)), target);
        } else {
          // A record at a time, from the file to the report (issue 11, target 2).
          await writeReportChunks(reportChunks(opened.source, format, { excel: args.excel === true }), target, { signal });
        }
      });
    } finally {
      opened.close();
    }
    if (target.kind !== "stdout") {
      const what = format === "html" ? "HTML gallery" : format === "junit" ? "JUnit report" : `${format.toUpperCase()} report`;
      logger.success(`Wrote ${what} to ${escapeControl(args.output ?? "")}`);
    }
  },
});
