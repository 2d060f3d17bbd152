/**
 * Every platform we ship a binary for, in one table read by the binary build, the npm packaging
 * and (by name) the GitHub Action and the release workflow. `id` names the release asset
 * (civitai-meta-<id>[.exe]); `npm` names the per-platform npm package (@civitai-meta/<npm>), spelt
 * as Node spells `${process.platform}-${process.arch}` plus "-musl", which is what the launcher looks up.
 */
import { readFileSync } from "node:fs";

export interface ReleaseTarget {
  id: string;
  bunTarget: string;
  npm: string;
  os: "linux" | "darwin" | "win32";
  cpu: "x64" | "arm64";
  /** Linux only: which C library the binary is linked against (npm's `libc` field). */
  libc?: "glibc" | "musl";
  exe?: true;
}

export const RELEASE_TARGETS: readonly ReleaseTarget[] = [
  { id: "linux-x64", bunTarget: "bun-linux-x64", npm: "linux-x64", os: "linux", cpu: "x64", libc: "glibc" },
  { id: "linux-x64-musl", bunTarget: "bun-linux-x64-musl", npm: "linux-x64-musl", os: "linux", cpu: "x64", libc: "musl" },
  { id: "linux-arm64", bunTarget: "bun-linux-arm64", npm: "linux-arm64", os: "linux", cpu: "arm64", libc: "glibc" },
  { id: "linux-arm64-musl", bunTarget: "bun-linux-arm64-musl", npm: "linux-arm64-musl", os: "linux", cpu: "arm64", libc: "musl" },
  { id: "darwin-x64", bunTarget: "bun-darwin-x64", npm: "darwin-x64", os: "darwin", cpu: "x64" },
  { id: "darwin-arm64", bunTarget: "bun-darwin-arm64", npm: "darwin-arm64", os: "darwin", cpu: "arm64" },
  { id: "windows-x64", bunTarget: "bun-windows-x64", npm: "win32-x64", os: "win32", cpu: "x64", exe: true },
];

/** npm scope of the per-platform packages; the launcher package itself is unscoped `civitai-meta`. */
export const NPM_SCOPE = "@civitai-meta";

export const assetName = (t: ReleaseTarget): string => `civitai-meta-${t.id}${t.exe ? ".exe" : ""}`;

/** The release target this machine runs natively, if we ship one for it. */
export function hostTarget(): ReleaseTarget | undefined {
  const platform = process.platform;
  const arch = process.arch;
  const musl = platform === "linux" && isMuslHost();
  return RELEASE_TARGETS.find((t) => t.os === platform && t.cpu === arch && (t.os !== "linux" || t.libc === (musl ? "musl" : "glibc")));
}

/** Alpine and other musl systems ship a musl `ldd` script; glibc systems a glibc one. */
function isMuslHost(): boolean {
  try {
    return readFileSync("/usr/bin/ldd", "latin1").includes("musl");
  } catch {
    return false;
  }
}

/** Parses `--targets a,b,c` (ids from the table, or "host"); unknown names are an error that lists the known ones. */
export function parseTargetList(spec: string): ReleaseTarget[] {
  const out: ReleaseTarget[] = [];
  for (const raw of spec.split(",")) {
    const name = raw.trim();
    if (name === "") continue;
    const target = name === "host" ? hostTarget() : RELEASE_TARGETS.find((t) => t.id === name);
    if (!target) {
      throw new Error(
        name === "host"
          ? `this machine (${process.platform}-${process.arch}) is not a release target`
          : `unknown target "${name}"; known: host, ${RELEASE_TARGETS.map((t) => t.id).join(", ")}`,
      );
    }
    if (!out.includes(target)) out.push(target);
  }
  return out;
}
