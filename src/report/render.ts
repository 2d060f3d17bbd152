import type { Inventory } from "./inventory-types.ts";
import { renderCsv } from "./render-csv.ts";
import { renderJson } from "./render-json.ts";
import { renderMarkdown } from "./render-md.ts";

export type ReportFormat = "json" | "csv" | "md";

/** One entry point for the three formats, so `report` and `scan` agree byte for byte. */
export function renderInventory(inv: Inventory, format: ReportFormat, opts: { excel?: boolean } = {}): string {
  switch (format) {
    case "json":
      return renderJson(inv);
    case "csv":
      return renderCsv(inv, { excel: opts.excel === true });
    case "md":
      return renderMarkdown(inv);
  }
}
