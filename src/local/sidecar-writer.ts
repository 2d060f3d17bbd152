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
import { parseSidecar, SIDECAR_MAX_BYTES, sidecarPaths } from "./sidecars.ts";
import { writeFileAtomic } from "../shared/atomic-write.ts";

type SidecarWriteStatus = "written" | "unchanged" | "refused" | "failed";

export interface SidecarWriteResult {
  path: string;
  status: SidecarWriteStatus;
  /** Why it was refused or failed; safe to print. */
  reason?: string;
}

/** The `<base>.civitai.info` path of a model file. */
function civitaiInfoPath(modelPath: string): string {
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
function civitaiInfoText(version: LeanVersion, model: LeanModel | null): string {
  return `${asciiJson(JSON.stringify(versionObject(version, model), null, 4))}\n`;
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
 * when it names the same model and version, or is a "not found" marker (`{}`, CHz skeleton) with
 * no ids; a file naming another model, an unreadable one, or anything but a regular file (a
 * symlink included) is left alone and reported as `refused`.
 */
export async function writeCivitaiInfo(modelPath: string, version: LeanVersion, model: LeanModel | null): Promise<SidecarWriteResult> {
  const path = civitaiInfoPath(modelPath);
  const text = civitaiInfoText(version, model);
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
  if (existing !== null) {
    if (existing === text) return { path, status: "unchanged" };
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
  }
  try {
    writeFileAtomic(path, text);
  } catch (err) {
    return { path, status: "failed", reason: `cannot write (${errnoCode(err) ?? errorMessage(err)})` };
  }
  return { path, status: "written" };
}
