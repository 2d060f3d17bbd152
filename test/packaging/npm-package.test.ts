/**
 * The npm packages as users get them: `npm pack` the packages scripts/build-npm.ts wrote into dist/npm/,
 * serve them from a fake registry on 127.0.0.1, `npm install civitai-meta` into a fresh project, then run
 * `npx civitai-meta` with no Bun on PATH: its version, a real scan against the fake Civitai, exit codes,
 * and the refusal of a binary whose checksum differs.
 *
 * Needs the packages built (.ci/run does it: build-binary --targets … then build-npm). Without them the
 * tests are skipped with a message, unless CIVITAI_META_REQUIRE_PACKAGING=1 (CI) makes that a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { startFakeNpmRegistry, type FakeNpmRegistry } from "../helpers/fake-npm-registry.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const NPM_DIR = join(ROOT, "dist/npm");
const launcher = createRequire(import.meta.url)(join(ROOT, "packaging/npm/civitai-meta.cjs")) as {
  detectLibc(readFile: typeof readFileSync, report: unknown): string;
  platformKey(platform: string, arch: string, libc?: string): string;
};
const HOST = launcher.platformKey(
  process.platform,
  process.arch,
  process.platform === "linux" ? launcher.detectLibc(readFileSync, process.report) : undefined,
);
const REQUIRED = process.env.CIVITAI_META_REQUIRE_PACKAGING === "1";
const built = existsSync(join(NPM_DIR, "civitai-meta/package.json")) && existsSync(join(NPM_DIR, HOST, "package.json"));
const NODE = Bun.which("node");
const NPM = Bun.which("npm");
const ready = built && NODE !== null && NPM !== null;
if (!ready) console.log(`skipping npm package tests: needs node, npm and dist/npm/{civitai-meta,${HOST}} (bun scripts/build-npm.ts)`);

test("the npm packages were built for this run when CI requires them", () => {
  expect(REQUIRED && !ready ? `missing dist/npm/{civitai-meta,${HOST}}, node or npm` : "ok").toBe("ok");
});

const tmp = tmpDirs();
let registry: FakeNpmRegistry;
let civitai: FakeCivitai;
let project: string;
let env: Record<string, string>;
let npx: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<Run> {
  const proc = Bun.spawn(cmd, { cwd, env: { ...env, ...extraEnv }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const manifestOf = (dir: string) => JSON.parse(readFileSync(join(NPM_DIR, dir, "package.json"), "utf8"));

describe.skipIf(!ready)("npm install civitai-meta", () => {
  beforeAll(async () => {
    const work = tmp.make();
    // A PATH with node, npm, npx and sh (npx runs bins through sh) only: the launcher must not need Bun.
    const bin = join(work, "bin");
    mkdirSync(bin);
    for (const name of ["node", "npm", "npx", "sh"]) symlinkSync(Bun.which(name)!, join(bin, name));
    npx = join(bin, "npx");
    const tarballs = join(work, "tarballs");
    mkdirSync(tarballs);
    env = {
      PATH: bin,
      HOME: work,
      npm_config_userconfig: join(work, "npmrc"),
      npm_config_cache: join(work, "npm-cache"),
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false",
      CIVITAI_META_CACHE_DIR: join(work, "cm-cache"),
      XDG_CONFIG_HOME: join(work, "config"),
    };
    writeFileSync(env.npm_config_userconfig!, "");
    // Pack the launcher and this machine's package; the other built platforms are listed by manifest only,
    // so the test also shows npm never downloads a package whose os/cpu/libc does not fit.
    const packages = [];
    for (const dir of readdirSync(NPM_DIR, { withFileTypes: true }).filter((d) => d.isDirectory())) {
      const manifest = manifestOf(dir.name);
      if (dir.name !== "civitai-meta" && dir.name !== HOST) {
        packages.push({ manifest });
        continue;
      }
      // Its own cache: `npm pack` stores the tarball in the cache, and install would then never download it.
      const packed = await run([NPM!, "pack", "--json", "--pack-destination", tarballs], join(NPM_DIR, dir.name), {
        npm_config_cache: join(work, "pack-cache"),
      });
      expect(packed.code).toBe(0);
      packages.push({ manifest, tarball: join(tarballs, JSON.parse(packed.stdout)[0].filename) });
    }
    registry = await startFakeNpmRegistry(packages);
    env.npm_config_registry = registry.url;
    civitai = await startFakeCivitai({ fixtures: false });
    project = join(work, "project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", version: "1.0.0", private: true }));
    const installed = await run([NPM!, "install", `civitai-meta@${pkg.version}`], project);
    if (installed.code !== 0) console.error(installed.stderr);
    expect(installed.code).toBe(0);
  }, 240_000);

  afterAll(async () => {
    await registry?.stop();
    await civitai?.stop();
    tmp.cleanup();
  });

  test("installs the launcher and only the platform package that fits this machine", () => {
    expect(Bun.which("bun", { PATH: env.PATH })).toBeNull();
    const scoped = readdirSync(join(project, "node_modules/@civitai-meta"));
    expect(scoped).toEqual([HOST]);
    expect(registry.tarballRequests.sort()).toEqual([`@civitai-meta/${HOST}`, "civitai-meta"].sort());
    // Every platform package is asked for by name (npm reads os/cpu/libc from the registry) …
    expect(registry.requests).toContain(`/@civitai-meta%2f${HOST}`);
    expect(registry.requests).toContain("/@civitai-meta%2fwin32-x64");
  });

  test("npx civitai-meta --version prints the version with no Bun on PATH", async () => {
    const r = await run([npx, "civitai-meta", "--version"], project);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${pkg.version}\n`);
    expect(r.code).toBe(0);
  });

  test("a scan through the launcher hashes in the binary and identifies a file on the fake Civitai", async () => {
    const models = join(project, "models");
    mkdirSync(join(models, "loras"), { recursive: true });
    const known = "lora bytes known to the fake Civitai";
    writeFileSync(join(models, "loras/known.safetensors"), known);
    writeFileSync(join(models, "loras/mine.safetensors"), "a lora nobody published");
    const past = new Date(Date.now() - 3_600_000);
    for (const f of ["known", "mine"]) utimesSync(join(models, `loras/${f}.safetensors`), past, past);
    const version = makeVersion({ versionId: 7001, modelId: 700, sha256: createHash("sha256").update(known).digest("hex") });
    civitai.addModel(makeModel({ modelId: 700, name: "Known Lora", versions: [version] }));
    const r = await run(
      [npx, "civitai-meta", "scan", "models", "--api-url", civitai.url, "--no-fallback", "-o", "inventory.json"],
      project,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    const inv = JSON.parse(readFileSync(join(project, "inventory.json"), "utf8"));
    const byName = Object.fromEntries(inv.records.map((x: { path: string }) => [x.path.split("/").pop(), x]));
    expect(byName["known.safetensors"].status).toBe("found");
    expect(byName["known.safetensors"].civitai.modelId).toBe(700);
    expect(byName["mine.safetensors"].status).toBe("not_found");
    expect(inv.tool).toMatchObject({ name: "civitai-meta", version: pkg.version });
  });

  test("the binary's exit codes come through the launcher: 3 for --fail-on, 2 for a usage error", async () => {
    const failOn = await run(
      [npx, "civitai-meta", "scan", "models", "--api-url", civitai.url, "--no-fallback", "--fail-on", "not-found", "-q"],
      project,
    );
    expect(failOn.code).toBe(3);
    const usage = await run([npx, "civitai-meta", "scna"], project);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Unknown command "scna"');
  });

  test.skipIf(process.platform !== "linux")("T12: a file name that is not UTF-8 reaches the binary through the launcher", async () => {
    const name = Buffer.from([...Buffer.from("latin1-caf"), 0xe9, ...Buffer.from(".safetensors")]);
    // Bun writes a Buffer path's bytes as they are; the name reaches the launcher through a shell.
    writeFileSync(Buffer.concat([Buffer.from(`${project}/`), name]), "latin-1 bytes");
    // Through node_modules/.bin, as a package script or a PATH entry runs it (npx is Node too, and
    // already loses the bytes in its own argv before the launcher starts).
    const r = await run(["sh", "-c", `exec node_modules/.bin/civitai-meta hash -q "$(printf 'latin1-caf\\351.safetensors')"`], project);
    // Node decoded the name with U+FFFD, the binary got that and found no such file.
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith(createHash("sha256").update("latin-1 bytes").digest("hex"));
  });

  test("a binary changed after install is refused before it runs", async () => {
    const binary = join(project, "node_modules/@civitai-meta", HOST, "bin", HOST.startsWith("win32") ? "civitai-meta.exe" : "civitai-meta");
    appendFileSync(binary, "x");
    const r = await run([npx, "civitai-meta", "--version"], project);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`The binary in @civitai-meta/${HOST}@${pkg.version}`);
    expect(r.stderr).toContain("does not match the SHA-256 recorded when");
  });
});
