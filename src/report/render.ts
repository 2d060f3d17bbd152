import type { Inventory } from "./inventory-types.ts";
import { renderCsv } from "./render-csv.ts";
import { renderJson } from "./render-json.ts";
import { renderMarkdown } from "./render-md.ts";
import { renderHtml, type HtmlOptions } from "./render-html.ts";

export type ReportFormat = "json" | "csv" | "md" | "html";

/** One entry point for the formats, so `report` and `scan` agree byte for byte. */
export function renderInventory(inv: Inventory, format: ReportFormat, opts: { excel?: boolean; html?: HtmlOptions } = {}): string {
  switch (format) {
    case "json":
      return renderJson(inv);
    case "csv":
      return renderCsv(inv, { excel: opts.excel === true });
    case "md":
      return renderMarkdown(inv);
    case "html":
      return renderHtml(inv, opts.html);
  }
}
