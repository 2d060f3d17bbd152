import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  writeSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { HASH_ALGOS, type FoundFile } from "../../../src/scan/types.ts";
import { openHashCache } from "../../../src/hash/hash-cache.ts";
import { checksum } from "../../../src/hash/hash-entry.ts";
import { openStore, storePath } from "../../../src/hash/hash-store.ts";
import { ERR_CHANGED_WHILE_HASHING, ERR_NOT_REGULAR, hashFileSync } from "../../../src/hash/hash-worker.ts";
import { hashFiles, hashWorkerUrl, startHashFiles, type HashProgress } from "../../../src/hash/hasher.ts";
import { foundFile } from "../../helpers/found-file.ts";

const BUN = process.execPath;
const SRC = join(import.meta.dir, "../../../src");
let dir: string;

/** The hashes computed here without any of our code: node:crypto, zlib and `sha256sum`. */
function expectedHashes(path: string) {
  const bytes = readFileSync(path);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const autov1 = createHash("sha256").update(bytes.subarray(0x100000, 0x110000)).digest("hex").slice(0, 8);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(bytes)); // little-endian = the usual hex reversed
  let autov3: string | undefined;
  if (bytes.length >= 9) {
    const n = bytes.readBigUInt64LE(0);
    if (n <= BigInt(bytes.length - 8) && bytes[8] === 0x7b) {
      autov3 = createHash("sha256")
        .update(bytes.subarray(8 + Number(n)))
        .digest("hex")
        .slice(0, 12);
    }
  }
  return { sha256, autov1, autov2: sha256.slice(0, 10), crc32: crc.toString("hex"), ...(autov3 ? { autov3 } : {}) };
}

/** `sha256sum` of each path, in order, from one run of it (one process per file was ~90 per run of this file). */
function sha256sums(paths: readonly string[]): string[] {
  const run = Bun.spawnSync(["sha256sum", "--", ...paths]);
  if (run.exitCode !== 0) throw new Error(`sha256sum failed: ${run.stderr.toString()}`);
  const lines = run.stdout.toString().trimEnd().split("\n");
  if (lines.length !== paths.length) throw new Error(`sha256sum gave ${lines.length} lines for ${paths.length} files`);
  return lines.map((line) => line.split(" ")[0]!);
}

function safetensorsBytes(): Buffer {
  const json = '{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), randomBytes(16)]);
}

let files: { empty: string; one: string; random3m: string; st: string; stPadded: string; over2m: string };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "civitai-meta-hasher-"));
  files = {
    empty: join(dir, "empty.bin"),
    one: join(dir, "one.bin"),
    random3m: join(dir, "random3m.safetensors"),
    st: join(dir, "model.safetensors"),
    stPadded: join(dir, "padded.safetensors"),
    over2m: join(dir, "big.ckpt"),
  };
  writeFileSync(files.empty, "");
  writeFileSync(files.one, "x");
  writeFileSync(files.random3m, randomBytes(3 * 1024 * 1024));
  writeFileSync(files.st, safetensorsBytes());
  // A real header padded with spaces after the JSON, as the spec allows, and data large enough to cross AutoV1's window.
  const json = '{"a":{"dtype":"U8","shape":[2200000],"data_offsets":[0,2200000]}}    ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(files.stPadded, Buffer.concat([len, Buffer.from(json), randomBytes(2_200_000)]));
  writeFileSync(files.over2m, randomBytes(2 * 1024 * 1024 + 17));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("hashFiles against independent implementations", () => {
  test("every algorithm matches node:crypto, zlib and sha256sum", async () => {
    const list = Object.values(files).map(foundFile);
    const results = await hashFiles(list, { algos: [...HASH_ALGOS], jobs: 2 });
    expect(results.map((r) => r.file.path)).toEqual(list.map((f) => f.path));
    const bySha256sum = sha256sums(list.map((f) => f.path));
    for (const [i, r] of results.entries()) {
      expect(r.error).toBeUndefined();
      expect(r.cached).toBe(false);
      expect(r.hashes).toEqual(expectedHashes(r.file.path));
      expect(r.hashes.sha256).toBe(bySha256sum[i]!);
    }
    const byName = Object.fromEntries(results.map((r) => [r.file.path, r.hashes]));
    // The known values pin down the corner cases, not just agreement with the helper above.
    expect(byName[files.empty]!.sha256).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(byName[files.empty]!.crc32).toBe("00000000");
    expect(byName[files.empty]!.autov1).toBe("e3b0c442"); // A1111: hash of whatever exists, here nothing
    expect(byName[files.st]!.autov3).toMatch(/^[0-9a-f]{12}$/);
    expect(byName[files.stPadded]!.autov3).toMatch(/^[0-9a-f]{12}$/);
    expect(byName[files.random3m]!.autov3).toBeUndefined(); // random bytes: not safetensors-looking
    expect(byName[files.one]!.autov3).toBeUndefined();
  });

  test("openssl agrees on SHA-256", async () => {
    const [r] = await hashFiles([foundFile(files.random3m)], { algos: ["sha256"] });
    const out = Bun.spawnSync(["openssl", "dgst", "-sha256", "-r", files.random3m]).stdout.toString();
    expect(r!.hashes).toEqual({ sha256: out.split(" ")[0]! });
  });

  test("CRC-32 of 123456789 comes out in Civitai's byte order", async () => {
    const p = join(dir, "digits.txt");
    writeFileSync(p, "123456789");
    const [r] = await hashFiles([foundFile(p)], { algos: ["crc32", "autov2"] });
    expect(r!.hashes).toEqual({ crc32: "2639f4cb", autov2: "15e2b0d3c3" });
  });

  test("jobs=1 and jobs=2 agree and keep input order, across batched small files", async () => {
    const small: string[] = [];
    for (let i = 0; i < 150; i++) {
      const p = join(dir, `small-${i}.bin`);
      writeFileSync(p, randomBytes(i * 37));
      small.push(p);
    }
    const list = [...small, ...Object.values(files)].map(foundFile).reverse();
    const one = await hashFiles(list, { algos: ["sha256", "crc32"], jobs: 1 });
    const two = await hashFiles(list, { algos: ["sha256", "crc32"], jobs: 2 });
    expect(two).toEqual(one);
    expect(one.map((r) => r.file.path)).toEqual(list.map((f) => f.path));
    for (const r of one) {
      const e = expectedHashes(r.file.path);
      expect(r.hashes).toEqual({ sha256: e.sha256, crc32: e.crc32 });
    }
  });

  test("per-file algorithms (defaults by extension)", async () => {
    const list = [files.st, files.one].map(foundFile);
    const results = await hashFiles(list, {
      algos: (f) => (f.path.endsWith(".safetensors") ? ["sha256", "autov2", "autov3"] : ["sha256"]),
    });
    expect(Object.keys(results[0]!.hashes).sort()).toEqual(["autov2", "autov3", "sha256"]);
    expect(Object.keys(results[1]!.hashes)).toEqual(["sha256"]);
  });

  test("progress is reported and ends complete", async () => {
    const seen: HashProgress[] = [];
    const list = Object.values(files).map(foundFile);
    await hashFiles(list, { algos: ["sha256"], bufferSize: 64 * 1024, onProgress: (p) => seen.push(p) });
    const last = seen.at(-1)!;
    const total = list.reduce((s, f) => s + f.identity.size, 0);
    expect(last).toEqual({ bytesDone: total, bytesTotal: total, filesDone: list.length, filesTotal: list.length, filesCached: 0 });
    expect(seen[0]!.filesDone).toBe(0);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytesDone).toBeGreaterThanOrEqual(seen[i - 1]!.bytesDone);
  });
});

describe("files that must not be hashed", () => {
  test("a FIFO returns an error instead of blocking", async () => {
    const fifo = join(dir, "pipe.safetensors");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const [r] = await hashFiles([foundFile(fifo)], { algos: ["sha256"] });
    expect(r!.error).toBe(ERR_NOT_REGULAR);
    expect(r!.hashes).toEqual({});
  }, 5000);

  test("a file replaced since the walk, and a vanished file, are errors", async () => {
    const p = join(dir, "replaced.bin");
    writeFileSync(p, "old");
    const stale = foundFile(p);
    rmSync(p);
    writeFileSync(join(dir, "filler.bin"), "take the old inode if the fs reuses it");
    writeFileSync(p, "new");
    const gone = foundFile(files.one);
    const results = await hashFiles([stale, { ...gone, path: join(dir, "nope.bin") }], { algos: ["sha256"] });
    // Inode reuse can make the identity match again; then the new content is hashed, which is still correct.
    if (results[0]!.error === undefined) expect(results[0]!.hashes.sha256).toBe(expectedHashes(p).sha256);
    else expect(results[0]!.error).toBe("file changed since it was found");
    expect(results[1]!.error).toContain("ENOENT");
  });

  test("a small file on its second look is read once and fstat'ed once: changes since the walk leave it out", () => {
    const p = join(dir, "second-look.safetensors");
    writeFileSync(p, safetensorsBytes());
    const found = foundFile(p);
    const job = { index: 0, path: p, identity: found.identity, algos: [...HASH_ALGOS], secondLook: true };
    const buffer = Buffer.alloc(64 * 1024);
    // Unchanged: every algorithm from the one read, and the walk's identity.
    const same = hashFileSync(job, buffer);
    expect(same.hashes).toEqual(expectedHashes(p));
    expect(same.identity).toEqual(found.identity);
    // Grown during the read: the fstat after it sees the new size, the file is left out as in progress.
    let grown = false;
    const grow = hashFileSync(job, buffer, {
      onChunk: () => {
        if (!grown) appendFileSync(p, "more");
        grown = true;
      },
    });
    expect(grow.skip).toBe("sizeChanged");
    expect(grow.hashes).toEqual({});
    // Same size, new content and mtime since the walk: left out, never hashed under the old stamp.
    const edited = foundFile(p);
    const fd = openSync(p, "r+");
    writeSync(fd, Buffer.from("changed"), 0, 7, 60);
    closeSync(fd);
    utimesSync(p, new Date(), new Date(Date.now() + 5000));
    expect(hashFileSync({ ...job, identity: edited.identity }, buffer).skip).toBe("modified");
    // Only the ctime moved (chmod): hashed again with both fstats, under the new stamp.
    const before = foundFile(p);
    chmodSync(p, 0o600);
    const chmodded = hashFileSync({ ...job, identity: before.identity }, buffer);
    expect(chmodded.error).toBeUndefined();
    expect(chmodded.hashes.sha256).toBe(expectedHashes(p).sha256);
    expect(chmodded.identity).toEqual(foundFile(p).identity);
    expect(chmodded.identity!.ctimeNs).not.toBe(before.identity.ctimeNs);
    // Replaced by a FIFO: the failed read is not an error, the file is left out as replaced.
    rmSync(p);
    expect(Bun.spawnSync(["mkfifo", p]).exitCode).toBe(0);
    expect(hashFileSync({ ...job, identity: before.identity }, buffer).skip).toBe("replaced");
    rmSync(p);
  });

  test("a file grown during the read (in-process, deterministic) is an error", () => {
    const p = join(dir, "grow.bin");
    writeFileSync(p, randomBytes(256 * 1024));
    const f = foundFile(p);
    let appended = false;
    const r = hashFileSync({ index: 0, path: p, identity: f.identity, algos: ["sha256"] }, Buffer.alloc(64 * 1024), {
      onChunk: () => {
        if (!appended) appendFileSync(p, "more");
        appended = true;
      },
    });
    expect(r.error).toBe(ERR_CHANGED_WHILE_HASHING);
    expect(r.hashes).toEqual({});
  });

  test("a same-size in-place edit during the read is an error", () => {
    const p = join(dir, "edit.bin");
    writeFileSync(p, randomBytes(256 * 1024));
    const f = foundFile(p);
    let edited = false;
    const r = hashFileSync({ index: 0, path: p, identity: f.identity, algos: ["sha256"] }, Buffer.alloc(64 * 1024), {
      onChunk: (done) => {
        if (edited) return;
        edited = true;
        // Rewrite bytes already read: only the after-fstat (mtime/ctime) can tell.
        const fd = openSync(p, "r+");
        writeSync(fd, Buffer.from("changed"), 0, 7, done - 100);
        closeSync(fd);
      },
    });
    expect(r.error).toBe(ERR_CHANGED_WHILE_HASHING);
  });

  test("a 64 MiB file appended to by another process is an error and is not cached", async () => {
    const p = join(dir, "growing.bin");
    writeFileSync(p, Buffer.alloc(64 * 1024 * 1024, 1));
    const appender = Bun.spawn(
      [
        BUN,
        "-e",
        `const fs=require("node:fs");const end=Date.now()+15000;console.log("go");while(Date.now()<end){fs.appendFileSync(${JSON.stringify(p)},"x");Bun.sleepSync(1)}`,
      ],
      { stdout: "pipe" },
    );
    try {
      const reader = appender.stdout.getReader();
      await reader.read(); // "go": the appender is running
      reader.releaseLock();
      const { cache } = await openHashCache(join(dir, "cache-grow"));
      const f = foundFile(p);
      const [r] = await hashFiles([f], { algos: ["sha256"], cache, bufferSize: 64 * 1024 });
      expect(r!.error).toMatch(/^file changed (while it was hashed|since it was found)$/);
      expect(r!.hashes).toEqual({});
      expect(cache!.stats.writes).toBe(0);
      expect(cache!.read(f.realPath, f.identity)).toBeNull();
    } finally {
      appender.kill();
      await appender.exited;
    }
  });
});

describe("a few small files are hashed on this thread", () => {
  /** Runs `body` with Worker replaced by one that cannot start, so any worker started fails the run. */
  async function withoutWorkers<T>(body: () => Promise<T>): Promise<T> {
    const real = globalThis.Worker;
    globalThis.Worker = function noWorker() {
      throw new Error("no worker expected");
    } as unknown as typeof Worker;
    try {
      return await body();
    } finally {
      globalThis.Worker = real;
    }
  }

  function smallFiles(name: string, count: number, bytes: number): string[] {
    const d = join(dir, name);
    mkdirSync(d);
    return Array.from({ length: count }, (_, i) => {
      const p = join(d, `m${i}.safetensors`);
      writeFileSync(p, randomBytes(bytes));
      utimesSync(p, new Date("2020-01-01"), new Date("2020-01-01")); // not racy: the cache trusts them next time
      return p;
    });
  }

  test("sixteen files: no worker, the same hashes, stored in the cache and taken from it next time", async () => {
    const paths = smallFiles("here16", 16, 200 * 1024);
    const cacheDir = join(dir, "cache-here");
    const first = await withoutWorkers(async () => {
      const { cache } = await openHashCache(cacheDir);
      try {
        return await hashFiles(paths.map(foundFile), { algos: ["sha256", "autov2"], cache });
      } finally {
        cache!.close();
      }
    });
    expect(first.map((r) => [r.error, r.cached])).toEqual(paths.map(() => [undefined, false]));
    expect(first.map((r) => r.hashes.sha256)).toEqual(sha256sums(paths));
    const { cache } = await openHashCache(cacheDir);
    try {
      const again = await hashFiles(paths.map(foundFile), { algos: ["sha256", "autov2"], cache });
      expect(again.every((r) => r.cached)).toBe(true);
    } finally {
      cache!.close();
    }
  });

  test("seventeen files, or more than 4 MiB, go to the workers", async () => {
    const many = smallFiles("here17", 17, 1024).map(foundFile);
    await expect(withoutWorkers(() => hashFiles(many, { algos: ["sha256"], cache: null }))).rejects.toThrow("cannot start a hash worker");
    const big = smallFiles("here-big", 2, 2 * 1024 * 1024 + 1).map(foundFile);
    await expect(withoutWorkers(() => hashFiles(big, { algos: ["sha256"], cache: null }))).rejects.toThrow("cannot start a hash worker");
  });
});

describe("the store's WAL is folded in while files are hashed", () => {
  test("a checkpoint copies what another connection committed into the database, that connection still open", () => {
    const cacheDir = join(dir, "cache-checkpoint-unit");
    mkdirSync(join(cacheDir, "hashes"), { recursive: true });
    const file = storePath(cacheDir);
    const writer = openStore(file);
    const checkpointer = openStore(file);
    if (writer.kind !== "ok" || checkpointer.kind !== "ok") throw new Error("store did not open");
    try {
      const rows = Array.from({ length: 2000 }, (_, i) => {
        const text = `row ${i} ${"x".repeat(200)}`;
        return { dir: Buffer.from("/d"), name: Buffer.from(`f${i}`), text, sum: checksum(text) };
      });
      writer.store.write(rows);
      const before = statSync(file).size;
      checkpointer.store.checkpoint();
      // The rows (~0.5 MB) are now in the database file itself, not only in the WAL.
      expect(statSync(file).size).toBeGreaterThan(before + 400_000);
      expect(writer.store.count()).toBe(2000);
    } finally {
      checkpointer.store.close();
      writer.store.close();
    }
    expect(readdirSync(join(cacheDir, "hashes"))).toEqual(["v2.sqlite"]);
  });

  /** Runs `body` with Worker wrapped so that every message posted to a worker is recorded. */
  async function recordingWorkers<T>(body: () => Promise<T>): Promise<{ result: T; types: string[] }> {
    const real = globalThis.Worker;
    const types: string[] = [];
    globalThis.Worker = class extends real {
      override postMessage(message: unknown, ...rest: never[]): void {
        types.push((message as { type: string }).type);
        super.postMessage(message, ...rest);
      }
    } as typeof Worker;
    try {
      return { result: await body(), types };
    } finally {
      globalThis.Worker = real;
    }
  }

  test("from enough files one worker checkpoints; every result is stored and only the store is left", async () => {
    const d = join(dir, "checkpointed");
    mkdirSync(d);
    const paths = Array.from({ length: 300 }, (_, i) => {
      const p = join(d, `m${i}.safetensors`);
      writeFileSync(p, randomBytes(64));
      utimesSync(p, new Date("2020-01-01"), new Date("2020-01-01"));
      return p;
    });
    const cacheDir = join(dir, "cache-checkpointed");
    const run = async (checkpointFrom: number) => {
      const { cache } = await openHashCache(cacheDir);
      try {
        return await hashFiles(paths.map(foundFile), { algos: ["sha256"], cache, jobs: 2, checkpointFrom });
      } finally {
        cache!.close();
      }
    };
    const first = await recordingWorkers(() => run(300));
    expect(first.types.filter((t) => t === "checkpoint")).toHaveLength(1);
    expect(first.result.map((r) => r.hashes.sha256)).toEqual(paths.map((p) => createHash("sha256").update(readFileSync(p)).digest("hex")));
    expect(readdirSync(join(cacheDir, "hashes"))).toEqual(["v2.sqlite"]);
    const { cache } = await openHashCache(cacheDir);
    try {
      const again = await hashFiles(paths.map(foundFile), { algos: ["sha256"], cache });
      expect(again.filter((r) => r.cached)).toHaveLength(300);
    } finally {
      cache!.close();
    }
    // Fewer files than that: no checkpointing worker.
    rmSync(cacheDir, { recursive: true });
    const fewer = await recordingWorkers(() => run(301));
    expect(fewer.types).not.toContain("checkpoint");
  });
});

describe("files given in parts", () => {
  function parts(name: string, count: number): string[] {
    const d = join(dir, name);
    mkdirSync(d);
    return Array.from({ length: count }, (_, i) => {
      const p = join(d, `m${i}.safetensors`);
      writeFileSync(p, randomBytes(100 + i));
      return p;
    });
  }

  test("the workers wait between parts, and the results come in the order the files were given", async () => {
    const paths = parts("in-parts", 60);
    const run = startHashFiles({ algos: ["sha256"], cache: null, jobs: 2 });
    run.add(paths.slice(0, 20).map(foundFile));
    await Bun.sleep(100); // the first part is done by now; its workers must wait, not go
    run.add(paths.slice(20, 50).map(foundFile));
    await Bun.sleep(20);
    run.add(paths.slice(50).map(foundFile));
    const results = await run.end();
    expect(results.map((r) => r.file.path)).toEqual(paths);
    expect(results.map((r) => r.hashes.sha256)).toEqual(sha256sums(paths));
  });

  test("with growing, progress says the totals are so far until end(); the last report is whole and not growing", async () => {
    const paths = parts("growing", 30);
    const reports: HashProgress[] = [];
    const run = startHashFiles({ algos: ["sha256"], cache: null, jobs: 2, growing: true, onProgress: (p) => reports.push(p) });
    run.add(paths.slice(0, 10).map(foundFile));
    run.add(paths.slice(10).map(foundFile));
    const before = reports.length;
    expect(before).toBeGreaterThan(0);
    expect(reports.every((r) => r.growing === true)).toBe(true);
    await run.end();
    const last = reports.at(-1)!;
    expect(last.growing).toBe(false);
    expect(last).toMatchObject({ filesDone: 30, filesTotal: 30 });
    // Without growing (hashFiles, scan): never said.
    const plain: HashProgress[] = [];
    await hashFiles(paths.map(foundFile), { algos: ["sha256"], cache: null, jobs: 2, onProgress: (p) => plain.push(p) });
    expect(plain.some((r) => r.growing)).toBe(false);
  });

  test("cancel before the end stops every worker started", async () => {
    const paths = parts("cancelled", 40);
    const real = globalThis.Worker;
    const started: { terminated: boolean }[] = [];
    globalThis.Worker = class extends real {
      private readonly record = { terminated: false };
      constructor(...args: ConstructorParameters<typeof Worker>) {
        super(...args);
        started.push(this.record);
      }
      override terminate(): void {
        this.record.terminated = true;
        super.terminate();
      }
    } as typeof Worker;
    try {
      const run = startHashFiles({ algos: ["sha256"], cache: null, jobs: 2 });
      run.add(paths.map(foundFile));
      await Bun.sleep(50);
      run.cancel();
    } finally {
      globalThis.Worker = real;
    }
    expect(started.length).toBeGreaterThan(0);
    expect(started.every((w) => w.terminated)).toBe(true);
  });
});

describe("worker pool failures", () => {
  const fake = (name: string, size: number): FoundFile => ({
    path: `/nowhere/${name}`,
    paths: [`/nowhere/${name}`],
    realPath: `/nowhere/${name}`,
    mtimeMs: 0,
    identity: { dev: 1, ino: 1, size, mtimeNs: "0", ctimeNs: "0" },
  });

  test("a worker that crashes fails only its batch; a new worker finishes the rest", async () => {
    const script = join(dir, "crashy-worker.ts");
    writeFileSync(
      script,
      `self.onmessage = (e) => {
        const msg = e.data;
        // hash-wire.ts: NUL-joined paths, and index, dev, ino and size per file in stamps.
        const paths = msg.paths.split("\\0");
        if (paths.some((p) => p.endsWith("crash.bin"))) throw new Error("boom");
        // hash-wire.ts encodeResult: bytes read, then sha256|autov1|autov2|autov3|crc32, then absent.
        postMessage({ type: "done", batchId: msg.batchId, results: paths.map((p, i) => "+" + msg.stamps[i * 4 + 3] + "|" + "0".repeat(64) + "|||||").join("\\0") });
      };`,
    );
    const big = 2 * 1024 * 1024; // one file per batch
    const list = [fake("a.bin", big), fake("b.bin", big), fake("crash.bin", big), fake("d.bin", big), fake("e.bin", big)];
    const results = await hashFiles(list, { algos: ["sha256"], jobs: 1, workerUrl: script });
    expect(results.map((r) => r.error ?? r.hashes.sha256)).toEqual([
      "0".repeat(64),
      "0".repeat(64),
      "hash worker failed: boom",
      "0".repeat(64),
      "0".repeat(64),
    ]);
  });

  test("a worker that cannot start rejects the run with one clear error", async () => {
    await expect(hashFiles([fake("a.bin", 1)], { algos: ["sha256"], workerUrl: join(dir, "missing-worker.ts") })).rejects.toThrow(
      /^cannot start a hash worker/,
    );
  });

  test("a throwing onResult callback rejects the run instead of hanging", async () => {
    const run = hashFiles([foundFile(files.one), foundFile(files.st)], {
      algos: ["sha256"],
      onResult: () => {
        throw new Error("callback broke");
      },
    });
    await expect(run).rejects.toThrow("callback broke");
  });

  test("worker location from source and inside a compiled binary", () => {
    expect(hashWorkerUrl("file:///repo/src/hash/hasher.ts")).toBe("file:///repo/src/hash/hash-worker.ts");
    expect(hashWorkerUrl("file:///$bunfs/root/civitai-meta")).toBe("file:///$bunfs/root/hash/hash-worker.ts");
    expect(hashWorkerUrl()).toBe(new URL("../../../src/hash/hash-worker.ts", import.meta.url).href);
  });
});

describe("abort and memory", () => {
  test("aborting mid-read rejects with the signal's reason", async () => {
    // Sparse 8 GiB: seconds to hash, so the abort surely lands while a worker is reading.
    const p = join(dir, "abort.bin");
    expect(Bun.spawnSync(["truncate", "-s", "8G", p]).exitCode).toBe(0);
    const ac = new AbortController();
    let bytesAtAbort = -1;
    const run = hashFiles([foundFile(p)], {
      algos: ["sha256"],
      signal: ac.signal,
      onProgress: (pr) => {
        if (pr.bytesDone > 0 && !ac.signal.aborted) {
          bytesAtAbort = pr.bytesDone;
          ac.abort(new Error("stop"));
        }
      },
    });
    await expect(run).rejects.toThrow("stop");
    expect(bytesAtAbort).toBeGreaterThan(0);
    expect(bytesAtAbort).toBeLessThan(8 * 1024 ** 3);
  });

  test("aborting before or while starting rejects", async () => {
    const p = files.random3m;
    const already = new AbortController();
    already.abort(new Error("before"));
    await expect(hashFiles([foundFile(p)], { algos: ["sha256"], signal: already.signal })).rejects.toThrow("before");
    const early = new AbortController();
    const run = hashFiles([foundFile(p)], {
      algos: ["sha256"],
      signal: early.signal,
      onProgress: () => early.abort(new Error("at start")),
    });
    await expect(run).rejects.toThrow("at start");
  });

  test("hashing a 512 MiB sparse file keeps RSS growth under 100 MB", async () => {
    // Five times the bound: a hasher that held the file, or any large share of it, fails. (It was
    // 2 GiB, which proved no more and cost ~10 s of hashing zeros.)
    const p = join(dir, "sparse.safetensors");
    expect(Bun.spawnSync(["truncate", "-s", "512M", p]).exitCode).toBe(0);
    // Measured in a child so this test runner's own heap does not blur the number.
    const script = `
        const { hashFiles } = await import(${JSON.stringify(join(SRC, "hash/hasher.ts"))});
        const fs = require("node:fs");
        const st = fs.statSync(${JSON.stringify(p)}, { bigint: true });
        const f = { path: ${JSON.stringify(p)}, paths: [${JSON.stringify(p)}], realPath: ${JSON.stringify(p)}, mtimeMs: 0,
          identity: { dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) } };
        // Warm up the worker machinery on a tiny file so the baseline includes a started worker.
        fs.writeFileSync(${JSON.stringify(p + ".tiny")}, "x");
        const t = fs.statSync(${JSON.stringify(p + ".tiny")}, { bigint: true });
        await hashFiles([{ ...f, path: ${JSON.stringify(p + ".tiny")}, identity: { dev: Number(t.dev), ino: Number(t.ino), size: 1, mtimeNs: String(t.mtimeNs), ctimeNs: String(t.ctimeNs) } }], { algos: ["sha256"] });
        Bun.gc(true);
        const base = process.memoryUsage().rss;
        let peak = base;
        const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
        const [r] = await hashFiles([f], { algos: ["sha256", "autov1", "autov2", "autov3", "crc32"], jobs: 1,
          onProgress: () => { peak = Math.max(peak, process.memoryUsage().rss); } });
        clearInterval(timer);
        peak = Math.max(peak, process.memoryUsage().rss);
        console.log(JSON.stringify({ growth: peak - base, error: r.error ?? null, sha256: r.hashes.sha256 }));
      `;
    const proc = Bun.spawnSync([BUN, "-e", script]);
    const out = JSON.parse(proc.stdout.toString().trim().split("\n").at(-1)!);
    expect(out.error).toBeNull();
    expect(out.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(out.growth).toBeLessThan(100 * 1024 * 1024);
  }, 30_000);
});
