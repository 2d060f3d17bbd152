/**
 * The metadata cache through the CLI (issue 11): format 3 on disk after a scan, a second scan
 * served from it, and a read-only cache location (docs/cases.md C5).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

const PAST = new Date(Date.now() - 3600_000);
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

let nextId = 81;

/** Two files: one Civitai knows (a model of its own), one it does not. */
function library(): string {
  const id = nextId++;
  const dir = tmp.make();
  for (const name of ["known.ckpt", "unknown.ckpt"]) {
    writeFileSync(join(dir, name), `content of ${name} ${dir}`);
    utimesSync(join(dir, name), PAST, PAST);
  }
  const known = sha256(`content of known.ckpt ${dir}`);
  civitai.addModel(makeModel({ modelId: id, name: "Known", versions: [makeVersion({ versionId: id * 10, modelId: id, sha256: known })] }));
  return dir;
}

function files(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.endsWith(".json"));
}

describe("scan and the metadata cache", () => {
  test("answers are stored lean and sharded, and the next scan sends nothing", async () => {
    const dir = library();
    const cacheDir = tmp.make();
    civitai.reset();
    const first = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir]);
    expect(first.code).toBe(0);
    // One bulk POST, one /models; no GET by SHA-256 for the unknown file.
    expect(civitai.counts).toMatchObject({ versionsByHashes: 1, modelsByIds: 1, versionByHash: 0, versionIdsByHashes: 0 });
    const meta = files(join(cacheDir, "meta"));
    expect(meta.every((f) => f.startsWith(`v3/http-127.0.0.1-${civitai.port}/none/`))).toBe(true);
    // model 81 in shard 51 (its low byte); each SHA-256 in the shard of its first two digits.
    expect(meta.filter((f) => f.includes("/model/"))).toEqual([`v3/http-127.0.0.1-${civitai.port}/none/model/51/81.json`]);
    for (const path of meta.filter((f) => f.includes("/version/")))
      expect(path).toMatch(/\/version\/sha256\/([0-9a-f]{2})\/\1[0-9a-f]{62}\.json$/);
    const entries = meta.map((f) => JSON.parse(readFileSync(join(cacheDir, "meta", f), "utf8")));
    expect(entries.map((e) => e.kind).sort()).toEqual(["found", "found", "not_found"]);
    const text = readFileSync(
      join(
        cacheDir,
        "meta",
        meta.find((f) => f.includes("model/"))!,
      ),
      "utf8",
    );
    expect(text).toContain('"description":"A test model."'); // text, not HTML
    expect(text).not.toContain("<p>");

    civitai.reset();
    const second = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir]);
    expect(second.code).toBe(0);
    expect(civitai.requests).toHaveLength(0);
    // The same records from the cache as from the answers.
    expect(JSON.parse(second.stdout).records).toEqual(JSON.parse(first.stdout).records);
    expect(JSON.parse(second.stdout).summary.cacheHits.metadata).toBe(3);
  });

  test("C1: an entry that is a FIFO or far too large is a miss: the scan neither hangs nor reads it, asks again and replaces it", async () => {
    const dir = library();
    const cacheDir = tmp.make();
    civitai.reset();
    expect((await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir])).code).toBe(0);
    const meta = files(join(cacheDir, "meta")).map((f) => join(cacheDir, "meta", f));
    const model = meta.find((f) => f.includes("/model/"))!;
    const found = meta.find((f) => f.includes("/version/") && JSON.parse(readFileSync(f, "utf8")).kind === "found")!;
    // A FIFO once made every read of the cache wait for a writer: a scan that Ctrl-C could not stop.
    rmSync(found);
    expect(Bun.spawnSync(["mkfifo", found]).exitCode).toBe(0);
    // A sparse 64 MiB "entry" (a disk error, or someone else's file): not read whole.
    rmSync(model);
    writeFileSync(model, "");
    Bun.spawnSync(["truncate", "-s", "64M", model]);
    civitai.reset();
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).summary.byStatus).toMatchObject({ found: 1, not_found: 1 });
    expect(civitai.counts).toMatchObject({ versionsByHashes: 1, modelsByIds: 1 });
    // Written again as regular entries, in place of the FIFO and the big file.
    expect(lstatSync(found).isFile()).toBe(true);
    expect(JSON.parse(readFileSync(found, "utf8")).kind).toBe("found");
    expect(JSON.parse(readFileSync(model, "utf8")).kind).toBe("found");
  });

  test("C5: a read-only cache location: the scan completes and says once that metadata is not cached", async () => {
    const dir = library();
    const mnt = tmp.make();
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mnt]);
    if (mount.exitCode !== 0) {
      console.log(`skipping C5 e2e: cannot mount a read-only tmpfs (${mount.stderr.toString().trim()})`);
      return;
    }
    try {
      const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", mnt]);
      expect(r.code).toBe(0);
      const inventory = JSON.parse(r.stdout);
      expect(inventory.summary.byStatus).toMatchObject({ found: 1, not_found: 1 });
      const warnings = r.stderr.split("\n").filter((l) => l.includes("metadata cache not written"));
      expect(warnings).toHaveLength(1);
      // In words, naming the place, as the hash cache's warning does.
      expect(warnings[0]).toBe(`[warn] metadata cache not written: ${join(mnt, "meta")}: read-only file system (EROFS)`);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });
});
