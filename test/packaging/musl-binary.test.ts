/**
 * The musl binaries (for Alpine and the container image): checked to be musl executables for the
 * right CPU, and the x64 one run here under the musl loader as far as this machine allows.
 *
 * What this machine allows (Debian 12 with its `musl` package, which .ci/run installs): the loader
 * /lib/ld-musl-x86_64.so.1 starts the binary and resolves its C library, but Bun's musl runtime also
 * links libstdc++.so.6 dynamically and Debian ships no musl build of it (its libstdc++ is built
 * against glibc and cannot load under musl). So here the run stops at exactly that library, and the
 * test proves it stops there and nowhere else; on a machine with a musl libstdc++ (Alpine:
 * `apk add libstdc++`, which the Dockerfile does) the same test runs the binary for real.
 *
 * Needs the binaries built (`bun scripts/build-binary.ts --targets linux-x64-musl,linux-arm64-musl`);
 * skipped with a message otherwise, unless CIVITAI_META_REQUIRE_PACKAGING=1 (CI) makes that a failure.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { readElfInfo } from "../../scripts/elf-info.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const DIST = join(import.meta.dir, "../../dist");
const X64 = join(DIST, "civitai-meta-linux-x64-musl");
const ARM64 = join(DIST, "civitai-meta-linux-arm64-musl");
const LOADER = "/lib/ld-musl-x86_64.so.1";
const REQUIRED = process.env.CIVITAI_META_REQUIRE_PACKAGING === "1";
const built = existsSync(X64) && existsSync(ARM64);
if (!built)
  console.log("skipping musl binary tests: build them with bun scripts/build-binary.ts --targets linux-x64-musl,linux-arm64-musl");

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

test("the musl binaries were built for this run when CI requires them", () => {
  expect(REQUIRED && !built ? "dist/civitai-meta-linux-{x64,arm64}-musl missing" : "ok").toBe("ok");
});

/** The libraries Bun's musl runtime may link: the musl C library (Alpine's soname) and the GNU C++ runtime. */
const ALLOWED = (arch: string) => new Set([`libc.musl-${arch}.so.1`, "libstdc++.so.6", "libgcc_s.so.1"]);

describe.skipIf(!built)("musl binaries", () => {
  test("x64: an x86_64 executable for the musl loader, needing musl's libc and the C++ runtime only", () => {
    const elf = readElfInfo(X64);
    expect(elf.machine).toBe("x86_64");
    expect(elf.interpreter).toBe(LOADER);
    expect(elf.needed).toContain("libc.musl-x86_64.so.1");
    expect(elf.needed.filter((n) => !ALLOWED("x86_64").has(n))).toEqual([]);
  });

  test("arm64: an aarch64 executable for the musl loader, needing musl's libc and the C++ runtime only", () => {
    const elf = readElfInfo(ARM64);
    expect(elf.machine).toBe("aarch64");
    expect(elf.interpreter).toBe("/lib/ld-musl-aarch64.so.1");
    expect(elf.needed).toContain("libc.musl-aarch64.so.1");
    expect(elf.needed.filter((n) => !ALLOWED("aarch64").has(n))).toEqual([]);
  });

  const loaderHere = process.arch === "x64" && existsSync(LOADER);
  if (!loaderHere) console.log(`skipping the musl run: ${LOADER} is not here (apt-get install musl)`);

  test.skipIf(!loaderHere)("x64 under this machine's musl loader: runs, or stops only for want of a musl libstdc++", () => {
    // `ld-musl --list` is musl's ldd: one line per library, or an error for each it cannot load.
    const list = Bun.spawnSync([LOADER, "--list", X64], { stdout: "pipe", stderr: "pipe" });
    const listing = `${list.stdout.toString()}${list.stderr.toString()}`;
    expect(listing).toMatch(/libc\.musl-x86_64\.so\.1 => \/lib\/ld-musl-x86_64\.so\.1/);
    const unloadable = [...listing.matchAll(/Error loading shared library ([^:]+):/g)].map((m) => m[1]);
    const run = Bun.spawnSync([X64, "--version"], { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
    if (unloadable.length === 0) {
      // A musl C++ runtime is installed (Alpine, or one added by hand): the binary must work for real.
      expect(run.stdout.toString()).toBe(`${pkg.version}\n`);
      expect(run.exitCode).toBe(0);
      const file = join(tmp.make(), "m.safetensors");
      writeFileSync(file, "musl hashing check");
      const hash = Bun.spawnSync([X64, "hash", "--no-cache", "--algo", "sha256", file], { stdout: "pipe", stderr: "pipe" });
      expect(hash.stdout.toString()).toBe(`${createHash("sha256").update("musl hashing check").digest("hex")}  ${file}\n`);
      console.log("musl x64 binary ran under the musl loader (a musl libstdc++ is installed here)");
      return;
    }
    // Debian: the only library missing is the C++ runtime, and that is why the binary cannot start.
    expect(unloadable).toEqual(["libstdc++.so.6"]);
    expect(run.exitCode).toBe(127);
    expect(run.stderr.toString()).toStartWith("Error loading shared library libstdc++.so.6: No such file or directory");
    expect(run.stdout.toString()).toBe("");
    console.log(
      "musl x64 binary: loader and musl libc resolve here; it stops at libstdc++.so.6, which Debian does not ship for musl " +
        "(Alpine's libstdc++ package provides it, as in the Dockerfile)",
    );
  });
});
