#!/usr/bin/env node
// The `civitai-meta` command of the npm package. It runs the prebuilt binary that npm installed
// from one of the per-platform optional dependencies (@civitai-meta/linux-x64, …), after checking
// the binary's SHA-256 against the one recorded when this package was built (binaries.json).
// Plain Node (16 or later), no dependencies and no install script, so it works where install
// scripts are disabled (pnpm, npm --ignore-scripts) and needs no Bun.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");
const childProcess = require("child_process");

const SUPPORTED = "Linux x64 and arm64 (glibc or musl), macOS x64 and arm64, Windows x64";

/**
 * Which C library this Linux uses. A musl `ldd` (Alpine, Void musl) says so; otherwise Node's
 * own report names the glibc it runs on. Same order as the detect-libc package, without the dependency.
 */
function detectLibc(readFile, report) {
  try {
    const ldd = readFile("/usr/bin/ldd", "latin1");
    if (ldd.includes("musl")) return "musl";
    if (ldd.includes("GNU C Library") || ldd.includes("glibc") || ldd.includes("GLIBC")) return "glibc";
  } catch {
    /* no ldd: ask Node */
  }
  try {
    if (report && typeof report.getReport === "function") {
      if ("excludeNetwork" in report) report.excludeNetwork = true;
      const r = report.getReport();
      const header = typeof r === "string" ? JSON.parse(r).header : r.header;
      if (header && header.glibcVersionRuntime) return "glibc";
      const libs = (typeof r === "string" ? JSON.parse(r) : r).sharedObjects || [];
      if (libs.some((l) => /ld-musl-|libc\.musl-/.test(l))) return "musl";
    }
  } catch {
    /* fall through */
  }
  return "glibc";
}

/** The key of binaries.json for this machine, e.g. "linux-x64-musl", "darwin-arm64", "win32-x64". */
function platformKey(platform, arch, libc) {
  return platform === "linux" && libc === "musl" ? `${platform}-${arch}-musl` : `${platform}-${arch}`;
}

class LaunchError extends Error {}

/**
 * Where the launcher remembers a binary it has verified (one small file per binary path), in the
 * tool's cache folder: `$CIVITAI_META_CACHE_DIR`, else `$XDG_CACHE_HOME/civitai-meta`, else
 * `~/.cache/civitai-meta` (src/config/paths.ts). Null when there is no home to put it in.
 */
function stampDir(env) {
  if (env.CIVITAI_META_CACHE_DIR) return path.join(path.resolve(env.CIVITAI_META_CACHE_DIR), "launcher");
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : null;
  let home = null;
  try {
    home = os.homedir();
  } catch {
    /* no home */
  }
  const base = xdg || (home ? path.join(home, ".cache") : null);
  return base ? path.join(base, "civitai-meta", "launcher") : null;
}

/**
 * What identifies the binary's bytes without reading them: device, inode, size, and mtime and
 * ctime in ns. Any write, rename over or reinstall changes the ctime (which no user can set back)
 * or the inode, so a binary that matches its stamp is the one verified then.
 */
function statStamp(binary) {
  const st = fs.statSync(binary, { bigint: true });
  return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].map(String).join(":");
}

/**
 * Finds the binary for `key` and checks it. Returns its path or throws a LaunchError whose message
 * says what is wrong and what to do. `resolve` is require.resolve bound to this package's folder.
 * Reading the ~110 MB binary for its SHA-256 cost 0.2–0.3 s on every start: a binary verified once
 * is remembered by its stamp (statStamp) and the expected SHA-256, and read again only when either
 * changes. Someone who could forge the stamp could as well edit this launcher, so nothing is lost.
 */
function locateBinary(manifest, key, resolve, options = {}) {
  const entry = manifest.platforms[key];
  if (!entry) {
    throw new LaunchError(
      `civitai-meta has no prebuilt binary for ${key}. Supported: ${SUPPORTED}. ` +
        "Build one from source with Bun (the README's Development section) or run the container image.",
    );
  }
  let pkgJson;
  try {
    pkgJson = resolve(`${entry.package}/package.json`);
  } catch {
    throw new LaunchError(
      `The package ${entry.package} (the civitai-meta binary for ${key}) is not installed. ` +
        "npm leaves optional dependencies out with --omit=optional (or --no-optional), and a lockfile made on another " +
        `platform may lack it. Reinstall with optional dependencies: npm install civitai-meta@${manifest.version}`,
    );
  }
  const dir = path.dirname(pkgJson);
  const binary = path.join(dir, entry.bin);
  const installed = JSON.parse(fs.readFileSync(pkgJson, "utf8")).version;
  if (!entry.sha256) {
    throw new LaunchError(
      `This build of civitai-meta@${manifest.version} records no checksum for ${key}; refusing to run an unverified binary.`,
    );
  }
  const stamps = options.stampDir === undefined ? stampDir(process.env) : options.stampDir;
  const memo = stamps ? path.join(stamps, `${crypto.createHash("sha256").update(binary).digest("hex").slice(0, 32)}.txt`) : null;
  let seen = null;
  try {
    seen = `${entry.sha256} ${statStamp(binary)}\n`;
    if (memo && fs.readFileSync(memo, "utf8") === seen) return binary;
  } catch {
    /* no stamp yet, or the binary cannot be read: the check below says so */
  }
  let actual;
  try {
    actual = (options.hashFile || sha256File)(binary);
  } catch (error) {
    throw new LaunchError(`Cannot read ${binary} (${error.code || error.message}). Reinstall civitai-meta@${manifest.version}.`);
  }
  if (actual !== entry.sha256) {
    throw new LaunchError(
      `The binary in ${entry.package}@${installed} (${binary}) does not match the SHA-256 recorded when civitai-meta@${manifest.version} ` +
        `was built (expected ${entry.sha256}, found ${actual}). It is damaged or from another version: reinstall civitai-meta@${manifest.version}.`,
    );
  }
  if (memo && seen) rememberVerified(memo, seen);
  return binary;
}

/** Writes the stamp whole (temp file, then rename) or not at all; a cache we cannot write only costs the next start a read. */
function rememberVerified(memo, text) {
  const temp = `${memo}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(memo), { recursive: true });
    fs.writeFileSync(temp, text, { mode: 0o600 });
    fs.renameSync(temp, memo);
  } catch {
    try {
      fs.unlinkSync(temp);
    } catch {
      /* never made */
    }
  }
}

function sha256File(file) {
  const hash = crypto.createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    let n;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/**
 * Linux: when Node decoded one of our arguments with U+FFFD (bytes that are not UTF-8, such as a
 * Latin-1 file name), the exact bytes of every argument, read from /proc/self/cmdline, each as hex,
 * comma-separated. spawn passes arguments as UTF-8 only, so the binary would get U+FFFD itself and
 * name no file; it takes the bytes from CIVITAI_META_RAW_ARGV instead (src/shared/raw-argv.ts).
 */
function rawArgs(args, readFile) {
  if (!args.some((a) => a.includes("\ufffd"))) return undefined;
  let raw;
  try {
    raw = readFile("/proc/self/cmdline");
  } catch {
    return undefined; // not Linux, or /proc not mounted: the bytes are gone
  }
  const parts = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0) {
      parts.push(raw.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < raw.length) parts.push(raw.subarray(start));
  if (parts.length < args.length) return undefined;
  return parts
    .slice(parts.length - args.length)
    .map((p) => p.toString("hex"))
    .join(",");
}

/**
 * Runs the binary with our arguments and standard streams, and ends as it ends: same exit code,
 * or the same signal. SIGTERM and SIGHUP (from `kill`, a supervisor, a CI runner) are passed on.
 * SIGINT is not: Ctrl-C already reaches the binary through the terminal's process group, and a
 * second SIGINT would make it stop at once instead of cleanly.
 */
function run(binary, args) {
  // Handlers first: a signal that arrives while the binary starts is then queued for them, not
  // fatal to the launcher (which would leave the binary running without us).
  let child;
  const forward = (signal) => () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const handlers = { SIGINT: () => {}, SIGTERM: forward("SIGTERM"), SIGHUP: forward("SIGHUP") };
  for (const [signal, handler] of Object.entries(handlers)) process.on(signal, handler);
  const raw = rawArgs(args, fs.readFileSync);
  const env = raw === undefined ? process.env : { ...process.env, CIVITAI_META_RAW_ARGV: raw };
  child = childProcess.spawn(binary, args, { stdio: "inherit", env });
  child.on("error", (error) => {
    process.stderr.write(`civitai-meta: cannot start ${binary}: ${error.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    for (const [sig, handler] of Object.entries(handlers)) process.off(sig, handler);
    if (signal) endBySignal(signal);
    else process.exit(code === null ? 1 : code);
  });
}

/**
 * Ends the launcher as a binary killed by `signal` ended: by the same signal where Node can die of
 * it, else with the code a shell gives such a death (128 + its number). Node ignores SIGPIPE (a
 * `… | head` that killed the binary then ended the launcher with 0, success) and takes SIGUSR1 to
 * start its inspector on 127.0.0.1:9229, so those two are never sent; any other signal that does
 * not end us (one inherited as ignored) falls through to the exit code.
 */
function endBySignal(signal) {
  const code = 128 + (os.constants.signals[signal] || 0);
  if (signal === "SIGPIPE" || signal === "SIGUSR1") process.exit(code);
  process.kill(process.pid, signal);
  setTimeout(() => process.exit(code), 1000);
}

function main() {
  let binary;
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "binaries.json"), "utf8"));
    const libc = process.platform === "linux" ? detectLibc(fs.readFileSync, process.report) : undefined;
    const key = platformKey(process.platform, process.arch, libc);
    binary = locateBinary(manifest, key, (id) => require.resolve(id, { paths: [path.join(__dirname, "..")] }));
  } catch (error) {
    process.stderr.write(`civitai-meta: ${error instanceof LaunchError ? error.message : error.stack || error}\n`);
    process.exit(1);
  }
  run(binary, process.argv.slice(2));
}

if (require.main === module) main();

module.exports = { detectLibc, platformKey, locateBinary, sha256File, rawArgs, LaunchError };
