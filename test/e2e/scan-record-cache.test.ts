/**
 * Finished records kept between scans (scan/record-cache.ts; issue 11, target 1: "nothing about an
 * unchanged file is recomputed"). Through the binary against the fake Civitai: a warm scan gives
 * the records an earlier one built, and its inventory reads the same byte for byte as one built
 * from the metadata cache; whatever a record was made from changing (the file, a link, a sidecar,
 * a metadata entry, the options, the clock, the cache itself) makes it built again; a damaged pack
 * is a miss, never a wrong record.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { validateInventory } from "../helpers/schema.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import type { Inventory } from "../../src/report/inventory-types.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex");
const EARLY_END = new Date(Date.now() + 3.5 * 86_400_000).toISOString();

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

const CONTENT = {
  style: "style lora bytes",
  poseV1: "pose lora v1 bytes",
  poseV2: "pose lora v2 bytes",
  early: "a file whose update is in early access",
  mine: "my own lora, unknown to Civitai",
};

function catalog(poseName = "Pose"): void {
  civitai.clearData();
  const v = (versionId: number, modelId: number, content: string | null, extra: Parameters<typeof makeVersion>[0]["extra"] = {}) =>
    makeVersion({
      versionId,
      modelId,
      sha256: sha256(content ?? `elsewhere ${versionId}`),
      name: `v${versionId}`,
      baseModel: "SDXL 1.0",
      extra,
    });
  civitai.addModel(
    makeModel({ modelId: 10, name: "Style", versions: [v(101, 10, CONTENT.style)] }),
    makeModel({ modelId: 20, name: poseName, versions: [v(202, 20, CONTENT.poseV2), v(201, 20, CONTENT.poseV1)] }),
    makeModel({
      modelId: 30,
      name: "Early",
      versions: [
        v(302, 30, null, { availability: "EarlyAccess", earlyAccessDeadline: EARLY_END, publishedAt: "2026-06-01T00:00:00.000Z" }),
        v(301, 30, CONTENT.early, { publishedAt: "2026-01-01T00:00:00.000Z" }),
      ],
    }),
  );
}

/** A copy, a hard link, two versions of one model, an update in early access, a file Civitai does not know, a sidecar. */
function library(): string {
  const dir = tmp.make();
  const put = (name: string, content: string) => {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
    utimesSync(join(dir, name), PAST, PAST);
  };
  put("loras/style.safetensors", CONTENT.style);
  put("backup/style-copy.safetensors", CONTENT.style);
  linkSync(join(dir, "loras/style.safetensors"), join(dir, "loras/zz-style-link.safetensors"));
  put("loras/pose-v1.safetensors", CONTENT.poseV1);
  put("loras/pose-v2.safetensors", CONTENT.poseV2);
  put("loras/early.safetensors", CONTENT.early);
  put("loras/mine.safetensors", CONTENT.mine);
  put("loras/mine.civitai.info", JSON.stringify({ id: 9, modelId: 99, name: "v9", model: { name: "Mine", type: "LORA" } }));
  return dir;
}

/** Every folder of the metadata cache made older, as if the last write was an hour ago (not within the 2 s racy window). */
function ageMetadataFolders(cacheDir: string): void {
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    utimesSync(d, PAST, PAST);
  };
  walk(join(cacheDir, "meta"));
}

async function scan(
  dir: string,
  cacheDir: string,
  extra: string[] = [],
  withMarkdown = false,
): Promise<{ inv: Inventory; text: string; md: string; stderr: string }> {
  const out = tmp.make();
  const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "-o", join(out, "inv.json"), ...extra]);
  expect(r.stderr).not.toMatch(/\[(error|warn)\]/);
  expect(r.code).toBe(0);
  const text = readFileSync(join(out, "inv.json"), "utf8");
  const inv = JSON.parse(text) as Inventory;
  expect(validateInventory(inv)).toEqual([]);
  if (!withMarkdown) return { inv, text, md: "", stderr: r.stderr };
  const md = await runCli(["report", join(out, "inv.json"), "--format", "md"]);
  expect(md.code).toBe(0);
  return { inv, text, md: md.stdout, stderr: r.stderr };
}

/** The inventory without what differs from run to run (when, how long, which cache answered). */
function stable(inv: Inventory): unknown {
  const { generatedAt: _g, ...rest } = inv;
  const { durationMs: _d, cacheHits: _c, requests: _r, ...summary } = inv.summary;
  return { ...rest, summary };
}
const withoutScanLine = (md: string) => md.replace(/^.*Scanned \d{4}-.*$/m, "");

/** A library scanned cold, then warm (records built and kept), then (`thirdScan`) given from the packs. */
async function warmLibrary(
  withMarkdown = false,
  thirdScan = false,
): Promise<{
  dir: string;
  cacheDir: string;
  built: Awaited<ReturnType<typeof scan>>;
  given: Awaited<ReturnType<typeof scan>>;
}> {
  catalog();
  const dir = library();
  const cacheDir = tmp.make();
  await scan(dir, cacheDir);
  ageMetadataFolders(cacheDir);
  const built = await scan(dir, cacheDir, [], withMarkdown);
  // The third scan is given the records; a test that changes something first starts from the packs.
  const given = thirdScan ? await scan(dir, cacheDir, [], withMarkdown) : built;
  return { dir, cacheDir, built, given };
}

const path = (dir: string, name: string) => join(dir, name);
const recordOf = (inv: Inventory, dir: string, name: string) => inv.records.find((r) => r.path === path(dir, name))!;

describe("scan: finished records kept between runs", () => {
  let lib: Awaited<ReturnType<typeof warmLibrary>>;
  beforeAll(async () => {
    lib = await warmLibrary(true, true);
  });

  test("a warm scan gives the records the last one built: the same inventory and Markdown, no metadata read, no request", () => {
    const { built, given } = lib;
    expect(built.inv.summary.cacheHits.records).toBe(0);
    expect(built.inv.summary.requests).toBe(0);
    // 6 files (the link is an alias): every one but early.safetensors, whose update's early access runs out in 3.5 days.
    expect(given.inv.summary.cacheHits.records).toBe(5);
    expect(given.inv.summary.requests).toBe(0);
    expect(given.inv.summary.cacheHits.metadata).toBeLessThan(built.inv.summary.cacheHits.metadata);
    // The summary line counts the records given, as the inventory does.
    expect(given.stderr).toMatch(/, 0 requests, cache hits 5 records \/ \d+ hashes \/ \d+ metadata/);
    expect(built.stderr).toMatch(/, 0 requests, cache hits \d+ hashes \/ \d+ metadata/);
    expect(stable(given.inv)).toEqual(stable(built.inv));
    expect(withoutScanLine(given.md)).toBe(withoutScanLine(built.md));
    // What the library facts say came through (copies, a link, several versions, the sidecar's identity).
    expect(recordOf(given.inv, lib.dir, "loras/style.safetensors").duplicate).toEqual({
      copies: 2,
      others: [path(lib.dir, "backup/style-copy.safetensors")],
    });
    expect(recordOf(given.inv, lib.dir, "loras/style.safetensors").aliases).toEqual([path(lib.dir, "loras/zz-style-link.safetensors")]);
    expect(recordOf(given.inv, lib.dir, "loras/pose-v1.safetensors").update!.sameBaseModel!.inLibrary).toEqual([
      path(lib.dir, "loras/pose-v2.safetensors"),
    ]);
    expect(recordOf(given.inv, lib.dir, "loras/mine.safetensors").local!.sidecars!.map((s) => s.source)).toEqual(["civitai-helper"]);
    expect(given.inv.summary.duplicates).toEqual(built.inv.summary.duplicates);
  });

  test("every format a scan writes reads the kept records the same (Markdown, CSV, JUnit straight from the scan; --previous)", async () => {
    const { dir, cacheDir } = lib;
    const formats = ["md", "csv", "junit"] as const;
    const outs: Record<string, string> = {};
    for (const format of formats) {
      const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "--format", format]);
      expect(r.code).toBe(0);
      outs[format] = r.stdout;
    }
    // The same inventory rendered by `report` from the JSON the records were built for.
    const saved = join(tmp.make(), "built.json");
    writeFileSync(saved, lib.built.text);
    for (const format of formats) {
      const r = await runCli(["report", saved, "--format", format]);
      const clean = (t: string) =>
        t.replace(/^.*Scanned \d{4}-.*$/m, "").replace(/timestamp="[^"]*"|time="[^"]*"|name="generatedAt" value="[^"]*"/g, "");
      expect(clean(outs[format]!)).toBe(clean(r.stdout));
    }
    // --previous: the changes since an inventory are judged on the records given.
    const prev = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "--previous", saved]);
    expect(prev.code).toBe(0);
    const inv = JSON.parse(prev.stdout) as Inventory;
    expect(inv.summary.cacheHits.records).toBe(5);
    expect(inv.summary.changes).toMatchObject({ added: 0, removed: 0, moved: 0, changed: 0 });
  });

  test("cache info lists the packs; the inventory's JSON text is the same bytes apart from the run's own fields", () => {
    const strip = (t: string) =>
      t
        .replace(/"generatedAt": "[^"]*"/, "")
        .replace(/"durationMs": \d+/, "")
        .replace(/"cacheHits": \{[^}]*\}/, "");
    expect(strip(lib.given.text)).toBe(strip(lib.built.text));
  });

  test("folders and files named out of order: the records given land in path order, the same as named in order", async () => {
    const { dir, cacheDir } = lib;
    const named = [path(dir, "loras/style.safetensors"), path(dir, "loras"), path(dir, "backup")];
    const out = await scan(named[1]!, cacheDir, [named[2]!]);
    const reversed = await scan(named[1]!, cacheDir, [named[0]!, named[2]!].reverse());
    expect(reversed.inv.summary.cacheHits.records).toBe(out.inv.summary.cacheHits.records);
    expect(reversed.inv.summary.cacheHits.records).toBeGreaterThanOrEqual(4);
    const withoutRoots = (inv: Inventory) => ({ ...(stable(inv) as Record<string, unknown>), roots: null });
    expect(withoutRoots(reversed.inv)).toEqual(withoutRoots(out.inv));
    const paths = reversed.inv.records.map((r) => r.path);
    expect(paths).toEqual([...paths].sort());
  });
});

describe("scan: what a kept record was made from changes, and it is built again", () => {
  test("the file's bytes, a new hard link or symbolic link, a new sidecar: those records are built again, the others given", async () => {
    const { dir, cacheDir } = await warmLibrary();
    writeFileSync(path(dir, "loras/pose-v1.safetensors"), CONTENT.poseV2.replace("v2", "v3"));
    utimesSync(path(dir, "loras/pose-v1.safetensors"), PAST, PAST);
    linkSync(path(dir, "loras/pose-v2.safetensors"), path(dir, "loras/zz-pose-link.safetensors"));
    // A symbolic link changes nothing of the file it names (not even its ctime): only its paths tell.
    symlinkSync(path(dir, "loras/mine.safetensors"), path(dir, "loras/zz-mine-symlink.safetensors"));
    writeFileSync(
      path(dir, "backup/style-copy.civitai.info"),
      JSON.stringify({ id: 101, modelId: 10, name: "v101", model: { name: "Style" } }),
    );
    const { inv } = await scan(dir, cacheDir);
    expect(inv.summary.cacheHits.records).toBe(1); // style
    const v1 = recordOf(inv, dir, "loras/pose-v1.safetensors");
    expect(v1.hashes.sha256).toBe(sha256(CONTENT.poseV2.replace("v2", "v3")));
    expect(v1.status).toBe("not_found");
    expect(recordOf(inv, dir, "loras/pose-v2.safetensors").aliases).toEqual([path(dir, "loras/zz-pose-link.safetensors")]);
    expect(recordOf(inv, dir, "loras/mine.safetensors").aliases).toEqual([path(dir, "loras/zz-mine-symlink.safetensors")]);
    expect(recordOf(inv, dir, "backup/style-copy.safetensors").local!.sidecars!.map((s) => s.source)).toEqual(["civitai-helper"]);
  });

  test("a file with no sidecar is given without the hash cache; a sidecar that vanishes or appears makes its record built again", async () => {
    const { dir, cacheDir } = await warmLibrary();
    // The hash cache gone: a file's identity (device, inode, size, mtime and ctime) is that of the
    // file the kept record was made for, so the record is given and nothing is read or hashed for it.
    rmSync(join(cacheDir, "hashes"), { recursive: true, force: true });
    rmSync(path(dir, "loras/mine.civitai.info"));
    const first = await scan(dir, cacheDir);
    // style (with its link), its copy, pose v1 and v2; not early (never kept), not mine (its sidecar went).
    expect(first.inv.summary.cacheHits.records).toBe(4);
    // Their hashes came from the kept records; early and mine were hashed again.
    expect(first.inv.summary.cacheHits.hashes).toBe(4);
    const mine = recordOf(first.inv, dir, "loras/mine.safetensors");
    expect(mine.local!.sidecars).toBeUndefined();
    expect(mine.status).toBe("not_found");
    // The same inventory as a scan that builds everything from nothing.
    const cold = await scan(dir, tmp.make());
    expect(stable(first.inv)).toEqual(stable(cold.inv));
    ageMetadataFolders(cacheDir);
    // Kept without a sidecar; one appears (other content than before): built again, and it shows.
    await scan(dir, cacheDir);
    writeFileSync(path(dir, "loras/mine.civitai.info"), JSON.stringify({ id: 8, modelId: 88, name: "v8", model: { name: "Mine again" } }));
    const second = await scan(dir, cacheDir);
    expect(second.inv.summary.cacheHits.records).toBe(4);
    expect(recordOf(second.inv, dir, "loras/mine.safetensors").local!.sidecars!.map((s) => s.modelName)).toEqual(["Mine again"]);
  });

  test("a file with a sidecar is given without the hash cache while its sidecar stays the same; a changed sidecar makes it built again", async () => {
    const { dir, cacheDir } = await warmLibrary();
    rmSync(join(cacheDir, "hashes"), { recursive: true, force: true });
    const first = await scan(dir, cacheDir);
    // Every kept record, mine's (made with its sidecar) too: only early (never kept) was built.
    expect(first.inv.summary.cacheHits.records).toBe(5);
    expect(recordOf(first.inv, dir, "loras/mine.safetensors").local!.sidecars!.map((s) => s.modelName)).toEqual(["Mine"]);
    // The sidecar rewritten with other content (its old mtime put back: its size and ctime still tell).
    const sidecar = path(dir, "loras/mine.civitai.info");
    writeFileSync(sidecar, JSON.stringify({ id: 9, modelId: 99, name: "v9", model: { name: "Mine, renamed", type: "LORA" } }));
    utimesSync(sidecar, PAST, PAST);
    const second = await scan(dir, cacheDir);
    expect(second.inv.summary.cacheHits.records).toBe(4);
    expect(recordOf(second.inv, dir, "loras/mine.safetensors").local!.sidecars!.map((s) => s.modelName)).toEqual(["Mine, renamed"]);
    // A sidecar changed within 2 s of a run's start may change again unseen: its record is built, not kept.
    writeFileSync(sidecar, JSON.stringify({ id: 9, modelId: 99, name: "v9", model: { name: "Mine, just now", type: "LORA" } }));
    const racy = await scan(dir, cacheDir);
    expect(recordOf(racy.inv, dir, "loras/mine.safetensors").local!.sidecars!.map((s) => s.modelName)).toEqual(["Mine, just now"]);
    const after = await scan(dir, cacheDir);
    expect(after.inv.summary.cacheHits.records).toBe(4);
    expect(recordOf(after.inv, dir, "loras/mine.safetensors").local!.sidecars!.map((s) => s.modelName)).toEqual(["Mine, just now"]);
  });

  test("an answer another scan wrote since (--refresh of another folder): the records it feeds show the new answer", async () => {
    const { dir, cacheDir, given } = await warmLibrary(false, true);
    expect(recordOf(given.inv, dir, "loras/pose-v2.safetensors").civitai!.modelName).toBe("Pose");
    catalog("Pose, renamed");
    const other = tmp.make();
    writeFileSync(join(other, "pose.safetensors"), CONTENT.poseV2);
    utimesSync(join(other, "pose.safetensors"), PAST, PAST);
    const r = await runCli([
      "scan",
      other,
      "--api-url",
      civitai.url,
      "--cache-dir",
      cacheDir,
      "--refresh",
      "-o",
      join(tmp.make(), "x.json"),
    ]);
    expect(r.code).toBe(0);
    civitai.reset();
    const { inv } = await scan(dir, cacheDir);
    expect(civitai.requests.length).toBe(0);
    expect(recordOf(inv, dir, "loras/pose-v2.safetensors").civitai!.modelName).toBe("Pose, renamed");
    expect(recordOf(inv, dir, "loras/pose-v1.safetensors").civitai!.modelName).toBe("Pose, renamed");
    expect(inv.summary.cacheHits.records).toBeLessThan(5);
  });

  test("other options (--nsfw-level, --no-details): nothing is given; the defaults again: given again", async () => {
    const { dir, cacheDir } = await warmLibrary();
    expect((await scan(dir, cacheDir, ["--nsfw-level", "x"])).inv.summary.cacheHits.records).toBe(0);
    expect((await scan(dir, cacheDir, ["--no-details"])).inv.summary.cacheHits.records).toBe(0);
    // Each rewrote the packs under its own options; the defaults build them again once.
    ageMetadataFolders(cacheDir);
    expect((await scan(dir, cacheDir)).inv.summary.cacheHits.records).toBe(0);
    expect((await scan(dir, cacheDir)).inv.summary.cacheHits.records).toBe(5);
  });

  test("--refresh, --offline, --trust-sidecars and --write-sidecars never take a kept record", async () => {
    const { dir, cacheDir } = await warmLibrary();
    for (const flag of ["--refresh", "--offline", "--trust-sidecars"]) {
      expect((await scan(dir, cacheDir, [flag])).inv.summary.cacheHits.records ?? 0).toBe(0);
    }
  });

  test("cache clear --metadata takes the kept records with it: the next scan asks Civitai again", async () => {
    const { dir, cacheDir } = await warmLibrary();
    const c = await runCli(["cache", "clear", "--metadata", "--cache-dir", cacheDir]);
    expect(c.code).toBe(0);
    expect(c.stderr).toContain("cleared the finished records");
    civitai.reset();
    const { inv } = await scan(dir, cacheDir);
    expect(inv.summary.cacheHits.records).toBe(0);
    expect(civitai.requests.length).toBeGreaterThan(0);
  });
});

describe("scan: kept records on a cache that cannot be written", () => {
  test("a read-only cache (a real ro mount): the records are given, nothing is written, one warning (the hash cache's)", async () => {
    const mnt = tmp.make();
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt]);
    if (mount.exitCode !== 0) return console.warn(`skipped: cannot mount a tmpfs (${mount.stderr.toString().trim()})`);
    try {
      catalog();
      const dir = library();
      await scan(dir, mnt);
      ageMetadataFolders(mnt);
      const built = await scan(dir, mnt);
      expect(Bun.spawnSync(["mount", "-o", "remount,ro", mnt]).exitCode).toBe(0);
      const out = join(tmp.make(), "inv.json");
      const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", mnt, "-o", out]);
      expect(r.code).toBe(0);
      const inv = JSON.parse(readFileSync(out, "utf8")) as Inventory;
      expect(inv.summary.cacheHits.records).toBe(5);
      expect(stable(inv)).toEqual(stable(built.inv));
      const warnings = r.stderr.split("\n").filter((l) => l.startsWith("[warn]"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("read-only");
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });
});

describe("scan: kept records under two runs at once and a full disk", () => {
  test("two scans at once, each rewriting the packs: both inventories are whole and right, and the packs read back", async () => {
    catalog();
    const dir = library();
    const cacheDir = tmp.make();
    const first = await scan(dir, cacheDir);
    ageMetadataFolders(cacheDir);
    // Both build and write the same packs at the same time (temp + rename each).
    const [a, b] = await Promise.all([scan(dir, cacheDir), scan(dir, cacheDir)]);
    expect(stable(a.inv)).toEqual(stable(first.inv));
    expect(stable(b.inv)).toEqual(stable(first.inv));
    const c = await scan(dir, cacheDir);
    expect(c.inv.summary.cacheHits.records).toBe(5);
    expect(stable(c.inv)).toEqual(stable(first.inv));
    const leftovers = readdirSync(join(cacheDir, "records", "v1"), { recursive: true }).filter(
      (n) => !String(n).endsWith(".pack") && String(n).includes("."),
    );
    expect(leftovers).toEqual([]);
  });

  test("packs that do not fit (a full disk): the scan is whole and says nothing of it, nothing half-written is left, the next run builds again", async () => {
    catalog();
    const dir = library();
    const cacheDir = tmp.make();
    const records = join(cacheDir, "records");
    mkdirSync(records);
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", records]);
    if (mount.exitCode !== 0) return console.warn(`skipped: cannot mount a tmpfs (${mount.stderr.toString().trim()})`);
    try {
      const first = await scan(dir, cacheDir);
      ageMetadataFolders(cacheDir);
      const second = await scan(dir, cacheDir); // scan() checks: exit 0, no warning
      expect(stable(second.inv)).toEqual(stable(first.inv));
      const third = await scan(dir, cacheDir);
      expect(third.inv.summary.cacheHits.records).toBeLessThan(5);
      expect(stable(third.inv)).toEqual(stable(first.inv));
      const files = readdirSync(records, { recursive: true }).map(String);
      expect(files.filter((n) => !n.endsWith(".pack") && /\.[^/]*$/.test(n))).toEqual([]);
    } finally {
      Bun.spawnSync(["umount", records]);
    }
  });
});

describe("scan: a damaged or foreign pack is a miss, never a wrong record", () => {
  const packsOf = (cacheDir: string) => {
    const root = join(cacheDir, "records", "v1");
    return readdirSync(root).flatMap((shard) => readdirSync(join(root, shard)).map((f) => join(root, shard, f)));
  };

  test("a flipped byte in a body, a truncated pack, a pack in another folder's place: built again, the same inventory", async () => {
    const { dir, cacheDir, built } = await warmLibrary();
    const packs = packsOf(cacheDir);
    expect(packs.length).toBe(2); // loras/ and backup/
    const bytes = readFileSync(packs[0]!);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0x20; // inside the last record's JSON
    writeFileSync(packs[0]!, bytes);
    truncateSync(packs[1]!, Math.floor(statSync(packs[1]!).size / 2));
    const first = await scan(dir, cacheDir);
    expect(first.inv.summary.cacheHits.records).toBeLessThan(5);
    expect(stable(first.inv)).toEqual(stable(built.inv));
    // A pack copied under another folder's name says which folder it is for: not used there.
    ageMetadataFolders(cacheDir);
    await scan(dir, cacheDir);
    const [a, b] = packsOf(cacheDir);
    writeFileSync(b!, readFileSync(a!));
    const second = await scan(dir, cacheDir);
    expect(stable(second.inv)).toEqual(stable(built.inv));
  });

  test("a pack others may write, or another user owns, is not read: its bodies would go into the inventory as they are", async () => {
    const { dir, cacheDir } = await warmLibrary();
    const packOf = (folder: string) =>
      packsOf(cacheDir).find((p) => readFileSync(p).includes(`"dir":${JSON.stringify(path(dir, folder))}`))!;
    chmodSync(packOf("loras"), 0o664);
    // loras/ holds 4 of the 5 records given, backup/ one.
    expect((await scan(dir, cacheDir)).inv.summary.cacheHits.records).toBe(1);
    expect(statSync(packOf("loras")).mode & 0o777).toBe(0o644); // written again, as ours
    if (process.getuid?.() !== 0) return console.warn("skipped the other-owner half: chown needs root");
    chownSync(packOf("backup"), 4321, 4321);
    expect((await scan(dir, cacheDir)).inv.summary.cacheHits.records).toBe(4);
  });

  test("cache prune removes the pack of a folder that is gone, and keeps the others", async () => {
    const { dir, cacheDir } = await warmLibrary();
    expect(packsOf(cacheDir).length).toBe(2);
    rmSync(path(dir, "backup"), { recursive: true });
    const p = await runCli(["cache", "prune", "--cache-dir", cacheDir]);
    expect(p.code).toBe(0);
    expect(p.stderr).toContain("1 of 2 record packs");
    expect(packsOf(cacheDir).length).toBe(1);
    const info = await runCli(["cache", "info", "--cache-dir", cacheDir]);
    expect(info.stdout).toMatch(/^records {3}1 folder, /m);
  });
});
