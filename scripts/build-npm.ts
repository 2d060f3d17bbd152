/**
 * Builds the npm packages into dist/npm/ from the binaries scripts/build-binary.ts made:
 *   dist/npm/civitai-meta/      the `civitai-meta` package: a Node launcher (packaging/npm/civitai-meta.cjs),
 *                               binaries.json (each platform's package and SHA-256) and optionalDependencies
 *                               on every platform package, so npm installs only the one for the machine
 *   dist/npm/<platform>/        @civitai-meta/<platform>: the binary alone, with os/cpu/libc fields
 *
 *   bun scripts/build-npm.ts                 package the binaries listed in dist/release.json
 *   bun scripts/build-npm.ts --require-all   refuse unless every release target is there (the release does this)
 *   bun scripts/build-npm.ts --pack          also `npm pack` each one into dist/npm/*.tgz and print the sizes
 *
 * A partial build (CI packages the host's binaries only) still lists every platform package, with no
 * checksum for the missing ones: the launcher refuses to run a binary it cannot verify.
 */
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { NPM_SCOPE, RELEASE_TARGETS, type ReleaseTarget } from "./release-targets.ts";

const ROOT = join(import.meta.dir, "..");
const DIST = join(ROOT, "dist");
const OUT = join(DIST, "npm");
const TEMPLATES = join(ROOT, "packaging/npm");

interface ReleaseManifest {
  version: string;
  binaries: { target: string; file: string; sha256: string; size: number }[];
}

const OS_NAMES = { linux: "Linux", darwin: "macOS", win32: "Windows" } as const;
const describe = (t: ReleaseTarget): string => `${OS_NAMES[t.os]} ${t.cpu}${t.libc ? ` (${t.libc})` : ""}`;
const packageName = (t: ReleaseTarget): string => `${NPM_SCOPE}/${t.npm}`;
const binaryPath = (t: ReleaseTarget): string => `bin/civitai-meta${t.exe ? ".exe" : ""}`;

/** Fields copied from the repository's package.json into every published one. */
function commonFields(): Record<string, unknown> {
  const root = pkg as Record<string, unknown>;
  const out: Record<string, unknown> = { version: pkg.version, license: pkg.license };
  for (const key of ["author", "homepage", "repository", "bugs"]) if (root[key] !== undefined) out[key] = root[key];
  return out;
}

function readManifest(): ReleaseManifest {
  const file = join(DIST, "release.json");
  if (!existsSync(file)) throw new Error(`${file} is missing: run bun scripts/build-binary.ts --all (or --targets …) first`);
  const manifest = JSON.parse(readFileSync(file, "utf8")) as ReleaseManifest;
  if (manifest.version !== pkg.version) {
    throw new Error(`dist/release.json is for version ${manifest.version}, package.json says ${pkg.version}: rebuild the binaries`);
  }
  for (const b of manifest.binaries) {
    const actual = createHash("sha256")
      .update(readFileSync(join(DIST, b.file)))
      .digest("hex");
    if (actual !== b.sha256) throw new Error(`dist/${b.file} changed since it was built (SHA-256 differs): rebuild the binaries`);
  }
  return manifest;
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function buildPlatformPackage(t: ReleaseTarget, file: string): string {
  const dir = join(OUT, t.npm);
  mkdirSync(join(dir, "bin"), { recursive: true });
  const dest = join(dir, binaryPath(t));
  copyFileSync(join(DIST, file), dest);
  chmodSync(dest, 0o755);
  writeJson(join(dir, "package.json"), {
    name: packageName(t),
    ...commonFields(),
    description: `The civitai-meta binary for ${describe(t)}. Install "civitai-meta" instead: it picks this package when it fits.`,
    os: [t.os],
    cpu: [t.cpu],
    ...(t.libc ? { libc: [t.libc] } : {}),
    files: ["bin/"],
    // Yarn PnP would otherwise keep the binary inside a zip archive, where it cannot be executed.
    preferUnplugged: true,
  });
  writeFileSync(
    join(dir, "README.md"),
    `# ${packageName(t)}\n\nThe prebuilt [civitai-meta](https://www.npmjs.com/package/civitai-meta) binary for ${describe(t)}.\n` +
      `Install \`civitai-meta\`, which depends on this package for that platform and runs it after checking its SHA-256.\n`,
  );
  return dir;
}

function buildLauncherPackage(built: Map<ReleaseTarget, string>): string {
  const dir = join(OUT, "civitai-meta");
  mkdirSync(join(dir, "bin"), { recursive: true });
  const launcher = join(dir, "bin/civitai-meta.cjs");
  copyFileSync(join(TEMPLATES, "civitai-meta.cjs"), launcher);
  chmodSync(launcher, 0o755);
  const platforms: Record<string, { package: string; bin: string; sha256: string | null }> = {};
  for (const t of RELEASE_TARGETS) platforms[t.npm] = { package: packageName(t), bin: binaryPath(t), sha256: built.get(t) ?? null };
  writeJson(join(dir, "binaries.json"), { version: pkg.version, platforms });
  writeJson(join(dir, "package.json"), {
    name: "civitai-meta",
    ...commonFields(),
    description: pkg.description,
    keywords: ["civitai", "stable-diffusion", "lora", "safetensors", "comfyui", "inventory", "sha256", "cli"],
    bin: { "civitai-meta": "bin/civitai-meta.cjs" },
    files: ["bin/", "binaries.json"],
    engines: { node: ">=16" },
    optionalDependencies: Object.fromEntries(RELEASE_TARGETS.map((t) => [packageName(t), pkg.version])),
  });
  copyFileSync(join(TEMPLATES, "README.md"), join(dir, "README.md"));
  return dir;
}

function npmPack(dir: string): { file: string; size: number; unpacked: number } {
  const proc = Bun.spawnSync(["npm", "pack", "--json", "--pack-destination", OUT], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) throw new Error(`npm pack ${dir} failed: ${proc.stderr.toString()}`);
  const [info] = JSON.parse(proc.stdout.toString()) as { filename: string; size: number; unpackedSize: number }[];
  return { file: info!.filename, size: info!.size, unpacked: info!.unpackedSize };
}

const MiB = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

function main(): void {
  const args = new Set(process.argv.slice(2));
  const manifest = readManifest();
  const built = new Map<ReleaseTarget, string>();
  rmSync(OUT, { recursive: true, force: true });
  const dirs: string[] = [];
  for (const b of manifest.binaries) {
    const t = RELEASE_TARGETS.find((x) => x.id === b.target);
    if (!t) throw new Error(`dist/release.json names an unknown target ${b.target}`);
    built.set(t, b.sha256);
    dirs.push(buildPlatformPackage(t, b.file));
  }
  const missing = RELEASE_TARGETS.filter((t) => !built.has(t)).map((t) => t.id);
  if (missing.length > 0 && args.has("--require-all")) {
    throw new Error(`missing binaries for ${missing.join(", ")}: run bun scripts/build-binary.ts --all first`);
  }
  dirs.unshift(buildLauncherPackage(built));
  console.log(`wrote ${dirs.length} packages to ${OUT}${missing.length > 0 ? ` (partial: no binary for ${missing.join(", ")})` : ""}`);
  if (!args.has("--pack")) return;
  for (const dir of dirs) {
    const packed = npmPack(dir);
    console.log(`${packed.file}: ${MiB(packed.size)} packed, ${MiB(packed.unpacked)} unpacked`);
  }
}

main();
