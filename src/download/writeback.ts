/**
 * Starts writing a file range back to disk without waiting for it (Linux sync_file_range with
 * SYNC_FILE_RANGE_WRITE). A download is fsync'd before it gets its final name; if the kernel has
 * been writing it back all along, that fsync has almost nothing left to do. (An fdatasync every
 * few hundred MiB was tried first: it made each write wait on the writeback instead.)
 * Elsewhere, or if libc cannot be loaded, this does nothing and the final fsync does all the work.
 */
type SyncFileRange = (fd: number, offset: bigint, nbytes: bigint, flags: number) => number;

const SYNC_FILE_RANGE_WRITE = 2;
let syncFileRange: SyncFileRange | null | undefined;

function load(): SyncFileRange | null {
  if (process.platform !== "linux") return null;
  try {
    // Lazy: bun:ffi is only touched on Linux, the first time a download writes.
    const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    const lib = dlopen("libc.so.6", {
      sync_file_range: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.u32], returns: FFIType.i32 },
    });
    return lib.symbols.sync_file_range as unknown as SyncFileRange;
  } catch {
    return null;
  }
}

export function startWriteback(fd: number, offset: number, length: number): void {
  if (syncFileRange === undefined) syncFileRange = load();
  if (syncFileRange === null || length <= 0) return;
  // Best effort: a failure here only means the final fsync does the work.
  syncFileRange(fd, BigInt(offset), BigInt(length), SYNC_FILE_RANGE_WRITE);
}
