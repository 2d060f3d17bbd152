/**
 * Opens a saved inventory for `report` and `diff` without reading it into memory: a regular file
 * is read where it is, with positioned reads, as the streamed reader asks (inventory-read.ts);
 * only a pipe (stdin, a FIFO) is read whole, since it cannot be read twice. The file is held open,
 * so a scan that replaces it meanwhile (temp file + rename) does not change what is read.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { AppError, describeErrno } from "../shared/errors.ts";
import { escapeControl } from "../shared/format.ts";
import { fsPath } from "../shared/fs-path.ts";
import { bufferSource, decodeUtf8, type ByteSource } from "./json-stream.ts";
import { readInventorySource, type InventorySource } from "./inventory-read.ts";

/**
 * A file read with positioned reads into two buffers reused for the whole run, one for `read`'s
 * windows and one for `text`'s ranges: a new buffer per read (twice per record, over 100,000
 * records) is memory the engine frees late, and it showed as the peak (issue 11, target 2).
 */
function fdSource(fd: number, size: number): ByteSource {
  const pools = { window: Buffer.allocUnsafe(0), text: Buffer.allocUnsafe(0) };
  const into = (pool: keyof typeof pools, pos: number, length: number): Uint8Array => {
    const n = Math.max(0, Math.min(length, size - pos));
    if (pools[pool].length < n) pools[pool] = Buffer.allocUnsafe(Math.max(n, 64 * 1024));
    const buf = pools[pool];
    let off = 0;
    while (off < n) {
      const got = readSync(fd, buf, off, n - off, pos + off);
      if (got === 0) break; // the file shrank under us: what is left reads as cut short
      off += got;
    }
    return buf.subarray(0, off);
  };
  return {
    size,
    read: (pos, length) => into("window", pos, length),
    text: (start, end) => decodeUtf8(into("text", start, end - start)),
  };
}

export interface OpenedInventory {
  source: InventorySource;
  close(): void;
}

/**
 * The inventory at `path` (`-`: stdin), checked (inventory-read.ts). Throws one AppError naming
 * the file when it cannot be read, or an InventoryReadError when it is not a usable inventory.
 */
export function openInventory(path: string): OpenedInventory {
  const label = escapeControl(path === "-" ? "stdin" : path);
  let fd: number | undefined;
  try {
    fd = path === "-" ? 0 : openSync(fsPath(path), "r");
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error("EISDIR"), { code: "EISDIR" });
    const bytes = stat.isFile() ? fdSource(fd, stat.size) : bufferSource(readFileSync(fd));
    const owned = path === "-" ? undefined : fd;
    const source = readInventorySource(bytes, label);
    return { source, close: () => owned !== undefined && closeSync(owned) };
  } catch (error) {
    if (fd !== undefined && fd !== 0) closeSync(fd);
    if (error instanceof AppError) throw error;
    throw new AppError(`Cannot read ${label}: ${describeErrno(error)}. Give the path of a JSON inventory written by "civitai-meta scan".`);
  }
}
