/**
 * A scan killed (SIGKILL) while it writes the record packs (scan/record-packs.ts: temp file, then
 * rename, no fsync) loses nothing but the packs it had not written yet: every pack left under a
 * pack's name is whole, the next scan's inventory is the one a scan without any pack writes, the
 * packs the killed run finished give their records, and the rest are built and kept again. What the
 * kill left at a temp name is never read as a pack, and `cache prune` removes it once it is old.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { cliCommand, cliEnv, runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import type { Inventory } from "../../src/report/inventory-types.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const FOLDERS = 100;
const PER_FOLDER = 3;
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

/** FOLDERS folders of PER_FOLDER files, each a version Civitai knows; every file and folder last changed an hour ago. */
function library(): string {
  const dir = tmp.make();
  for (let f = 0; f < FOLDERS; f++) {
    const folder = join(dir, `f${String(f).padStart(3, "0")}`);
    mkdirSync(folder);
    for (let i = 0; i < PER_FOLDER; i++) {
      const n = f * PER_FOLDER + i;
      const content = `kill test model ${n}`;
      writeFileSync(join(folder, `m${i}.safetensors`), content);
      utimesSync(join(folder, `m${i}.safetensors`), PAST, PAST);
      civitai.addModel(
        makeModel({ modelId: 1000 + n, versions: [makeVersion({ versionId: 5000 + n, modelId: 1000 + n, sha256: sha256(content) })] }),
      );
    }
  }
  return dir;
}

/** Every folder under the metadata cache made an hour old: records built from it are kept (its racy window is over). */
function ageFolders(root: string): void {
  for (const e of readdirSync(root, { withFileTypes: true })) if (e.isDirectory()) ageFolders(join(root, e.name));
  utimesSync(root, PAST, PAST);
}

/** The files under the packs folder: packs by their name, and anything else (a killed write's temp file). */
function packFiles(cacheDir: string): { packs: string[]; others: string[] } {
  const root = join(cacheDir, "records", "v1");
  const out = { packs: [] as string[], others: [] as string[] };
  let shards: string[];
  try {
    shards = readdirSync(root);
  } catch {
    return out;
  }
  for (const shard of shards) {
    for (const name of readdirSync(join(root, shard)))
      (/^[0-9a-f]{16}\.pack$/.test(name) ? out.packs : out.others).push(join(root, shard, name));
  }
  return out;
}

/** The inventory without what differs from run to run (when, how long, which cache answered). */
function stable(inv: Inventory): unknown {
  const { generatedAt: _g, ...rest } = inv;
  const { durationMs: _d, cacheHits: _c, requests: _r, ...summary } = inv.summary;
  return { ...rest, summary };
}

async function scan(dir: string, cacheDir: string): Promise<Inventory> {
  const out = join(tmp.make(), "inv.json");
  const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "-o", out]);
  expect(r.stderr).not.toMatch(/\[(error|warn)\]/);
  expect(r.code).toBe(0);
  return JSON.parse(readFileSync(out, "utf8")) as Inventory;
}

/**
 * Starts the scan that writes the packs and kills it with SIGKILL once `after` packs are on disk
 * (polled); resolves with how many packs there were when it died, or null when it finished first.
 */
async function scanKilledAfter(dir: string, cacheDir: string, after: number): Promise<number | null> {
  const proc = Bun.spawn(cliCommand(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "-o", join(tmp.make(), "inv.json")]), {
    env: cliEnv(),
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  let done = false;
  void proc.exited.then(() => (done = true));
  while (!done && packFiles(cacheDir).packs.length < after) await Bun.sleep(1);
  if (done) return null;
  proc.kill("SIGKILL");
  await proc.exited;
  return proc.signalCode === "SIGKILL" ? packFiles(cacheDir).packs.length : null;
}

describe("scan: killed while it writes the record packs", () => {
  test("every pack left is whole; the next scans give the same inventory, keep what was written and build the rest", async () => {
    const dir = library();
    // Hashes and metadata cached by a first scan (no pack given: its inventory is the reference for
    // every run after the kill); the run after the metadata is old enough writes a pack per folder.
    // It is killed part-way (tried a few times: a run may finish before the poll sees its first packs).
    let cacheDir = "";
    let reference: Inventory | undefined;
    let killedWith: number | null = null;
    for (let attempt = 0; attempt < 4 && killedWith === null; attempt++) {
      cacheDir = tmp.make();
      reference = await scan(dir, cacheDir);
      ageFolders(join(cacheDir, "meta"));
      killedWith = await scanKilledAfter(dir, cacheDir, 1);
      if (killedWith !== null && killedWith >= FOLDERS) killedWith = null;
    }
    expect(killedWith).not.toBeNull();
    expect(reference!.summary.byStatus.found).toBe(FOLDERS * PER_FOLDER);
    expect(reference!.summary.cacheHits.records).toBe(0);
    const afterKill = packFiles(cacheDir);
    expect(afterKill.packs.length).toBeGreaterThan(0);
    expect(afterKill.packs.length).toBeLessThan(FOLDERS);

    // What a killed write leaves at its temp name (made here too, so it is there whatever the kill
    // hit): half a pack, never read as one.
    const leftover = join(afterKill.packs[0]!, "..", ".civitai-meta-tmp-999999-0123456789ab");
    writeFileSync(leftover, readFileSync(afterKill.packs[0]!).subarray(0, 100));

    // The next scan: the same inventory; each pack the killed run wrote gives its folder's records whole.
    const next = await scan(dir, cacheDir);
    expect(stable(next)).toEqual(stable(reference!));
    expect(next.summary.requests).toBe(0);
    expect(next.summary.cacheHits.records ?? 0).toBeGreaterThanOrEqual(afterKill.packs.length * PER_FOLDER);
    expect((next.summary.cacheHits.records ?? 0) % PER_FOLDER).toBe(0);
    // It wrote the packs the kill cut off: the scan after it is given every record.
    expect(packFiles(cacheDir).packs.length).toBe(FOLDERS);
    const last = await scan(dir, cacheDir);
    expect(last.summary.cacheHits.records).toBe(FOLDERS * PER_FOLDER);
    expect(stable(last)).toEqual(stable(reference!));

    // `cache prune` removes temp files once they are an hour old (a live writer's are seconds old), and nothing else.
    const others = packFiles(cacheDir).others;
    expect(others.length).toBeGreaterThan(0);
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const t of others) utimesSync(t, old, old);
    const prune = await runCli(["cache", "prune", "--cache-dir", cacheDir]);
    expect(prune.code).toBe(0);
    const pruned = packFiles(cacheDir);
    expect(pruned.others).toEqual([]);
    expect(pruned.packs.length).toBe(FOLDERS);
  }, 120_000);
});
