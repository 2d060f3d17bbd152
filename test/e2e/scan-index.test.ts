/**
 * The library index through the CLI (issue 14): one machine writes it, another that sees the same
 * folder elsewhere (a copy with the same mtimes here, as a second mount of a NAS would show it)
 * hashes nothing whose size and mtime match; anything that differs is hashed; a damaged, foreign or
 * newer index is one warning and the scan goes on.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli, runShell } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

const PAST = new Date(Date.now() - 3600_000);

/** A library with a nested folder and a safetensors file (AutoV3 too), all older than the racy window. */
function library(): string {
  const root = join(tmp.make(), "models");
  mkdirSync(join(root, "loras"), { recursive: true });
  const header = Buffer.from(JSON.stringify({ __metadata__: { a: "b" } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const files: Record<string, Buffer> = {
    "a.ckpt": Buffer.from("checkpoint a"),
    "loras/b.safetensors": Buffer.concat([len, header, Buffer.from("tensor data b")]),
    "loras/c.safetensors": Buffer.concat([len, header, Buffer.from("tensor data c")]),
  };
  for (const [name, bytes] of Object.entries(files)) {
    writeFileSync(join(root, name), bytes);
    utimesSync(join(root, name), PAST, PAST);
  }
  return root;
}

/** Machine B's view of the same folder: a copy that keeps mtimes to the nanosecond (cp -a). */
function copyOf(root: string): string {
  const other = join(tmp.make(), "mnt", "nas-models");
  mkdirSync(join(other, ".."), { recursive: true });
  const r = Bun.spawnSync(["cp", "-a", root, other]);
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return other;
}

const scan = (root: string, args: string[]) => runCli(["scan", root, "--offline", "--cache-dir", tmp.make(), ...args]);
const records = (stdout: string) =>
  Object.fromEntries(
    (JSON.parse(stdout).records as { path: string; hashSource?: string; hashes: object }[]).map((r) => [
      r.path.split("/models/").pop()!.split("/nas-models/").pop()!,
      r,
    ]),
  );

describe("library index (--index, --use-index)", () => {
  test("a second machine hashes nothing whose size and mtime match; the index holds relative paths only", async () => {
    const root = library();
    const index = join(tmp.make(), "library-index.json");
    const a = await scan(root, ["--index", index]);
    expect(a.code).toBe(0);
    expect(a.stderr).toContain(`Wrote the library index (3 files) to ${index}`);
    const text = readFileSync(index, "utf8");
    const doc = JSON.parse(text);
    expect(doc).toMatchObject({ format: "civitai-meta library index", version: 1 });
    expect(doc.files.map((f: { path: string }) => f.path)).toEqual(["a.ckpt", "loras/b.safetensors", "loras/c.safetensors"]);
    // Offline, nothing is asked by AutoV3, so none was read: the index holds what the scan hashed.
    expect(doc.files[1]).toMatchObject({ size: 47, hashes: { sha256: expect.any(String), autov2: expect.any(String) } });
    expect(doc.files[1].hashes.autov3).toBeUndefined();
    expect(doc.files[1].mtimeNs).toBe(String(statSync(join(root, "loras/b.safetensors"), { bigint: true }).mtimeNs));
    // Nothing of the machine that wrote it: no absolute path.
    expect(text).not.toContain(root);
    expect(text).not.toContain(tmp.make().split("/").slice(0, -1).join("/") + "/");
    expect(readdirSync(join(index, "..")).filter((n) => n !== "library-index.json")).toEqual([]); // no temp file left

    const other = copyOf(root);
    const b = await scan(other, ["--use-index", index, "--verbose"]);
    expect(b.code).toBe(0);
    expect(b.stderr).toContain("0 hashed (0 B read)");
    expect(b.stderr).toContain("3 taken from the library index");
    const inv = JSON.parse(b.stdout);
    expect(inv.options.useIndex).toBe(true);
    const got = records(b.stdout);
    const want = records(a.stdout);
    for (const name of ["a.ckpt", "loras/b.safetensors", "loras/c.safetensors"]) {
      expect(got[name]!.hashSource).toBe("index");
      expect(got[name]!.hashes).toEqual(want[name]!.hashes);
    }
  });

  test("the AutoV3s read for files Civitai does not know go into the index, and the next machine takes them too: it reads nothing", async () => {
    const civitai = await startFakeCivitai({ fixtures: false });
    try {
      const root = library();
      const index = join(tmp.make(), "i.json");
      const online = (dir: string, args: string[]) =>
        runCli(["scan", dir, "--api-url", civitai.url, "--no-fallback", "--cache-dir", tmp.make(), ...args]);
      const a = await online(root, ["--index", index]);
      expect(a.code).toBe(0);
      // Unknown by SHA-256: each safetensors was read again for its AutoV3 and asked by it.
      expect(civitai.counts.versionByHash).toBe(2);
      const entries = JSON.parse(readFileSync(index, "utf8")).files;
      expect(entries.map((e: { hashes: { autov3?: string } }) => e.hashes.autov3 !== undefined)).toEqual([false, true, true]);

      civitai.reset();
      const b = await online(copyOf(root), ["--use-index", index]);
      expect(b.code).toBe(0);
      expect(b.stderr).toContain("0 hashed (0 B read)");
      expect(civitai.counts.versionByHash).toBe(2);
      const got = records(b.stdout);
      expect(got["loras/b.safetensors"]!.hashes).toEqual(records(a.stdout)["loras/b.safetensors"]!.hashes);
      expect(got["loras/b.safetensors"]!.hashes).toHaveProperty("autov3");
    } finally {
      await civitai.stop();
    }
  });

  test("a file whose size or mtime differs is hashed (never taken from the index)", async () => {
    const root = library();
    const index = join(tmp.make(), "i.json");
    expect((await scan(root, ["--index", index])).code).toBe(0);
    const other = copyOf(root);
    // Same size, new content, mtime moved by one second; another file: new size, mtime put back.
    writeFileSync(join(other, "a.ckpt"), "checkpoint A");
    utimesSync(join(other, "a.ckpt"), new Date(PAST.getTime() + 1000), new Date(PAST.getTime() + 1000));
    const c = join(other, "loras/c.safetensors");
    const mtime = statSync(c).mtime;
    writeFileSync(c, Buffer.concat([readFileSync(c), Buffer.from("more")]));
    utimesSync(c, mtime, mtime);
    const b = await scan(other, ["--use-index", index]);
    expect(b.code).toBe(0);
    const got = records(b.stdout);
    expect(got["a.ckpt"]!.hashSource).toBeUndefined();
    expect((got["a.ckpt"]!.hashes as { sha256: string }).sha256).toBe(new Bun.CryptoHasher("sha256").update("checkpoint A").digest("hex"));
    expect(got["loras/c.safetensors"]!.hashSource).toBeUndefined();
    expect(got["loras/b.safetensors"]!.hashSource).toBe("index");
    expect(b.stderr).toContain("2 hashed");
  });

  test("a damaged, cut short, foreign, newer or other folder's index: one warning, every file hashed", async () => {
    const root = library();
    const index = join(tmp.make(), "i.json");
    expect((await scan(root, ["--index", index])).code).toBe(0);
    const good = readFileSync(index, "utf8");
    const otherRoot = library();
    const otherIndex = join(tmp.make(), "other.json");
    writeFileSync(join(otherRoot, "only-there.ckpt"), "x");
    expect((await scan(join(otherRoot, "loras"), ["--index", otherIndex])).code).toBe(0);
    const cases: [string, string][] = [
      [good.slice(0, Math.floor(good.length * 0.6)), "not valid JSON"],
      ["garbage\0\xff", "not valid JSON"],
      [JSON.stringify({ format: "some other tool", files: [] }), "not a civitai-meta library index"],
      [good.replace('"version":1', '"version":7'), "index format 7 by a newer civitai-meta"],
      [readFileSync(otherIndex, "utf8"), "names none of the 3 files"],
    ];
    for (const [text, why] of cases) {
      writeFileSync(index, text);
      const r = await scan(root, ["--use-index", index]);
      expect(r.code).toBe(0);
      const warnings = r.stderr.split("\n").filter((l) => l.startsWith("[warn]"));
      expect({ why, warnings: warnings.length }).toEqual({ why, warnings: 1 });
      expect(r.stderr).toContain(why);
      expect(r.stderr).toContain("3 hashed");
      expect(JSON.parse(r.stdout).records.every((rec: { hashSource?: string }) => rec.hashSource === undefined)).toBe(true);
    }
    const missing = await scan(root, ["--use-index", join(tmp.make(), "none.json")]);
    expect(missing.code).toBe(0);
    expect(missing.stderr).toContain("it does not exist yet (scan --index writes it)");
  });

  test("a file changed within 2 s of its hashing is left out of the index: rewritten with the same size and mtime, the next machine hashes it", async () => {
    const root = library();
    const index = join(tmp.make(), "i.json");
    // A model still being written while the index is made. Its mtime is not 2 s older than the
    // scan (here 30 s ahead, as a NAS clock ahead of ours would show it): a second write in the
    // same tick of a coarse clock (whole seconds on some SMB and FUSE mounts) keeps size and mtime.
    const fresh = join(root, "fresh.ckpt");
    const tick = new Date(Math.floor(Date.now() / 1000) * 1000 + 30_000);
    writeFileSync(fresh, "first bytes");
    utimesSync(fresh, tick, tick);
    const a = await scan(root, ["--index", index]);
    expect(a.code).toBe(0);
    expect(JSON.parse(readFileSync(index, "utf8")).files.map((f: { path: string }) => f.path)).toEqual([
      "a.ckpt",
      "loras/b.safetensors",
      "loras/c.safetensors",
    ]);
    writeFileSync(fresh, "other bytes");
    utimesSync(fresh, tick, tick);
    const b = await scan(copyOf(root), ["--use-index", index]);
    expect(b.code).toBe(0);
    expect(b.stderr).toContain("1 hashed");
    const got = records(b.stdout)["fresh.ckpt"]!;
    expect(got.hashSource).toBeUndefined();
    expect(got.hashes).toMatchObject({ sha256: new Bun.CryptoHasher("sha256").update("other bytes").digest("hex") });
  });

  test("a FIFO (or a link to one) given as the index: one warning, every file hashed; the scan never waits for a writer", async () => {
    const root = library();
    const dir = tmp.make();
    const fifo = join(dir, "index.fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    symlinkSync(fifo, join(dir, "link.json"));
    for (const index of [fifo, join(dir, "link.json")]) {
      // Opening a FIFO without O_NONBLOCK waits for a writer forever (and a signal cannot stop it).
      const r = await runCli(["scan", root, "--offline", "--cache-dir", tmp.make(), "--use-index", index], { timeoutMs: 15_000 });
      expect({ index, code: r.code }).toEqual({ index, code: 0 });
      expect(r.stderr).toContain("not used: not a regular file; every file is hashed");
      expect(r.stderr).toContain("3 hashed");
    }
  });

  test("names that are not valid UTF-8 keep their bytes in the index and are matched on the other machine", async () => {
    const root = library();
    const index = join(tmp.make(), "i.json");
    const r = await runShell(
      `f="$ROOT/loras/bad$(printf '\\377').safetensors"; cp "$ROOT/loras/b.safetensors" "$f" && touch -d '2 hours ago' "$f" && cli scan "$ROOT" --offline --cache-dir "$CACHE" --index "$INDEX" >/dev/null`,
      { env: { ROOT: root, INDEX: index, CACHE: tmp.make() } },
    );
    expect(r.code).toBe(0);
    expect(readFileSync(index, "utf8")).toContain('"path":"loras/bad\\udcff.safetensors"');
    const other = copyOf(root);
    const b = await scan(other, ["--use-index", index]);
    expect(b.code).toBe(0);
    expect(b.stderr).toContain("0 hashed (0 B read)");
    expect(b.stderr).toContain("4 taken from the library index");
  });

  test("usage: one folder only, a file not -, and a folder that exists, all checked before any work", async () => {
    const root = library();
    const two = await runCli(["scan", root, root, "--offline", "--index", join(tmp.make(), "i.json")]);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain("--index takes one folder to scan");
    const dash = await runCli(["scan", root, "--offline", "--use-index", "-"]);
    expect(dash.code).toBe(2);
    const nowhere = await runCli(["scan", root, "--offline", "--index", join(tmp.make(), "no", "such", "i.json")]);
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toContain("Cannot write the library index to");
    expect(nowhere.stdout).toBe("");
  });

  test("F9: --index naming the inventory written (-o) or read (--previous), or -o naming the --use-index, under any name: exit 2 before any work, all kept", async () => {
    const root = library();
    const dir = tmp.make();
    const previous = join(dir, "previous.json");
    expect((await scan(root, ["-o", previous])).code).toBe(0);
    const before = readFileSync(previous, "utf8");
    symlinkSync(previous, join(dir, "link.json"));
    const cases: [string[], string][] = [
      [["-o", join(dir, "new.json"), "--index", join(dir, "new.json")], "and -o"],
      [["-o", join(dir, "x.json"), "--previous", previous, "--index", previous], "and --previous"],
      [["-o", join(dir, "x.json"), "--previous", previous, "--index", join(dir, "link.json")], "and --previous"],
      [["-o", join(dir, "link.json"), "--index", previous], "and -o"],
      // The team's index read must not be replaced by the inventory either.
      [["-o", join(dir, "link.json"), "--use-index", previous], "the inventory would replace that index"],
    ];
    for (const [args, message] of cases) {
      const r = await scan(root, args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain("hashed");
    }
    expect(readFileSync(previous, "utf8")).toBe(before);
    expect(readdirSync(dir).sort()).toEqual(["link.json", "previous.json"]);
    // The index the scan reads may be the one it writes: that is how it is kept current.
    const index = join(dir, "index.json");
    expect((await scan(root, ["--use-index", index, "--index", index, "-o", join(dir, "inv.json")])).code).toBe(0);
    expect(JSON.parse(readFileSync(index, "utf8")).format).toBe("civitai-meta library index");
  });

  test("a read-only place for the index: the inventory is written, the old index is kept whole, exit 1", async () => {
    const root = library();
    const mnt = tmp.make();
    const index = join(mnt, "i.json");
    expect((await scan(root, ["--index", index])).code).toBe(0);
    const before = readFileSync(index, "utf8");
    const remount = Bun.spawnSync(["mount", "--bind", "-o", "ro", mnt, mnt]);
    if (remount.exitCode !== 0) {
      console.log(`skipping: cannot bind-mount read-only (${remount.stderr.toString().trim()})`);
      return;
    }
    try {
      Bun.spawnSync(["mount", "-o", "remount,bind,ro", mnt]);
      writeFileSync(join(root, "new.ckpt"), "new");
      const r = await scan(root, ["--index", index]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Cannot write the library index to ${index}: EROFS`);
      expect(JSON.parse(r.stdout).records).toHaveLength(4);
      expect(readFileSync(index, "utf8")).toBe(before);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
    expect(existsSync(index)).toBe(true);
  });
});
