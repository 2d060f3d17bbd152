/**
 * Issue 9, the command line and the caches: `cache prune`/`clear` never follow links nor delete
 * what we did not write (docs/cases.md T11), help text (docs/cases.md T18), and the small things of T21.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { faults, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli, runShell } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);

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

function models(names: string[]): string {
  const dir = tmp.make();
  for (const name of names) {
    writeFileSync(join(dir, name), `bytes of ${name}`);
    utimesSync(join(dir, name), PAST, PAST);
  }
  return dir;
}

/** A metadata-cache entry as our writer stores it. */
const SCOPE = "https-civitai.com-443:https-civitai.red-443";
/** A metadata-cache entry of ours (format 3): a "not found" for model `id`, valid until `expiresAt`. */
const entry = (expiresAt: number, id = 5) =>
  JSON.stringify({
    v: 3,
    scope: SCOPE,
    key: `model:${(id & 0xff).toString(16).padStart(2, "0")}:${id}`,
    storedAt: Math.min(expiresAt - 1, Date.now()), // never ahead of the clock: such an entry is pruned
    expiresAt,
    kind: "not_found",
    misses: 1,
  });

describe("T11: cache prune and clear never follow links, never delete what they did not write", () => {
  test("T11: a symlinked meta/ (and hashes/) is not followed: the user's files stay", async () => {
    const cacheDir = tmp.make();
    const user = tmp.make();
    mkdirSync(join(user, "sub"));
    writeFileSync(join(user, "a.json"), '{"mine": true}');
    writeFileSync(join(user, "sub", "tsconfig.json"), "{}");
    writeFileSync(join(user, "old.json"), entry(2)); // even an expired-looking entry there is not ours to delete
    symlinkSync(user, join(cacheDir, "meta"));
    const userHashes = tmp.make();
    mkdirSync(join(userHashes, "v1", "ab"), { recursive: true });
    writeFileSync(join(userHashes, "v1", "ab", "notes.json"), "{}");
    symlinkSync(userHashes, join(cacheDir, "hashes"));

    for (const action of ["prune", "clear"]) {
      const r = await runCli(["cache", action, "--cache-dir", cacheDir]);
      expect({ action, code: r.code }).toEqual({ action, code: 0 });
      expect(r.stderr).toContain("symbolic link");
      for (const f of ["a.json", "sub/tsconfig.json", "old.json"])
        expect({ action, f, there: existsSync(join(user, f)) }).toEqual({ action, f, there: true });
      expect(existsSync(join(userHashes, "v1", "ab", "notes.json"))).toBe(true);
    }
  });

  test("T11: the image cache: prune and clear delete only our damaged entries and temp files, never a user's file or a link's target", async () => {
    const cacheDir = tmp.make();
    const images = join(cacheDir, "images");
    mkdirSync(join(images, "ab"), { recursive: true });
    const ours = join(images, "ab", "ab".padEnd(64, "0"));
    writeFileSync(ours, "not an image"); // ours (name and place), damaged
    writeFileSync(join(images, "ab", "holiday.jpg"), "user bytes"); // not ours
    writeFileSync(join(images, "readme.txt"), "user notes"); // not ours
    const outside = tmp.make();
    writeFileSync(join(outside, "cd".padEnd(64, "1")), "precious");
    symlinkSync(outside, join(images, "cd"));

    const prune = await runCli(["cache", "prune", "--cache-dir", cacheDir]);
    expect(prune.code).toBe(0);
    expect(existsSync(ours)).toBe(false);
    expect(readFileSync(join(images, "ab", "holiday.jpg"), "utf8")).toBe("user bytes");
    expect(readFileSync(join(outside, "cd".padEnd(64, "1")), "utf8")).toBe("precious");

    const clear = await runCli(["cache", "clear", "--images", "--cache-dir", cacheDir]);
    expect(clear.code).toBe(0);
    expect(readFileSync(join(images, "ab", "holiday.jpg"), "utf8")).toBe("user bytes");
    expect(readFileSync(join(images, "readme.txt"), "utf8")).toBe("user notes");
    expect(readFileSync(join(outside, "cd".padEnd(64, "1")), "utf8")).toBe("precious");
  });

  test("T11: inside a real meta/, only our expired entries go; other files and links inside are left alone", async () => {
    const cacheDir = tmp.make();
    const meta = join(cacheDir, "meta");
    mkdirSync(join(meta, "model"), { recursive: true });
    mkdirSync(join(meta, "version", "sha256"), { recursive: true });
    const validDir = join(meta, "v3", ...SCOPE.split(":"), "model", "06");
    mkdirSync(validDir, { recursive: true });
    writeFileSync(join(meta, "model", "5.json"), entry(2)); // ours, expired
    writeFileSync(join(validDir, "6.json"), entry(Date.now() + 86_400_000, 6)); // ours, valid, where its key puts it
    writeFileSync(join(meta, "notes.json"), '{"user": "notes"}'); // not ours
    writeFileSync(join(meta, "model", "package.json"), "{ not json"); // not ours
    const outside = tmp.make();
    writeFileSync(join(outside, "precious.json"), entry(2));
    symlinkSync(join(outside, "precious.json"), join(meta, "model", "7.json"));
    symlinkSync(outside, join(meta, "version", "linked"));

    const prune = await runCli(["cache", "prune", "--cache-dir", cacheDir]);
    expect(prune.code).toBe(0);
    expect(existsSync(join(meta, "model", "5.json"))).toBe(false);
    for (const f of [join(validDir, "6.json"), join(meta, "notes.json"), join(meta, "model/package.json")])
      expect({ f, there: existsSync(f) }).toEqual({ f, there: true });
    expect(existsSync(join(outside, "precious.json"))).toBe(true);

    const clear = await runCli(["cache", "clear", "--metadata", "--cache-dir", cacheDir]);
    expect(clear.code).toBe(0);
    expect(existsSync(join(validDir, "6.json"))).toBe(false);
    expect(readFileSync(join(meta, "notes.json"), "utf8")).toBe('{"user": "notes"}');
    expect(existsSync(join(meta, "model", "package.json"))).toBe(true);
    expect(existsSync(join(outside, "precious.json"))).toBe(true);
  });
});

const COMMANDS = ["", "scan", "hash", "lookup", "report", "diff", "inspect", "download", "cache", "completion"];

/** The options a help text lists, one entry per option line (`--no-x` and `--x` are the same option). */
function optionLines(help: string): string[] {
  return help
    .split("\n")
    .filter((l) => /^\s+(-\w, )?--/.test(l))
    .map((l) => /--(?:\[no-\])?(?:no-)?([\w-]+)/.exec(l)![1]!);
}

describe("T18: help text", () => {
  test("T18: every command's --help fits 80 columns when not a terminal, lists each option once, ends with examples", async () => {
    for (const cmd of COMMANDS) {
      const r = await runCli([...(cmd ? [cmd] : []), "--help"]);
      expect({ cmd, code: r.code }).toEqual({ cmd, code: 0 });
      const lines = r.stdout.trimEnd().split("\n");
      const long = lines.filter((l) => l.length > 80);
      expect({ cmd, long }).toEqual({ cmd, long: [] });
      const options = optionLines(r.stdout);
      expect({ cmd, options: options.length > 0 }).toEqual({ cmd, options: true });
      const dups = options.filter((o, i) => options.indexOf(o) !== i);
      expect({ cmd, dups }).toEqual({ cmd, dups: [] });
      const at = lines.findIndex((l) => /^EXAMPLES/i.test(l));
      expect({ cmd, examples: at >= 0 }).toEqual({ cmd, examples: true });
      // One example per line indented by two (a wrapped one goes on at four); each runs civitai-meta.
      const examples = lines.slice(at + 1).filter((l) => /^ {2}\S/.test(l) && l.includes("civitai-meta "));
      expect({ cmd, n: examples.length >= 2 && examples.length <= 3 }).toEqual({ cmd, n: true });
    }
  });

  test("T18: on a terminal, help wraps to its width without splitting words", async () => {
    const r = await runShell(`script -qec 'stty cols 60; "$CLI_EXEC" \${CLI_ENTRY:+"$CLI_ENTRY"} scan --help' /dev/null`);
    const text = r.stdout.toString().replace(/\r\n/g, "\n");
    const lines = text.trimEnd().split("\n");
    expect(lines.length).toBeGreaterThan(20);
    expect(lines.filter((l) => l.length > 60)).toEqual([]);
    // A long description, re-joined, reads as written.
    expect(text.replace(/\s+/g, " ")).toContain("Do not hash a file when another tool's sidecar");
  });
});

describe("T21: small things", () => {
  test("T21: a mistyped command gets a suggestion", async () => {
    const r = await runCli(["scna", "."]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/did you mean "?scan"?/);
    const far = await runCli(["xyzzy"]);
    expect(far.stderr).not.toContain("did you mean");
  });

  test("T21: messages use the right plural (1 file, 1 error)", async () => {
    const one = models(["only.safetensors"]);
    const scan = await runCli(["scan", one, "--offline", "--no-cache"]);
    expect(scan.stderr).toMatch(/\b1 file \(/);
    expect(scan.stderr).not.toMatch(/\b1 files\b/);
    const hash = await runCli(["hash", one, "--no-cache"]);
    expect(hash.stderr).toMatch(/\b1 file:/);
    expect(hash.stderr).not.toMatch(/\b1 files\b/);

    civitai.setFault("*", faults.status(400, { error: "bad request" }));
    const failing = await runCli(["scan", one, "--api-url", civitai.url, "--no-cache", "--no-fallback"]);
    civitai.setFault("*", null);
    expect(failing.code).toBe(1);
    expect(failing.stderr).toMatch(/\b1 error\b/);
    expect(failing.stderr).not.toMatch(/\b1 errors\b|\b1 file\(s\)/);
  });

  test("T21: an inventory nested 200,000 deep is a clear error, never a stack overflow", async () => {
    const one = models(["a.safetensors"]);
    const inv = JSON.parse((await runCli(["scan", one, "--offline", "--no-cache"])).stdout);
    const depth = 200_000;
    const deep = `${'{"x":'.repeat(depth)}1${"}".repeat(depth)}`;
    const text = JSON.stringify({ ...inv, options: { ...inv.options, deep: "@DEEP@" } }).replace('"@DEEP@"', deep);
    const file = join(tmp.make(), "deep.json");
    writeFileSync(file, text);
    for (const format of ["json", "csv", "md"]) {
      const r = await runCli(["report", file, "--format", format]);
      expect({ format, code: r.code }).toEqual({ format, code: 1 });
      expect(r.stderr).not.toMatch(/RangeError|call stack|\n\s+at /);
      expect(r.stderr).toMatch(/nested deeper than \d+ levels/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stdout).toBe("");
    }
  });
});
