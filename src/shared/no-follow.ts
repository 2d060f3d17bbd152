/**
 * Listing a folder we own (a cache) without ever following a symbolic link (issue 9, docs/cases.md T11): `cache
 * prune` once followed a symlinked `meta/` into a user's folder and deleted their `*.json`. Links
 * are reported, never entered or deleted; callers delete only files they can show they wrote.
 */
import { lstatSync, readdirSync, rmdirSync, type Dirent } from "node:fs";
import { join } from "node:path";

export interface NoFollowListing {
  /** Regular files, as paths under the folder. */
  files: string[];
  /** Symbolic links met (at any depth), left alone. */
  links: string[];
  /** Sub-folders, deepest first (so they can be removed once emptied). */
  dirs: string[];
}

/** Our caches are three levels deep; deeper is not ours and is not walked. */
const MAX_DEPTH = 8;

/**
 * Regular files, links and folders under `dir`, which must itself be a real folder (not a link):
 * an empty listing otherwise, with the link reported.
 */
export function listNoFollow(dir: string): NoFollowListing {
  const out: NoFollowListing = { files: [], links: [], dirs: [] };
  try {
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) out.links.push(dir);
    if (!st.isDirectory()) return out;
  } catch {
    return out;
  }
  walk(dir, 0, out);
  return out;
}

function walk(dir: string, depth: number, out: NoFollowListing): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    let kind: "file" | "dir" | "link" | "other" = entry.isSymbolicLink()
      ? "link"
      : entry.isDirectory()
        ? "dir"
        : entry.isFile()
          ? "file"
          : "other";
    if (kind === "other") {
      // d_type not filled in by some file systems: ask, still without following.
      try {
        const st = lstatSync(path);
        kind = st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
      } catch {
        continue;
      }
    }
    if (kind === "link") out.links.push(path);
    else if (kind === "file") out.files.push(path);
    else if (kind === "dir" && depth < MAX_DEPTH) {
      walk(path, depth + 1, out);
      out.dirs.push(path);
    }
  }
}

/** Removes the listed folders that are empty now (deepest first); a folder still holding anything stays. */
export function removeEmptyDirs(dirs: readonly string[]): void {
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch {
      /* not empty (a file we did not write), or gone */
    }
  }
}
