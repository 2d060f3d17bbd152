/**
 * README.md's "A binary" install, run as written: the shell lines of its code block, with the
 * GitHub release URL pointed at a fake release server on 127.0.0.1 that serves dist/'s linux-x64
 * binary and SHA256SUMS, in a fresh HOME (a new user's, with no ~/.local/bin yet).
 *
 * Needs the release binaries built (`bun scripts/build-binary.ts --targets linux-x64,…`); skipped
 * with a message otherwise, unless CIVITAI_META_REQUIRE_PACKAGING=1 (CI) makes that a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { tmpDirs } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const DIST = join(ROOT, "dist");
const ASSET = "civitai-meta-linux-x64";
const REQUIRED = process.env.CIVITAI_META_REQUIRE_PACKAGING === "1";
const hostFits = process.platform === "linux" && process.arch === "x64";
const built = existsSync(join(DIST, ASSET)) && existsSync(join(DIST, "SHA256SUMS"));
const ready = hostFits && built && Bun.which("curl") !== null && Bun.which("sha256sum") !== null;
if (!ready) console.log(`skipping the README install test: needs Linux x64, curl, sha256sum and dist/${ASSET} with dist/SHA256SUMS`);

test("the release binary was built for this run when CI requires it", () => {
  expect(REQUIRED && hostFits && !built ? `dist/${ASSET} or dist/SHA256SUMS missing` : "ok").toBe("ok");
});

/** The shell lines of the README's code block that follows "**A binary**". */
function readmeBinaryInstall(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const from = readme.indexOf("**A binary**");
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(from));
  if (from === -1 || !block) throw new Error("README.md has no sh block after **A binary**");
  return block[1]!;
}

const tmp = tmpDirs();
let server: ReturnType<typeof Bun.serve>;
const requests: string[] = [];

describe.skipIf(!ready)("README's binary install", () => {
  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const path = new URL(req.url).pathname;
        requests.push(path);
        const m = /^\/civitai-meta\/civitai-meta\/releases\/download\/v([^/]+)\/([^/]+)$/.exec(path);
        if (!m || m[1] !== pkg.version || (m[2] !== ASSET && m[2] !== "SHA256SUMS")) return new Response("Not Found", { status: 404 });
        return new Response(Bun.file(join(DIST, m[2])));
      },
    });
  });

  afterAll(() => {
    server?.stop(true);
    tmp.cleanup();
  });

  test("works as written for a new user: the binary is checked, installed into ~/.local/bin and runs", async () => {
    const script = readmeBinaryInstall();
    expect(script).toContain("https://github.com/civitai-meta/civitai-meta/releases/download/");
    const home = tmp.make();
    const work = tmp.make();
    const local = script.replaceAll("https://github.com/", `${server.url.href}`).replace(/^v=[0-9.]+ /m, `v=${pkg.version} `);
    // Async: the fake release server answers from this process.
    const proc = Bun.spawn(["bash", "-euo", "pipefail", "-c", local], {
      cwd: work,
      env: { PATH: process.env.PATH!, HOME: home },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toBe(`${ASSET}: OK\n`);
    expect(requests).toEqual([ASSET, "SHA256SUMS"].map((f) => `/civitai-meta/civitai-meta/releases/download/v${pkg.version}/${f}`));
    const installed = join(home, ".local/bin/civitai-meta");
    const version = Bun.spawnSync([installed, "--version"], { env: {}, stdout: "pipe" });
    expect(version.stdout.toString()).toBe(`${pkg.version}\n`);
  });
});
