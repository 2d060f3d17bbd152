import type { Inventory } from "./inventory-types.ts";
import { memorySource, type InventorySource } from "./inventory-read.ts";
import { csvChunks } from "./render-csv.ts";
import { jsonChunks } from "./render-json.ts";
import { markdownChunks } from "./render-md.ts";
import { junitChunks } from "./render-junit.ts";
import { renderHtml, type HtmlOptions } from "./render-html.ts";

export type ReportFormat = "json" | "csv" | "md" | "html" | "junit";
/** The formats written a record at a time (the gallery is built whole: its images need it). */
export type StreamFormat = Exclude<ReportFormat, "html">;

/** One entry point for the streamed formats, so `report` and `scan` agree byte for byte. */
export function reportChunks(src: InventorySource, format: StreamFormat, opts: { excel?: boolean } = {}): Iterable<string | Uint8Array> {
  switch (format) {
    case "json":
      return jsonChunks(src);
    case "csv":
      return csvChunks(src, { excel: opts.excel === true });
    case "md":
      return markdownChunks(src);
    case "junit":
      return junitChunks(src);
  }
}

/** The whole report of an inventory in memory, as one string (tests, the gallery). */
export function renderInventory(inv: Inventory, format: ReportFormat, opts: { excel?: boolean; html?: HtmlOptions } = {}): string {
  if (format === "html") return renderHtml(inv, opts.html);
  return chunksText(reportChunks(memorySource(inv), format, opts));
}

/** Pieces of a report (text, or UTF-8 bytes a source kept rendered) as one string (tests, small reports). */
export function chunksText(chunks: Iterable<string | Uint8Array>): string {
  const decoder = new TextDecoder();
  let out = "";
  for (const chunk of chunks) out += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
  return out + decoder.decode();
}
