import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { storePath } from "../../src/hash/hash-store.ts";

/** The names of the files the hash store under `cacheDir` holds a row for (none when there is no store). */
export function hashCacheRows(cacheDir: string): string[] {
  const file = storePath(cacheDir);
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true });
  try {
    return (db.query("SELECT name FROM files ORDER BY dir, name").values() as [Uint8Array][]).map(([name]) => Buffer.from(name).toString());
  } finally {
    db.close();
  }
}
