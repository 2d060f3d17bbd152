import { promises as fsp } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { defineDriver } from "unstorage";
import { writeFileAtomicAsync } from "../shared/atomic-write.ts";
import { errnoCode } from "../shared/errors.ts";
import { ENTRY_EXT } from "./meta-cache-entry.ts";

/**
 * unstorage 1.17's fs drivers write in place: readers see torn files, and a crash leaves a
 * truncated one (docs/reliability.md §3.1). This driver keeps fs-lite's reads and writes atomically.
 */

export interface AtomicFsDriverOptions {
  base: string;
}

// One path segment per key segment; the leading character rules out `.`, `..` and our temp files.
const SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/**
 * fs-lite's reads with atomic writes: each value goes to a temp file in the same folder, is
 * fsynced, then renamed over the entry, so a reader (or the next run after a crash) sees the old
 * or the new value, never a torn one. Keys map to `base/seg/seg.json` only when every segment is
 * plain; anything that could climb out of `base` throws.
 */
export const atomicFsDriver = defineDriver((opts: AtomicFsDriverOptions) => {
  if (!opts || typeof opts.base !== "string" || opts.base === "") throw new Error("atomic-fs driver: `base` is required");
  const base = resolve(opts.base);

  function pathOf(key: string): string {
    const segments = key.split(":");
    if (!segments.every((s) => SEGMENT_RE.test(s))) {
      throw new Error(`atomic-fs driver: unsafe key ${JSON.stringify(key.slice(0, 100))}`);
    }
    const path = join(base, ...segments) + ENTRY_EXT;
    if (!path.startsWith(base + sep)) throw new Error(`atomic-fs driver: key escapes the cache dir: ${JSON.stringify(key)}`);
    return path;
  }

  async function read(key: string): Promise<string | null> {
    try {
      return await fsp.readFile(pathOf(key), "utf8");
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") return null;
      throw err;
    }
  }

  async function write(key: string, value: unknown): Promise<void> {
    const path = pathOf(key);
    const data = typeof value === "string" || value instanceof Uint8Array ? value : String(value);
    await fsp.mkdir(dirname(path), { recursive: true });
    await writeFileAtomicAsync(path, data);
  }

  async function listKeys(dir: string, prefix: string): Promise<string[]> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return [];
    }
    const keys: string[] = [];
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      if (entry.isDirectory()) keys.push(...(await listKeys(join(dir, entry.name), `${prefix}${entry.name}:`)));
      else if (entry.isFile() && entry.name.endsWith(ENTRY_EXT)) keys.push(prefix + entry.name.slice(0, -ENTRY_EXT.length));
    }
    return keys;
  }

  return {
    name: "atomic-fs",
    options: opts,
    async hasItem(key) {
      return (await read(key)) !== null;
    },
    getItem: read,
    getItemRaw: read,
    setItem: write,
    setItemRaw: write,
    async removeItem(key) {
      await fsp.unlink(pathOf(key)).catch((err) => {
        if (errnoCode(err) !== "ENOENT") throw err;
      });
    },
    getKeys() {
      return listKeys(base, "");
    },
  };
});
