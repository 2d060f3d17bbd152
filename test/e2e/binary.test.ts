import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { BINARY, runCli, runShell } from "../helpers/run-cli.ts";
import { ensureFreshBinary, newestInput } from "../helpers/cli-binary.ts";
import { makeModel, makeVersion, startFakeCivitai } from "../helpers/fake-civitai.ts";
import { redisAvailable, startRedis } from "../helpers/redis-server.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
// The binary is built when missing or older than its sources (about 2 s), so these tests never
// skip silently and never test yesterday's code (docs/cases.md T21).
beforeAll(() => ensureFreshBinary(), 120_000);

describe("compiled binary", () => {
  test("T21: the binary these tests run is built from the current sources (never skipped for want of a build)", () => {
    expect(existsSync(BINARY)).toBe(true);
    expect(statSync(BINARY).mtimeMs).toBeGreaterThanOrEqual(newestInput());
  });

  test("starts from another folder and prints its version", async () => {
    const r = await runCli(["--version"], { binary: true, cwd: tmp.make() });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test("ignores .env and bunfig.toml in the user's folder", async () => {
    const dir = tmp.make();
    const marker = join(dir, "preload-ran");
    writeFileSync(join(dir, "preload.ts"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "x");`);
    writeFileSync(join(dir, "bunfig.toml"), `preload = ["./preload.ts"]\n`);
    writeFileSync(join(dir, ".env"), "CIVITAI_API_URL=http://127.0.0.1:9/evil\nCIVITAI_API_KEY=from-dotenv\n");
    writeFileSync(join(dir, "m.safetensors"), "x");
    const r = await runCli(["hash", "--no-cache", "--algo", "sha256", "m.safetensors"], { binary: true, cwd: dir });
    expect(r.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    const env = await runCli(["scan", "--offline", "--no-cache", "m.safetensors"], { binary: true, cwd: dir });
    expect(env.stdout).not.toContain("127.0.0.1:9");
  });

  test("on a terminal the binary logs as the sources do, whatever NODE_ENV it was built under (here: bun test's)", async () => {
    // Bun inlines the builder's NODE_ENV unless the build fixes it: built under `bun test` the
    // binary took itself for a test run and showed consola's plain lines on a terminal.
    const env = { TEST: undefined, CI: undefined, NODE_ENV: undefined, NO_COLOR: undefined, FORCE_COLOR: undefined };
    const onTerminal = (binary: boolean) =>
      runShell(`script -qec '"$CLI_EXEC" \${CLI_ENTRY:+"$CLI_ENTRY"} scan --offline /nonexistent-civitai-meta' /dev/null`, {
        env,
        ...(binary ? { binary: true } : { source: true }),
      });
    const [fromBinary, fromSource] = await Promise.all([onTerminal(true), onTerminal(false)]);
    const firstLine = (r: { stdout: Buffer }) =>
      r.stdout
        .toString()
        .split(/\r?\n/)
        .find((l) => l.includes("nonexistent-civitai-meta"));
    expect(firstLine(fromSource)).toBeDefined();
    expect(firstLine(fromBinary)).toBe(firstLine(fromSource));
    // Off a terminal: one plain line from both.
    const piped = await runCli(["scan", "--offline", "/nonexistent-civitai-meta"], { binary: true, env });
    expect(piped.stderr.startsWith("[error] /nonexistent-civitai-meta: ")).toBe(true);
  });

  test("hashes in worker threads inside the binary, agreeing with sha256sum", async () => {
    const dir = tmp.make();
    for (let i = 0; i < 4; i++) writeFileSync(join(dir, `f${i}.ckpt`), Buffer.alloc(1024 * 1024 + i, i));
    const r = await runCli(["hash", "--no-cache", "--jobs", "2", "--algo", "sha256", dir], { binary: true, cwd: dir });
    expect(r.code).toBe(0);
    for (const line of r.stdout.trim().split("\n")) {
      const [hex, path] = line.split("  ");
      expect(Bun.spawnSync(["sha256sum", path!]).stdout.toString().split(" ")[0]).toBe(hex!);
    }
  });

  // ioredis is bundled into the binary (issue 14): a dependency that failed to bundle would only show here.
  test.skipIf(!redisAvailable())("the shared metadata cache works from the binary: a second machine asks Civitai nothing", async () => {
    const civitai = await startFakeCivitai({ fixtures: false });
    const redis = await startRedis();
    try {
      const dir = tmp.make();
      writeFileSync(join(dir, "m.ckpt"), "binary shared cache");
      const sha = new Bun.CryptoHasher("sha256").update("binary shared cache").digest("hex");
      civitai.addModel(makeModel({ modelId: 41, versions: [makeVersion({ versionId: 410, modelId: 41, sha256: sha })] }));
      const scan = () =>
        runCli(["scan", dir, "--api-url", civitai.url], {
          binary: true,
          env: { CIVITAI_META_CACHE_DIR: tmp.make(), CIVITAI_META_CACHE_URL: redis.url() },
        });
      expect((await scan()).code).toBe(0);
      civitai.reset();
      const second = await scan();
      expect(second.code).toBe(0);
      expect(civitai.requests).toHaveLength(0);
      expect(JSON.parse(second.stdout).summary.byStatus.found).toBe(1);
    } finally {
      await redis.stop();
      await civitai.stop();
    }
  });
});
