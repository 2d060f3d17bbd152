/**
 * Builds standalone binaries with `bun build --compile`.
 *   bun scripts/build-binary.ts          host only -> dist/civitai-meta
 *   bun scripts/build-binary.ts --all    host + every release target, plus dist/SHA256SUMS
 * The host binary is always smoke-run: a broken compile can still write a file (style.md §4).
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import pkg from "../package.json" with { type: "json" };

const ROOT = join(import.meta.dir, "..");
const DIST = join(ROOT, "dist");
// Workers are extra entrypoints; they keep their path under src/ (see src/hash/worker-url.ts).
const ENTRYPOINTS = [join(ROOT, "src/cli.ts"), join(ROOT, "src/hash/hash-worker.ts"), join(ROOT, "src/hash/sha256-worker.ts")];

const TARGETS = [
  { name: "linux-x64", target: "bun-linux-x64" },
  { name: "linux-arm64", target: "bun-linux-arm64" },
  { name: "darwin-x64", target: "bun-darwin-x64" },
  { name: "darwin-arm64", target: "bun-darwin-arm64" },
  { name: "windows-x64", target: "bun-windows-x64", ext: ".exe" },
] as const;

async function build(outfile: string, target?: string): Promise<void> {
  const result = await Bun.build({
    entrypoints: ENTRYPOINTS,
    minify: true,
    sourcemap: "linked",
    define: { "process.env.CIVITAI_META_BUILD": JSON.stringify("binary") },
    compile: {
      outfile,
      // A user's .env or bunfig.toml must never change how the tool behaves (or leak into it).
      autoloadDotenv: false,
      autoloadBunfig: false,
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

mkdirSync(DIST, { recursive: true });
const hostBinary = join(DIST, "civitai-meta");
await build(hostBinary);
await smokeRun(hostBinary);

if (process.argv.includes("--all")) {
  const sums: string[] = [];
  for (const t of TARGETS) {
    const file = join(DIST, `civitai-meta-${t.name}${"ext" in t ? t.ext : ""}`);
    await build(file, t.target);
    const digest = createHash("sha256").update(readFileSync(file)).digest("hex");
    sums.push(`${digest}  ${basename(file)}`);
    console.log(`built ${basename(file)}`);
  }
  writeFileSync(join(DIST, "SHA256SUMS"), `${sums.join("\n")}\n`);
  console.log(`wrote ${join(DIST, "SHA256SUMS")}`);
}
