import { lstatSync, readFileSync } from "node:fs";
import type { DownloadApi } from "../civitai/api-types.ts";
import { wantedFromInventory, wantedFromVersion, type PlanItem, type WantedFile } from "./download-plan.ts";
import { describeSource, type DownloadSource } from "./download-sources.ts";
import { AppError, describeErrno, errorMessage, isInterruption } from "../shared/errors.ts";
import { escapeControl, formatBytes } from "../shared/format.ts";
import { readInventory } from "../report/inventory-read.ts";
import type { Redactor } from "../shared/redact.ts";
import type { ApiSettings } from "../config/settings.ts";
import { freeBytes } from "./disk-space.ts";
import { fsPath } from "../shared/fs-path.ts";
import { isPlainFile } from "./transfer.ts";
import { transferPaths } from "./resume-state.ts";

function hostsFor(source: DownloadSource, settings: ApiSettings): string[] {
  const all = [settings.primary, ...(settings.fallback ? [settings.fallback] : [])];
  const named = "host" in source ? source.host : null;
  return named && all.includes(named) ? [named, ...all.filter((h) => h !== named)] : all;
}

/** Every source → wanted files; a source that cannot be resolved becomes a problem line, not a crash. */
export async function resolveSources(
  sources: readonly DownloadSource[],
  api: DownloadApi,
  settings: ApiSettings,
  redact: Redactor = (s) => s,
): Promise<{ wanted: WantedFile[]; problems: string[]; notes: string[]; warnings: string[] }> {
  const wanted: WantedFile[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  const warnings: string[] = [];
  for (const source of sources) {
    const label = escapeControl(describeSource(source));
    try {
      if (source.kind === "inventory") {
        let text: string;
        try {
          text = readFileSync(source.path, "utf8");
        } catch (err) {
          throw new AppError(
            `cannot read it: ${describeErrno(err)}. Give the path of a JSON inventory written by "civitai-meta scan", or a version ID, SHA-256, URL or AIR`,
          );
        }
        const fromInventory = wantedFromInventory(readInventory(text, source.path));
        // Loops, not push(...): an inventory of a million records is more arguments than a call takes.
        for (const w of fromInventory.wanted) wanted.push(w);
        for (const p of fromInventory.problems) problems.push(escapeControl(p));
        if (fromInventory.wanted.length === 0) notes.push(`${escapeControl(source.path)}: no found models to restore`);
        warnings.push(...notRestored(source.path, fromInventory.notOnCivitai, fromInventory.notLookedUp));
        continue;
      }
      let version = null;
      for (const host of hostsFor(source, settings)) {
        if (source.kind === "sha256") version = await api.versionByHash(host, source.sha256);
        else if (source.kind === "version") version = await api.versionById(host, source.versionId);
        else {
          const model = await api.modelById(host, source.modelId);
          const first = model?.modelVersions?.[0];
          version = first ? ((await api.versionById(host, first.id)) ?? first) : null;
        }
        if (version) break;
      }
      if (!version) {
        problems.push(`${label}: not found on Civitai`);
        continue;
      }
      const result = wantedFromVersion(version, {
        fileId: source.kind === "version" ? source.fileId : null,
        sha256: source.kind === "sha256" ? source.sha256 : null,
      });
      if (result.ok) wanted.push(result.wanted);
      else problems.push(`${label}: ${result.reason}`);
    } catch (err) {
      if (err instanceof AppError && isInterruption(err.exitCode)) throw err;
      problems.push(redact(`${label}: ${errorMessage(err)}`));
    }
  }
  return { wanted, problems, notes, warnings };
}

/** How many names a "not restored" warning lists before "… and N more". */
const LISTED_NAMES = 10;

function listNames(paths: readonly string[]): string {
  const shown = paths.slice(0, LISTED_NAMES).map((p) => escapeControl(p));
  const more = paths.length - shown.length;
  return `${shown.join(", ")}${more > 0 ? ` … and ${more} more` : ""}`;
}

/**
 * The files of an inventory that a restore cannot bring back, said rather than left out without a
 * word: files Civitai did not know (copy them from where they were scanned) and files whose lookup
 * failed (a new scan may find them).
 */
function notRestored(inventoryPath: string, notOnCivitai: readonly string[], notLookedUp: readonly string[]): string[] {
  const inv = escapeControl(inventoryPath);
  const out: string[] = [];
  if (notOnCivitai.length > 0)
    out.push(
      `${inv}: ${notOnCivitai.length} file(s) are not restored, Civitai did not know them when scanned (copy them from where they were scanned): ${listNames(notOnCivitai)}`,
    );
  if (notLookedUp.length > 0)
    out.push(
      `${inv}: ${notLookedUp.length} file(s) are not restored, their hash or lookup failed when scanned (scan that folder again to restore them): ${listNames(notLookedUp)}`,
    );
  return out;
}

/** docs/cases.md A10: fail before the first byte when the whole set cannot fit. */
export async function checkTotalSpace(items: readonly PlanItem[], dir: string): Promise<void> {
  let needed = 0;
  for (const item of items) {
    if (item.size === null || isPlainFile(item.dest)) continue;
    const { part } = transferPaths(item.dest, item.versionId);
    const have = lstatSync(fsPath(part), { throwIfNoEntry: false });
    needed += Math.max(0, item.size - (have?.isFile() ? have.size : 0));
  }
  const free = await freeBytes(dir);
  if (free !== null && needed > free) {
    throw new AppError(
      `Not enough disk space in ${dir}: the downloads need ${formatBytes(needed)}, ${formatBytes(free)} is free. Free some space or choose another --dest.`,
    );
  }
}
