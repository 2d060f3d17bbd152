import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { CLI_ENTRY, runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

describe("CLI shell", () => {
  test("--version prints the package version on stdout", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
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
        `"${process.execPath}" "${CLI_ENTRY}" hash --no-cache --algo sha256 "${dir}" | head -n 1; echo "status=\${PIPESTATUS[0]}" >&2`,
      ],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env },
      },
    );
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(out.trim().split("\n")).toHaveLength(1);
    expect(err).not.toContain("EPIPE");
    expect(err).not.toMatch(/\n\s+at /);
    expect(err).toMatch(/status=(0|141)/);
  });

  test("colours are off when not a TTY", async () => {
    const r = await runCli(["--help"], { env: { NO_COLOR: undefined } });
    expect(r.stdout).not.toContain("\x1b[");
  });
});
