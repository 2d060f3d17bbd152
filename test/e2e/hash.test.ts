import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { cliCommand, cliEnv, runCli, runShell } from "../helpers/run-cli.ts";
import { buildSafetensors } from "../helpers/safetensors.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

function sha256sum(path: string): string {
  const r = Bun.spawnSync(["sha256sum", path]);
  return r.stdout.toString().split(" ")[0]!;
}

function makeTree(): string {
  const dir = tmp.make();
  mkdirSync(join(dir, "loras/sub"), { recursive: true });
  writeFileSync(join(dir, "loras/a.safetensors"), Buffer.alloc(3 * 1024 * 1024, 7));
  writeFileSync(join(dir, "loras/sub/b.CKPT"), "checkpoint bytes");
  writeFileSync(join(dir, "notes.txt"), "not a model");
  // Files modified within 2 s of being hashed are cached as unconfirmed (racy-git rule), so age them.
  const past = new Date(Date.now() - 3600_000);
  for (const f of ["loras/a.safetensors", "loras/sub/b.CKPT"]) utimesSync(join(dir, f), past, past);
  return dir;
}

describe("hash command", () => {
  test("prints sha256sum-compatible lines that agree with sha256sum", async () => {
    const dir = makeTree();
    const r = await runCli(["hash", "--no-cache", "--algo", "sha256", dir]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      const [hex, path] = line.split("  ");
      expect(hex).toBe(sha256sum(path!));
    }
    // The output can be checked by sha256sum itself.
    const listing = join(tmp.make(), "SUMS");
    writeFileSync(listing, r.stdout);
    expect(Bun.spawnSync(["sha256sum", "-c", listing]).exitCode).toBe(0);
    expect(r.stderr).not.toContain("\r");
  });

  test("a file named on the command line is hashed whatever its extension, as sha256sum would; in a folder only model files are", async () => {
    const dir = makeTree();
    const onnx = join(dir, "model.onnx");
    writeFileSync(onnx, "an onnx model");
    const r = await runCli(["hash", "--no-cache", "--algo", "sha256", onnx, join(dir, "notes.txt"), dir]);
    expect(r.code).toBe(0);
    const paths = r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("  ")[1]);
    expect(paths.sort()).toEqual([join(dir, "loras/a.safetensors"), join(dir, "loras/sub/b.CKPT"), onnx, join(dir, "notes.txt")].sort());
    expect(r.stdout).toContain(`${sha256sum(onnx)}  ${onnx}`);
    expect(r.stderr).not.toMatch(/skipped \//);
  });

  test("default columns are sha256 and autov2; autov3 when named ('-' where it does not apply)", async () => {
    const dir = makeTree();
    const real = buildSafetensors([{ name: "w", shape: [4, 4], dtype: "F16" }], { ss_output_name: "real" });
    writeFileSync(join(dir, "loras/real.safetensors"), real.bytes);
    utimesSync(join(dir, "loras/real.safetensors"), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    const r = await runCli(["hash", "--no-cache", dir]);
    expect(r.code).toBe(0);
    for (const line of r.stdout.trim().split("\n")) {
      // Two hash cells, then the path (which may hold spaces, as the test's TMPDIR may).
      const [, sha, autov2, path] = /^(\S+) (\S+) {2}(.*)$/.exec(line) ?? [];
      expect(autov2).toBe(sha!.slice(0, 10));
      expect(path).toStartWith(dir);
    }
    const named = await runCli(["hash", "--no-cache", "--algo", "sha256,autov2,autov3", dir]);
    const cells = (name: string) =>
      named.stdout
        .split("\n")
        .find((l) => l.endsWith(name))!
        .split("  ")[0]!
        .split(" ");
    expect(cells("b.CKPT")[2]).toBe("-");
    expect(cells("real.safetensors")[2]).toBe(createHash("sha256").update(real.bytes.subarray(real.dataOffset)).digest("hex").slice(0, 12));
  });

  test("--json gives every requested hash", async () => {
    const dir = makeTree();
    const r = await runCli(["hash", "--no-cache", "--json", "--algo", "sha256,autov1,autov2,crc32", dir]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.files).toHaveLength(2);
    const a = out.files.find((f: { path: string }) => f.path.endsWith("a.safetensors"));
    expect(a.hashes.sha256).toBe(sha256sum(join(dir, "loras/a.safetensors")));
    expect(Object.keys(a.hashes).sort()).toEqual(["autov1", "autov2", "crc32", "sha256"]);
    expect(a.size).toBe(3 * 1024 * 1024);
  });

  test("a missing path is named, the others are still hashed, exit is non-zero", async () => {
    const dir = makeTree();
    const missing = join(dir, "does-not-exist");
    const r = await runCli(["hash", "--no-cache", "--algo", "sha256", missing, join(dir, "loras")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(missing);
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
  });

  test("only missing paths: one error naming them, exit 1, nothing on stdout (JSON: the empty result)", async () => {
    const dir = tmp.make();
    const missing = [join(dir, "nope"), join(dir, "gone.safetensors")];
    const r = await runCli(["hash", "--no-cache", ...missing], { env: { NO_COLOR: "1" } });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toEqual([`[error] ${missing.join(", ")}: no such file or folder. Nothing hashed; check the path.`]);
    const json = await runCli(["hash", "--no-cache", "--json", missing[0]!], { env: { NO_COLOR: "1" } });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ files: [], skipped: [], missing: [missing[0]] });
    expect(json.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("an empty folder gives an empty result, a note, and exit 0", async () => {
    const dir = tmp.make();
    const r = await runCli(["hash", "--no-cache", dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("No model files found");
  });

  test("the second run takes every hash from the cache and reads no content", async () => {
    const dir = makeTree();
    const cacheDir = tmp.make();
    const first = await runCli(["hash", "--cache-dir", cacheDir, dir]);
    expect(first.code).toBe(0);
    const second = await runCli(["hash", "--cache-dir", cacheDir, dir]);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(second.stderr).toContain("0 hashed (0 B read), 2 from cache");
  });

  test("CIVITAI_META_CACHE_DIR moves the cache", async () => {
    const dir = makeTree();
    const cacheDir = join(tmp.make(), "elsewhere");
    await runCli(["hash", dir], { env: { CIVITAI_META_CACHE_DIR: cacheDir } });
    const second = await runCli(["hash", dir], { env: { CIVITAI_META_CACHE_DIR: cacheDir } });
    expect(second.stderr).toContain("2 from cache");
  });

  test("a read-only cache location (a real ro mount) gives one warning and the run completes (docs/cases.md C5)", async () => {
    const dir = makeTree();
    const mnt = tmp.make();
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mnt]);
    if (mount.exitCode !== 0) {
      console.log(`skipping C5 e2e: cannot mount a read-only tmpfs (${mount.stderr.toString().trim()})`);
      return;
    }
    try {
      for (const cacheDir of [mnt, join(mnt, "missing/deeper")]) {
        const r = await runCli(["hash", "--cache-dir", cacheDir, "--algo", "sha256", dir]);
        expect(r.code).toBe(0);
        expect(r.stdout.trim().split("\n")).toHaveLength(2);
        const warnings = r.stderr.split("\n").filter((l) => l.includes("cache disabled"));
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/EROFS|read-only/);
      }
      const file = join(tmp.make(), "not-a-dir");
      writeFileSync(file, "x");
      const r = await runCli(["hash", "--cache-dir", file, "--algo", "sha256", dir]);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/cache disabled: .*not-a-dir/);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });

  test("a store on a location made read-only (a team's share) is read: its hashes are used, nothing is written, one warning (docs/cases.md C5)", async () => {
    const dir = makeTree();
    const mnt = tmp.make();
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt]);
    if (mount.exitCode !== 0) {
      console.log(`skipping C5 e2e: cannot mount a tmpfs (${mount.stderr.toString().trim()})`);
      return;
    }
    try {
      const first = await runCli(["hash", "--cache-dir", mnt, dir]);
      expect(first.code).toBe(0);
      writeFileSync(join(dir, "loras/new.safetensors"), "added later");
      expect(Bun.spawnSync(["mount", "-o", "remount,ro", mnt]).exitCode).toBe(0);
      const r = await runCli(["hash", "--cache-dir", mnt, dir]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim().split("\n")).toHaveLength(3);
      expect(r.stderr).toContain("2 from cache");
      const warnings = r.stderr.split("\n").filter((l) => l.includes("hash cache"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("read-only");
      expect(warnings[0]).toContain("new ones are not stored");
      // scan reads the same store (hashes and the header facts kept with them).
      const s = await runCli(["scan", dir, "--offline", "--cache-dir", mnt, "-q"]);
      expect(s.code).toBe(0);
      expect(JSON.parse(s.stdout).summary.cacheHits.hashes).toBe(2);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });

  test("a hash store that is a symbolic link is not followed: the database it names is left untouched (docs/cases.md C5, T11)", async () => {
    const dir = makeTree();
    const cacheDir = tmp.make();
    // Someone else's SQLite database (an app's, user_version 0) behind a link at the store's name.
    const other = join(tmp.make(), "app.sqlite");
    const db = new Database(other, { create: true });
    db.run("CREATE TABLE notes (text TEXT)");
    db.run("INSERT INTO notes VALUES ('mine')");
    db.close();
    const before = readFileSync(other);
    mkdirSync(join(cacheDir, "hashes"));
    symlinkSync(other, join(cacheDir, "hashes", "v2.sqlite"));
    const r = await runCli(["hash", "--algo", "sha256", "--cache-dir", cacheDir, dir]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
    const warnings = r.stderr.split("\n").filter((l) => l.includes("hash cache"));
    expect(warnings).toEqual([expect.stringContaining(`${join(cacheDir, "hashes", "v2.sqlite")} is a symbolic link: not followed`)]);
    // No table, no WAL, no rows of our paths in the other database; the link is still a link.
    expect(readFileSync(other)).toEqual(before);
    expect(existsSync(`${other}-wal`)).toBe(false);
    expect(lstatSync(join(cacheDir, "hashes", "v2.sqlite")).isSymbolicLink()).toBe(true);
  });

  test("a file name with terminal escapes is printed escaped on a terminal (docs/cases.md D6), as its bytes when piped (docs/cases.md T15)", async () => {
    const dir = tmp.make();
    writeFileSync(join(dir, "evil\x1b]52;c;aGk=\x07.safetensors"), "x");
    const tty = await runShell(
      `script -qec '"$CLI_EXEC" \${CLI_ENTRY:+"$CLI_ENTRY"} hash -q --no-cache --algo sha256 "$DIR" 2>/dev/null' /dev/null`,
      {
        env: { DIR: dir },
      },
    );
    expect(tty.code).toBe(0);
    expect(tty.stdout.toString()).not.toContain("\x1b");
    expect(tty.stdout.toString()).toContain("evil\\x1b]52;c;aGk=\\x07.safetensors");
    // Piped, it is sha256sum's line, which `sha256sum -c` reads back (the reader's terminal is not ours).
    const piped = await runCli(["hash", "--no-cache", "--algo", "sha256", dir]);
    expect(piped.stdout).toContain("evil\x1b]52;c;aGk=\x07.safetensors");
    expect(piped.stderr).not.toContain("\x1b");
  });

  // A folder whose files sort after its subfolder's, and upper case before lower; then (the walk
  // sorts plain names its own way) names where UTF-16 order and byte order part (U+FF5E against an
  // astral emoji), and a backslash and a line break (escaped lines).
  const plainNames = ["m/z.safetensors", "m/sub/y.safetensors", "plain/b.safetensors", "plain/B.safetensors", "plain/a.safetensors"];
  test.each([
    ["plain names", plainNames],
    [
      "any names",
      [
        ...plainNames,
        "\uff5e.safetensors",
        "\u{1f600}.safetensors",
        "\u00e9.safetensors",
        "back\\slash.safetensors",
        "line\nbreak.safetensors",
      ],
    ],
  ])("lines come in the byte order of the paths (%s), and sha256sum -c checks them all", async (_, names) => {
    const dir = tmp.make();
    mkdirSync(join(dir, "m/sub"), { recursive: true });
    mkdirSync(join(dir, "plain"), { recursive: true });
    for (const [i, name] of names.entries()) writeFileSync(join(dir, name), `content ${i}`);
    const r = await runCli(["hash", "--no-cache", "--algo", "sha256", dir]);
    expect(r.code).toBe(0);
    const expected = names.map((n) => join(dir, n)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const shown = r.stdout
      .trimEnd()
      .split(/\n(?=\\?[0-9a-f]{64}  )/)
      .map((line) =>
        line
          .replace(/^\\?[0-9a-f]{64}  /, "")
          .replace(/\\n/g, "\n")
          .replace(/\\\\/g, "\\"),
      );
    expect(shown).toEqual(expected);
    const check = Bun.spawnSync(["sha256sum", "-c", "--quiet", "-"], { stdin: Buffer.from(r.stdout) });
    expect(check.exitCode).toBe(0);
  });

  test("links to one file are hashed once and every path is listed", async () => {
    const dir = makeTree();
    symlinkSync(join(dir, "loras/a.safetensors"), join(dir, "link.safetensors"));
    const r = await runCli(["hash", "--no-cache", "--json", dir]);
    const out = JSON.parse(r.stdout);
    expect(out.files).toHaveLength(2);
    const a = out.files.find((f: { path: string; aliases: string[] }) => f.aliases.length > 0);
    expect([a.path, ...a.aliases].sort()).toEqual([join(dir, "link.safetensors"), join(dir, "loras/a.safetensors")].sort());
  });

  test.skipIf(!Bun.which("script"))(
    "on a terminal a progress bar shows bytes, rate, ETA and files (run under script(1) for a pty)",
    async () => {
      const dir = tmp.make();
      writeFileSync(join(dir, "big.ckpt"), Buffer.alloc(64 * 1024 * 1024, 1));
      const cmd = cliCommand(["hash", "--no-cache", dir])
        .map((s) => `"${s}"`)
        .join(" ");
      const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], {
        stdout: "pipe",
        stderr: "pipe",
        env: cliEnv({ NO_COLOR: "1" }),
      });
      const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(out).toMatch(/hashing .*\d+%.*MiB\/.*MiB .*\/s ETA .* 1\/1 files/);
    },
  );

  test("--algo with an unknown name is a usage error listing the valid ones", async () => {
    const r = await runCli(["hash", "--algo", "md5", "."]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--algo takes sha256, autov1, autov2, autov3, crc32, comma-separated (got "md5")');
  });
});
