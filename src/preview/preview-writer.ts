/**
 * `scan --write-previews`: `<base>.preview.<ext>` beside each found model (preview-names.ts), from
 * the image the gallery would show (same rating limit, a larger width). Opt-in: nothing is written
 * into model folders without the flag. Never replaces a preview that exists under any name a tool
 * reads, and never clobbers one made at the same moment (shared/atomic-write.ts writeFileExclusive).
 */
import { readdirSync } from "node:fs";
import { writeFileExclusive } from "../shared/atomic-write.ts";
import { basenamePath, decodeFsName, dirnamePath, fsPath, joinPath } from "../shared/fs-path.ts";
import { errnoCode, errorMessage } from "../shared/errors.ts";
import { existingPreview, previewPath } from "./preview-names.ts";
import type { PreviewOutcome } from "./previews.ts";

type PreviewWriteStatus = "written" | "exists" | "no-image" | "failed";

export interface PreviewWriteResult {
  /** The model file. */
  model: string;
  status: PreviewWriteStatus;
  /** The preview written, or the existing one that was kept; the folder when it could not be listed. */
  path?: string;
  /** Why nothing was written (no image, fetch failure, write error); safe to print. */
  reason?: string;
}

/** Writes previews for `models` (paths) from their outcomes; folders are listed once each. */
export function writePreviewFiles(models: readonly string[], outcomes: ReadonlyMap<string, PreviewOutcome>): PreviewWriteResult[] {
  // By bytes, as every path here (docs/cases.md T12): a folder whose name is not UTF-8 could not be
  // listed by its string, and names in it that are not UTF-8 would not compare.
  const listings = new Map<string, string[] | { error: string }>();
  const list = (dir: string) => {
    if (!listings.has(dir)) {
      try {
        listings.set(
          dir,
          readdirSync(fsPath(dir), { encoding: "buffer" }).map((name) => decodeFsName(name)),
        );
      } catch (err) {
        listings.set(dir, { error: errnoCode(err) ?? errorMessage(err) });
      }
    }
    return listings.get(dir)!;
  };
  return models.map((model) => {
    const outcome = outcomes.get(model);
    const dir = dirnamePath(model);
    const entries = list(dir);
    if (!Array.isArray(entries)) return { model, status: "failed", path: dir, reason: `cannot list the model's folder (${entries.error})` };
    const existing = existingPreview(model, entries);
    if (existing !== null) return { model, status: "exists", path: joinPath(dir, existing) };
    if (!outcome || outcome.kind === "none") return { model, status: "no-image", reason: outcome?.reason ?? "no preview" };
    if (outcome.kind === "failed") return { model, status: "failed", reason: outcome.reason };
    const target = previewPath(model, outcome.image.ext);
    const result = writeExclusive(target, outcome.bytes);
    if (result === "written") entries.push(basenamePath(target));
    return result === "written"
      ? { model, status: "written", path: target }
      : result === "exists"
        ? { model, status: "exists", path: target }
        : { model, status: "failed", path: target, reason: result.reason };
  });
}

/** writeFileExclusive, with a write error as a reason the summary can show. */
function writeExclusive(target: string, bytes: Uint8Array): "written" | "exists" | { reason: string } {
  try {
    return writeFileExclusive(target, bytes);
  } catch (err) {
    return { reason: `cannot write (${errnoCode(err) ?? errorMessage(err)})` };
  }
}
