/**
 * What a verified download tells the hash cache (issue 14): the SHA-256 it checked against
 * Civitai's (and the AutoV3 it computed from the same bytes) for each name the file was restored
 * under, keyed exactly as a scan keys it (real path, dev, ino, size, mtime and ctime in ns), so a
 * scan right after a restore reads no file content.
 *
 * The racy rule (docs/reliability.md §3.4) never trusts an entry whose file changed within 2 s of
 * its writing: a change in the same clock tick could keep every timestamp. A file we just wrote is
 * always that recent, so the download gives it an mtime a little in the past (`settledMtime`)
 * before it takes its final name: any later write moves the mtime to "now", which differs, so the
 * entry is safe to trust at once. A verified copy takes its source's mtime, as `cp -p` does.
 *
 * Between the check and the record (links and copies of other names come in between) the file
 * could be written by someone else: a file whose mtime is not older than the moment the check
 * began (`checkedFrom`) is not recorded, and the next scan reads it.
 *
 * This file is the one place download/ meets the hash cache: when the cache's store changes, only
 * `openVerifiedHashes` changes with it.
 */
import { realpath, stat } from "node:fs/promises";
import { identityFromStats } from "../scan/file-identity.ts";
import type { FileHashes, HashAlgo } from "../scan/types.ts";
import { decodeFsName, fsPath } from "../shared/fs-path.ts";
import { HASH_HEX_LENGTH } from "./hash-algos.ts";
import { openHashCache } from "./hash-cache.ts";
import { RACY_WINDOW_MS } from "./hash-entry.ts";

/** What a download verified: the SHA-256 equal to Civitai's; the AutoV3 of the same bytes (null: none; absent: not computed). */
export interface VerifiedHashes {
  sha256: string;
  autov3?: string | null;
  /**
   * When (ms since the epoch) the check began: the file held these bytes from then on unless it was
   * written since, and a write since gives it an mtime at or after this moment. An mtime that old
   * or newer is not vouched for (the file may have changed between the check and the record).
   */
  checkedFrom: number;
}

export interface VerifiedHashRecorder {
  /** Stores `hashes` for the file at `path` as it is now; never throws (a cache that fails warns once). */
  record(path: string, hashes: VerifiedHashes): Promise<void>;
  /** Ends recording and releases the store. */
  close(): void;
}

/** The mtime a freshly written file gets before its final name: old enough that its hash entry is not racy. */
export function settledMtime(now: number = Date.now()): Date {
  return new Date(now - RACY_WINDOW_MS - 1000);
}

/** The hash cache under `cacheDir` for recording, or null with --no-cache (or a cache that cannot be written: one warning). */
export async function openVerifiedHashes(
  cacheDir: string | false,
  onWarning: (message: string) => void,
): Promise<VerifiedHashRecorder | null> {
  const { cache, warning } = await openHashCache(cacheDir, { onWarning });
  if (warning) onWarning(warning);
  if (!cache) return null;
  return {
    async record(path, hashes) {
      let realPath: string;
      let identity;
      try {
        // As the walker: the real path (bytes kept), then the bigint stat of that file.
        realPath = decodeFsName(await realpath(fsPath(path), { encoding: "buffer" }));
        identity = identityFromStats(await stat(fsPath(realPath), { bigint: true }));
      } catch {
        return; // gone or replaced meanwhile: nothing to vouch for
      }
      if (BigInt(identity.mtimeNs) >= BigInt(hashes.checkedFrom) * 1_000_000n) return; // written since the check
      const fileHashes: FileHashes = { sha256: hashes.sha256, autov2: hashes.sha256.slice(0, HASH_HEX_LENGTH.autov2) };
      const absent: HashAlgo[] = [];
      if (typeof hashes.autov3 === "string") fileHashes.autov3 = hashes.autov3;
      else if (hashes.autov3 === null) absent.push("autov3");
      cache.set(realPath, identity, fileHashes, absent);
      // Committed at once: files come one per download, minutes apart, and a restore killed later
      // keeps the record of every file it finished.
      cache.flush();
    },
    close() {
      cache.close();
    },
  };
}
