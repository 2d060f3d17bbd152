/** Hash algorithms we can compute from one read of a file (docs/civitai-api.md §5). */
export const HASH_ALGOS = ["sha256", "autov1", "autov2", "autov3", "crc32"] as const;
export type HashAlgo = (typeof HASH_ALGOS)[number];

/** Lower-case hex, as `sha256sum` prints; Civitai compares case-insensitively. */
export type FileHashes = Partial<Record<HashAlgo, string>>;

/** The identity of a file's contents on disk: a cache hit needs every field equal (docs/reliability.md §3.4). */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
}

/** A regular file found by the walker. One entry per (dev, ino): hard and soft links share it. */
export interface FoundFile {
  /** The first of `paths` in byte order, absolute. */
  path: string;
  /** Every path that reached the same (dev, ino), sorted, `path` included. */
  paths: string[];
  /** Resolved real path, used as the hash-cache key. */
  realPath: string;
  identity: FileIdentity;
  mtimeMs: number;
}

export interface SkippedPath {
  path: string;
  reason: string;
}

export interface WalkResult {
  files: FoundFile[];
  skipped: SkippedPath[];
  /** Paths given as arguments that do not exist. */
  missing: string[];
  /** Non-fatal problems (unreadable folders, …), one line each. */
  warnings: string[];
  /** Things worth a debug line but not a warning (a folder reached twice through a link, …). */
  notes?: string[];
}

export interface HashResult {
  file: FoundFile;
  hashes: FileHashes;
  /** True when every requested hash came from the cache without reading the file. */
  cached: boolean;
  error?: string;
}
