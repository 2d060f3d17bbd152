/**
 * The npm launcher (packaging/npm/civitai-meta.cjs) on its own: platform choice, libc detection,
 * the checksum check and the way it runs the binary (arguments, exit codes, signals). The binary here
 * is a small shell script laid out as npm would install a platform package, so these run in
 * milliseconds; test/packaging/npm-package.test.ts does the same through a real `npm install`.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { tmpDirs } from "../helpers/tmp.ts";

const LAUNCHER = join(import.meta.dir, "../../packaging/npm/civitai-meta.cjs");
const launcher = createRequire(import.meta.url)(LAUNCHER) as {
  detectLibc(readFile: (p: string, enc: string) => string, report: unknown): "glibc" | "musl";
  platformKey(platform: string, arch: string, libc?: string): string;
  locateBinary(
    manifest: Manifest,
    key: string,
    resolve: (id: string) => string,
    options?: { stampDir?: string | null; hashFile?: (file: string) => string },
  ): string;
  sha256File(file: string): string;
  LaunchError: new (m: string) => Error;
};
type Manifest = { version: string; platforms: Record<string, { package: string; bin: string; sha256: string | null }> };

const NODE = Bun.which("node");
const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

const noFile = () => {
  throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
};

describe("libc and platform", () => {
  test("a musl ldd means musl, a glibc ldd means glibc", () => {
    expect(launcher.detectLibc(() => "#!/bin/sh\nexec /lib/ld-musl-x86_64.so.1 --list", undefined)).toBe("musl");
    expect(
      launcher.detectLibc(() => '#! /bin/bash\nTEXTDOMAIN=libc\n# Copyright (C) Free Software Foundation\necho "GNU C Library"', undefined),
    ).toBe("glibc");
  });

  test("without ldd, Node's report decides: a glibc version, or a musl loader among the shared objects", () => {
    expect(launcher.detectLibc(noFile, { getReport: () => ({ header: { glibcVersionRuntime: "2.36" }, sharedObjects: [] }) })).toBe(
      "glibc",
    );
    expect(launcher.detectLibc(noFile, { getReport: () => ({ header: {}, sharedObjects: ["/lib/ld-musl-aarch64.so.1"] }) })).toBe("musl");
  });

  test("this machine's Node agrees with the C library it runs on", () => {
    if (!NODE) return console.log("skipping: no node on PATH");
    const r = Bun.spawnSync([
      NODE,
      "-e",
      `const l=require(${JSON.stringify(LAUNCHER)});console.log(l.detectLibc(require("fs").readFileSync, process.report))`,
    ]);
    const lddIsMusl = (() => {
      try {
        return readFileSync("/usr/bin/ldd", "latin1").includes("musl");
      } catch {
        return false;
      }
    })();
    expect(r.stdout.toString().trim()).toBe(lddIsMusl ? "musl" : "glibc");
  });

  test("keys follow Node's platform-arch names, with -musl on musl Linux only", () => {
    expect(launcher.platformKey("linux", "x64", "glibc")).toBe("linux-x64");
    expect(launcher.platformKey("linux", "arm64", "musl")).toBe("linux-arm64-musl");
    expect(launcher.platformKey("darwin", "arm64", undefined)).toBe("darwin-arm64");
    expect(launcher.platformKey("win32", "x64", undefined)).toBe("win32-x64");
  });
});

/** An install tree as npm lays it out: the launcher package and one platform package holding `script`. */
function install(script: string, opts: { sha256?: string | null; key?: string } = {}) {
  const root = tmp.make();
  const nm = join(root, "node_modules");
  const key = opts.key ?? launcher.platformKey(process.platform, process.arch, process.platform === "linux" ? hostLibc() : undefined);
  const pkgDir = join(nm, "@civitai-meta", key);
  mkdirSync(join(pkgDir, "bin"), { recursive: true });
  writeFileSync(join(pkgDir, "package.json"), JSON.stringify({ name: `@civitai-meta/${key}`, version: "9.9.9" }));
  const binary = join(pkgDir, "bin/civitai-meta");
  writeFileSync(binary, script, { mode: 0o755 });
  const main = join(nm, "civitai-meta");
  mkdirSync(join(main, "bin"), { recursive: true });
  copyFileSync(LAUNCHER, join(main, "bin/civitai-meta.cjs"));
  const sha256 = opts.sha256 === undefined ? createHash("sha256").update(script).digest("hex") : opts.sha256;
  const manifest: Manifest = {
    version: "9.9.9",
    platforms: { [key]: { package: `@civitai-meta/${key}`, bin: "bin/civitai-meta", sha256 } },
  };
  writeFileSync(join(main, "binaries.json"), JSON.stringify(manifest));
  return { root, binary, launcherPath: join(main, "bin/civitai-meta.cjs"), manifest, key };
}

function hostLibc(): string {
  try {
    return readFileSync("/usr/bin/ldd", "latin1").includes("musl") ? "musl" : "glibc";
  } catch {
    return "glibc";
  }
}

describe("choosing and checking the binary", () => {
  test("a platform we do not build for gets one message that lists the ones we do", () => {
    const { manifest, root } = install("#!/bin/sh\n");
    const resolve = (id: string) => require.resolve(id, { paths: [root] });
    expect(() => launcher.locateBinary(manifest, "freebsd-x64", resolve)).toThrow(
      /no prebuilt binary for freebsd-x64\. Supported: Linux x64 and arm64 \(glibc or musl\), macOS x64 and arm64, Windows x64/,
    );
  });

  test("a missing platform package is named, with the reinstall that brings it back", () => {
    const { manifest, key } = install("#!/bin/sh\n");
    const resolve = () => {
      throw new Error("MODULE_NOT_FOUND");
    };
    expect(() => launcher.locateBinary(manifest, key, resolve)).toThrow(
      new RegExp(`The package @civitai-meta/${key} .* is not installed\\. .*--omit=optional.*npm install civitai-meta@9\\.9\\.9`),
    );
  });

  test("a binary whose SHA-256 differs from the recorded one is refused, naming both hashes", () => {
    const script = "#!/bin/sh\necho ran\n";
    const { manifest, key, root } = install(script);
    const ours = join(root, "node_modules/@civitai-meta", key, "bin/civitai-meta");
    writeFileSync(ours, `${script}echo tampered\n`);
    const actual = createHash("sha256").update(readFileSync(ours)).digest("hex");
    const resolve = (id: string) => require.resolve(id, { paths: [root] });
    expect(() => launcher.locateBinary(manifest, key, resolve)).toThrow(
      `does not match the SHA-256 recorded when civitai-meta@9.9.9 was built (expected ${manifest.platforms[key]!.sha256}, found ${actual})`,
    );
  });

  test("a binary verified once is not read again while it is unchanged; any write to it, or a new expected SHA-256, means reading it again", () => {
    const script = "#!/bin/sh\necho ran\n";
    const { manifest, key, root, binary } = install(script);
    const resolve = (id: string) => require.resolve(id, { paths: [root] });
    const stampDir = join(tmp.make(), "launcher");
    const reads: string[] = [];
    const hashFile = (file: string) => {
      reads.push(file);
      return launcher.sha256File(file);
    };
    expect(launcher.locateBinary(manifest, key, resolve, { stampDir, hashFile })).toBe(binary);
    expect(launcher.locateBinary(manifest, key, resolve, { stampDir, hashFile })).toBe(binary);
    expect(reads).toEqual([binary]);
    expect(readdirSync(stampDir)).toHaveLength(1);
    // A new version of the package expects another SHA-256: read again (and refused, here).
    const other = { ...manifest, platforms: { [key]: { ...manifest.platforms[key]!, sha256: "0".repeat(64) } } };
    expect(() => launcher.locateBinary(other, key, resolve, { stampDir, hashFile })).toThrow("does not match");
    expect(reads).toHaveLength(2);
    // Same size, mtime put back: the ctime still moved, so the damaged bytes are read and refused.
    const before = statSync(binary);
    writeFileSync(binary, script.replace("ran", "RAN"));
    utimesSync(binary, before.atime, before.mtime);
    expect(() => launcher.locateBinary(manifest, key, resolve, { stampDir, hashFile })).toThrow("does not match");
    expect(reads).toHaveLength(3);
    // No place for stamps: every start reads the binary, as before.
    writeFileSync(binary, script);
    launcher.locateBinary(manifest, key, resolve, { stampDir: null, hashFile });
    launcher.locateBinary(manifest, key, resolve, { stampDir: null, hashFile });
    expect(reads).toHaveLength(5);
  });

  test("the launcher run by Node keeps its stamp in the tool's cache folder (CIVITAI_META_CACHE_DIR, else XDG_CACHE_HOME)", () => {
    if (!NODE) return console.log("skipping: no node on PATH");
    const { launcherPath } = install("#!/bin/sh\necho ran\n");
    const own = tmp.make();
    const xdg = tmp.make();
    const run = (env: Record<string, string>) =>
      Bun.spawnSync([NODE, launcherPath], { env: { PATH: process.env.PATH!, HOME: tmp.make(), ...env } });
    expect(run({ CIVITAI_META_CACHE_DIR: own }).stdout.toString()).toBe("ran\n");
    expect(readdirSync(join(own, "launcher"))).toHaveLength(1);
    expect(run({ XDG_CACHE_HOME: xdg }).stdout.toString()).toBe("ran\n");
    expect(readdirSync(join(xdg, "civitai-meta", "launcher"))).toHaveLength(1);
  });

  test("a development build that recorded no checksum for this platform refuses to run", () => {
    const { manifest, key, root } = install("#!/bin/sh\n", { sha256: null });
    const resolve = (id: string) => require.resolve(id, { paths: [root] });
    expect(() => launcher.locateBinary(manifest, key, resolve)).toThrow(/records no checksum for .*refusing to run an unverified binary/);
  });
});

/** Waits for a signal, but gives up after 10 s so a failing test never leaves a process behind. */
const BOUNDED_WAIT = "i=0\nwhile [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done\necho gave-up\nexit 99\n";

async function runLauncher(launcherPath: string, args: string[], onStdout?: (text: string, proc: Bun.Subprocess) => void) {
  const proc = Bun.spawn([NODE!, launcherPath, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let stdout = "";
  const reader = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      stdout += decoder.decode(chunk);
      onStdout?.(stdout, proc);
    }
  })();
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited, reader]);
  clearTimeout(timer);
  return { stdout, stderr, code, signal: proc.signalCode };
}

describe.skipIf(!NODE || process.platform === "win32")("running the binary through node", () => {
  test("passes every argument as is and ends with the binary's exit code", async () => {
    const { launcherPath } = install('#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\necho\nexit 7\n');
    const r = await runLauncher(launcherPath, ["scan", "my models/", "--format", "md", "", "$HOME"]);
    expect(r.stdout).toBe("[scan][my models/][--format][md][][$HOME]\n");
    expect(r.code).toBe(7);
  }, 20_000);

  test("T12: an argument that is not UTF-8 reaches the binary's CIVITAI_META_RAW_ARGV as its exact bytes", () => {
    const { launcherPath } = install('#!/bin/sh\nprintf "%s|%s\\n" "$#" "${CIVITAI_META_RAW_ARGV-unset}"\n');
    // Through a shell, as a user types it: Bun.spawn, like Node, can pass arguments as UTF-8 only.
    const viaShell = (args: string) =>
      Bun.spawnSync(["sh", "-c", `exec "$NODE" "$LAUNCHER" ${args}`], { env: { ...process.env, NODE: NODE!, LAUNCHER: launcherPath } });
    // Node decoded caf\xe9 as "caf\ufffd" and passed that on: the binary could not name the file.
    const lossy = viaShell(`hash "$(printf 'caf\\351.s')" "" "my models"`);
    expect(lossy.stdout.toString()).toBe(
      `4|${Buffer.from("hash").toString("hex")},636166e92e73,,${Buffer.from("my models").toString("hex")}\n`,
    );
    expect(lossy.exitCode).toBe(0);
    // UTF-8 arguments pass as they are, with nothing added to the environment.
    expect(viaShell(`hash "café.s"`).stdout.toString()).toBe("2|unset\n");
  });

  test("refuses a tampered binary without running it: exit 1, one message on stderr", async () => {
    const { launcherPath, binary } = install("#!/bin/sh\necho ran\n");
    writeFileSync(binary, "#!/bin/sh\necho evil\n");
    const r = await runLauncher(launcherPath, ["--version"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("civitai-meta: The binary in @civitai-meta/");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  }, 20_000);

  test("SIGTERM to the launcher reaches the binary, whose exit code is passed on", async () => {
    const { launcherPath } = install(`#!/bin/sh\ntrap 'echo got-TERM; exit 143' TERM\necho ready\n${BOUNDED_WAIT}`);
    let sent = false;
    const r = await runLauncher(launcherPath, [], (out, proc) => {
      if (!sent && out.includes("ready")) {
        sent = true;
        proc.kill("SIGTERM");
      }
    });
    expect(r.stdout).toContain("got-TERM");
    expect(r.code).toBe(143);
  }, 20_000);

  test("SIGINT is left to the terminal's process group: not sent twice to the binary", async () => {
    const { launcherPath } = install(
      `#!/bin/sh\ntrap 'echo got-INT' INT\ntrap 'echo got-TERM; exit 143' TERM\necho ready\n${BOUNDED_WAIT}`,
    );
    let step = 0;
    const r = await runLauncher(launcherPath, [], (out, proc) => {
      if (step === 0 && out.includes("ready")) {
        step = 1;
        proc.kill("SIGINT"); // the launcher alone, as `kill -INT <pid>` would
        setTimeout(() => proc.kill("SIGTERM"), 300);
      }
    });
    expect(r.stdout).not.toContain("got-INT");
    expect(r.stdout).toContain("got-TERM");
    expect(r.code).toBe(143);
  }, 20_000);

  test("a binary killed by SIGPIPE or SIGUSR1 ends the launcher with 128 + the signal, not 0 nor a debugger", async () => {
    // Node ignores SIGPIPE and starts its inspector on SIGUSR1: sending those to itself ended the
    // launcher with 0 (a failed `civitai-meta … | head` reported as success), the second after
    // "Debugger listening on ws://127.0.0.1:9229".
    for (const [signal, code] of [
      ["PIPE", 141],
      ["USR1", 138],
    ] as const) {
      const { launcherPath } = install(`#!/bin/sh\nkill -${signal} $$\nexit 0\n`);
      const r = await runLauncher(launcherPath, []);
      expect(r.stderr).toBe("");
      expect({ signal, code: r.code }).toEqual({ signal, code });
    }
  }, 20_000);

  test("a binary killed by a signal makes the launcher die of the same signal", async () => {
    const { launcherPath } = install("#!/bin/sh\nkill -KILL $$\n");
    const r = await runLauncher(launcherPath, []);
    expect(r.signal).toBe("SIGKILL");
  }, 20_000);
});
