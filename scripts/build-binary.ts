/**
 * Builds standalone binaries with `bun build --compile`.
 *   bun scripts/build-binary.ts                       host only -> dist/civitai-meta
 *   bun scripts/build-binary.ts --all                 host + every release target
 *   bun scripts/build-binary.ts --targets a,b         host + the named targets (ids from release-targets.ts, or "host")
 * Release targets land in dist/civitai-meta-<id>[.exe], listed with their SHA-256 in dist/SHA256SUMS
 * and dist/release.json (which scripts/build-npm.ts packages). Both list exactly this run's targets,
 * so a stale binary from an earlier run is never shipped.
 * The host binary is always smoke-run (a broken compile can still write a file, style.md §4), and so
 * is any release target this machine runs natively. Cross-target Bun runtimes come from the npm registry.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { readElfInfo } from "./elf-info.ts";
import { RELEASE_TARGETS, assetName, hostTarget, parseTargetList, type ReleaseTarget } from "./release-targets.ts";

const ROOT = join(import.meta.dir, "..");
const DIST = join(ROOT, "dist");
/**
 * JavaScriptCore's tier-up thresholds are scaled by this much while a run starts up: its modules'
 * set-up and the argument checks run once, and compiling them was wasted (src/shared/jit-policy.ts
 * gives the normal policy back once a run has lasted 200 ms, and in each worker). Forty `--version`
 * runs took ~15 % less CPU and forty small scans ~7 %, and ~9 % less again since the normal
 * policy waits for 200 ms; a warm scan of 100,000 files and a cold hash take the same time.
 */
const JIT_POLICY = 10;

// Workers are extra entrypoints; they keep their path under src/ (see src/hash/worker-url.ts).
const ENTRYPOINTS = [join(ROOT, "src/cli.ts"), join(ROOT, "src/hash/hash-worker.ts"), join(ROOT, "src/hash/sha256-worker.ts")];

export interface BuiltBinary {
  target: string;
  file: string;
  sha256: string;
  size: number;
}

async function build(outfile: string, target?: string): Promise<void> {
  const result = await Bun.build({
    entrypoints: ENTRYPOINTS,
    // Identifiers keep their names: code we bundle reads class names at run time (redis-errors'
    // ReplyError names itself from its constructor, and a full Redis is told from a dead one by it).
    // Bun's keepNames does not keep them in a compiled binary (1.4.5); this costs +0.3 MB, no start time.
    minify: { whitespace: true, syntax: true, identifiers: false },
    sourcemap: "linked",
    // Compiled to JavaScriptCore bytecode at build time: a command starts in ~0.05 s instead of
    // ~0.15 s (the source is parsed no more; the bytecode of ESM needs format "esm" and compile).
    bytecode: true,
    format: "esm",
    // NODE_ENV is fixed, not taken from the builder's environment: Bun inlines the builder's, and a
    // binary built under `bun test` (NODE_ENV=test) showed consola's plain lines on a terminal.
    define: { "process.env.CIVITAI_META_BUILD": JSON.stringify("binary"), "process.env.NODE_ENV": JSON.stringify("production") },
    compile: {
      outfile,
      // A user's .env or bunfig.toml must never change how the tool behaves (or leak into it).
      autoloadDotenv: false,
      autoloadBunfig: false,
      jitPolicy: JIT_POLICY,
      ...(target ? { target: target as Bun.Build.CompileTarget } : {}),
    },
  } as Parameters<typeof Bun.build>[0]);
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error(`build failed for ${basename(outfile)}`);
  }
}

async function smokeRun(binary: string): Promise<void> {
  const proc = Bun.spawn([binary, "--version"], { cwd: "/", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0 || out.trim() !== pkg.version) {
    throw new Error(`smoke run of ${binary} failed (exit ${code}): ${out.trim()} ${err.trim()}`);
  }
  console.log(`smoke run ok: ${binary} --version -> ${out.trim()}`);
}

const ELF_MACHINE = { x64: "x86_64", arm64: "aarch64" } as const;
const MUSL_LOADER = { x64: "/lib/ld-musl-x86_64.so.1", arm64: "/lib/ld-musl-aarch64.so.1" } as const;

/**
 * A Linux binary must be for the right CPU and C library: Bun falls back silently in some setups,
 * and a glibc binary in the musl package would fail only on the user's Alpine box.
 */
function checkLinuxBinary(file: string, t: ReleaseTarget): void {
  if (t.os !== "linux") return;
  const elf = readElfInfo(file);
  const problems: string[] = [];
  if (elf.machine !== ELF_MACHINE[t.cpu]) problems.push(`machine ${elf.machine}, expected ${ELF_MACHINE[t.cpu]}`);
  const muslLoader = MUSL_LOADER[t.cpu];
  if (t.libc === "musl") {
    if (elf.interpreter !== muslLoader) problems.push(`interpreter ${elf.interpreter}, expected ${muslLoader}`);
    const glibcLibs = elf.needed.filter((n) => /^(libc\.so\.6|ld-linux|libpthread\.so|libdl\.so|libm\.so\.6)/.test(n));
    if (glibcLibs.length > 0) problems.push(`needs glibc libraries ${glibcLibs.join(", ")}`);
  } else if (elf.interpreter === muslLoader) {
    problems.push("is a musl binary in a glibc slot");
  }
  if (problems.length > 0) throw new Error(`${basename(file)}: ${problems.join("; ")}`);
  console.log(`checked ${basename(file)}: ${elf.machine}, loader ${elf.interpreter}, needs ${elf.needed.join(" ")}`);
}

const sha256File = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const targetsFlag = args.indexOf("--targets");
  const targets: readonly ReleaseTarget[] = args.includes("--all")
    ? RELEASE_TARGETS
    : targetsFlag !== -1
      ? parseTargetList(args[targetsFlag + 1] ?? "")
      : [];

  mkdirSync(DIST, { recursive: true });
  const hostBinary = join(DIST, "civitai-meta");
  await build(hostBinary);
  await smokeRun(hostBinary);
  if (targets.length === 0) return;

  const native = hostTarget();
  const built: BuiltBinary[] = [];
  for (const t of targets) {
    const file = join(DIST, assetName(t));
    await build(file, t.bunTarget);
    checkLinuxBinary(file, t);
    if (t === native) await smokeRun(file);
    built.push({ target: t.id, file: basename(file), sha256: sha256File(file), size: statSync(file).size });
    console.log(`built ${basename(file)} (${(statSync(file).size / 1048576).toFixed(1)} MiB)`);
  }
  writeFileSync(join(DIST, "SHA256SUMS"), built.map((b) => `${b.sha256}  ${b.file}\n`).join(""));
  writeFileSync(join(DIST, "release.json"), `${JSON.stringify({ version: pkg.version, binaries: built }, null, 2)}\n`);
  console.log(`wrote ${join(DIST, "SHA256SUMS")} and release.json (${built.length} binaries)`);
}

await main();
