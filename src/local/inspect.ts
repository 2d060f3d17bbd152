/**
 * The `inspect` service: everything known locally about one model file (its header, the sidecars
 * beside it and, unless told not to, its hashes), with no network. Rendered by inspect-text.ts.
 */
import { stat } from "node:fs/promises";
import { AppError, errnoCode, EXIT } from "../shared/errors.ts";
import type { FoundFile } from "../scan/types.ts";
import { INSPECT_ALGOS, type InspectResult } from "./inspect-types.ts";
import { openHashCache } from "../hash/hash-cache.ts";
import { hashFiles } from "../hash/hasher.ts";
import { readLocalInfo, readSidecars } from "./local-reader.ts";
import { escapeControl } from "../shared/format.ts";
import { identityFromStats } from "../scan/file-identity.ts";
import { fsPath } from "../shared/fs-path.ts";
import { realpathKeepingBytes } from "../shared/fs-names.ts";

export interface InspectOptions {
  hash: boolean;
  cacheDir: string | false;
  onWarning: (message: string) => void;
}

/** Reads the header, the sidecars and (unless told not to) the hashes of one regular file. */
export async function inspectFile(path: string, options: InspectOptions): Promise<InspectResult> {
  let st;
  try {
    st = await stat(fsPath(path), { bigint: true });
  } catch (err) {
    const code = errnoCode(err);
    throw new AppError(`${escapeControl(path)}: ${code === "ENOENT" ? "no such file" : `cannot read (${code ?? "error"})`}`, {
      exitCode: EXIT.failure,
    });
  }
  // A FIFO or device would block or never end; a folder is for `scan`.
  if (!st.isFile())
    throw new AppError(`${escapeControl(path)}: not a regular file${st.isDirectory() ? " (use scan for folders)" : ""}`, {
      exitCode: EXIT.failure,
    });
  const size = Number(st.size);

  const local = await readLocalInfo(path, size);
  const side = await readSidecars(path);
  for (const w of side.warnings) options.onWarning(w);
  if (side.sidecars.length > 0) local.sidecars = side.sidecars;

  const result: InspectResult = { path, size, hashes: null, local };
  if (options.hash) {
    const { cache, warning } = await openHashCache(options.cacheDir, { onWarning: options.onWarning });
    if (warning) options.onWarning(warning);
    const file: FoundFile = {
      path,
      paths: [path],
      // The hash cache is keyed on the real path, as the walker does.
      realPath: await realpathKeepingBytes(path).catch(() => path),
      identity: identityFromStats(st),
      mtimeMs: Number(st.mtimeNs / 1000n) / 1000,
    };
    const [hashed] = await hashFiles([file], { algos: INSPECT_ALGOS, jobs: 1, cache });
    if (hashed?.error) result.hashError = hashed.error;
    else result.hashes = hashed?.hashes ?? {};
  }
  return result;
}
