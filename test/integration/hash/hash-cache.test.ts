import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { FileIdentity, FoundFile } from "../../../src/scan/types.ts";
import { clearHashCache, hashCacheUsage, openHashCache, type HashCache } from "../../../src/hash/hash-cache.ts";
import { checksum, hashPartText, identityPrefix } from "../../../src/hash/hash-entry.ts";
import { STORE_FORMAT, storePath } from "../../../src/hash/hash-store.ts";
import { hashFiles } from "../../../src/hash/hasher.ts";
import { getCacheDir, getConfigDir } from "../../../src/config/paths.ts";
import { writeFileAtomic, writeFileAtomicAsync } from "../../../src/shared/atomic-write.ts";
import { encodeFsName } from "../../../src/shared/fs-path.ts";
import { foundFile } from "../../helpers/found-file.ts";
import { cliCommand, cliEnv } from "../../helpers/run-cli.ts";

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
if (!mounted) console.log(`read-only mount and full-disk tests skipped: mount failed: ${mountResult.stderr.toString().trim()}`);

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

/** The store's rows, read past the cache (what is really on disk). */
function rawRows(cacheDir: string): { dir: Uint8Array; name: Uint8Array; entry: string }[] {
  const db = new Database(storePath(cacheDir), { readonly: true });
  try {
    return db.query("SELECT dir, name, entry FROM files").all() as { dir: Uint8Array; name: Uint8Array; entry: string }[];
  } finally {
    db.close();
  }
}

/** Runs SQL on the store directly, as damage or another program would. */
function tamper(cacheDir: string, sql: string, ...params: (string | number | Uint8Array | null)[]): void {
  const db = new Database(storePath(cacheDir));
  try {
    db.run(sql, params);
  } finally {
    db.close();
  }
}

/** A row for `realPath` (under `root`) holding `text`, with a valid checksum: as a lenient writer (or an older version) might leave it. */
function plantRow(dir: string, realPath: string, text: string): void {
  tamper(
    dir,
    "INSERT INTO files (dir, name, entry, sum) VALUES (?, ?, ?, ?)",
    encodeFsName(root),
    encodeFsName(basename(realPath)),
    text,
    checksum(text),
  );
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
    cache.close();
    // One store file, one row per file: no file per entry.
    expect(readdirSync(join(root, "c-hit", "hashes")).filter((n) => !n.endsWith("-wal") && !n.endsWith("-shm"))).toEqual([
      `v${STORE_FORMAT}.sqlite`,
    ]);
    expect(rawRows(join(root, "c-hit"))).toHaveLength(120);
    // A new process reads what this one wrote.
    const again = await freshCache("c-hit");
    expect((await hashFiles(list, { algos: ["sha256"], cache: again })).every((r) => r.cached)).toBe(true);
    again.close();
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
    expect(rawRows(join(root, "c-racy"))).toHaveLength(1);
    expect(cache.read(f.realPath, f.identity)).toBeNull();
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

  test("facts written this run while the file is racy: peek and peekLocal give them to this run, read does not", async () => {
    const { cache } = await openHashCache(join(root, "c-racy-local"), { withLocal: true });
    const p = join(root, "racy-local.bin");
    writeFileSync(p, "fresh"); // mtime now: racy
    const f = foundFile(p);
    const local = { version: 2, facts: '{"format":"unknown"}', sidecars: null };
    cache!.setLocal(f.realPath, f.identity, local);
    expect(cache!.read(f.realPath, f.identity)).toBeNull();
    expect(cache!.peek(f.realPath, f.identity)?.local).toEqual(local);
    expect(cache!.peekLocal(f.realPath, f.identity)).toEqual(local);
    cache!.close();
    // Another run: a racy part is never trusted.
    const { cache: next } = await openHashCache(join(root, "c-racy-local"), { withLocal: true });
    expect(next!.peekLocal(f.realPath, f.identity)).toBeNull();
    next!.close();
  });

  test("a part computed while the file was racy never becomes trusted by a later write beside it", async () => {
    let now = Date.now();
    const { cache } = await openHashCache(join(root, "c-racy-merge"), { now: () => now });
    const p = join(root, "racy-merge.bin");
    writeFileSync(p, "fresh");
    const f = foundFile(p);
    cache!.set(f.realPath, f.identity, { sha256: "a".repeat(64) });
    now += 60_000; // a minute later the file is old enough, but the SHA-256 was taken while racy
    cache!.set(f.realPath, f.identity, { crc32: "0badf00d" });
    expect(cache!.get(f.realPath, f.identity, ["sha256"])).toBeNull();
    expect(cache!.get(f.realPath, f.identity, ["crc32"])).toEqual({ crc32: "0badf00d" });
  });

  test("header facts live beside the hashes under the same identity, and go with it", async () => {
    const dir = join(root, "c-local");
    const cache = await freshCache("c-local");
    const f = makeFile("local.safetensors", "facts");
    await hashFiles([f], { algos: ["sha256"], cache });
    cache.setLocal(f.realPath, f.identity, { version: 2, facts: '{"format":"unknown"}', sidecars: null });
    cache.close();
    const { cache: reopened } = await openHashCache(dir, { withLocal: true });
    const entry = reopened!.read(f.realPath, f.identity)!;
    expect(entry.hashes.sha256).toBe(sha(f.path));
    expect(entry.local).toEqual({ version: 2, facts: '{"format":"unknown"}', sidecars: null });
    // The facts alone (as scan reads them back), without the hash part: the same answer.
    expect(reopened!.peekLocal(f.realPath, f.identity)).toEqual(entry.local);
    // Another state of the file: neither hashes nor facts.
    expect(reopened!.read(f.realPath, { ...f.identity, ctimeNs: "1" })).toBeNull();
    expect(reopened!.peekLocal(f.realPath, { ...f.identity, ctimeNs: "1" })).toBeNull();
    // New hashes for a changed file replace the row, facts included.
    reopened!.set(f.realPath, { ...f.identity, size: 99 }, { sha256: "b".repeat(64) });
    expect(reopened!.read(f.realPath, { ...f.identity, size: 99 })?.local).toBeNull();
    reopened!.close();
    // Without withLocal the facts are not even read.
    const { cache: lean } = await openHashCache(dir);
    expect(lean!.read(f.realPath, { ...f.identity, size: 99 })?.local).toBeNull();
    lean!.close();
  });

  test("rows set but not yet committed answer reads in the same run; close commits them", async () => {
    const dir = join(root, "c-pending");
    const cache = await freshCache("c-pending");
    const f = makeFile("pending.bin", "pending");
    cache.set(f.realPath, f.identity, { sha256: sha(f.path) });
    expect(cache.get(f.realPath, f.identity, ["sha256"])).toEqual({ sha256: sha(f.path) });
    expect(rawRows(dir)).toHaveLength(0);
    cache.close();
    expect(rawRows(dir)).toHaveLength(1);
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

  test("C9: entries for a vanished file or another device are ignored and pruned, damaged rows too", async () => {
    const dir = join(root, "c9");
    const cache = await freshCache("c9");
    const keep = makeFile("c9-keep.bin", "keep");
    const gone = makeFile("c9-gone.bin", "gone");
    const damaged = makeFile("c9-damaged.bin", "damaged");
    await hashFiles([keep, gone, damaged], { algos: ["sha256"], cache });
    cache.close();
    // Same path and inode, other device: a folder moved to another disk.
    const moved: FileIdentity = { ...keep.identity, dev: keep.identity.dev + 1 };
    rmSync(gone.path);
    tamper(dir, "UPDATE files SET entry = entry || 'x' WHERE name = ?", encodeFsName("c9-damaged.bin"));
    const reopened = await freshCache("c9");
    expect(reopened.get(keep.realPath, moved, ["sha256"])).toBeNull();
    expect(reopened.prune()).toEqual({ checked: 3, removed: 2 });
    expect(rawRows(dir).map((r) => Buffer.from(r.name).toString())).toEqual(["c9-keep.bin"]);
    expect(reopened.get(keep.realPath, keep.identity, ["sha256"])).toEqual({ sha256: sha(keep.path) });
    reopened.close();
  });
});

describe("damaged rows are misses, never data (docs/cases.md C1, C2)", () => {
  test.each<[string, string]>([
    ["entry text cut short", "UPDATE files SET entry = substr(entry, 1, 40)"],
    ["entry emptied", "UPDATE files SET entry = ''"],
    [
      "one hash digit changed (checksum no longer matches)",
      "UPDATE files SET entry = replace(entry, '|' || substr(entry, instr(entry, '|') + 1, 1), '|Z')",
    ],
    ["entry stored as a number", "UPDATE files SET entry = 12345"],
    ["checksum stored as text", "UPDATE files SET sum = 'abc'"],
    ["checksum off by one", "UPDATE files SET sum = sum + 1"],
    ["name replaced by text", "UPDATE files SET name = 'x'"],
  ])("%s", async (label, sql) => {
    const dir = join(root, `c1-${label.replace(/\W+/g, "-")}`);
    const f = makeFile(`c1-${label.replace(/\W+/g, "-")}.bin`, `content ${label}`);
    const first = (await openHashCache(dir)).cache!;
    await hashFiles([f], { algos: ["sha256", "autov2"], cache: first });
    first.close();
    tamper(dir, sql);
    const warnings: string[] = [];
    const { cache } = await openHashCache(dir, { onWarning: (w) => warnings.push(w) });
    expect(cache!.get(f.realPath, f.identity, ["sha256", "autov2"])).toBeNull();
    const [r] = await hashFiles([f], { algos: ["sha256", "autov2"], cache });
    expect(r).toMatchObject({ cached: false, hashes: { sha256: sha(f.path), autov2: sha(f.path).slice(0, 10) } });
    cache!.close();
    // The bad row was replaced by a good one.
    const { cache: again } = await openHashCache(dir);
    expect(again!.get(f.realPath, f.identity, ["sha256", "autov2"])).toEqual({ sha256: sha(f.path), autov2: sha(f.path).slice(0, 10) });
    again!.close();
    expect(warnings.length).toBeLessThanOrEqual(1);
  });

  test.each<[string, Record<string, string>]>([
    ["an upper-case hash", { sha256: "A".repeat(64) }],
    ["a hash of the wrong length", { sha256: "a".repeat(63) }],
    ["a short AutoV2", { autov2: "12345" }],
  ])("a row with a valid checksum holding %s is a miss", async (label, hashes) => {
    // Written with its checksum, as a lenient writer (or an older version) might have.
    const dir = join(root, `c1-shape-${label.replace(/\W+/g, "-")}`);
    const f = makeFile(`c1-shape-${label.replace(/\W+/g, "-")}.bin`, label);
    (await openHashCache(dir)).cache!.close();
    const text = hashPartText({ ...f.identity, at: Date.now() - 60_000, hashes, absent: [] });
    plantRow(dir, f.realPath, text);
    const { cache } = await openHashCache(dir);
    expect(cache!.read(f.realPath, f.identity)).toBeNull();
    expect(cache!.stats.corrupt).toBe(1);
    cache!.close();
  });

  test.each<[string, (sha256: string, at: number) => string]>([
    ["an extra field", (h, at) => `${at}|${h}||${h.slice(0, 10)}|||||`],
    ["a missing field", (h, at) => `${at}|${h}||${h.slice(0, 10)}||`],
    ["a time that is not a number", (h) => `12x|${h}||${h.slice(0, 10)}|||`],
    ["an absent list naming no algorithm", (h, at) => `${at}|${h}||${h.slice(0, 10)}|||md5`],
    ["an absent algorithm that also has a hash", (h, at) => `${at}|${h}||${h.slice(0, 10)}|||sha256`],
    ["an absent algorithm named twice", (h, at) => `${at}|${h}||${h.slice(0, 10)}|||autov3,autov3`],
    ["a hash with a line break after it", (h, at) => `${at}|${h}\n||${h.slice(0, 10)}|||`],
  ])("a row for this very file with a valid checksum and %s is a miss, counted as damage", async (label, rest) => {
    const dir = join(root, `c1-text-${label.replace(/\W+/g, "-")}`);
    const f = makeFile(`c1-text-${label.replace(/\W+/g, "-")}.bin`, label);
    (await openHashCache(dir)).cache!.close();
    const text = `${identityPrefix(f.identity)}${rest(sha(f.path), Date.now() - 60_000)}`;
    plantRow(dir, f.realPath, text);
    const { cache } = await openHashCache(dir);
    expect(cache!.get(f.realPath, f.identity, ["sha256"])).toBeNull();
    expect(cache!.read(f.realPath, f.identity)).toBeNull();
    expect(cache!.stats.corrupt).toBe(2);
    cache!.close();
  });

  test("the same row well formed is a hit (the cases above differ from it only where they say)", async () => {
    const dir = join(root, "c1-text-good");
    const f = makeFile("c1-text-good.bin", "good");
    (await openHashCache(dir)).cache!.close();
    const h = sha(f.path);
    const text = `${identityPrefix(f.identity)}${Date.now() - 60_000}|${h}||${h.slice(0, 10)}|||autov3`;
    plantRow(dir, f.realPath, text);
    const { cache } = await openHashCache(dir);
    expect(cache!.get(f.realPath, f.identity, ["sha256", "autov2", "autov3"])).toEqual({ sha256: h, autov2: h.slice(0, 10) });
    expect(cache!.read(f.realPath, f.identity)).toMatchObject({ hashes: { sha256: h, autov2: h.slice(0, 10) }, absent: ["autov3"] });
    expect(cache!.stats.corrupt).toBe(0);
    cache!.close();
  });

  test("a value a read would reject is never stored: writes stop with one warning", async () => {
    const cache = await freshCache("c1-refuse");
    const f = makeFile("c1-refuse.bin", "refuse");
    for (const bad of [{ sha256: sha(f.path).toUpperCase() }, { autov2: "12345" }]) {
      expect(() => cache.set(f.realPath, f.identity, bad)).not.toThrow();
      expect(cache.writable).toBe(false);
    }
    expect(cache.warnings).toHaveLength(1);
    cache.close();
    expect(rawRows(join(root, "c1-refuse"))).toEqual([]);
  });

  test.each([["1234567890"], ["12345e7890"], ["0000000000"]])("C2: AutoV2 %p reads back as the same string", async (autov2) => {
    const cache = await freshCache(`c2-${autov2}`);
    const f = makeFile(`c2-${autov2}.bin`, autov2);
    cache.set(f.realPath, f.identity, { autov2 });
    cache.close();
    const again = await freshCache(`c2-${autov2}`);
    const hit = again.get(f.realPath, f.identity, ["autov2"]);
    expect(hit).toEqual({ autov2 });
    expect(typeof hit!.autov2).toBe("string");
    const [r] = await hashFiles([f], { algos: ["autov2"], cache: again });
    expect(r).toEqual({ file: f, hashes: { autov2 }, cached: true });
  });
});

describe("a damaged store is set aside and rebuilt (docs/cases.md C1)", () => {
  /**
   * 300 files and a closed store that holds their hashes, made once: each test damages its own
   * copy of the store (the files are only read), instead of writing and hashing 300 files again.
   */
  let pristine: Promise<{ dir: string; files: FoundFile[] }> | undefined;
  async function makePristine(): Promise<{ dir: string; files: FoundFile[] }> {
    const name = "store-pristine";
    const dir = join(root, name);
    const files = Array.from({ length: 300 }, (_, i) => makeFile(`${name}-${i}.bin`, `${name} ${i} ${"x".repeat(i)}`));
    const cache = (await openHashCache(dir)).cache!;
    await hashFiles(files, { algos: ["sha256"], cache });
    cache.close();
    return { dir, files };
  }
  async function primed(name: string): Promise<{ dir: string; files: FoundFile[] }> {
    pristine ??= makePristine();
    const { dir: from, files } = await pristine;
    const dir = join(root, name);
    cpSync(from, dir, { recursive: true });
    return { dir, files };
  }

  test.each<[string, (file: string) => void]>([
    ["garbage over the whole file", (file) => writeFileSync(file, "garbage ".repeat(2000))],
    ["truncated to half", (file) => truncateSync(file, Math.floor(statSync(file).size / 2))],
    ["truncated to 100 bytes", (file) => truncateSync(file, 100)],
    [
      "a page of zeros in the middle",
      (file) => {
        const fd = openSync(file, "r+");
        writeSync(fd, Buffer.alloc(4096), 0, 4096, 4096 * 3);
        closeSync(fd);
      },
    ],
  ])("%s: one warning, the file moved aside, every hash recomputed right", async (label, damage) => {
    const { dir, files } = await primed(`store-${label.replace(/\W+/g, "-")}`);
    const file = storePath(dir);
    damage(file);
    const warnings: string[] = [];
    const { cache, warning } = await openHashCache(dir, { onWarning: (w) => warnings.push(w) });
    if (warning) warnings.push(warning);
    expect(cache).not.toBeNull();
    const results = await hashFiles(files, { algos: ["sha256"], cache });
    // Never wrong data: every hash, cached or not, is the file's.
    expect(results.map((r) => r.hashes.sha256)).toEqual(files.map((f) => sha(f.path)));
    cache!.close();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`moved to ${file}.corrupt`);
    expect(existsSync(`${file}.corrupt`)).toBe(true);
    // Rebuilt: the next run takes everything from the new store.
    const { cache: next } = await openHashCache(dir);
    expect((await hashFiles(files, { algos: ["sha256"], cache: next })).every((r) => r.cached)).toBe(true);
    next!.close();
  });

  test("random bytes flipped anywhere: never a wrong hash", async () => {
    const { dir, files } = await primed("store-flips");
    const file = storePath(dir);
    const size = statSync(file).size;
    const fd = openSync(file, "r+");
    for (let i = 0; i < 200; i++)
      writeSync(fd, Buffer.from([Math.floor(Math.random() * 256)]), 0, 1, 100 + Math.floor(Math.random() * (size - 100)));
    closeSync(fd);
    const { cache } = await openHashCache(dir);
    const results = await hashFiles(files, { algos: ["sha256"], cache });
    expect(results.map((r) => r.hashes.sha256)).toEqual(files.map((f) => sha(f.path)));
    cache?.close();
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
    expect(warning).toMatch(
      new RegExp(`^hash cache disabled: ${p}: (a part of the path is not a folder \\(ENOTDIR\\)|a file is in the way \\(EEXIST\\))$`),
    );
  });

  test("a store from a newer civitai-meta is left as it is: one warning, no cache", async () => {
    const dir = join(root, "newer");
    mkdirSync(join(dir, "hashes"), { recursive: true });
    const db = new Database(storePath(dir), { create: true });
    db.run(`PRAGMA user_version = ${STORE_FORMAT + 1}`);
    db.run("CREATE TABLE future (x)");
    db.close();
    const before = readFileSync(storePath(dir));
    const { cache, warning } = await openHashCache(dir);
    expect(cache).toBeNull();
    expect(warning).toBe(
      `hash cache disabled: ${storePath(dir)} was written by a newer civitai-meta (format ${STORE_FORMAT + 1}); left as it is`,
    );
    expect(readFileSync(storePath(dir))).toEqual(before);
    const f = makeFile("newer.bin", "newer");
    const [r] = await hashFiles([f], { algos: ["sha256"], cache });
    expect(r!.hashes.sha256).toBe(sha(f.path));
  });

  test.skipIf(!mounted)("read-only mount: one warning, hashing completes", async () => {
    const { cache, warning } = await openHashCache(roMount);
    expect(cache).toBeNull();
    expect(warning).toBe(`hash cache disabled: ${roMount}: read-only file system (EROFS)`);
    const f = makeFile("ro.bin", "hash me anyway");
    const [r] = await hashFiles([f], { algos: ["sha256"], cache });
    expect(r).toMatchObject({ cached: false, hashes: { sha256: sha(f.path) } });
    expect(readdirSync(roMount)).toEqual([]);
  });

  test.skipIf(!mounted)("missing and uncreatable (under a read-only mount)", async () => {
    const p = join(roMount, "a", "b");
    const { cache, warning } = await openHashCache(p);
    expect(cache).toBeNull();
    expect(warning).toBe(`hash cache disabled: ${p}: read-only file system (EROFS)`);
  });

  test.skipIf(!mounted)("an existing store on a mount made read-only: read, never written, one warning; hashing completes", async () => {
    const dir = join(root, "ro-store");
    mkdirSync(dir);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir]).exitCode).toBe(0);
    try {
      const f = makeFile("ro-store.bin", "ro store");
      const g = makeFile("ro-store-new.bin", "not in the store");
      const first = (await openHashCache(dir)).cache!;
      await hashFiles([f], { algos: ["sha256"], cache: first });
      first.close();
      const before = listTree(dir);
      expect(Bun.spawnSync(["mount", "-o", "remount,ro", dir]).exitCode).toBe(0);
      const warnings: string[] = [];
      const { cache, warning } = await openHashCache(dir, { onWarning: (w) => warnings.push(w) });
      expect(warning).toBeUndefined();
      expect(cache).not.toBeNull();
      expect(cache!.writable).toBe(false);
      expect(warnings).toEqual([
        `hash cache read-only: ${dir}: read-only file system (EROFS); the hashes stored there are used, new ones are not stored`,
      ]);
      const results = await hashFiles([f, g], { algos: ["sha256"], cache: cache! });
      expect(results.map((r) => r.cached)).toEqual([true, false]);
      expect(results[1]!.hashes.sha256).toBe(createHash("sha256").update("not in the store").digest("hex"));
      expect(cache!.prune()).toEqual({ checked: 0, removed: 0 });
      cache!.close();
      expect(warnings).toHaveLength(1);
      expect(listTree(dir)).toEqual(before);
    } finally {
      Bun.spawnSync(["umount", dir]);
    }
  });

  // A write error mid-run: the disk fills up while entries are being stored.
  test.skipIf(!mounted)("a full disk: one warning, every file still hashed, what was committed is intact", async () => {
    const dir = join(root, "full");
    mkdirSync(dir);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir]).exitCode).toBe(0);
    try {
      const warnings: string[] = [];
      const { cache } = await openHashCache(dir, { onWarning: (w) => warnings.push(w) });
      // Long names make the rows big: the 256 KiB fill up after a few thousand.
      const files = Array.from({ length: 4000 }, (_, i) => ({ ...makeFakeFound(i), realPath: `/full/${"n".repeat(200)}/${i}.bin` }));
      for (const f of files) cache!.set(f.realPath, f.identity, { sha256: createHash("sha256").update(f.realPath).digest("hex") });
      cache!.close();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^hash cache disabled: .*(ENOSPC|SQLITE_FULL)/);
      const { cache: reader, warning } = await openHashCache(dir);
      // Full, the folder may not even take the probe file: then one warning and no cache.
      if (reader) {
        for (const f of files.slice(0, 100)) {
          const hit = reader.get(f.realPath, f.identity, ["sha256"]);
          if (hit) expect(hit.sha256).toBe(createHash("sha256").update(f.realPath).digest("hex"));
        }
        reader.close();
      } else expect(warning).toContain("ENOSPC");
    } finally {
      Bun.spawnSync(["umount", dir]);
    }
  });
});

function makeFakeFound(i: number): FoundFile {
  const identity: FileIdentity = { dev: 1, ino: 1000 + i, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" };
  return { path: `/fake/${i}`, paths: [`/fake/${i}`], realPath: `/fake/${i}`, identity, mtimeMs: 1000 };
}

describe("two runs, kills and hostile keys (docs/cases.md C3, C4, C10)", () => {
  test("C4: runs that create the store at the same moment all open it (a new file's switch to WAL can be busy)", async () => {
    // Six processes opening one new store together, five times over: before the retry on a busy
    // open, about one round in fifteen left a run without its hash cache ("database is locked").
    const script = `const { openStore } = await import(${JSON.stringify(join(SRC, "hash/hash-store.ts"))});
      const r = openStore(process.argv[1]); console.log(r.kind === "error" ? String(r.error) : r.kind);`;
    for (let round = 0; round < 5; round++) {
      const dir = mkdtempSync(join(root, "race-"));
      const file = join(dir, "v2.sqlite");
      const runs = Array.from({ length: 6 }, () => Bun.spawn([BUN, "-e", script, file], { stdout: "pipe", stderr: "pipe" }));
      const outs = await Promise.all(runs.map((r) => new Response(r.stdout).text()));
      expect(outs.map((o) => o.trim())).toEqual(Array(6).fill("ok"));
    }
  });

  test("C4: two processes writing distinct and shared keys at once: nothing lost, every row sound", async () => {
    const dir = join(root, "c4");
    const script = (tag: string) => `
      const { openHashCache } = await import(${JSON.stringify(join(SRC, "hash/hash-cache.ts"))});
      const { cache } = await openHashCache(${JSON.stringify(dir)});
      const id = (i) => ({ dev: 1, ino: i, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" });
      const h = (s) => new Bun.CryptoHasher("sha256").update(s).digest("hex");
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 10; i++) cache.set("/shared/" + i, id(i), { sha256: h("${tag}" + round + i), autov2: h(String(round)).slice(0, 10) });
        for (let i = 0; i < 10; i++) cache.set("/own-${tag}/" + (round * 10 + i), id(i), { sha256: h("${tag}" + i) });
        cache.flush();
      }
      cache.close();
      if (!cache.writable || cache.warnings.length > 0) throw new Error(cache.warnings.join("; "));
    `;
    mkdirSync(dir, { recursive: true });
    const procs = ["a", "b"].map((t) => Bun.spawn([BUN, "-e", script(t)], { stderr: "pipe" }));
    const codes = await Promise.all(procs.map((p) => p.exited));
    const errors = await Promise.all(procs.map((p) => new Response(p.stderr).text()));
    expect({ codes, errors }).toEqual({ codes: [0, 0], errors: ["", ""] });
    const { cache } = await openHashCache(dir);
    const id = (i: number): FileIdentity => ({ dev: 1, ino: i, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" });
    const h = (s: string) => createHash("sha256").update(s).digest("hex");
    for (const tag of ["a", "b"]) {
      for (let n = 0; n < 200; n++) expect(cache!.get(`/own-${tag}/${n}`, id(n % 10), ["sha256"])).toEqual({ sha256: h(tag + (n % 10)) });
    }
    for (let i = 0; i < 10; i++) {
      const hit = cache!.get(`/shared/${i}`, id(i), ["sha256", "autov2"]);
      // Either run's last value, whole: never a mix of the two.
      expect([h(`a19${i}`), h(`b19${i}`)]).toContain(hit!.sha256!);
    }
    expect(rawRows(dir)).toHaveLength(410);
    cache!.close();
  });

  test("C3: kill -9 in the middle of batches: the store opens, and every batch committed before is there", async () => {
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
        for (let n = 0; ; n++) {
          cache.set("/killed/" + n, id(n), { sha256: h(String(n)), autov2: h(String(n)).slice(0, 10) });
          // set() commits every 1,000 rows on its own; say which are safe.
          if ((n + 1) % 1000 === 0) console.log("committed " + (n + 1));
        }
      `,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const reader = writer.stdout.getReader();
    let text = "";
    while (!/committed 5000/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    writer.kill("SIGKILL");
    await writer.exited;
    expect(writer.signalCode).toBe("SIGKILL");
    const committed = Math.max(...[...text.matchAll(/committed (\d+)/g)].map((m) => Number(m[1])));
    expect(committed).toBeGreaterThanOrEqual(5000);
    const warnings: string[] = [];
    const { cache } = await openHashCache(dir, { onWarning: (w) => warnings.push(w) });
    const h = (s: string) => createHash("sha256").update(s).digest("hex");
    for (let n = 0; n < committed; n++) {
      const hit = cache!.get(`/killed/${n}`, { dev: 1, ino: n, size: 10, mtimeNs: "1000000000", ctimeNs: "1000000000" }, ["sha256"]);
      expect(hit?.sha256).toBe(h(String(n)));
    }
    // At most the batch in flight is lost; nothing torn, nothing damaged.
    expect(rawRows(dir).length).toBeGreaterThanOrEqual(committed);
    expect(rawRows(dir).length).toBeLessThan(committed + 2000);
    expect(warnings).toEqual([]);
    cache!.close();
  });

  test("C10 and docs/cases.md T12: hostile and non-UTF-8 paths are distinct keys and read back exactly", async () => {
    const cache = await freshCache("c10");
    const names = [
      "../x",
      "/a/b",
      "/a:b",
      "/A/B",
      "/x?y=1",
      "/x",
      "/../../etc/passwd",
      "/raw/\udcff.bin",
      "/raw/\ufffd.bin",
      "/é/n",
      "/e\u0301/n",
    ];
    names.forEach((p, i) => cache.set(p, makeFakeFound(i).identity, { sha256: createHash("sha256").update(p).digest("hex") }));
    cache.close();
    const again = await freshCache("c10");
    names.forEach((p, i) => {
      expect(again.get(p, makeFakeFound(i).identity, ["sha256"])).toEqual({ sha256: createHash("sha256").update(p).digest("hex") });
    });
    expect(new Set(rawRows(join(root, "c10")).map((r) => Buffer.concat([r.dir, Buffer.from([0]), r.name]).toString("hex"))).size).toBe(
      names.length,
    );
    // Only the store is under the cache folder.
    expect(readdirSync(join(root, "c10")).sort()).toEqual(["hashes"]);
    again.close();
  });
});

describe("entries of the per-file cache before issue 11 (hashes/v1)", () => {
  test("are moved into the store once, then removed; files we did not write stay", async () => {
    const dir = join(root, "v1");
    const f = makeFile("v1-model.bin", "from v1");
    const racy = makeFile("v1-racy.bin", "racy in v1");
    const v1Entry = (file: FoundFile, confirmed: boolean) =>
      JSON.stringify({
        v: 1,
        path: file.realPath,
        ...file.identity,
        hashes: { sha256: sha(file.path) },
        absent: [],
        confirmed,
        hashedAt: Date.now(),
      });
    const place = (file: FoundFile, text: string) => {
      const key = createHash("sha256").update(encodeFsName(file.realPath)).digest("hex");
      mkdirSync(join(dir, "hashes", "v1", key.slice(0, 2)), { recursive: true });
      writeFileSync(join(dir, "hashes", "v1", key.slice(0, 2), `${key}.json`), text);
    };
    place(f, v1Entry(f, true));
    place(racy, v1Entry(racy, false));
    writeFileSync(join(dir, "hashes", "v1", "notes.txt"), "mine");
    const { cache, warning } = await openHashCache(dir);
    expect(warning).toBeUndefined();
    const [r] = await hashFiles([f], { algos: ["sha256"], cache });
    expect(r).toMatchObject({ cached: true, hashes: { sha256: sha(f.path) } });
    // An entry v1 did not trust is not trusted now either.
    expect((await hashFiles([racy], { algos: ["sha256"], cache }))[0]!.cached).toBe(false);
    cache!.close();
    expect(readdirSync(join(dir, "hashes", "v1"))).toEqual(["notes.txt"]);
  });
});

describe("cache info and clear on the store", () => {
  test("count rows, remove only the store's files, never through a link", async () => {
    const dir = join(root, "info");
    const cache = await freshCache("info");
    await hashFiles([makeFile("info-1.bin", "1"), makeFile("info-2.bin", "2")], { algos: ["sha256"], cache });
    cache.close();
    expect(hashCacheUsage(dir).entries).toBe(2);
    expect(hashCacheUsage(dir).bytes).toBeGreaterThan(0);
    writeFileSync(join(dir, "hashes", "mine.txt"), "user file");
    expect(clearHashCache(dir)).toBe(2);
    expect(readdirSync(join(dir, "hashes"))).toEqual(["mine.txt"]);
    expect(hashCacheUsage(dir)).toEqual({ entries: 0, bytes: 0 });
  });
});

// The metadata cache and reports still write files whole through writeFileAtomic (docs/cases.md C3).
describe("atomic writes", () => {
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

describe("whole runs: the CLI's workers store what they hash (docs/cases.md C3, C4)", () => {
  // The compiled binary, as users run it and as the e2e tests do (run-cli.ts): `bun src/cli.ts`
  // transpiled the CLI and its hash workers again in each of the five runs.
  const cli = cliCommand;
  function tree(name: string, count: number): string {
    const dir = join(root, name);
    for (let i = 0; i < count; i++) {
      const sub = join(dir, `d${Math.floor(i / 250)}`);
      mkdirSync(sub, { recursive: true });
      const p = join(sub, `m${i}.safetensors`);
      writeFileSync(p, `${name} model ${i} ${"x".repeat(i % 97)}`);
      utimesSync(p, PAST, PAST);
    }
    return dir;
  }

  test("C4: two `hash` runs at once on one cache (one folder in common): both finish, nothing lost, nothing damaged", async () => {
    const cacheDir = join(root, "two-runs-cache");
    const a = tree("two-runs-a", 1500);
    const b = tree("two-runs-b", 1500);
    const shared = join(a, "d0");
    const runs = [
      [a, b],
      [b, shared],
    ].map((paths) => Bun.spawn(cli(["hash", "--cache-dir", cacheDir, ...paths]), { env: cliEnv(), stdout: "pipe", stderr: "pipe" }));
    const outs = await Promise.all(runs.map(async (p) => ({ code: await p.exited, stderr: await new Response(p.stderr).text() })));
    for (const o of outs) {
      expect(o.code).toBe(0);
      expect(o.stderr).not.toContain("[warn]");
    }
    const again = Bun.spawnSync(cli(["hash", "--cache-dir", cacheDir, a, b]), { env: cliEnv(), stderr: "pipe" });
    expect(again.exitCode).toBe(0);
    expect(again.stderr.toString()).toContain("0 hashed (0 B read), 3000 from cache");
  });

  test("C3: `hash` killed with SIGKILL mid-run: the next run opens the store without a warning, and what it took from it is right", async () => {
    const cacheDir = join(root, "killed-cli-cache");
    // 3,000 files: the kill lands after ~1,000 are stored (two batches), well before the end.
    const dir = tree("killed-cli", 3000);
    const run = Bun.spawn(cli(["hash", "--cache-dir", cacheDir, dir]), { env: cliEnv(), stdout: "pipe", stderr: "pipe" });
    // Kill once the store has committed rows (its WAL has grown past its header).
    const wal = join(cacheDir, "hashes", `v${STORE_FORMAT}.sqlite-wal`);
    for (let i = 0; i < 400 && !(existsSync(wal) && statSync(wal).size > 64 * 1024); i++) await Bun.sleep(10);
    run.kill("SIGKILL");
    await run.exited;
    const next = Bun.spawnSync(cli(["hash", "--json", "--cache-dir", cacheDir, dir]), { env: cliEnv(), stderr: "pipe" });
    expect(next.exitCode).toBe(0);
    expect(next.stderr.toString()).not.toContain("[warn]");
    const files = JSON.parse(next.stdout.toString()).files as { path: string; cached: boolean; hashes: { sha256: string } }[];
    expect(files).toHaveLength(3000);
    const cached = files.filter((f) => f.cached);
    // The kill landed mid-run: this run hashed what the killed one had not committed (the WAL may
    // have held a batch not yet committed, so none cached is possible).
    expect(cached.length).toBeLessThan(3000);
    for (const f of cached.slice(0, 300)) expect(f.hashes.sha256).toBe(sha(f.path));
    // A third run takes everything from the cache.
    const third = Bun.spawnSync(cli(["hash", "--cache-dir", cacheDir, dir]), { env: cliEnv(), stderr: "pipe" });
    expect(third.stderr.toString()).toContain("3000 from cache");
  }, 60_000);
});

/** Every file under `dir` with its size, sorted: what a read-only run must leave as it was. */
function listTree(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .map((p) => `${p} ${statSync(join(dir, p)).size}`)
    .sort();
}
