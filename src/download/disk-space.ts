import { statfs } from "node:fs/promises";
import { fsPath } from "../shared/fs-path.ts";

/** Bytes an unprivileged writer may still use on the filesystem holding `dir`, and its size; null when unknown. */
export async function diskSpace(dir: string): Promise<{ free: number; total: number } | null> {
  try {
    const s = await statfs(fsPath(dir));
    return { free: Number(s.bavail) * Number(s.bsize), total: Number(s.blocks) * Number(s.bsize) };
  } catch {
    return null;
  }
}

/** Bytes an unprivileged writer may still use on the filesystem holding `dir`; null when unknown. */
export async function freeBytes(dir: string): Promise<number | null> {
  return (await diskSpace(dir))?.free ?? null;
}
