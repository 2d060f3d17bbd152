import { defineCommand } from "citty";
import { collectRepeated } from "../shared/cli-args.ts";
import { EXIT, UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { DIFF_FAIL_ON, failOnHits, parseFailOn } from "../report/fail-on.ts";
import { changeCount, changeSummary, diffRecords, toDiffRecords, CHANGE_KINDS, type DiffRecord } from "../report/diff.ts";
import { openInventory, type OpenedInventory } from "../report/inventory-file.ts";
import {
  renderDiffCsv,
  renderDiffJson,
  renderDiffMarkdown,
  diffHeadline,
  type DiffDocument,
  type DiffSide,
} from "../report/render-diff.ts";
import { chooseFormat, prepareOutput, refuseOverInput, writeReport } from "../report/report-output.ts";
import { appendStepSummary, stepSummaryPath } from "../report/step-summary.ts";
import { logger } from "../ui/logger.ts";
import { NAME, VERSION } from "../version.ts";
import { globalArgs, reportArgs } from "./_shared.ts";

export default defineCommand({
  meta: {
    name: "diff",
    description:
      "Compare two inventories: files added, removed, moved or changed, status changes (found → gone, not found → found), new updates; JSON, Markdown or CSV",
  },
  args: {
    ...globalArgs,
    inventories: {
      type: "positional",
      required: false,
      description: "The older inventory, then the newer one (JSON written by scan; - for stdin, once)",
      valueHint: "old.json new.json",
    },
    ...reportArgs,
    format: {
      type: "string",
      valueHint: "json|md|csv",
      description: "Output format (default: from -o's extension .json, .md or .csv, else json)",
    },
    "fail-on": {
      type: "string",
      valueHint: DIFF_FAIL_ON.join(","),
      description: "Exit 3 if there is any change of these kinds (comma-separated)",
    },
  },
  async run({ args, rawArgs }) {
    const paths = args._;
    if (paths.length !== 2)
      throw new UsageError(`diff takes two inventories, the older first (got ${paths.length}), e.g. ${NAME} diff old.json new.json`);
    if (paths[0] === "-" && paths[1] === "-") throw new UsageError("diff can read only one of the two inventories from stdin");
    const failOn = parseFailOn(collectRepeated(rawArgs, ["fail-on"]), DIFF_FAIL_ON);
    const format = chooseFormat(args.format, args.output, undefined, ["json", "md", "csv"]);
    if (format !== "json" && format !== "md" && format !== "csv")
      throw new UsageError(
        `diff writes json, md or csv (got ${format}): give --format json|md|csv, or an -o name ending .json, .md or .csv`,
      );
    const target = prepareOutput(args.output);
    refuseOverInput(target, paths, "diff");
    const [oldSide, oldRecords] = read(paths[0]!);
    const [newSide, newRecords] = read(paths[1]!);
    const diff = diffRecords(oldRecords, newRecords, { old: oldSide.roots, new: newSide.roots });
    const { previous: _previous, ...summary } = changeSummary(diff, { generatedAt: oldSide.generatedAt, files: oldSide.files });
    const doc: DiffDocument = { old: oldSide, new: newSide, summary, diff };
    const text =
      format === "json"
        ? renderDiffJson(doc, { name: NAME, version: VERSION })
        : format === "csv"
          ? renderDiffCsv(doc, { excel: args.excel === true })
          : renderDiffMarkdown(doc);
    writeReport(text, target);
    logger.info(`${escapeControl(paths[0]!)} → ${escapeControl(paths[1]!)}: ${diffHeadline(summary)}; ${summary.unchanged} unchanged`);
    const stepSummary = stepSummaryPath(process.env);
    if (stepSummary) {
      const why = appendStepSummary(stepSummary, format === "md" ? text : renderDiffMarkdown(doc));
      if (why) logger.warn(`Could not append to GITHUB_STEP_SUMMARY (${escapeControl(stepSummary)}): ${escapeControl(why)}`);
    }
    const counts = Object.fromEntries(CHANGE_KINDS.map((k) => [k, changeCount(summary, k)]));
    const hits = failOnHits(failOn, counts);
    if (hits.length > 0) {
      logger.warn(`--fail-on: ${hits.join(", ")}`);
      process.exitCode = EXIT.failOn;
    }
  },
});

/** One side: its header and its records cut to what a diff compares (the records themselves are not kept). */
function read(path: string): [DiffSide, DiffRecord[]] {
  const opened: OpenedInventory = openInventory(path);
  try {
    const src = opened.source;
    const records: DiffRecord[] = [];
    for (const r of src.records("path")) records.push(...toDiffRecords(r));
    return [{ path, generatedAt: src.head.generatedAt, schemaVersion: src.writtenAs, files: src.count, roots: src.head.roots }, records];
  } finally {
    opened.close();
  }
}
