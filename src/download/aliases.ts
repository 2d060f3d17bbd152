import { constants as FS } from "node:fs";
import { copyFile, link, lutimes, open, rename, stat, unlink } from "node:fs/promises";
import { fsyncDirSync, isNoLinkError, tempPathFor } from "../shared/atomic-write.ts";
import { errnoCode, errorMessage } from "../shared/errors.ts";
import { fsPath } from "../shared/fs-path.ts";
import { DownloadFailure } from "./download-errors.ts";
import { parentOf } from "./file-name.ts";
import type { PlannedAlias } from "./download-plan.ts";
import type { DownloadTask } from "./download-task.ts";
import { checkExisting, hashFile, lstatOrNull, prepareFolder } from "./transfer.ts";

/**
 * A file's other names (docs/cases.md T17). Where the scanned folder had hard or soft links to one file, the
 * inventory lists the other paths as `aliases`; once the file itself is in place and verified, each
 * other name is restored as a hard link to it where the destination allows (same filesystem, links
 * supported), else as a copy whose SHA-256 is checked before it gets its name. As for downloads:
 * nothing outside the destination, never through a symlink, an existing file left alone unless it
 * is the same file, holds the same bytes, or --force.
 */

type AliasStatus = "linked" | "copied" | "present" | "exists" | "failed";

export interface AliasResult {
  alias: PlannedAlias;
  status: AliasStatus;
  /** Names the other name first; never a secret. */
  message: string;
}

export interface AliasOptions {
  force?: boolean;
  /** The destination folder: nothing is written outside its real path. */
  root?: string;
}

/** Restores `alias` from the verified file at `file.dest`; never throws. */
export async function restoreAlias(file: DownloadTask, alias: PlannedAlias, options: AliasOptions = {}): Promise<AliasResult> {
  const say = (status: AliasStatus, message: string): AliasResult => ({ alias, status, message: `${alias.dest}${message}` });
  try {
    await prepareFolder(alias.dest, options.root);
    const existing = await lstatOrNull(alias.dest);
    if (existing) {
      if (existing.isSymbolicLink()) return say("failed", " is a symlink; refusing to write through it");
      if (!existing.isFile()) return say("failed", " exists and is not a regular file; left alone");
      const source = await lstatOrNull(file.dest);
      if (source && source.dev === existing.dev && source.ino === existing.ino) {
        return say("present", `: already present, verified (the same file as ${file.dest})`);
      }
      const verdict = await checkExisting({ ...file, dest: alias.dest }, existing.size);
      if (verdict.ok) return say("present", `: ${verdict.message}`);
      if (!options.force) return say("exists", ` exists (${verdict.message}); left alone, use --force to replace it`);
    }
    const how = await place(file, alias.dest, existing !== null);
    return how === null
      ? say("linked", `: restored as a hard link to ${file.dest}`)
      : say("copied", `: restored as a verified copy of ${file.dest} (a hard link is not possible here: ${how})`);
  } catch (err) {
    if (err instanceof DownloadFailure) return { alias, status: "failed", message: err.message };
    return say("failed", `: not restored (${errnoCode(err) ?? errorMessage(err)})`);
  }
}

/**
 * Puts the file under `target`: a hard link (atomic; without `replace` it never clobbers), else a
 * verified copy. Returns null for a link, else the errno that ruled a link out.
 */
async function place(file: DownloadTask, target: string, replace: boolean): Promise<string | null> {
  if (!replace) {
    try {
      await link(fsPath(file.dest), fsPath(target));
      fsyncDirSync(parentOf(target));
      return null;
    } catch (err) {
      if (!isNoLinkError(err)) throw err;
    }
  }
  // Built under a temp name beside the target (walkers skip it), then renamed.
  const tmp = tempPathFor(target);
  try {
    let why: string | null = null;
    try {
      await link(fsPath(file.dest), fsPath(tmp));
    } catch (err) {
      // "No hard link here" rather than "cannot write here": then a copy is made.
      if (!isNoLinkError(err)) throw err;
      why = errnoCode(err)!;
      await copyVerified(file, tmp, target);
    }
    if (!replace && (await lstatOrNull(target)) !== null) throw new DownloadFailure(`${target} appeared meanwhile; left alone`);
    await rename(fsPath(tmp), fsPath(target));
    fsyncDirSync(parentOf(target));
    return why;
  } finally {
    await unlink(fsPath(tmp)).catch(() => {});
  }
}

/** Copies the file to `tmp` and checks the copy's SHA-256 (Civitai's, else the source's) before it may be renamed. */
async function copyVerified(file: DownloadTask, tmp: string, target: string): Promise<void> {
  await copyFile(fsPath(file.dest), fsPath(tmp), FS.COPYFILE_EXCL);
  const handle = await open(fsPath(tmp), "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  const expected = file.sha256 ?? (await hashFile(file.dest)).hasher.digest("hex");
  const actual = (await hashFile(tmp)).hasher.digest("hex");
  if (actual !== expected)
    throw new DownloadFailure(`${target}: the copy's SHA-256 is ${actual}, expected ${expected}; the copy was deleted`);
  // The source's mtime, as `cp -p`: older than the source's check, so the hash cache may trust the
  // copy's entry at once (verified-hash.ts) and any later write to the copy shows.
  await lutimes(fsPath(tmp), new Date(), (await stat(fsPath(file.dest))).mtime);
}
