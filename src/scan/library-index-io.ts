/**
 * Reads and writes the library index file (library-index.ts has the format and its rules). Reading
 * never fails a scan: an index that is missing, unreadable, too large, damaged or foreign is one
 * warning and every file is hashed. Writing is what the user asked for: its folder is checked
 * before the walk, the file is written whole through a temp name and a rename, or not at all.
 */
import { statSync } from "node:fs";
import { readRegularFile, type NotRead } from "../shared/read-small-file.ts";
import { writeFileAtomic } from "../shared/atomic-write.ts";
import { AppError, errnoCode, UsageError } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { dirnamePath, fsPath, resolvePath } from "../shared/fs-path.ts";
import { parseLibraryIndex, renderLibraryIndex, type IndexEntry, type LibraryIndex } from "./library-index.ts";

/** About 200 bytes an entry: a million files. Anything larger is not an index of ours. */
const MAX_INDEX_BYTES = 256 * 1024 * 1024;

export type IndexRead = { entries: Map<string, IndexEntry> } | { entries: null; warning: string };

/** The index at `file`, or why it is not used (one line, naming the file). */
export function readLibraryIndex(file: string): IndexRead {
  const shown = escapeControl(file);
  const ignored = (why: string): IndexRead => ({ entries: null, warning: `library index ${shown} not used: ${why}; every file is hashed` });
  let read: Buffer | NotRead;
  try {
    read = readRegularFile(resolvePath(file), { maxBytes: MAX_INDEX_BYTES, follow: true });
  } catch (error) {
    const code = errnoCode(error);
    return ignored(code === "ENOENT" ? "it does not exist yet (scan --index writes it)" : `cannot be read (${code ?? "error"})`);
  }
  if (read === "not a regular file") return ignored(read);
  if (read === "too large") return ignored(`larger than ${MAX_INDEX_BYTES / 1024 / 1024} MiB`);
  const text = read.toString("utf8");
  const parsed = parseLibraryIndex(text);
  return parsed.ok ? { entries: parsed.entries } : ignored(parsed.why);
}

/** A flag naming a file, as the user gave it (`-o inv.json`); `path` undefined when not given. */
export interface NamedFile {
  flag: string;
  path: string | undefined;
}

/**
 * Before any work (docs/cases.md F9): the library index of `index.flag` is not, under any name (a
 * link), one of the inventories the scan writes or reads. `--index` written last would replace the
 * inventory of `-o` or `--previous`; `-o` would replace the index of `--use-index` that a team shares.
 */
export function refuseIndexClash(index: { flag: string; path: string }, others: readonly NamedFile[]): void {
  const path = resolvePath(index.path);
  const self = identity(path);
  for (const other of others) {
    if (other.path === undefined || other.path === "-") continue;
    const otherPath = resolvePath(other.path);
    if (otherPath !== path && (self === null || self !== identity(otherPath))) continue;
    const [writer, replaced] = index.flag === "--index" ? ["the index", "that inventory"] : ["the inventory", "that index"];
    throw new UsageError(
      `${index.flag} ${escapeControl(index.path)} and ${other.flag} ${escapeControl(other.path)} are the same file: ${writer} would replace ${replaced}. Give each its own file name`,
    );
  }
}

/** Before any work (docs/cases.md T10): the index's folder exists and the path is not a folder. */
export function checkIndexTarget(file: string): void {
  const path = resolvePath(file);
  const dir = dirnamePath(path);
  const fail = (why: string) => new AppError(`Cannot write the library index to ${escapeControl(path)}: ${why}`);
  try {
    if (!statSync(fsPath(dir)).isDirectory()) throw fail(`${escapeControl(dir)} is not a folder`);
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw fail(`its folder ${escapeControl(dir)} cannot be used (${errnoCode(error) ?? "error"})`);
  }
  try {
    if (statSync(fsPath(path)).isDirectory()) throw fail("it is a folder; give a file name inside it");
  } catch (error) {
    if (error instanceof AppError) throw error;
    // Absent: it will be created.
  }
}

/** A file's device and inode as one key, or null when there is none to stat. */
function identity(path: string): string | null {
  try {
    const st = statSync(fsPath(path));
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** Writes the index whole (temp + rename: a reader on another machine sees the old file or the new one). */
export function writeLibraryIndex(file: string, entries: readonly IndexEntry[], tool: LibraryIndex["tool"], generatedAt: string): void {
  const path = resolvePath(file);
  try {
    writeFileAtomic(path, renderLibraryIndex(entries, tool, generatedAt), { mode: 0o644 });
  } catch (error) {
    throw new AppError(
      `Cannot write the library index to ${escapeControl(path)}: ${errnoCode(error) ?? "error"}; the old index, if any, is left as it was`,
    );
  }
}
