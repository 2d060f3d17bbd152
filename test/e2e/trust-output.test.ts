/**
 * Issue 9, outputs: `-o` onto devices, FIFOs and links (docs/cases.md T8), missing roots (docs/cases.md T9), the output folder
 * checked before the walk (docs/cases.md T10), a run Civitai stopped (docs/cases.md T23), unknown `-o` extensions (docs/cases.md T21) and `--log-file` (docs/cases.md T22).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
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
import { hashCacheRows } from "../helpers/hash-store.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const SENTINEL = "SENTINEL-KEY-log-5d1e";

// A read-only folder for T10 (root ignores chmod). Mounted when the file loads, so skipIf knows;
// unmounted in the file's afterAll, before the temp folders go, whatever tests a filter ran.
const roMount = join(tmp.make(), "ro");
mkdirSync(roMount);
const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", roMount]).exitCode === 0;
if (!mounted) console.log("T10 read-only folder case skipped: cannot mount a read-only tmpfs here");
// A full disk for the same tests: a 64 KiB tmpfs.
const fullMount = join(tmp.make(), "full");
mkdirSync(fullMount);
const fullMounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", fullMount]).exitCode === 0;
if (!fullMounted) console.log("full-disk -o case skipped: cannot mount a tmpfs here");

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  if (mounted) Bun.spawnSync(["umount", roMount]);
  if (fullMounted) Bun.spawnSync(["umount", fullMount]);
  tmp.cleanup();
});
beforeEach(() => {
  civitai.reset();
  civitai.clearData();
});

/** A folder with model files (aged past the racy window). */
function models(names: string[] = ["a.safetensors"]): string {
  const dir = tmp.make();
  for (const name of names) {
    writeFileSync(join(dir, name), `bytes of ${name}`);
    utimesSync(join(dir, name), PAST, PAST);
  }
  return dir;
}

/** A JSON inventory written by scan (offline, no cache). */
async function inventoryFile(): Promise<{ path: string; text: string }> {
  const path = join(tmp.make(), "inv.json");
  const r = await runCli(["scan", models(), "--offline", "--no-cache", "-o", path]);
  expect(r.code).toBe(0);
  return { path, text: readFileSync(path, "utf8") };
}

/** Hash-cache rows under a cache folder (what a scan leaves once it hashed something), by file name. */
function hashEntries(cacheDir: string): string[] {
  return hashCacheRows(cacheDir);
}

const isRoot = process.getuid?.() === 0;

describe("T8: -o onto devices, FIFOs and links to them", () => {
  test.skipIf(!isRoot)("T8: a character device stays a device; the report is written through it", async () => {
    const inv = await inventoryFile();
    const dir = tmp.make();
    const dev = join(dir, "null");
    // A private copy of /dev/null (char 1:3): the machine's own must never be at risk in a test.
    expect(Bun.spawnSync(["mknod", dev, "c", "1", "3"]).exitCode).toBe(0);
    const r = await runCli(["report", inv.path, "-o", dev]);
    expect(r.code).toBe(0);
    expect(lstatSync(dev).isCharacterDevice()).toBe(true);
    expect(readdirSync(dir)).toEqual(["null"]);

    const link = join(dir, "link-to-null");
    symlinkSync(dev, link);
    const viaLink = await runCli(["report", inv.path, "--format", "md", "-o", link]);
    expect(viaLink.code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(lstatSync(dev).isCharacterDevice()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["link-to-null", "null"]);
  });

  test("T8: a FIFO stays a FIFO and its reader gets the whole report", async () => {
    const inv = await inventoryFile();
    const dir = tmp.make();
    const fifo = join(dir, "pipe");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const reader = Bun.spawn(["cat", fifo], { stdout: "pipe" });
    try {
      const r = await runCli(["report", inv.path, "-o", fifo]);
      expect(r.code).toBe(0);
      expect(lstatSync(fifo).isFIFO()).toBe(true);
      const got = await Promise.race([new Response(reader.stdout).text(), Bun.sleep(10_000).then(() => "reader never got an end")]);
      expect(got).toBe(inv.text);
    } finally {
      reader.kill();
    }
  });

  test("T8: `-o -` and a link to the process's stdout write to stdout, leaving no file", async () => {
    const inv = await inventoryFile();
    const cwd = tmp.make();
    const dash = await runCli(["report", inv.path, "-o", "-"], { cwd });
    expect(dash.code).toBe(0);
    expect(dash.stdout).toBe(inv.text);
    expect(readdirSync(cwd)).toEqual([]);

    // What /dev/stdout is: a link to /proc/self/fd/1 (here a pipe). It must not be replaced by a file.
    const link = join(cwd, "stdout-link");
    symlinkSync("/proc/self/fd/1", link);
    const viaLink = await runCli(["report", inv.path, "-o", link], { cwd });
    expect(viaLink.code).toBe(0);
    expect(viaLink.stdout).toBe(inv.text);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  test.skipIf(!existsSync("/dev/full"))("a full stdout or -o device: one error naming where and why, exit 1", async () => {
    const inv = await inventoryFile();
    // Before the fix: `ENOSPC: no space left on device, write` (stdout never named) and
    // `Cannot write the report to /dev/full: ENOSPC`.
    for (const [args, message] of [
      [["report", inv.path], "Cannot write to stdout: no space left on the device (ENOSPC)"],
      [["hash", models()], "Cannot write to stdout: no space left on the device (ENOSPC)"],
      [["report", inv.path, "-o", "/dev/full"], "Cannot write the report to /dev/full: no space left on the device (ENOSPC)"],
    ] as const) {
      const proc = Bun.spawn(cliCommand(args), { env: cliEnv({ NO_COLOR: "1" }), stdout: Bun.file("/dev/full"), stderr: "pipe" });
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect({ args, code, stderr: stderr.trim().split("\n").at(-1) }).toEqual({ args, code: 1, stderr: `[error] ${message}` });
    }
  });

  /** `-o` names a link to `target`: the link becomes the report, and `target` is left as it was. */
  async function expectLinkReplaced(target: string, link: string): Promise<void> {
    const inv = await inventoryFile();
    writeFileSync(target, "do not touch");
    symlinkSync(target, link);
    const r = await runCli(["report", inv.path, "-o", link]);
    expect(r.code).toBe(0);
    expect(readFileSync(target, "utf8")).toBe("do not touch");
    expect(lstatSync(link).isFile()).toBe(true);
    expect(readFileSync(link, "utf8")).toBe(inv.text);
  }

  test("T8: a regular file and a missing path are still written atomically; a link to a file is replaced, not followed", async () => {
    const dir = tmp.make();
    await expectLinkReplaced(join(dir, "elsewhere.json"), join(dir, "out.json"));
  });

  test("T8: a dangling link is replaced, never written through, whatever its text (`/dev/../…` included)", async () => {
    const inv = await inventoryFile();
    const dir = tmp.make();
    const elsewhere = join(tmp.make(), "created-through-the-link.txt");
    for (const [name, target] of [
      ["plain.json", elsewhere],
      ["dev-dotdot.json", `/dev/..${elsewhere}`],
      ["proc-dotdot.json", `/proc/..${elsewhere}`],
    ] as const) {
      const link = join(dir, name);
      symlinkSync(target, link);
      const r = await runCli(["report", inv.path, "-o", link]);
      expect(r.code).toBe(0);
      expect(existsSync(elsewhere)).toBe(false);
      expect(lstatSync(link).isFile()).toBe(true);
      expect(readFileSync(link, "utf8")).toBe(inv.text);
    }
  });

  // /dev/shm is a RAM disk of regular files: a link's name under /dev/ once made it a stream, so a
  // planted `out.json -> /dev/shm/…` overwrote the file it pointed to.
  test.skipIf(!existsSync("/dev/shm"))("T8: a link to a regular file under /dev (/dev/shm) is replaced, not followed", async () => {
    const victimDir = mkdtempSync("/dev/shm/civitai-meta-victim-");
    try {
      await expectLinkReplaced(join(victimDir, "precious.txt"), join(tmp.make(), "out.json"));
    } finally {
      rmSync(victimDir, { recursive: true, force: true });
    }
  });
});

describe("T9: a missing root never replaces a good inventory", () => {
  test("T9: a mistyped root writes no inventory, names the path and exits 1; the old inventory is intact", async () => {
    const good = await inventoryFile();
    const missing = join(tmp.make(), "modles");
    const r = await runCli(["scan", missing, "--offline", "--no-cache", "-o", good.path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toContain("--allow-missing");
    expect(r.stderr).not.toContain("Wrote");
    expect(readFileSync(good.path, "utf8")).toBe(good.text);

    // One good root and one missing: still nothing written.
    const mixed = await runCli(["scan", models(["b.safetensors"]), missing, "--offline", "--no-cache", "-o", good.path]);
    expect(mixed.code).toBe(1);
    expect(readFileSync(good.path, "utf8")).toBe(good.text);

    // An -o that does not exist yet is not said to be "left as it was" (it was before the fix).
    const fresh = join(tmp.make(), "new.json");
    const none = await runCli(["scan", missing, "--offline", "--no-cache", "-o", fresh]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("No inventory written.");
    expect(none.stderr).not.toContain("left as it was");
    expect(existsSync(fresh)).toBe(false);
  });

  test("T9: --allow-missing writes the inventory of the roots that exist, warns about the others, exits 0", async () => {
    const dir = models(["c.safetensors"]);
    const missing = join(tmp.make(), "usb-disk");
    const out = join(tmp.make(), "inv.json");
    const r = await runCli(["scan", dir, missing, "--allow-missing", "--offline", "--no-cache", "-o", out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(missing);
    const inv = JSON.parse(readFileSync(out, "utf8"));
    expect(inv.records.map((x: { path: string }) => x.path)).toEqual([join(dir, "c.safetensors")]);

    // No root at all is still a mistake, not an empty inventory over the good one.
    const before = readFileSync(out, "utf8");
    const none = await runCli(["scan", missing, "--allow-missing", "--offline", "--no-cache", "-o", out]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("None of the paths exists");
    expect(readFileSync(out, "utf8")).toBe(before);
  });
});

describe("T23: a run Civitai stopped keeps the inventory it would replace", () => {
  const sha = (s: string) => createHash("sha256").update(s).digest("hex");

  test("T23: key refused on the second scan: inv.json stays, the run's inventory goes to inv.partial.json, exit 1", async () => {
    const dir = models(["known.safetensors"]);
    const version = makeVersion({ versionId: 23, modelId: 2, sha256: sha("bytes of known.safetensors") });
    civitai.addModel(makeModel({ modelId: 2, versions: [version] }));
    const out = tmp.make();
    const inv = join(out, "inv.json");
    const api = ["--api-url", civitai.url, "--no-fallback", "--no-details"];
    const good = await runCli(["scan", dir, ...api, "--cache-dir", tmp.make(), "-o", inv]);
    expect(good.code).toBe(0);
    const goodText = readFileSync(inv, "utf8");
    expect(JSON.parse(goodText).records[0].status).toBe("found");

    // A new cache, so the lookup must ask Civitai, which now refuses the key.
    civitai.setFault("*", faults.unauthorized());
    const refused = await runCli(["scan", dir, ...api, "--cache-dir", tmp.make(), "-o", inv]);
    expect(refused.code).toBe(1);
    expect(readFileSync(inv, "utf8")).toBe(goodText);
    const partial = join(out, "inv.partial.json");
    expect(JSON.parse(readFileSync(partial, "utf8")).records[0].status).toBe("error");
    expect(refused.stderr).toContain(`${inv} is left as it was; what this run did is in ${partial}`);
    expect(refused.stderr).toContain(`Wrote JSON inventory to ${partial}`);
    expect(readdirSync(out).sort()).toEqual(["inv.json", "inv.partial.json"]);

    // Other formats keep their extension; a name with no file behind it is written as asked.
    const md = join(out, "inv.md");
    writeFileSync(md, "# my inventory\n");
    const mdRun = await runCli(["scan", dir, ...api, "--cache-dir", tmp.make(), "-o", md]);
    expect(mdRun.code).toBe(1);
    expect(readFileSync(md, "utf8")).toBe("# my inventory\n");
    expect(readFileSync(join(out, "inv.partial.md"), "utf8")).toContain("known.safetensors");
    const fresh = join(out, "new.json");
    const freshRun = await runCli(["scan", dir, ...api, "--cache-dir", tmp.make(), "-o", fresh]);
    expect(freshRun.code).toBe(1);
    expect(JSON.parse(readFileSync(fresh, "utf8")).records[0].status).toBe("error");
    expect(existsSync(join(out, "new.partial.json"))).toBe(false);
    expect(freshRun.stderr).toContain("The inventory written holds what was done so far");

    // Civitai answers again: the inventory is replaced as usual.
    civitai.setFault("*", null);
    const again = await runCli(["scan", dir, ...api, "--cache-dir", tmp.make(), "-o", inv]);
    expect(again.code).toBe(0);
    expect(JSON.parse(readFileSync(inv, "utf8")).records[0].status).toBe("found");
  });
});

describe("T10: the output location is checked before the walk", () => {
  test("T10: -o into a folder that does not exist fails at once: nothing is hashed", async () => {
    const dir = models(["a.safetensors", "b.safetensors"]);
    const cacheDir = tmp.make();
    const r = await runCli(["scan", dir, "--offline", "--cache-dir", cacheDir, "-o", "/no/such/dir/x.json"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("/no/such/dir");
    expect(hashEntries(cacheDir)).toEqual([]);
    expect(r.stderr).not.toMatch(/\d+ files? \(/);
    // The same scan with a good -o stores both files: the check above can see a hashed file.
    expect((await runCli(["scan", dir, "--offline", "--cache-dir", cacheDir, "-o", join(tmp.make(), "x.json")])).code).toBe(0);
    expect(hashEntries(cacheDir)).toEqual(["a.safetensors", "b.safetensors"]);
  });

  test("T10: -o into a folder that is a file, or a folder itself, fails before the walk", async () => {
    const dir = models();
    const cacheDir = tmp.make();
    const file = join(tmp.make(), "plain");
    writeFileSync(file, "x");
    const underFile = await runCli(["scan", dir, "--offline", "--cache-dir", cacheDir, "-o", join(file, "x.json")]);
    expect(underFile.code).not.toBe(0);
    const isDir = await runCli(["scan", dir, "--offline", "--cache-dir", cacheDir, "-o", tmp.make()]);
    expect(isDir.code).not.toBe(0);
    expect(isDir.stderr).toContain("folder");
    expect(hashEntries(cacheDir)).toEqual([]);
  });

  test.skipIf(!mounted)("T10: -o into a read-only folder fails before the walk, naming it", async () => {
    const dir = models();
    const cacheDir = tmp.make();
    const r = await runCli(["scan", dir, "--offline", "--cache-dir", cacheDir, "-o", join(roMount, "inv.json")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(roMount);
    expect(r.stderr).toMatch(/read-only|not writable|EROFS/);
    expect(hashEntries(cacheDir)).toEqual([]);
  });
});

describe("F9: -o onto a full disk", () => {
  test.skipIf(!fullMounted)("F9: the old report stays whole, no temp file is left, and the error says the disk is full", async () => {
    const inv = join(fullMount, "inv.json");
    writeFileSync(inv, "the old inventory");
    // Fill what is left (the size is rounded to pages: write until the disk refuses).
    try {
      writeFileSync(join(fullMount, "fill"), Buffer.alloc(128 * 1024));
    } catch {
      /* full now */
    }
    const r = await runCli(["scan", models(), "--offline", "--no-cache", "-o", inv]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(inv);
    expect(r.stderr).toMatch(/no space left on the device/);
    expect(r.stderr).not.toContain("exists and is writable");
    expect(readFileSync(inv, "utf8")).toBe("the old inventory");
    expect(readdirSync(fullMount).sort()).toEqual(["fill", "inv.json"]);
  });
});

describe("T21: -o with an extension we do not write", () => {
  test("T21: -o inv.yaml is refused unless --format says what to write", async () => {
    const dir = models();
    const outDir = tmp.make();
    // (.xml is JUnit's: the one XML we write.)
    const xml = join(outDir, "inv.yaml");
    const r = await runCli(["scan", dir, "--offline", "--no-cache", "-o", xml]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("inv.yaml");
    expect(r.stderr).toContain("--format");
    expect(existsSync(xml)).toBe(false);

    const inv = await inventoryFile();
    const viaReport = await runCli(["report", inv.path, "-o", xml]);
    expect(viaReport.code).toBe(2);
    expect(existsSync(xml)).toBe(false);

    const forced = await runCli(["scan", dir, "--offline", "--no-cache", "-o", xml, "--format", "json"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(readFileSync(xml, "utf8")).tool.name).toBe("civitai-meta");
    // No extension at all is not a mistake: JSON, as before.
    const bare = join(outDir, "inventory");
    expect((await runCli(["scan", dir, "--offline", "--no-cache", "-o", bare])).code).toBe(0);
    expect(JSON.parse(readFileSync(bare, "utf8")).tool.name).toBe("civitai-meta");
  });
});

describe("T22: --log-file", () => {
  const sha = (s: string) => createHash("sha256").update(s).digest("hex");
  const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

  test("T22: every log line at debug level, timestamped, appended, redacted; stderr keeps its level", async () => {
    const dir = models(["known.safetensors", "other.safetensors"]);
    const version = makeVersion({ versionId: 11, modelId: 1, sha256: sha("bytes of known.safetensors") });
    civitai.addModel(makeModel({ modelId: 1, versions: [version] }));
    // A server that quotes the key back: the message must be redacted in both sinks.
    civitai.queueFaults("versionsByHashes", [faults.status(400, { error: `bad token ${SENTINEL}` })]);
    const log = join(tmp.make(), "civitai-meta.log");
    const env = { CIVITAI_API_KEY: SENTINEL };
    const first = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "--log-file", log], { env });
    expect(existsSync(log)).toBe(true);
    const text1 = readFileSync(log, "utf8");
    const lines1 = text1.split("\n").filter((l) => l !== "");
    expect(lines1.length).toBeGreaterThan(2);
    for (const line of lines1) expect(line).toMatch(TIMESTAMP);
    // Debug lines (one per request) are in the file, not on stderr at the default level.
    expect(text1).toMatch(/\[debug\] POST .*by-hash.* -> 400/);
    expect(first.stderr).not.toMatch(/-> 400/);
    // The run's info line is in both.
    expect(text1).toMatch(/\[info\] 2 files/);
    for (const out of [text1, first.stderr, first.stdout]) expect(out).not.toContain(SENTINEL);

    const second = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "-q", "--log-file", log], { env });
    expect(second.stderr).toBe("");
    const text2 = readFileSync(log, "utf8");
    expect(text2.startsWith(text1)).toBe(true);
    expect(text2.length).toBeGreaterThan(text1.length);
    expect(text2).not.toContain(SENTINEL);
  });

  test("T22: logFile in the config file; an unopenable log file is one clear error before any work", async () => {
    const dir = models();
    const log = join(tmp.make(), "from-config.log");
    const config = join(tmp.make(), "config.json");
    writeFileSync(config, JSON.stringify({ logFile: log }));
    const r = await runCli(["scan", dir, "--offline", "--no-cache", "--config", config]);
    expect(r.code).toBe(0);
    expect(readFileSync(log, "utf8")).toMatch(/\[info\] 1 file/);

    // The config's own unopenable logFile names that config (before the fix: "Config: cannot open …").
    writeFileSync(config, JSON.stringify({ logFile: "/no/such/dir/from-config.log" }));
    const badConfig = await runCli(["scan", dir, "--offline", "--no-cache", "--config", config]);
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr.trim()).toEndWith(
      `Config ${config}: cannot open "logFile" /no/such/dir/from-config.log: no such file or folder (ENOENT). Give it a file in a folder that exists and is writable.`,
    );

    const bad = await runCli(["hash", dir, "--no-cache", "--log-file", "/no/such/dir/x.log"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("/no/such/dir/x.log");
    expect(bad.stdout).toBe("");
    expect(statSync(dir).isDirectory()).toBe(true);
  });
});
