import { lstat } from "node:fs/promises";
import { errnoCode } from "../shared/errors.ts";
import { fsPath, resolvePath } from "../shared/fs-path.ts";

/**
 * The given paths that do not exist (as the walker would report them: ENOENT, or a file where a
 * folder was expected), absolute. A dangling symlink exists: the walk reports it as a broken link.
 */
export async function missingPaths(paths: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const p of paths) {
    const abs = resolvePath(p);
    try {
      await lstat(fsPath(abs));
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT" || code === "ENOTDIR") missing.push(abs);
    }
  }
  return missing;
}
