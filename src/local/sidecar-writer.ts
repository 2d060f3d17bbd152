/**
 * `scan --write-sidecars`: writes `<base>.civitai.info` beside a found model, the file the A1111 /
 * Forge Civitai Helper extensions read (docs/sidecars.md §2): the model-version object in by-hash's
 * shape (rebuilt from the lean form we keep), indented by 4 like CH's `json.dumps(indent=4)`, with
 * the model's details merged into `model` and `creator` as CHz does. Opt-in: nothing is written into model folders
 * without the flag. Atomic (temp file + rename), and it never replaces a sidecar that holds
 * another model: a refetch that overwrote another model's info is what CHz guards against too.
 */
import { lstat, readFile } from "node:fs/promises";
import { basenamePath, fsPath } from "../shared/fs-path.ts";
import type { LeanModel, LeanVersion } from "../civitai/lean.ts";
import { versionObject } from "../civitai/version-object.ts";
import { errnoCode, errorMessage } from "../shared/errors.ts";
import { isPlainObject } from "../shared/json-guard.ts";
import { parseSidecar, parseSidecarJson, SIDECAR_MAX_BYTES, sidecarPaths } from "./sidecars.ts";
import { writeFileAtomic } from "../shared/atomic-write.ts";

type SidecarWriteStatus = "written" | "unchanged" | "refused" | "failed";

export interface SidecarWriteResult {
  path: string;
  status: SidecarWriteStatus;
  /** Why it was refused or failed; safe to print. */
  reason?: string;
}

/** The `<base>.civitai.info` path of a model file. */
export function civitaiInfoPath(modelPath: string): string {
  const entry = sidecarPaths(modelPath).find((p) => p.kind === "civitai-info");
  if (!entry) throw new Error("sidecarPaths lists no civitai-info path");
  return entry.path;
}

/**
 * The `.civitai.info` text for one version: the by-hash object as the lean form keeps it
 * (civitai/version-object.ts), plus (when details were fetched) the model's description, tags and
 * license flags in `model` and its `creator`, which Civitai Helper shows and by-hash alone does
 * not carry.
 */
function civitaiInfoText(version: LeanVersion, model: LeanModel | null, existing: Record<string, unknown> | null): string {
  const ours = versionObject(version, model);
  return `${asciiJson(JSON.stringify(existing ? keepingExisting(ours, existing) : ours, null, 4))}\n`;
}

/** Keys we may leave out when we have no value: an old value kept for them would be stale. */
const DROPPED_WHEN_ABSENT = new Set(["earlyAccessDeadline", "earlyAccessEndsAt", "skeleton_file"]);

/**
 * Our version object over the file already there for the same version: what we do not write is
 * kept, as CHz keeps it on a refetch (its `extensions` block, `stats`, the images' generation
 * `meta` and the `local_file` of the examples it downloaded, the model's fields we did not fetch).
 * Its images stay in their order, ours merged into the one with the same URL, new ones after.
 */
function keepingExisting(ours: Record<string, unknown>, existing: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...ours };
  for (const [key, value] of Object.entries(existing)) if (!(key in out) && !DROPPED_WHEN_ABSENT.has(key)) out[key] = value;
  const model = existing.model;
  if (isPlainObject(model) && isPlainObject(ours.model)) {
    const merged: Record<string, unknown> = { ...ours.model };
    for (const [key, value] of Object.entries(model)) if (!(key in merged) && key !== "mode") merged[key] = value;
    out.model = merged;
  }
  const theirs = existing.images;
  if (Array.isArray(theirs) && Array.isArray(ours.images)) {
    const mine = ours.images as Record<string, unknown>[];
    const used = new Set<Record<string, unknown>>();
    const images = theirs.map((img: unknown) => {
      const same = isPlainObject(img) ? mine.find((m) => m.url === img.url) : undefined;
      if (!same || !isPlainObject(img)) return img;
      used.add(same);
      return { ...img, ...same };
    });
    out.images = [...images, ...mine.filter((m) => !used.has(m))];
  }
  return out;
}

/**
 * JSON text with every character past `~` written as `\uXXXX` (lower-case hex, astral characters as
 * their surrogate pair), as Python's `json.dumps` does by default. CH and CHz read `.civitai.info`
 * with `open(path)`, in the locale's encoding (cp1252, cp932, … on Windows): raw UTF-8 reads there
 * as mojibake or fails as "not json". Outside strings JSON text is ASCII already.
 */
function asciiJson(json: string): string {
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Writes (or refreshes) `<base>.civitai.info` for `modelPath`. An existing file is replaced only
 * when it names the same model and version (keeping what it holds that we do not write), or is a
 * "not found" marker (`{}`, CHz skeleton) with no ids; a file naming another model, an unreadable one, or anything but a regular file (a
 * symlink included) is left alone and reported as `refused`.
 */
export async function writeCivitaiInfo(modelPath: string, version: LeanVersion, model: LeanModel | null): Promise<SidecarWriteResult> {
  const path = civitaiInfoPath(modelPath);
  let existing: string | null = null;
  try {
    const st = await lstat(fsPath(path));
    if (!st.isFile()) return { path, status: "refused", reason: "exists and is not a regular file" };
    if (st.size > SIDECAR_MAX_BYTES) return { path, status: "refused", reason: "exists and is too large to check" };
    existing = await readFile(fsPath(path), "utf8");
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") {
      return {
        path,
        status: "failed",
        reason: `cannot read the existing file (${errnoCode(err) ?? errorMessage(err)})`,
      };
    }
  }
  let kept: Record<string, unknown> | null = null;
  if (existing !== null) {
    const info = parseSidecar("civitai-info", basenamePath(path), existing);
    if (info.status === "invalid")
      return { path, status: "refused", reason: `exists and cannot be read as a sidecar (${info.error ?? "invalid"})` };
    const hasIds = info.modelId !== null || info.versionId !== null;
    if (
      hasIds &&
      (info.versionId !== version.id || (info.modelId !== null && version.modelId !== null && info.modelId !== version.modelId))
    ) {
      return { path, status: "refused", reason: `holds another model (model ${info.modelId ?? "?"}, version ${info.versionId ?? "?"})` };
    }
    // The same version: what it holds that we do not write is kept. A not-found marker is replaced whole.
    const parsed = hasIds ? parseSidecarJson(existing) : null;
    if (parsed?.ok) kept = parsed.value;
  }
  const text = civitaiInfoText(version, model, kept);
  if (existing === text) return { path, status: "unchanged" };
  try {
    writeFileAtomic(path, text);
  } catch (err) {
    return { path, status: "failed", reason: `cannot write (${errnoCode(err) ?? errorMessage(err)})` };
  }
  return { path, status: "written" };
}
