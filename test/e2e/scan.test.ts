import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { faults, makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { cliCommand, cliEnv, runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import { validateInventory } from "../helpers/schema.ts";
import { SCHEMA_VERSION } from "../../src/report/inventory-types.ts";

/** Every inventory the tests produce must satisfy the published schema. */
function inventoryOf(text: string) {
  const inv = JSON.parse(text);
  expect(validateInventory(inv)).toEqual([]);
  return inv;
}

const tmp = tmpDirs();
let civitai: FakeCivitai;
const SENTINEL = "SENTINEL-KEY-7f3a9c2e";

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});
beforeEach(() => {
  civitai.reset();
  civitai.clearData();
});

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const PAST = new Date(Date.now() - 3600_000);

/** Writes model files (aged past the racy window) and registers the ones marked known on the fake. */
function library(specs: { name: string; content: string; known?: boolean; versionId?: number; modelId?: number }[]) {
  const dir = tmp.make();
  for (const s of specs) {
    const file = join(dir, s.name);
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, s.content);
    utimesSync(file, PAST, PAST);
    if (s.known) {
      const version = makeVersion({ versionId: s.versionId!, modelId: s.modelId!, sha256: sha256(s.content), name: `v-${s.name}` });
      civitai.addModel(
        makeModel({
          modelId: s.modelId!,
          name: `Model ${s.modelId}`,
          tags: ["style", "anime"],
          creator: { username: "alice" },
          description: "<p>A <b>fine</b> model</p>",
          versions: [version],
        }),
      );
    }
  }
  return dir;
}

function baseArgs(cacheDir: string) {
  return ["--api-url", civitai.url, "--cache-dir", cacheDir];
}

describe("scan", () => {
  test("identifies files, writes a JSON inventory with the matched file's download URL", async () => {
    const dir = library([
      { name: "loras/known.safetensors", content: "known lora bytes", known: true, versionId: 501, modelId: 50 },
      { name: "checkpoints/unknown.ckpt", content: "my own checkpoint" },
    ]);
    const r = await runCli(["scan", dir, ...baseArgs(tmp.make())]);
    expect(r.code).toBe(0);
    const inv = inventoryOf(r.stdout);
    expect(inv.schemaVersion).toBe(SCHEMA_VERSION);
    expect(inv.tool.name).toBe("civitai-meta");
    expect(inv.records.map((x: { path: string }) => x.path)).toEqual([
      join(dir, "checkpoints/unknown.ckpt"),
      join(dir, "loras/known.safetensors"),
    ]);
    const found = inv.records[1];
    expect(found.status).toBe("found");
    expect(found.matchedBy).toBe("sha256");
    expect(found.host).toBe(civitai.url);
    expect(found.civitai.modelId).toBe(50);
    expect(found.civitai.versionId).toBe(501);
    expect(found.civitai.tags).toEqual(["style", "anime"]);
    expect(found.civitai.creator).toBe("alice");
    expect(found.civitai.description).toBe("A fine model");
    expect(found.civitai.matchedFile.hashes.SHA256.toLowerCase()).toBe(sha256("known lora bytes"));
    expect(found.civitai.downloadUrl).toBe(`https://civitai.com/api/download/models/501?fileId=${found.civitai.matchedFile.id}`);
    expect(inv.records[0].status).toBe("not_found");
    expect(inv.summary.byStatus).toEqual({ found: 1, gone: 0, not_found: 1, error: 0, skipped: 0 });
    expect(r.stderr).toMatch(/2 files .*1 found, 1 not found, 0 errors, 0 skipped/);
    expect(JSON.stringify(inv)).not.toContain("civitai.red");
  });

  test("1,000 distinct files: ≤ 12 lookup and ≤ 12 detail requests; the second scan sends none", async () => {
    const specs = Array.from({ length: 1000 }, (_, i) => ({
      name: `m/${String(i).padStart(4, "0")}.safetensors`,
      content: `model number ${i}`,
      known: true,
      versionId: 10_000 + i,
      modelId: 1000 + i,
    }));
    const dir = library(specs);
    const cacheDir = tmp.make();
    const first = await runCli(["scan", dir, ...baseArgs(cacheDir)], { timeoutMs: 120_000 });
    expect(first.code).toBe(0);
    const lookups = civitai.counts.versionsByHashes + civitai.counts.versionByHash;
    const details = civitai.counts.modelsByIds + civitai.counts.model;
    expect(lookups).toBeLessThanOrEqual(12);
    expect(details).toBeLessThanOrEqual(12);
    expect(inventoryOf(first.stdout).summary.byStatus.found).toBe(1000);
    civitai.reset();
    const second = await runCli(["scan", dir, ...baseArgs(cacheDir)], { timeoutMs: 120_000 });
    expect(second.code).toBe(0);
    expect(civitai.requests).toHaveLength(0);
    const a = inventoryOf(first.stdout);
    const b = inventoryOf(second.stdout);
    expect(b.records).toEqual(a.records);
    expect(b.summary.cacheHits.hashes).toBe(1000);
  }, 180_000);

  test("--offline uses caches only; without a cache entry files are skipped, never 'not found'", async () => {
    const dir = library([{ name: "a.safetensors", content: "offline model", known: true, versionId: 7, modelId: 70 }]);
    const cold = await runCli(["scan", dir, "--offline", ...baseArgs(tmp.make())]);
    expect(cold.code).toBe(0);
    expect(civitai.requests).toHaveLength(0);
    const coldInv = inventoryOf(cold.stdout);
    const rec = coldInv.records[0];
    // The file was read and hashed, so it counts in the total size even though it was not looked up.
    expect(coldInv.summary.bytes).toBe("offline model".length);
    expect(rec.status).toBe("skipped");
    expect(rec.reason).toContain("offline");
    const cacheDir = tmp.make();
    await runCli(["scan", dir, ...baseArgs(cacheDir)]);
    civitai.reset();
    const warm = await runCli(["scan", dir, "--offline", ...baseArgs(cacheDir)]);
    expect(civitai.requests).toHaveLength(0);
    expect(inventoryOf(warm.stdout).records[0].status).toBe("found");
  });

  test("--no-details skips /models; --refresh asks again despite the cache", async () => {
    const dir = library([{ name: "a.safetensors", content: "details model", known: true, versionId: 8, modelId: 80 }]);
    const cacheDir = tmp.make();
    const r = await runCli(["scan", dir, "--no-details", ...baseArgs(cacheDir)]);
    expect(civitai.counts.modelsByIds + civitai.counts.model).toBe(0);
    expect(inventoryOf(r.stdout).records[0].civitai.tags).toEqual([]);
    civitai.reset();
    await runCli(["scan", dir, "--refresh", ...baseArgs(cacheDir)]);
    expect(civitai.counts.versionsByHashes).toBe(1);
  });

  test("B8: Civitai unreachable → records are errors saying so, not 'not found'; exit 1", async () => {
    const dir = library([{ name: "a.safetensors", content: "unreachable" }]);
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
    const url = `http://127.0.0.1:${closed.port}`;
    closed.stop(true);
    const r = await runCli(["scan", dir, "--api-url", url, "--no-cache", "--timeout", "2s"], { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    const rec = inventoryOf(r.stdout).records[0];
    expect(rec.status).toBe("error");
    expect(rec.error).toMatch(/reach|connect|refused/i);
  }, 130_000);

  test("B12: model details Civitai will not give are one error naming what is missing, exit 1; never a silent pass of --fail-on update", async () => {
    const content = "details will fail";
    const dir = library([{ name: "a.safetensors", content }]);
    const v1 = makeVersion({ versionId: 91, modelId: 90, sha256: sha256(content), publishedAt: "2025-01-01T00:00:00.000Z" });
    const v2 = makeVersion({ versionId: 92, modelId: 90, sha256: sha256("the newer version"), publishedAt: "2026-01-01T00:00:00.000Z" });
    civitai.addModel(makeModel({ modelId: 90, versions: [v2, v1] }));
    civitai.setFault("modelsByIds", faults.status(503));
    const cacheDir = tmp.make();
    const r = await runCli(["scan", dir, "--no-fallback", "--fail-on", "update", ...baseArgs(cacheDir)]);
    expect(civitai.counts.modelsByIds).toBeGreaterThan(1);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model details .*1 file.*503/);
    expect(r.stderr).toMatch(/updates, licence, tags and creator/);
    const rec = inventoryOf(r.stdout).records[0];
    expect(rec.status).toBe("found");
    expect(rec.update).toBeUndefined();
    // The failure was not cached: once /models answers, the update is there and --fail-on fires.
    civitai.setFault("modelsByIds", null);
    const again = await runCli(["scan", dir, "--no-fallback", "--fail-on", "update", ...baseArgs(cacheDir)]);
    expect(again.code).toBe(3);
    expect(again.stderr).not.toMatch(/model details/);
    expect(inventoryOf(again.stdout).records[0].update.sameBaseModel.versionId).toBe(92);
  });

  test("a --fail-on match wins over failures (exit 3, not 1), but the failures are still said on stderr", async () => {
    const dir = library([{ name: "a.safetensors", content: "answered in a wrong shape" }]);
    for (const route of ["versionsByHashes", "versionIdsByHashes", "versionByHash"] as const)
      civitai.setFault(route, faults.wrongShape({ weird: true }));
    try {
      const r = await runCli(["scan", dir, "--no-fallback", "--fail-on", "error", ...baseArgs(tmp.make())]);
      expect(inventoryOf(r.stdout).records[0].status).toBe("error");
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('[error] 1 file could not be hashed or looked up; see its "error" in the inventory');
      expect(r.stderr).toContain("--fail-on: ");
    } finally {
      for (const route of ["versionsByHashes", "versionIdsByHashes", "versionByHash"] as const) civitai.setFault(route, null);
    }
  });

  test("B2: a long Retry-After stops lookups with the time to retry; what was done is still written", async () => {
    const dir = library([{ name: "a.safetensors", content: "rate limited" }]);
    civitai.setFault("*", faults.rateLimit(3600));
    const out = join(tmp.make(), "inv.json");
    const r = await runCli(["scan", dir, "-o", out, ...baseArgs(tmp.make())]);
    civitai.setFault("*", null);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rate limited by 127\.0\.0\.1:\d+; retry after \d{4}-\d\d-\d\dT/);
    const inv = inventoryOf(readFileSync(out, "utf8"));
    expect(inv.records).toHaveLength(1);
    expect(inv.records[0].status).toBe("error");
  });

  test("F6: a password in the API URL (a proxy's) is shown as *** in the JSON and Markdown inventories, never as itself", async () => {
    const dir = library([{ name: "a.safetensors", content: "f6 url", known: true, versionId: 7, modelId: 70 }]);
    const password = "url-password-5e6f7a";
    const apiUrl = civitai.url.replace("://", `://proxyuser:${password}@`);
    const outDir = tmp.make();
    for (const ext of ["json", "md"]) {
      const out = join(outDir, `inv.${ext}`);
      const r = await runCli(["scan", dir, "-o", out, "--api-url", apiUrl, "--no-fallback", "--no-cache"]);
      expect(r.stdout + r.stderr).not.toContain(password);
      expect(readFileSync(out, "utf8")).not.toContain(password);
    }
    const inv = JSON.parse(readFileSync(join(outDir, "inv.json"), "utf8"));
    expect(inv.options.apiUrl).toBe(civitai.url.replace("://", "://***@"));
    // Markdown escapes the URL's punctuation: the password's place holds `\*\*\*`.
    expect(readFileSync(join(outDir, "inv.md"), "utf8")).toContain("\\*\\*\\*\\@127.0.0.1");
    expect(inv.records[0].host).toBe(civitai.url.replace("://", "://***@"));
  });

  test("F6: a sentinel key never appears in any output, report or cache, through error paths at debug level", async () => {
    const dir = library([
      { name: "a.safetensors", content: "f6 a", known: true, versionId: 9, modelId: 90 },
      { name: "b.safetensors", content: "f6 b" },
    ]);
    const cacheDir = tmp.make();
    const outDir = tmp.make();
    const env = { CIVITAI_API_KEY: SENTINEL };
    const scenarios: [string, () => void][] = [
      ["401", () => civitai.setFault("*", faults.unauthorized())],
      ["403", () => civitai.setFault("*", faults.forbidden())],
      ["451", () => civitai.setFault("*", faults.regionBlocked())],
      ["500", () => civitai.setFault("*", faults.status(500, { error: `boom ${SENTINEL}` }))],
      ["html", () => civitai.setFault("*", faults.cloudflare())],
      ["429", () => civitai.setFault("*", faults.rateLimit(9999))],
      ["ok", () => civitai.setFault("*", null)],
    ];
    for (const [name, setup] of scenarios) {
      setup();
      const out = join(outDir, `${name}.json`);
      const r = await runCli(["scan", dir, "--verbose", "-o", out, "--timeout", "1s", ...baseArgs(cacheDir)], { env, timeoutMs: 120_000 });
      expect(r.stdout + r.stderr).not.toContain(SENTINEL);
      if (existsSync(out)) expect(readFileSync(out, "utf8")).not.toContain(SENTINEL);
    }
    civitai.setFault("*", null);
    // The key did reach the API as a Bearer header (so the check above is meaningful).
    expect(civitai.requests.some((q) => q.authorization === `Bearer ${SENTINEL}`)).toBe(true);
    const grep = Bun.spawnSync(["grep", "-r", "-l", SENTINEL, cacheDir, outDir]);
    expect(grep.stdout.toString()).toBe("");
  }, 300_000);

  test("F7: --api-key warns that flags are visible in ps and history", async () => {
    const dir = library([{ name: "a.safetensors", content: "f7" }]);
    const r = await runCli(["scan", dir, "--api-key", SENTINEL, ...baseArgs(tmp.make())]);
    expect(r.stderr).toContain("--api-key is visible");
    expect(r.stdout + r.stderr).not.toContain(SENTINEL);
  });

  test("B11: Ctrl-C during lookups aborts, keeps finished cache writes, exits 130", async () => {
    const dir = library([{ name: "a.safetensors", content: "sigint" }]);
    const cacheDir = tmp.make();
    civitai.setFault("*", faults.hang());
    const proc = Bun.spawn(cliCommand(["scan", dir, ...baseArgs(cacheDir)]), { env: cliEnv(), stdout: "pipe", stderr: "pipe" });
    const deadline = Date.now() + 20_000;
    while (civitai.requests.length === 0 && Date.now() < deadline) await Bun.sleep(20);
    expect(civitai.requests.length).toBeGreaterThan(0);
    const sent = civitai.requests.length;
    proc.kill("SIGINT");
    const code = await proc.exited;
    civitai.setFault("*", null);
    expect(code).toBe(130);
    const stderr = await new Response(proc.stderr).text();
    expect(stderr).toContain("interrupted");
    await Bun.sleep(200);
    expect(civitai.requests.length).toBe(sent);
    // The hash computed before the interrupt is in the cache: the next run reads no content.
    const again = await runCli(["hash", "--cache-dir", cacheDir, dir]);
    expect(again.stderr).toContain("1 from cache");
  });

  test("SIGTERM (a supervisor, a cancelled CI job) stops a scan as Ctrl-C does, with exit 143 (128 + 15), as shells report it", async () => {
    const dir = library([{ name: "a.safetensors", content: "sigterm" }]);
    civitai.setFault("*", faults.hang());
    const proc = Bun.spawn(cliCommand(["scan", dir, ...baseArgs(tmp.make())]), { env: cliEnv(), stdout: "pipe", stderr: "pipe" });
    const deadline = Date.now() + 20_000;
    while (civitai.requests.length === 0 && Date.now() < deadline) await Bun.sleep(20);
    proc.kill("SIGTERM");
    const code = await proc.exited;
    civitai.setFault("*", null);
    expect(code).toBe(143);
    expect(await new Response(proc.stderr).text()).toContain("interrupted (SIGTERM)");
  });

  test("config file: modelDirectories used when no path is given; a bad key names file and key", async () => {
    const dir = library([{ name: "a.safetensors", content: "config", known: true, versionId: 11, modelId: 110 }]);
    const cwd = tmp.make();
    // The host comes from the environment: a config found in the current folder may not choose it (docs/cases.md T1).
    writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ model_directories: [dir], cache: { enabled: false } }));
    const r = await runCli(["scan"], { cwd, env: { CIVITAI_API_URL: civitai.url } });
    expect(r.code).toBe(0);
    expect(inventoryOf(r.stdout).records[0].status).toBe("found");

    writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ concurrency: "lots" }));
    const bad = await runCli(["scan", dir], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(join(cwd, "civitai-meta.json"));
    expect(bad.stderr).toContain('"concurrency"');

    const keyed = join(cwd, "keyed.json");
    writeFileSync(keyed, JSON.stringify({ civitai_api_key: SENTINEL, apiUrl: civitai.url }));
    chmodSync(keyed, 0o644);
    const w = await runCli(["scan", dir, "--config", keyed, "--no-cache"], { cwd });
    expect(w.stderr).toContain("readable by others");
    expect(w.stdout + w.stderr).not.toContain(SENTINEL);
  });

  test("-o writes atomically and replaces a symlink rather than following it (docs/cases.md F9)", async () => {
    const dir = library([{ name: "a.safetensors", content: "f9" }]);
    const outDir = tmp.make();
    const victim = join(outDir, "victim.txt");
    writeFileSync(victim, "precious");
    const link = join(outDir, "inventory.json");
    symlinkSync(victim, link);
    const r = await runCli(["scan", dir, "-o", link, ...baseArgs(tmp.make())]);
    expect(r.code).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(lstatSync(link).isSymbolicLink()).toBe(false);
    expect(inventoryOf(readFileSync(link, "utf8")).records).toHaveLength(1);
    expect(readdirSync(outDir).sort()).toEqual(["inventory.json", "victim.txt"]);
    expect(statSync(link).mode & 0o777).toBe(0o644);
    void readlinkSync;
  });

  test("every hashed file gets a local section from its header alone; skipped paths get none; the summary counts hashed files", async () => {
    const dir = library([
      { name: "a.safetensors", content: "not really safetensors" },
      { name: "b.ckpt", content: "PK\u0003\u0004 not a real zip either" },
    ]);
    Bun.spawnSync(["mkfifo", join(dir, "pipe.safetensors")]);
    const r = await runCli(["scan", dir, ...baseArgs(tmp.make())]);
    const inv = inventoryOf(r.stdout);
    const byName = Object.fromEntries(inv.records.map((x: { path: string }) => [x.path.slice(dir.length + 1), x]));
    expect(byName["a.safetensors"].local.format).toBe("unknown");
    expect(byName["a.safetensors"].local.errors[0]).toMatch(/^invalid safetensors: /);
    expect(byName["a.safetensors"].local.bytesRead).toBe(16);
    expect(byName["b.ckpt"].local.format).toBe("zip");
    expect(byName["pipe.safetensors"].status).toBe("skipped");
    expect(byName["pipe.safetensors"].local).toBeUndefined();
    expect(r.stderr).toMatch(/; 2 hashed \([^)]+ read\), \d+ requests?,/);
    // A bad header is that file's problem: the scan still succeeds.
    expect(r.code).toBe(0);
  });

  test("a path that does not exist is named and nothing is written, exit 1; --allow-missing scans the others (docs/cases.md T9)", async () => {
    const dir = library([{ name: "a.safetensors", content: "missing-path" }]);
    const r = await runCli(["scan", join(dir, "nope"), dir, ...baseArgs(tmp.make())]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, "nope"));
    expect(r.stdout).toBe("");
    const allowed = await runCli(["scan", join(dir, "nope"), dir, "--allow-missing", ...baseArgs(tmp.make())]);
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toContain(join(dir, "nope"));
    expect(inventoryOf(allowed.stdout).records).toHaveLength(1);
  });
});

describe("scan: roots given more than once", () => {
  test("the same folder given twice (m, ./m/) is walked and listed once; a folder inside another stays a root of its own", async () => {
    const dir = library([
      { name: "m/a.safetensors", content: "roots a" },
      { name: "m/sub/b.safetensors", content: "roots b" },
    ]);
    const r = await runCli(["scan", "m", "./m/", "m", "m/sub", "--offline", "--no-cache", "--format", "json"], { cwd: dir });
    expect(r.code).toBe(0);
    const inv = inventoryOf(r.stdout);
    expect(inv.roots).toEqual([join(dir, "m"), join(dir, "m/sub")]);
    expect(inv.records.map((x: { path: string }) => x.path)).toEqual([join(dir, "m/a.safetensors"), join(dir, "m/sub/b.safetensors")]);
    const md = await runCli(["scan", "m", "m/", "--offline", "--no-cache", "--format", "md"], { cwd: dir });
    expect(md.stdout).toContain(`in \`${join(dir, "m")}\`.`);
  });
});

describe("lookup", () => {
  test("looks up hashes without files, SHA-256 and AutoV2", async () => {
    const sha = sha256("lookup me");
    civitai.addModel(makeModel({ modelId: 60, name: "Looked", versions: [makeVersion({ versionId: 601, modelId: 60, sha256: sha })] }));
    const r = await runCli(["lookup", sha, sha.slice(0, 10), "f".repeat(64), "--api-url", civitai.url, "--no-cache"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.map((x: { status: string }) => x.status)).toEqual(["found", "found", "not_found"]);
    expect(out[0].civitai.modelName).toBe("Looked");
    expect(out[0].civitai.downloadUrl).toMatch(/^https:\/\/civitai\.com\/api\/download\/models\/601\?fileId=\d+$/);
  });

  test("a short hash of a file that is not the version's primary one names that file and its download", async () => {
    const primarySha = sha256("short primary");
    const prunedSha = sha256("short pruned");
    const version = makeVersion({
      versionId: 651,
      modelId: 65,
      sha256: primarySha,
      files: [{ sha256: prunedSha, type: "Pruned Model", name: "pruned.safetensors", hashes: { CRC32: "0a1b2c3d" } }],
    });
    civitai.addModel(makeModel({ modelId: 65, versions: [version] }));
    const prunedId = version.files![1]!.id;
    const asked = [prunedSha.slice(0, 10), "0a1b2c3d"];
    const r = await runCli(["lookup", ...asked, "--api-url", civitai.url, "--no-fallback", "--no-cache"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { status: string; civitai: { matchedFile: { id: number } | null; downloadUrl: string | null } }[];
    for (const record of out) {
      expect(record.status).toBe("found");
      expect(record.civitai.matchedFile?.id).toBe(prunedId);
      expect(record.civitai.downloadUrl).toBe(`https://civitai.com/api/download/models/651?fileId=${prunedId}`);
    }
  });

  test("F6: a password in the API URL is shown as *** in the host of each answer", async () => {
    const sha = sha256("lookup through a proxy");
    civitai.addModel(makeModel({ modelId: 61, versions: [makeVersion({ versionId: 611, modelId: 61, sha256: sha })] }));
    const password = "lookup-password-8c9d";
    const apiUrl = civitai.url.replace("://", `://proxyuser:${password}@`);
    const r = await runCli(["lookup", sha, "e".repeat(64), "--api-url", apiUrl, "--no-fallback", "--no-cache"]);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(password);
    const out = JSON.parse(r.stdout) as { status: string; host?: string }[];
    expect(out.map((x) => [x.status, x.host])).toEqual([
      ["found", civitai.url.replace("://", "://***@")],
      ["not_found", undefined],
    ]);
  });

  test("B12: model details that cannot be fetched are an error on stderr and exit 1, not a silent record without them", async () => {
    const sha = sha256("lookup without details");
    civitai.addModel(makeModel({ modelId: 62, versions: [makeVersion({ versionId: 621, modelId: 62, sha256: sha })] }));
    civitai.setFault("modelsByIds", faults.status(503));
    const r = await runCli(["lookup", sha, "--api-url", civitai.url, "--no-fallback", "--no-cache"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model details .*1 hash.*503/);
    const out = JSON.parse(r.stdout) as { status: string }[];
    expect(out.map((x) => x.status)).toEqual(["found"]);
  });

  test("B7: a short hash whose answer lists no file with that hash is not found, not a match", async () => {
    const sha = sha256("short hash asked");
    const other = makeVersion({ versionId: 631, modelId: 63, sha256: sha256("another file"), autov3: "0123456789ab" });
    // Right shape, wrong version: none of its files has the AutoV1, AutoV2, AutoV3 or CRC32 asked.
    civitai.setFault("versionByHash", faults.status(200, other));
    const asked = [sha.slice(0, 10), "abcdef012345", sha.slice(0, 8)];
    const r = await runCli(["lookup", ...asked, "--api-url", civitai.url, "--no-fallback", "--no-cache"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { hash: string; status: string; civitai?: unknown }[];
    expect(out.map((x) => [x.hash, x.status, x.civitai])).toEqual(asked.map((h) => [h, "not_found", undefined]));
    expect(civitai.counts.versionByHash).toBe(3);
    // The matching answer still counts: the AutoV2 of the version's own file.
    civitai.setFault("versionByHash", null);
    civitai.addModel(makeModel({ modelId: 64, versions: [makeVersion({ versionId: 641, modelId: 64, sha256: sha })] }));
    const ok = await runCli(["lookup", sha.slice(0, 10), "--api-url", civitai.url, "--no-fallback", "--no-cache"]);
    expect(ok.code).toBe(0);
    expect(
      (JSON.parse(ok.stdout) as { status: string; civitai: { versionId: number } }[]).map((x) => [x.status, x.civitai.versionId]),
    ).toEqual([["found", 641]]);
  });

  test("a fallback that fails is asked once, not once per short hash, and the misses say it was not checked", async () => {
    const fallback = await startFakeCivitai({ fixtures: false });
    try {
      fallback.setFault("*", faults.forbidden());
      const r = await runCli([
        "lookup",
        "0123456789",
        "abcdef0123",
        "aaaaaaaaaaaa",
        "--api-url",
        civitai.url,
        "--fallback-url",
        fallback.url,
        "--no-cache",
      ]);
      expect(r.code).toBe(1);
      expect(fallback.counts.versionByHash).toBe(1);
      const out = JSON.parse(r.stdout) as { status: string; error?: string }[];
      expect(out.map((x) => x.status)).toEqual(["error", "error", "error"]);
      for (const x of out) expect(x.error).toStartWith(`not found on ${civitai.url}; ${fallback.url} could not be asked: `);
    } finally {
      await fallback.stop();
    }
  });

  test("F6: passwords in the API and fallback URLs are shown as *** in the error of a miss the failing fallback could not check", async () => {
    const fallback = await startFakeCivitai({ fixtures: false });
    try {
      fallback.setFault("*", faults.forbidden());
      const [primaryPw, fallbackPw] = ["primary-pw-51c3", "fallback-pw-a07e"];
      const r = await runCli([
        "lookup",
        "e".repeat(64),
        "abcdef0123",
        "--api-url",
        civitai.url.replace("://", `://u:${primaryPw}@`),
        "--fallback-url",
        fallback.url.replace("://", `://f:${fallbackPw}@`),
        "--no-cache",
      ]);
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).not.toContain(primaryPw);
      expect(r.stdout + r.stderr).not.toContain(fallbackPw);
      const out = JSON.parse(r.stdout) as { status: string; error?: string }[];
      for (const x of out) {
        expect(x.error).toStartWith(
          `not found on ${civitai.url.replace("://", "://***@")}; ${fallback.url.replace("://", "://***@")} could not be asked`,
        );
      }
    } finally {
      await fallback.stop();
    }
  });

  test("B5: a short hash answered with a version whose id is no Civitai id is an error, never a record with a made-up download URL", async () => {
    const sha = sha256("short hash, odd id");
    civitai.setFault("versionByHash", faults.status(200, makeVersion({ versionId: 1, modelId: 65, sha256: sha, extra: { id: -5.5 } })));
    const r = await runCli(["lookup", sha.slice(0, 10), "--api-url", civitai.url, "--no-fallback", "--no-cache"]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as unknown[];
    expect(out).toEqual([
      { hash: sha.slice(0, 10), status: "error", error: `unexpected answer from ${civitai.url.slice(7)} (not a model version)` },
    ]);
    expect(r.stdout).not.toContain("-5.5");
  });

  test("B12: a short hash found whose model details cannot be fetched stays found, and the run says so and exits 1", async () => {
    const sha = sha256("short hash without details");
    civitai.addModel(makeModel({ modelId: 66, versions: [makeVersion({ versionId: 661, modelId: 66, sha256: sha })] }));
    civitai.setFault("modelsByIds", faults.status(503));
    const r = await runCli(["lookup", sha.slice(0, 10), "--api-url", civitai.url, "--no-fallback", "--no-cache"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model details .*1 hash.*503/);
    const out = JSON.parse(r.stdout) as { status: string; civitai?: { versionId: number; license: unknown } }[];
    expect(out.map((x) => [x.status, x.civitai?.versionId, x.civitai?.license])).toEqual([["found", 661, null]]);
  });

  test("rejects something that is not a hash", async () => {
    const r = await runCli(["lookup", "not-a-hash", "--api-url", civitai.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("not-a-hash");
    expect(r.stderr).not.toContain("download");
  });

  test("a model or version URL, AIR or version id is refused with the command that takes it, and nothing is asked", async () => {
    const before = civitai.requests.length;
    for (const [arg, what] of [
      ["https://civitai.com/models/700?modelVersionId=7001", "version 7001"],
      ["urn:air:sdxl:lora:civitai:700", "model 700"],
      ["7001", "version 7001"],
    ] as const) {
      const r = await runCli(["lookup", arg, "--api-url", civitai.url, "--no-cache"]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(
        `It names Civitai's ${what}, which lookup does not take: civitai-meta download "${arg}" --dry-run --dest DIR`,
      );
    }
    expect(civitai.requests.length).toBe(before);
  });
});
