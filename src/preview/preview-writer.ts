/**
 * `scan --write-previews`: `<base>.preview.<ext>` beside each found model (preview-names.ts), from
 * the image the gallery would show (same rating limit, a larger width). Opt-in: nothing is written
 * into model folders without the flag. Never replaces a preview that exists under any name a tool
 * reads, and never clobbers one made at the same moment: the bytes go to a temp file in the
 * folder, which is then hard-linked to the final name (fails if the name exists) and removed.
 * Filesystems without hard links (FAT, exFAT, some network mounts) get a check, then a rename.
 */
import { closeSync, fsyncSync, linkSync, lstatSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { tempPathFor } from "../shared/atomic-write.ts";
import { errorMessage } from "../shared/errors.ts";
import { existingPreview, previewPath } from "./preview-names.ts";
import type { PreviewOutcome } from "./previews.ts";

export type PreviewWriteStatus = "written" | "exists" | "no-image" | "failed";

export interface PreviewWriteResult {
  /** The model file. */
  model: string;
  status: PreviewWriteStatus;
  /** The preview written, or the existing one that was kept. */
  path?: string;
  /** Why nothing was written (no image, fetch failure, write error); safe to print. */
  reason?: string;
}

const NO_LINK_CODES = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EMLINK"]);

/** Writes previews for `models` (paths) from their outcomes; folders are listed once each. */
export function writePreviewFiles(models: readonly string[], outcomes: ReadonlyMap<string, PreviewOutcome>): PreviewWriteResult[] {
  const listings = new Map<string, string[] | null>();
  const list = (dir: string) => {
    if (!listings.has(dir)) {
      try {
        listings.set(dir, readdirSync(dir));
      } catch {
        listings.set(dir, null);
      }
    }
    return listings.get(dir)!;
  };
  return models.map((model) => {
    const outcome = outcomes.get(model);
    const dir = dirname(model);
    const entries = list(dir);
    if (entries === null) return { model, status: "failed", reason: "cannot list the model's folder" };
    const existing = existingPreview(model, entries);
    if (existing !== null) return { model, status: "exists", path: join(dir, existing) };
    if (!outcome || outcome.kind === "none") return { model, status: "no-image", reason: outcome?.reason ?? "no preview" };
    if (outcome.kind === "failed") return { model, status: "failed", reason: outcome.reason };
    const target = previewPath(model, outcome.image.ext);
    const result = writeExclusive(target, outcome.bytes);
    if (result === "written") entries.push(basename(target));
    return result === "written"
      ? { model, status: "written", path: target }
      : result === "exists"
        ? { model, status: "exists", path: target }
        : { model, status: "failed", path: target, reason: result.reason };
  });
}

/** Writes `bytes` at `target` only if nothing is there; complete or absent, never torn. */
function writeExclusive(target: string, bytes: Uint8Array): "written" | "exists" | { reason: string } {
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", 0o644);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    try {
      linkSync(tmp, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      if (code === "EEXIST") return "exists";
      if (!NO_LINK_CODES.has(code)) throw err;
      if (exists(target)) return "exists";
      renameSync(tmp, target);
    }
    return "written";
  } catch (err) {
    return { reason: `cannot write (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})` };
  } finally {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* renamed, or never made */
    }
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
