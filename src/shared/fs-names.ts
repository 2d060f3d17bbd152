/**
 * Folder listings and real paths that keep names which are not valid UTF-8 (see fs-path.ts).
 * Bun decodes such names with U+FFFD in readdir and realpath, and a name spelled that way names no
 * file: the walker then reported "removed while scanning". Names come back with their raw bytes
 * escaped, and every path goes to node:fs through `fsPath`.
 */
import { readdirSync, type Dirent } from "node:fs";
import { readdir, realpath } from "node:fs/promises";
import { decodeFsName, fsPath, hasRawBytes } from "./fs-path.ts";

/** What a listing says about one entry; the type is unknown (all false) when it must be looked up. */
export interface ListedEntry {
  name: string;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}

const no = () => false;

/** An entry whose type the caller must lstat (as for file systems that do not fill in d_type). */
function untyped(name: string): ListedEntry {
  return {
    name,
    isFile: no,
    isDirectory: no,
    isSymbolicLink: no,
    isFIFO: no,
    isSocket: no,
    isCharacterDevice: no,
    isBlockDevice: no,
  };
}

/**
 * `readdir(dir, { withFileTypes: true })`, with names that are not UTF-8 kept as raw bytes. The
 * common case costs one listing; only a folder holding such a name is listed a second time, by
 * bytes, and those entries come back untyped.
 */
export async function listEntries(dir: string): Promise<ListedEntry[]> {
  const entries: Dirent[] = await readdir(fsPath(dir), { withFileTypes: true });
  if (!needsRawNames(entries)) return entries;
  return withRawNames(entries, await readdir(fsPath(dir), { encoding: "buffer" }));
}

/** listEntries without a promise, for a folder on a local disk (walker.ts says when). */
export function listEntriesSync(dir: string): ListedEntry[] {
  const entries: Dirent[] = readdirSync(fsPath(dir), { withFileTypes: true });
  if (!needsRawNames(entries)) return entries;
  return withRawNames(entries, readdirSync(fsPath(dir), { encoding: "buffer" }));
}

function needsRawNames(entries: readonly Dirent[]): boolean {
  return entries.some((e) => e.name.includes("\ufffd"));
}

/** The entries of a listing by bytes, typed from the first listing where the name is plain UTF-8. */
function withRawNames(entries: readonly Dirent[], raw: readonly Buffer[]): ListedEntry[] {
  const byName = new Map(entries.map((e) => [e.name, e]));
  return raw.map((bytes) => {
    const name = decodeFsName(bytes);
    return (!hasRawBytes(name) && byName.get(name)) || untyped(name);
  });
}

/** The names in a folder, raw bytes kept. */
export async function listNames(dir: string): Promise<string[]> {
  return (await listEntries(dir)).map((e) => e.name);
}

/** `realpath`, with raw bytes kept in the result (a link may point to such a name). */
export async function realpathKeepingBytes(path: string): Promise<string> {
  return decodeFsName(await realpath(fsPath(path), { encoding: "buffer" }));
}
