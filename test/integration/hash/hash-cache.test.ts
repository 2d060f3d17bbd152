import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
  writeSync,
  closeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FileIdentity, FoundFile } from "../../../src/scan/types.ts";
import { TEMP_PREFIX, writeFileAtomic, writeFileAtomicAsync } from "../../../src/shared/atomic-write.ts";
import { openHashCache, parseEntry, type HashCache, type HashCacheEntry } from "../../../src/hash/hash-cache.ts";
import { hashFiles } from "../../../src/hash/hasher.ts";
import { getCacheDir, getConfigDir } from "../../../src/config/paths.ts";
import { foundFile } from "../../helpers/found-file.ts";

const BUN = process.execPath;
const SRC = join(import.meta.dir, "../../../src");
/** Files get an mtime an hour back so their cache entries are not "racy" (docs/reliability.md §3.4). */
const PAST = new Date(Date.now() - 3600_000);

// Created at load time so `test.skipIf(!mounted)` knows whether a read-only mount is possible.
const root = mkdtempSync(join(tmpdir(), "civitai-meta-hash-cache-"));
const roMount = join(root, "ro");
mkdirSync(roMount);
const mountResult = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", roMount], { stderr: "pipe" });
const mounted = mountResult.exitCode === 0;
if (!mounted) console.log(`read-only mount tests skipped: mount failed: ${mountResult.stderr.toString().trim()}`);

function makeFile(name: string, content: string | Uint8Array): FoundFile {
  const p = join(root, name);
  writeFileSync(p, content);
  utimesSync(p, PAST, PAST);
  return foundFile(p);
}

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

async function freshCache(name: string): Promise<HashCache> {
  const { cache, warning } = await openHashCache(join(root, name));
  expect(warning).toBeUndefined();
  return cache!;
}

afterAll(() => {
  if (mounted) Bun.spawnSync(["umount", roMount]);
  rmSync(root, { recursive: true, force: true });
});

describe("hits and misses", () => {
  test("an unchanged file is a hit the second time and its content is not read", async () => {
    const cache = await freshCache("c-hit");
    const list = Array.from({ length: 120 }, (_, i) => makeFile(`hit-${i}.bin`, randomBytes(i * 11)));
    const first = await hashFiles(list, { algos: ["sha256", "autov2"], cache });
    expect(first.every((r) => !r.cached && !r.error)).toBe(true);
    expect(cache.stats.writes).toBe(120);
    const second = await hashFiles(list, { algos: ["sha256", "autov2"], cache });
    // cached=true is only ever set from a cache lookup that dispatched no read.
    expect(second.every((r) => r.cached)).toBe(true);
    expect(second.map((r) => r.hashes)).toEqual(first.map((r) => r.hashes));
    expect(cache.stats.writes).toBe(120);
    expect(second[7]!.hashes.sha256).toBe(sha(list[7]!.path));
    // Asking for fewer algorithms is still a hit, and returns only those.
    const [only] = await hashFiles([list[3]!], { algos: ["autov2"], cache });
    expect(only).toMatchObject({ cached: true, hashes: { autov2: first[3]!.hashes.autov2 } });
    expect(Object.keys(only!.hashes)).toEqual(["autov2"]);
  });

  test("a new algorithm re-hashes and merges into the entry", async () => {
    const cache = await freshCache("c-merge");
    const f = makeFile("merge.safetensors", "not really safetensors");
    await hashFiles([f], { algos: ["sha256"], cache });
    const [r2] = await hashFiles([f], { algos: ["crc32", "autov3"], cache });
    expect(r2!.cached).toBe(false);
    const entry = cache.read(f.realPath, f.identity)!;
    expect(Object.keys(entry.hashes).sort()).toEqual(["crc32", "sha256"]);
    expect(entry.absent).toEqual(["autov3"]);
    // AutoV3 "does not apply" is remembered, so this is a hit without an autov3 value.
    const [r3] = await hashFiles([f], { algos: ["sha256", "crc32", "autov3"], cache });
    expect(r3).toMatchObject({ cached: true, hashes: { sha256: sha(f.path), crc32: entry.hashes.crc32 } });
    expect(r3!.hashes.autov3).toBeUndefined();
  });

  test("--rehash ignores hits but refreshes the entry", async () => {
    const cache = await freshCache("c-rehash");
    const f = makeFile("rehash.bin", "abc");
    await hashFiles([f], { algos: ["sha256"], cache });
    const [r] = await hashFiles([f], { algos: ["sha256"], cache, rehash: true });
    expect(r!.cached).toBe(false);
    expect(cache.stats.writes).toBe(2);
  });

  test("racy entries (mtime within 2 s of writing, or in the future) are stored but not trusted", async () => {
    const cache = await freshCache("c-racy");
    const p = join(root, "racy.bin");
    writeFileSync(p, "just written");
    const f = foundFile(p);
    await hashFiles([f], { algos: ["sha256"], cache });
    const raw = parseEntry(readFileSync(cache.entryPath(f.realPath), "utf8"))!;
    expect(raw.confirmed).toBe(false);
    const [again] = await hashFiles([f], { algos: ["sha256"], cache });
    expect(again!.cached).toBe(false);

    const future = join(root, "future.bin");
    writeFileSync(future, "from the future");
    const later = new Date(Date.now() + 86_400_000);
    utimesSync(future, later, later);
    const ff = foundFile(future);
    await hashFiles([ff], { algos: ["sha256"], cache });
    expect((await hashFiles([ff], { algos: ["sha256"], cache }))[0]!.cached).toBe(false);

    // Seen from a clock far enough ahead, the same fresh file is no longer racy.
    const { cache: later10s } = await openHashCache(join(root, "c-racy2"), { now: () => Date.now() + 10_000 });
    await hashFiles([f], { algos: ["sha256"], cache: later10s });
    expect((await hashFiles([f], { algos: ["sha256"], cache: later10s }))[0]!.cached).toBe(true);
  });
});

describe("changed files are re-hashed (docs/cases.md C6, C7, C9)", () => {
  test("C6: same-size in-place edit with mtime restored by touch -r", async () => {
    const cache = await freshCache("c6");
    const f = makeFile("c6.bin", "A".repeat(4096));
    const ref = join(root, "c6.ref");
    expect(Bun.spawnSync(["touch", "-r", f.path, ref]).exitCode).toBe(0);
    const [before] = await hashFiles([f], { algos: ["sha256"], cache });
    await Bun.sleep(20); // ctime has a coarse clock: make sure it can move
    const fd = openSync(f.path, "r+");
    writeSync(fd, "B", 100);
    closeSync(fd);
    expect(Bun.spawnSync(["touch", "-m", "-r", ref, f.path]).exitCode).toBe(0);
    const edited = foundFile(f.path);
    expect(edited.identity).toMatchObject({ size: f.identity.size, mtimeNs: f.identity.mtimeNs, ino: f.identity.ino });
    expect(edited.identity.ctimeNs).not.toBe(f.identity.ctimeNs);
    const [after] = await hashFiles([edited], { algos: ["sha256"], cache });
    expect(after!.cached).toBe(false);
    expect(after!.hashes.sha256).toBe(sha(f.path));
    expect(after!.hashes.sha256).not.toBe(before!.hashes.sha256);
  });

  test("C7: replaced by rename with the same size and mtime (new inode)", async () => {
    const cache = await freshCache("c7");
    const f = makeFile("c7.bin", "one content");
    await hashFiles([f], { algos: ["sha256", "autov2"], cache });
    const tmp = join(root, "c7.new");
    writeFileSync(tmp, "two content");
    expect(Bun.spawnSync(["touch", "-r", f.path, tmp]).exitCode).toBe(0);
    renameSync(tmp, f.path);
    const replaced = foundFile(f.path);
    expect(replaced.identity).toMatchObject({ size: f.identity.size, mtimeNs: f.identity.mtimeNs });
    expect(replaced.identity.ino).not.toBe(f.identity.ino);
    const [r] = await hashFiles([replaced], { algos: ["sha256", "autov2"], cache });
    expect(r!.cached).toBe(false);
    expect(r!.hashes.sha256).toBe(sha(f.path));
  });

  test("C9: entries for a vanished file or another device are ignored and pruned", async () => {
    const cache = await freshCache("c9");
    const keep = makeFile("c9-keep.bin", "keep");
    const gone = makeFile("c9-gone.bin", "gone");
    await hashFiles([keep, gone], { algos: ["sha256"], cache });
    // Same path and inode, other device: a folder moved to another disk.
    const moved: FileIdentity = { ...keep.identity, dev: keep.identity.dev + 1 };
    expect(cache.get(keep.realPath, moved, ["sha256"])).toBeNull();
    rmSync(gone.path);
    const junk = join(cache.entryPath("/junk"));
    mkdirSync(join(junk, ".."), { recursive: true });
    writeFileSync(junk, "{not json");
    expect(cache.prune()).toEqual({ checked: 3, removed: 2 });
    expect(existsSync(cache.entryPath(gone.realPath))).toBe(false);
    expect(existsSync(junk)).toBe(false);
    expect(cache.get(keep.realPath, keep.identity, ["sha256"])).toEqual({ sha256: sha(keep.path) });
  });
});

describe("bad entry files are misses, never data (docs/cases.md C1, C2)", () => {
  const valid = (f: FoundFile): HashCacheEntry => ({
    v: 1,
    path: f.realPath,
    ...f.identity,
    hashes: { sha256: sha(f.path), autov2: sha(f.path).slice(0, 10) },
    absent: [],
    confirmed: true,
    hashedAt: Date.now(),
  });

  test.each<[string, (e: HashCacheEntry) => string]>([
    ["empty file", () => ""],
    ["truncated mid-JSON", (e) => JSON.stringify(e).slice(0, 60)],
    ['`{"sha256":`', () => '{"sha256":'],
    ["a bare string", (e) => JSON.stringify(e.hashes.sha256)],
    ["null", () => "null"],
    ["an array", () => "[]"],
    ["hash stored as a number", (e) => JSON.stringify({ ...e, hashes: { ...e.hashes, autov2: 1234567890 } })],
    ["hash of the wrong length", (e) => JSON.stringify({ ...e, hashes: { ...e.hashes, autov2: "abc" } })],
    ["upper-case hash", (e) => JSON.stringify({ ...e, hashes: { sha256: e.hashes.sha256!.toUpperCase() } })],
    ["unknown algorithm", (e) => JSON.stringify({ ...e, hashes: { ...e.hashes, md5: "00" } })],
    ["size as a string", (e) => JSON.stringify({ ...e, size: String(e.size) })],
    ["mtimeNs as a number", (e) => JSON.stringify({ ...e, mtimeNs: Number(e.mtimeNs) })],
    ["missing confirmed", (e) => JSON.stringify({ ...e, confirmed: undefined })],
    ["another version", (e) => JSON.stringify({ ...e, v: 2 })],
    ["another path in the entry", (e) => JSON.stringify({ ...e, path: "/elsewhere" })],
    [
      "__proto__ in hashes",
      (e) =>
        `{"v":1,"path":${JSON.stringify(e.path)},"dev":${e.dev},"ino":${e.ino},"size":${e.size},"mtimeNs":"${e.mtimeNs}","ctimeNs":"${e.ctimeNs}","confirmed":true,"hashedAt":1,"hashes":{"__proto__":{"sha256":"x"}}}`,
    ],
    ["binary garbage", () => "\u0000\u00ff{{"],
  ])("%s", async (_name, corrupt) => {
    const cache = await freshCache(`c1-${_name.replace(/\W+/g, "-")}`);
    const f = makeFile(`c1-${_name.replace(/\W+/g, "-")}.bin`, `content ${_name}`);
    const file = cache.entryPath(f.realPath);
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, corrupt(valid(f)));
    expect(cache.get(f.realPath, f.identity, ["sha256", "autov2"])).toBeNull();
    expect(cache.read(f.realPath, f.identity)).toBeNull();
    const [r] = await hashFiles([f], { algos: ["sha256", "autov2"], cache });
    expect(r).toMatchObject({ cached: false, hashes: { sha256: sha(f.path) } });
    // The bad entry was replaced by a good one.
    expect(parseEntry(readFileSync(file, "utf8"))?.hashes).toEqual({ sha256: sha(f.path), autov2: sha(f.path).slice(0, 10) });
    expect(({} as Record<string, unknown>).sha256).toBeUndefined();
  });

  test.each([["1234567890"], ["12345e7890"], ["0000000000"]])("C2: AutoV2 %p reads back as the same string", async (autov2) => {
    const cache = await freshCache(`c2-${autov2}`);
    const f = makeFile(`c2-${autov2}.bin`, autov2);
    const file = cache.entryPath(f.realPath);
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, JSON.stringify({ ...valid(f), hashes: { autov2 } }));
    const hit = cache.get(f.realPath, f.identity, ["autov2"]);
    expect(hit).toEqual({ autov2 });
    expect(typeof hit!.autov2).toBe("string");
    const [r] = await hashFiles([f], { algos: ["autov2"], cache });
    expect(r).toEqual({ file: f, hashes: { autov2 }, cached: true });
  });
});

describe("unusable cache locations (docs/cases.md C5)", () => {
  test("--no-cache gives no cache and no warning", async () => {
    expect(await openHashCache(false)).toEqual({ cache: null });
  });

  test("a regular file where the cache folder should be", async () => {
    const p = join(root, "cache-is-a-file");
    writeFileSync(p, "x");
    const { cache, warning } = await openHashCache(p);
    expect(cache).toBeNull();
    expect(warning).toMatch(new RegExp(`^hash cache disabled: ${p}: (ENOTDIR \\(not a directory\\)|EEXIST \\(file exists\\))$`));
  });

  test.skipIf(!mounted)("read-only mount: one warning, hashing completes", async () => {
    const { cache, warning } = await openHashCache(roMount);
    expect(cache).toBeNull();
    expect(warning).toBe(`hash cache disabled: ${roMount}: EROFS (read-only file system)`);
    const f = makeFile("ro.bin", "hash me anyway");
    const [r] = await hashFiles([f], { algos: ["sha256"], cache });
    expect(r).toMatchObject({ cached: false, hashes: { sha256: sha(f.path) } });
    expect(readdirSync(roMount)).toEqual([]);
  });

  test.skipIf(!mounted)("missing and uncreatable (under a read-only mount)", async () => {
    const p = join(roMount, "a", "b");
    const { cache, warning } = await openHashCache(p);
    expect(cache).toBeNull();
    expect(warning).toBe(`hash cache disabled: ${p}: EROFS (read-only file system)`);
  });

  test.skipIf(!mounted)("a write error mid-run disables the cache once and hashing goes on", async () => {
    const dir = join(root, "rw");
    mkdirSync(dir);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).exitCode).toBe(0);
    try {
      const warnings: string[] = [];
      const { cache } = await openHashCache(dir, { onWarning: (w) => warnings.push(w) });
      expect(Bun.spawnSync(["mount", "-o", "remount,ro", dir]).exitCode).toBe(0);
      const list = [makeFile("w1.bin", "1"), makeFile("w2.bin", "2"), makeFile("w3.bin", "3")];
      const results = await hashFiles(list, { algos: ["sha256"], cache });
      expect(results.map((r) => r.hashes.sha256)).toEqual(list.map((f) => sha(f.path)));
      expect(results.every((r) => !r.error)).toBe(true);
      expect(warnings).toEqual([`hash cache disabled: ${dir}: EROFS (read-only file system)`]);
      expect(cache!.writable).toBe(false);
    } finally {
      Bun.spawnSync(["umount", dir]);
    }
  });
});

describe("concurrency and atomic writes (docs/cases.md C4)", () => {
  test("two processes writing distinct and shared keys: nothing lost, nothing torn", async () => {
    const dir = join(root, "c4");
    const script = (tag: string) => `
      const { openHashCache } = await import(${JSON.stringify(join(SRC, "hash/hash-cache.ts"))});
      const { cache } = await openHashCache(${JSON.stringify(dir)});
      const id = (i) => ({ dev: 1, ino: i, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" });
      const h = (s) => new Bun.CryptoHasher("sha256").update(s).digest("hex");
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 10; i++) cache.set("/shared/" + i, id(i), { sha256: h("${tag}" + round + i), autov2: h(String(round)).slice(0, 10) });
        for (let i = 0; i < 10; i++) cache.set("/own-${tag}/" + (round * 10 + i), id(i), { sha256: h("${tag}" + i) });
      }
      if (!cache.writable) throw new Error(cache.warnings.join("; "));
    `;
    mkdirSync(dir, { recursive: true });
    const { cache } = await openHashCache(dir);
    const procs = ["a", "b"].map((t) => Bun.spawn([BUN, "-e", script(t)], { stderr: "pipe" }));
    let done = false;
    const exited = Promise.all(procs.map((p) => p.exited)).then((codes) => {
      done = true;
      return codes;
    });
    let reads = 0;
    let torn = 0;
    const shared = Array.from({ length: 10 }, (_, i) => cache!.entryPath(`/shared/${i}`));
    while (!done) {
      for (let k = 0; k < 20; k++) {
        for (const file of shared) {
          let text: string;
          try {
            text = readFileSync(file, "utf8");
          } catch {
            continue; // not written yet
          }
          reads++;
          if (!parseEntry(text)) torn++;
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const codes = await exited;
    expect(codes).toEqual([0, 0]);
    expect(torn).toBe(0);
    expect(reads).toBeGreaterThan(0);
    for (const tag of ["a", "b"]) {
      for (let n = 0; n < 200; n++) {
        const e = parseEntry(readFileSync(cache!.entryPath(`/own-${tag}/${n}`), "utf8"));
        expect(e?.path).toBe(`/own-${tag}/${n}`);
      }
    }
    for (let i = 0; i < 10; i++) {
      const e = parseEntry(readFileSync(cache!.entryPath(`/shared/${i}`), "utf8"));
      expect(e?.hashes.autov2).toMatch(/^[0-9a-f]{10}$/);
    }
    const leftovers = readdirSync(join(dir, "hashes", "v1"), { recursive: true }).filter((n) => String(n).includes(TEMP_PREFIX));
    expect(leftovers).toEqual([]);
  });

  test("a 2 MB file rewritten by another process is never seen torn", async () => {
    // Entries are too small to catch a torn in-place write reliably; a large value can (docs/reliability.md §3.1 saw 55 of 65).
    const p = join(root, "big-atomic.json");
    writeFileAtomic(p, JSON.stringify({ n: -1, pad: "x".repeat(2_000_000) }));
    const writer = Bun.spawn(
      [
        BUN,
        "-e",
        `
        const { writeFileAtomic } = await import(${JSON.stringify(join(SRC, "shared/atomic-write.ts"))});
        for (let n = 0; n < 30; n++) writeFileAtomic(${JSON.stringify(p)}, JSON.stringify({ n, pad: String(n % 10).repeat(2_000_000 + n * 1000) }), { fsync: false });
      `,
      ],
      { stderr: "pipe" },
    );
    let done = false;
    const exited = writer.exited.then((code) => {
      done = true;
      return code;
    });
    let reads = 0;
    let torn = 0;
    while (!done) {
      try {
        JSON.parse(readFileSync(p, "utf8"));
      } catch {
        torn++;
      }
      reads++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await exited).toBe(0);
    expect(reads).toBeGreaterThan(0);
    expect(torn).toBe(0);
    expect(JSON.parse(readFileSync(p, "utf8")).n).toBe(29);
  });

  test("SIGKILL while the cache is being written leaves every entry parseable, and a later run uses it (docs/cases.md C3)", async () => {
    const dir = join(root, "c3");
    mkdirSync(dir, { recursive: true });
    const writer = Bun.spawn(
      [
        BUN,
        "-e",
        `
        const { openHashCache } = await import(${JSON.stringify(join(SRC, "hash/hash-cache.ts"))});
        const { cache } = await openHashCache(${JSON.stringify(dir)});
        const id = (i) => ({ dev: 1, ino: i, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" });
        const h = (s) => new Bun.CryptoHasher("sha256").update(s).digest("hex");
        for (let round = 0; ; round++) {
          for (let i = 0; i < 50; i++) cache.set("/killed/" + i, id(i), { sha256: h(round + ":" + i), autov2: h(String(round)).slice(0, 10) });
          if (round === 2) console.log("ready");
        }
      `,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const reader = writer.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("ready");
    await Bun.sleep(100);
    writer.kill("SIGKILL");
    await writer.exited;
    expect(writer.signalCode).toBe("SIGKILL");
    const { cache } = await openHashCache(dir);
    let entries = 0;
    for (let i = 0; i < 50; i++) {
      const file = cache!.entryPath(`/killed/${i}`);
      const entry = parseEntry(readFileSync(file, "utf8"));
      expect(entry?.path).toBe(`/killed/${i}`);
      expect(entry?.hashes.sha256).toMatch(/^[0-9a-f]{64}$/);
      entries++;
    }
    expect(entries).toBe(50);
    const identity = { dev: 1, ino: 7, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" };
    expect(cache!.get("/killed/7", identity, ["sha256", "autov2"])?.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The kill may leave the one temp file it was writing: it is never an entry, and prune keeps
    // it only while it is fresh (a live writer's temp file must not vanish under it).
    cache!.prune();
    const leftovers = readdirSync(join(dir, "hashes", "v1"), { recursive: true }).filter((n) => String(n).includes(TEMP_PREFIX));
    expect(leftovers.length).toBeLessThanOrEqual(1);
  });

  test("hostile paths map to distinct files inside the cache (docs/cases.md C10)", async () => {
    const cache = await freshCache("c10");
    const names = ["../x", "a/b", "a:b", "A/B", "x?y=1", "x", "/../../etc/passwd"];
    const files = names.map((n) => cache.entryPath(n));
    expect(new Set(files).size).toBe(names.length);
    for (const f of files) expect(f.startsWith(join(root, "c10", "hashes", "v1") + "/")).toBe(true);
  });

  test("writeFileAtomic replaces content, keeps no temp file, and cleans up on failure", async () => {
    const dir = join(root, "atomic");
    mkdirSync(dir);
    const p = join(dir, "out.json");
    writeFileAtomic(p, "one");
    writeFileAtomic(p, "two", { fsync: true, fsyncDir: true });
    await writeFileAtomicAsync(p, "three");
    expect(readFileSync(p, "utf8")).toBe("three");
    // Renaming a file over a directory fails: the temp file must not stay behind.
    const asDir = join(dir, "is-a-dir");
    mkdirSync(asDir);
    expect(() => writeFileAtomic(asDir, "x")).toThrow();
    await expect(writeFileAtomicAsync(asDir, "x")).rejects.toThrow();
    expect(readdirSync(dir).sort()).toEqual(["is-a-dir", "out.json"]);
  });
});

describe("paths", () => {
  test.each<[string, Record<string, string>, string]>([
    ["own variable wins", { CIVITAI_META_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x" }, "/c"],
    ["XDG_CACHE_HOME", { XDG_CACHE_HOME: "/x" }, "/x/civitai-meta"],
    ["relative XDG_CACHE_HOME is ignored", { XDG_CACHE_HOME: "relative" }, "/home/u/.cache/civitai-meta"],
    ["home fallback", {}, "/home/u/.cache/civitai-meta"],
  ])("getCacheDir: %s", (_name, env, expected) => {
    expect(getCacheDir(env, "/home/u")).toBe(expected);
  });

  test("getConfigDir", () => {
    expect(getConfigDir({ XDG_CONFIG_HOME: "/cfg" }, "/home/u")).toBe("/cfg/civitai-meta");
    expect(getConfigDir({}, "/home/u")).toBe("/home/u/.config/civitai-meta");
    // The test preload points XDG_CACHE_HOME at a temp home.
    expect(getCacheDir()).toBe(join(process.env.XDG_CACHE_HOME!, "civitai-meta"));
  });
});
