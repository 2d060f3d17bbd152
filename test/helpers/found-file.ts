import { realpathSync, statSync } from "node:fs";
import type { FoundFile } from "../../src/scan/types.ts";
import { identityFromStats } from "../../src/scan/file-identity.ts";

/** A FoundFile for an existing path, built the way the walker builds it. */
export function foundFile(path: string): FoundFile {
  const st = statSync(path, { bigint: true });
  return { path, paths: [path], realPath: realpathSync(path), mtimeMs: Number(st.mtimeMs), identity: identityFromStats(st) };
}
