import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { cliCommand, cliEnv, runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

describe("CLI shell", () => {
  test("--version prints the package version on stdout, after a command too (scan --version); a file named so after -- is a file", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
    const after = await runCli(["scan", "--version"]);
    expect(after.code).toBe(0);
    expect(after.stdout).toBe(`${pkg.version}\n`);
    const named = await runCli(["hash", "--no-cache", "--", "--version"], { cwd: tmp.make() });
    expect(named.code).toBe(1);
    expect(named.stderr).toContain("--version");
    expect(named.stdout).not.toContain(pkg.version);
  });

  test("--help lists the commands, on stdout, exit 0", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("hash");
    expect(r.stdout).toContain("civitai-meta");
  });

  test("--help works for a subcommand, anywhere in argv", async () => {
    const r = await runCli(["hash", "some/path", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--algo");
  });

  test("no arguments prints usage and is a usage error", async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("USAGE");
  });

  test("an unknown command is a usage error naming it", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Unknown command "frobnicate"');
  });

  test("an unknown flag is a usage error with a suggestion, nothing on stdout", async () => {
    const dir = tmp.make();
    const r = await runCli(["hash", dir, "--algoo", "sha256"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--algoo");
    expect(r.stderr).toContain("did you mean --algo");
    expect(r.stdout).toBe("");
  });

  test("an unknown short flag is a usage error", async () => {
    const r = await runCli(["hash", "-Z", "."]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("-Z");
  });

  test("T21: a switch given a value (--no-cache=true, --offline=no) is one usage error, never read backwards", async () => {
    const lib = tmp.make();
    writeFileSync(join(lib, "a.safetensors"), "x");
    const cwd = tmp.make();
    // Before the fix citty kept the cache ON for --no-cache=true and went offline for --offline=no.
    for (const [flag, name, positive] of [
      ["--no-cache=true", "--no-cache", "--cache"],
      ["--offline=no", "--offline", "--offline"],
      ["--no-fallback=1", "--no-fallback", "--fallback"],
    ] as const) {
      const r = await runCli(["scan", lib, "--offline", "-o", "-", flag], { cwd, env: { CIVITAI_META_CACHE_DIR: join(cwd, ".cache") } });
      expect({ flag, code: r.code, stdout: r.stdout }).toEqual({ flag, code: 2, stdout: "" });
      expect(r.stderr).toContain(`${name} takes no value (got "${flag}"): write ${positive} or --no-${positive.slice(2)}`);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  test("a flag missing its value (end of line, empty, or followed by another option) is one usage error naming it", async () => {
    const lib = tmp.make();
    writeFileSync(join(lib, "a.safetensors"), "x");
    const cwd = tmp.make();
    const cases: [string[], string][] = [
      [["scan", lib, "--offline", "-o"], "-o (--output) needs a value"],
      [["scan", lib, "--offline", "-o", "--format", "md"], "-o (--output) needs a value (got the option --format; write --output=VALUE"],
      // An unset variable: `--api-url "$MIRROR"` must not fall back to civitai.com with the key.
      [["scan", lib, "--api-url", ""], "--api-url needs a value (got an empty one)"],
      [["scan", lib, "--offline", "--previous="], "--previous needs a value (got an empty one)"],
      [["scan", lib, "--offline", "--index"], "--index needs a value"],
      [["hash", lib, "--cache-dir"], "--cache-dir needs a value"],
      [["download", "1", "--dest"], "--dest needs a value"],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args, { cwd, env: { NO_COLOR: "1", CIVITAI_META_CACHE_DIR: join(cwd, ".cache") } });
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(message);
    }
    expect(readdirSync(cwd)).toEqual([]);
    // "-" is a value (stdout), and a value that is not one of the command's options is taken as given.
    const dash = await runCli(["scan", lib, "--offline", "--no-cache", "-o", "-", "--exclude", "-x"], { cwd });
    expect(dash.code).toBe(0);
    expect(JSON.parse(dash.stdout).records).toHaveLength(1);
  });

  test('an empty path argument (`scan "$UNSET"`) is a usage error, never the current folder', async () => {
    // Before the fix `scan ""` and `hash ""` walked and hashed the folder they ran in, and
    // `inspect ""` spoke of it: an unset variable turned into an inventory of whatever was there.
    const cwd = tmp.make();
    writeFileSync(join(cwd, "a.safetensors"), "x");
    const lib = tmp.make();
    for (const args of [
      ["scan", "", "--offline"],
      ["scan", lib, "", "--offline", "-o", "inv.json"],
      ["hash", ""],
      ["inspect", ""],
    ]) {
      const r = await runCli(args, { cwd, env: { NO_COLOR: "1", CIVITAI_META_CACHE_DIR: join(cwd, ".cache") } });
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain('an empty argument ("")');
    }
    expect(readdirSync(cwd)).toEqual(["a.safetensors"]);
  });

  test("--format junit is offered wherever a report is written: scan's and report's help, and the config's outputFormat", async () => {
    for (const command of ["scan", "report"]) {
      const help = await runCli([command, "--help"]);
      expect(help.stdout).toContain("--format <json|csv|md|html|junit>");
      expect(help.stdout).toContain(".xml for JUnit");
    }
    const lib = tmp.make();
    writeFileSync(join(lib, "a.safetensors"), "x");
    const config = join(tmp.make(), "config.json");
    writeFileSync(config, JSON.stringify({ outputFormat: "junit" }));
    const r = await runCli(["scan", lib, "--offline", "--no-cache", "--config", config, "-q"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites');
  });

  test("--config's help says what README says: the file alone, else the user's config with ./civitai-meta.json over it", async () => {
    const help = await runCli(["scan", "--help"]);
    expect(help.stdout.replace(/\s+/g, " ")).toContain(
      "Config file, read alone (default: $XDG_CONFIG_HOME/civitai-meta/config.json, with ./civitai-meta.json over it for what to scan and how to report)",
    );
  });

  test("errors are one line without a stack; --verbose adds the stack", async () => {
    const r = await runCli(["hash", "--jobs", "zero", "."]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("--jobs");
    const v = await runCli(["hash", "--jobs", "zero", ".", "--verbose"]);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/at .*\.ts/);
  });

  test("output piped into a reader that leaves early ends quietly (no EPIPE trace)", async () => {
    const dir = tmp.make();
    for (let i = 0; i < 1500; i++) writeFileSync(join(dir, `m${String(i).padStart(4, "0")}.safetensors`), `x${i}`);
    const proc = Bun.spawn(
      [
        "bash",
        "-c",
        `${cliCommand(["hash", "--no-cache", "--algo", "sha256", dir])
          .map((s) => `"${s}"`)
          .join(" ")} | head -n 1; echo "status=\${PIPESTATUS[0]}" >&2`,
      ],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: cliEnv(),
      },
    );
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(out.trim().split("\n")).toHaveLength(1);
    expect(err).not.toContain("EPIPE");
    expect(err).not.toMatch(/\n\s+at /);
    expect(err).toMatch(/status=(0|141)/);
  });

  test("a log reader that leaves early does not cut the run short: the report is written whole, nothing left beside it", async () => {
    const dir = tmp.make();
    for (let i = 0; i < 200; i++) writeFileSync(join(dir, `m${String(i).padStart(3, "0")}.safetensors`), `y${i}`);
    const outDir = tmp.make();
    const out = join(outDir, "inv.json");
    // --verbose logs all along the run; stderr's reader is gone before the first line.
    const args = ["scan", dir, "--offline", "--no-cache", "--verbose", "-o", out];
    const proc = Bun.spawn(cliCommand(args), { stdout: "pipe", stderr: "pipe", env: cliEnv() });
    await proc.stderr.cancel();
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(stdout).toBe("");
    expect(code).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8")).records).toHaveLength(200);
    expect(readdirSync(outDir)).toEqual(["inv.json"]);
  });

  test("a path that cannot be read is named with what went wrong in words, not only an errno code", async () => {
    const dir = tmp.make();
    const missing = join(dir, "missing.json");
    const report = await runCli(["report", missing]);
    expect(report.code).toBe(1);
    expect(report.stderr).toContain(`Cannot read ${missing}: no such file or folder (ENOENT).`);
    const folder = await runCli(["report", dir]);
    expect(folder.stderr).toContain(`Cannot read ${dir}: it is a folder (EISDIR).`);
    const config = await runCli(["scan", dir, "--offline", "--config", missing]);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain(`Cannot read config ${missing}: no such file or folder (ENOENT).`);
    const log = await runCli(["scan", dir, "--offline", "--log-file", join(missing, "log")]);
    expect(log.code).toBe(2);
    expect(log.stderr).toContain(`Cannot open the log file ${join(missing, "log")}: no such file or folder (ENOENT).`);
  });

  test("--log-file naming a FIFO that no one reads is one clear error at once, not a run that never starts; one someone reads gets every line", async () => {
    const dir = tmp.make();
    const fifo = join(dir, "log.fifo");
    Bun.spawnSync(["mkfifo", fifo]);
    const r = await runCli(["scan", dir, "--offline", "--log-file", fifo], { timeoutMs: 15_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Cannot open the log file ${fifo}: a FIFO that no one reads, or a device that is not there (ENXIO).`);
    // One someone reads (to its end, as cat does) gets every line.
    const reader = Bun.spawn(["cat", fifo], { stdout: "pipe" });
    const lines = new Response(reader.stdout).text();
    await Bun.sleep(200);
    const read = await runCli(["scan", dir, "--offline", "--log-file", fifo], { timeoutMs: 15_000 });
    expect(read.code).toBe(0);
    expect(await lines).toMatch(/\[debug\] civitai-meta .*: scan /);
  });

  test("a global flag with a value before the command (--log-file FILE scan) is read as the flag, not as the command", async () => {
    const dir = tmp.make();
    writeFileSync(join(dir, "a.safetensors"), "x");
    const log = join(dir, "run.log");
    const r = await runCli(["--log-file", log, "hash", "--no-cache", "--algo", "sha256", join(dir, "a.safetensors")]);
    expect(r.stderr).not.toContain("Unknown command");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${new Bun.CryptoHasher("sha256").update("x").digest("hex")}  ${join(dir, "a.safetensors")}\n`);
    expect(readFileSync(log, "utf8")).toContain("1 file: 1 hashed");
    // Its help too: the command's, not the overview.
    const help = await runCli(["--log-file", log, "hash", "--help"]);
    expect(help.stdout).toContain("--algo");
  });

  test('flags without a command name the flag that is wrong, never an unknown command ""', async () => {
    const bogus = await runCli(["--bogus"]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain("Unknown option --bogus");
    expect(bogus.stderr).not.toContain('command ""');
    const short = await runCli(["-V"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain("Unknown option -V");
    const alone = await runCli(["--verbose"]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain("No command given. Commands: hash, scan");
    expect(alone.stderr).not.toContain('command ""');
    // --version with another global flag still prints the version.
    const version = await runCli(["--verbose", "--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout).toBe(`${pkg.version}\n`);
  });

  test.skipIf(!Bun.which("script"))("-q before the command quiets the command too: no progress bar on a terminal", async () => {
    const dir = tmp.make();
    writeFileSync(join(dir, "big.ckpt"), Buffer.alloc(64 * 1024 * 1024, 1));
    const onTerminal = async (args: string[]) => {
      const cmd = cliCommand(args)
        .map((s) => `"${s}"`)
        .join(" ");
      const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdout: "pipe", stderr: "pipe", env: cliEnv({ NO_COLOR: "1" }) });
      const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      return out;
    };
    // The same run with -q after the command shows none: the flag's place must not matter.
    expect(await onTerminal(["hash", "-q", "--no-cache", dir])).not.toContain("hashing");
    const before = await onTerminal(["-q", "hash", "--no-cache", dir]);
    expect(before).toContain(join(dir, "big.ckpt"));
    expect(before).not.toContain("hashing");
  });

  test("help [command] prints the overview or that command's help, as --help does", async () => {
    const overview = await runCli(["help"]);
    expect(overview.code).toBe(0);
    expect(overview.stdout).toBe((await runCli(["--help"])).stdout);
    const scan = await runCli(["help", "scan"]);
    expect(scan.code).toBe(0);
    expect(scan.stdout).toBe((await runCli(["scan", "--help"])).stdout);
    const typo = await runCli(["help", "scna"]);
    expect(typo.code).toBe(2);
    expect(typo.stdout).toBe("");
    expect(typo.stderr).toContain('Unknown command "scna" (did you mean "scan"?)');
  });

  test("colours are off when not a TTY", async () => {
    const r = await runCli(["--help"], { env: { NO_COLOR: undefined } });
    expect(r.stdout).not.toContain("\x1b[");
  });
});
