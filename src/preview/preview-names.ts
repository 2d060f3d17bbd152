/**
 * The preview file names other tools read beside a model, and the one `scan --write-previews`
 * writes (docs/sidecars.md). Pure.
 * - A1111 / Forge extra networks read `<base>.<ext>` and `<base>.preview.<ext>` for png, jpg,
 *   jpeg, webp, gif (`<base>.png` first: a user-made image wins); Civitai Helper writes
 *   `<base>.preview.png`.
 * - ComfyUI-Lora-Manager reads `.webp`, `.preview.*`, `.png`, `.jpg`, `.mp4`, `.gif`, `.webm`,
 *   `.avif`, `.jxl`; Stability Matrix writes and reads `<base>.preview.<ext>`.
 * We write `<base>.preview.<ext>`, the name all of them read, with the extension of the bytes;
 * any existing file with one of these names counts as the user's preview and is never replaced.
 */
import { modelBasePath } from "../local/sidecars.ts";
import { basenamePath } from "../shared/fs-path.ts";

/** Extensions a preview beside a model may have, in any tool we know (lower case). */
const PREVIEW_EXTENSIONS: readonly string[] = ["png", "jpg", "jpeg", "webp", "gif", "avif", "jxl", "mp4", "webm"];

/** `<dir>/<base>.preview.<ext>` for a model file. */
export function previewPath(modelPath: string, ext: string): string {
  return `${modelBasePath(modelPath)}.preview.${ext}`;
}

/**
 * The first name in `entries` (a folder's file names) that is a preview of `modelPath`, compared
 * case-insensitively (Windows and macOS folders are, and tools match loosely); null when none.
 */
export function existingPreview(modelPath: string, entries: Iterable<string>): string | null {
  const stem = basenamePath(modelBasePath(modelPath)).toLowerCase();
  const wanted = new Set<string>();
  for (const ext of PREVIEW_EXTENSIONS) {
    wanted.add(`${stem}.${ext}`);
    wanted.add(`${stem}.preview.${ext}`);
  }
  for (const name of entries) if (wanted.has(name.toLowerCase())) return name;
  return null;
}
