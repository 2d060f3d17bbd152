/**
 * The container image, as far as it can be checked without a Docker engine (none runs here):
 * what the build context holds (.dockerignore read with Docker's own matching rules), the
 * Dockerfile's syntax and instructions (dockerfile-utils, the validator behind VS Code's Docker
 * support), the contract it sets up (non-root user, entrypoint, volumes, environment the tool
 * reads) and the shell step that picks the binary for each architecture, run here with sh.
 * What stays untested: pulling Alpine, apk, the image build itself and running the binary in it.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import dockerignore from "@balena/dockerignore";
import { validate } from "dockerfile-utils";
import { getCacheDir, getConfigDir } from "../../src/config/paths.ts";
import { RELEASE_TARGETS, assetName } from "../../scripts/release-targets.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const DOCKERFILE = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/**
 * Splits a Dockerfile into instructions (continuation lines joined, comments dropped): the ones
 * before the first FROM (global ARGs), then one list per stage.
 */
function parse(text: string): { preamble: Instruction[]; stages: Instruction[][] } {
  const preamble: Instruction[] = [];
  const stages: Instruction[][] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) {
      i++;
      // Docker drops the backslash and the newline (and comment lines inside a continuation).
      line = `${line.slice(0, -1)}${/^\s*#/.test(lines[i]!) ? "\\" : lines[i]!}`;
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(line)!;
    const ins = { keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 };
    if (ins.keyword === "FROM") stages.push([]);
    (stages.at(-1) ?? preamble).push(ins);
  }
  return { preamble, stages };
}

const { preamble, stages } = parse(DOCKERFILE);
const final = stages.at(-1)!;
const last = (keyword: string) => final.findLast((i) => i.keyword === keyword);

describe("Dockerfile", () => {
  test("dockerfile-utils finds no problem in it", () => {
    expect(validate(DOCKERFILE).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  test("the image runs as a non-root user, with the binary as its entrypoint", () => {
    const user = last("USER")!.args.split(":")[0]!;
    expect(["root", "0"]).not.toContain(user);
    expect(final.find((i) => i.keyword === "RUN")!.args).toMatch(new RegExp(`adduser .*-u 10001 .*${user}\\b`));
    const entrypoint = JSON.parse(last("ENTRYPOINT")!.args) as string[];
    expect(entrypoint).toEqual(["/usr/local/bin/civitai-meta"]);
    expect(final.some((i) => i.keyword === "COPY" && i.args === `--from=pick /civitai-meta ${entrypoint[0]}`)).toBe(true);
    // The final stage holds the binary and the C++ runtime it links, nothing else from the context.
    expect(final.filter((i) => i.keyword === "COPY" || i.keyword === "ADD").map((i) => i.args)).toEqual([
      `--from=pick /civitai-meta ${entrypoint[0]}`,
    ]);
  });

  test("cache and config are volumes where the tool looks for them; /models and /work belong to the user", () => {
    const env = Object.fromEntries(
      last("ENV")!
        .args.split(/\s+/)
        .map((kv) => kv.split("=") as [string, string]),
    );
    const volumes = JSON.parse(last("VOLUME")!.args) as string[];
    expect(volumes).toEqual(["/cache", "/config"]);
    expect(getCacheDir(env, "/home/civitai")).toBe("/cache");
    expect(getConfigDir(env, "/home/civitai")).toBe("/config/civitai-meta");
    // Created and owned by the user, so a fresh named volume is writable by it.
    const setup = final.find((i) => i.keyword === "RUN")!.args;
    expect(setup).toContain("mkdir -p /cache /config/civitai-meta /models /work");
    expect(setup).toContain("chown -R civitai:civitai /cache /config /models /work");
  });

  test("the runtime stage installs the C++ runtime Bun's musl build links, and both stages use one pinned Alpine", () => {
    expect(final.find((i) => i.keyword === "RUN")!.args).toMatch(/^apk add --no-cache libstdc\+\+ libgcc/);
    const froms = stages.map((s) => s[0]!.args);
    expect(froms).toEqual(["--platform=$BUILDPLATFORM alpine:${ALPINE_VERSION} AS pick", "alpine:${ALPINE_VERSION}"]);
    expect(preamble.map((i) => `${i.keyword} ${i.args}`)).toEqual([expect.stringMatching(/^ARG ALPINE_VERSION=3\.\d+$/)]);
  });
});

describe("build context", () => {
  const ignore = dockerignore({ ignorecase: false }).add(readFileSync(join(ROOT, ".dockerignore"), "utf8"));
  const musl = RELEASE_TARGETS.filter((t) => t.libc === "musl").map((t) => `dist/${assetName(t)}`);

  test("holds the musl binaries and nothing else: no source, modules, caches, keys or other binaries", () => {
    const tracked = execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" }).trim().split("\n");
    const dist = existsSync(join(ROOT, "dist"))
      ? (readdirSync(join(ROOT, "dist"), { recursive: true }) as string[]).map((p) => `dist/${p}`)
      : [];
    const others = [
      ".git/config",
      ".env",
      "civitai-meta.json",
      "node_modules/citty/package.json",
      ".tmp/x",
      "dist/civitai-meta",
      "dist/SHA256SUMS",
      ...RELEASE_TARGETS.map((t) => `dist/${assetName(t)}`),
      "dist/npm/civitai-meta/package.json",
      "dist/npm/linux-x64-musl/bin/civitai-meta",
    ];
    const sent = ignore.filter([...new Set([...tracked, ...dist, ...others])]).sort();
    expect(sent).toEqual([...musl].sort());
  });

  test("every COPY from the context matches a file the context keeps", () => {
    const sources = stages
      .flat()
      .filter((i) => i.keyword === "COPY" && !i.args.startsWith("--from="))
      .flatMap((i) =>
        i.args
          .split(/\s+/)
          .filter((a) => !a.startsWith("--"))
          .slice(0, -1),
      );
    expect(sources).toEqual(["dist/civitai-meta-linux-*-musl"]);
    const glob = new Bun.Glob(sources[0]!);
    for (const file of musl) expect(glob.match(file)).toBe(true);
  });
});

describe.skipIf(!Bun.which("sh"))("the step that picks the binary, run with sh", () => {
  const pick = stages[0]!.find((i) => i.keyword === "RUN")!.args;

  function runPick(targetArch: string, present: string[]) {
    const dir = tmp.make();
    const bin = join(dir, "in");
    mkdirSync(bin);
    for (const name of present) writeFileSync(join(bin, name), name);
    const script = pick.replaceAll("/tmp/bin/", `${bin}/`).replace(/ \/civitai-meta$/, ` ${dir}/out`);
    const r = spawnSync("sh", ["-ec", script], { env: { PATH: process.env.PATH, TARGETARCH: targetArch }, encoding: "utf8" });
    return { code: r.status, stderr: r.stderr, out: existsSync(join(dir, "out")) ? readFileSync(join(dir, "out"), "utf8") : null };
  }
  const both = ["civitai-meta-linux-x64-musl", "civitai-meta-linux-arm64-musl"];

  test("amd64 gets the x64 musl binary and arm64 the arm64 one", () => {
    expect(runPick("amd64", both)).toMatchObject({ code: 0, out: "civitai-meta-linux-x64-musl" });
    expect(runPick("arm64", both)).toMatchObject({ code: 0, out: "civitai-meta-linux-arm64-musl" });
  });

  test("an architecture we do not build, or a binary not built, fails the build with one message", () => {
    const riscv = runPick("riscv64", both);
    expect(riscv.code).toBe(1);
    expect(riscv.stderr.trim()).toBe("civitai-meta ships no musl binary for riscv64");
    const missing = runPick("arm64", ["civitai-meta-linux-x64-musl"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe("dist/civitai-meta-linux-arm64-musl is missing: build it first (see the comment at the top)");
  });
});
