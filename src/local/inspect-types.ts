import type { FileHashes, HashAlgo } from "../scan/types.ts";
import type { LocalInfo } from "./local-types.ts";

/** What `inspect` computes for one file (local/inspect.ts) and shows (local/inspect-text.ts). */
export const INSPECT_ALGOS: HashAlgo[] = ["sha256", "autov2", "autov3"];

export interface InspectResult {
  path: string;
  size: number;
  /** Null with --no-hash. */
  hashes: FileHashes | null;
  hashError?: string;
  local: LocalInfo;
}
