import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  linkSync,
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
import { tmpdir } from "node:os";
import { join } from "node:path";
import { transferPaths } from "../../src/download/resume-state.ts";
import { makeBytes, sha256Hex, startFakeStorage, type FakeFile, type FakeStorage } from "../helpers/fake-storage.ts";
import { canCountReads, cliCommand, cliEnv, runCliCountingReads, type CliResult } from "../helpers/run-cli.ts";

const SENTINEL = "SENTINEL-KEY-e2e-9f8e7d6c5b4a";
const ROOT = join(import.meta.dir, "../..");

let fake: FakeStorage;
let tmp: string;
let dest: string;
let n = 0;

beforeAll(async () => {
  fake = await startFakeStorage();
  tmp = mkdtempSync(join(tmpdir(), "civitai-meta-e2e-dl-"));
});

// A read-only mount holding one folder, made at load time so `test.skipIf(!roMounted)` knows
// whether it could be (root in CI; chmod would not stop root).
const roDir = mkdtempSync(join(tmpdir(), "civitai-meta-e2e-dl-ro-"));
const roMounted =
  Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", roDir]).exitCode === 0 &&
  (mkdirSync(join(roDir, "loras")), Bun.spawnSync(["mount", "-o", "remount,ro", roDir]).exitCode === 0);
if (!roMounted) console.log("read-only --dest test skipped: no tmpfs mount");

afterAll(async () => {
  await fake.stop();
  rmSync(tmp, { recursive: true, force: true });
  Bun.spawnSync(["umount", roDir]);
  rmSync(roDir, { recursive: true, force: true });
});

beforeEach(() => {
  fake.reset();
  fake.setOptions({ bytesPerSecond: 0 });
  dest = join(tmp, `dest-${++n}`);
});

const env = { CIVITAI_API_KEY: SENTINEL, NO_COLOR: "1" };
const apiFlags = () => ["--api-url", fake.apiUrl, "--no-fallback"];

async function cli(args: string[]): Promise<CliResult> {
  const proc = Bun.spawn(cliCommand(args), {
    cwd: ROOT,
    env: cliEnv(env),
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

function noSecret(r: CliResult): void {
  expect(r.stdout).not.toContain(SENTINEL);
  expect(r.stderr).not.toContain(SENTINEL);
  expect(r.stderr).not.toContain("X-Amz-Signature=sig");
  for (const req of fake.storageRequests) expect(req.headers.authorization).toBeUndefined();
}

function filesUnder(dir: string): string[] {
  return existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).sort() : [];
}

/** The `civitai` block of an inventory record for a fake file. */
function civitaiInfo(f: FakeFile) {
  return {
    modelId: f.modelId,
    modelName: "M",
    modelType: "LORA",
    versionId: f.versionId,
    versionName: "v",
    baseModel: null,
    baseModelType: null,
    trainedWords: [],
    nsfw: false,
    nsfwLevel: null,
    availability: { archived: false, takenDown: false, earlyAccess: false, paidAccess: false },
    createdAt: null,
    updatedAt: null,
    publishedAt: null,
    description: null,
    creator: null,
    tags: [],
    license: null,
    pageUrl: "https://civitai.com/models/1",
    air: null,
    matchedFile: {
      id: f.fileId,
      name: f.name,
      sizeKB: f.bytes.byteLength / 1024,
      type: "Model",
      primary: true,
      format: null,
      fp: null,
      size: null,
      hashes: { SHA256: f.sha256 },
    },
    downloadUrl: `https://civitai.com/api/download/models/${f.versionId}?fileId=${f.fileId}`,
    primaryDownloadUrl: `https://civitai.com/api/download/models/${f.versionId}`,
    previewImageUrl: null,
  };
}

/** A found record of `f` at `path` (and its other names). */
function rec(path: string, f: FakeFile, aliases: string[] = []) {
  return {
    path,
    aliases,
    size: f.bytes.byteLength,
    mtime: null,
    hashes: { sha256: f.sha256 },
    status: "found",
    matchedBy: "sha256",
    civitai: civitaiInfo(f),
  };
}

/** A scan inventory of `/old/models` holding `records`. */
function inventoryOf(records: object[]) {
  return {
    schemaVersion: 1,
    generatedAt: "2025-01-01T00:00:00Z",
    tool: { name: "civitai-meta", version: "0.1.0" },
    roots: ["/old/models"],
    options: { apiUrl: null, fallbackUrl: null, offline: false, details: true, refresh: false, extensions: [], exclude: [], algos: [] },
    summary: {
      files: records.length,
      byStatus: { found: records.length, not_found: 0, error: 0, skipped: 0 },
      bytes: 0,
      durationMs: 0,
      requests: 0,
      cacheHits: { hashes: 0, metadata: 0 },
    },
    records,
  };
}

describe("civitai-meta download (e2e)", () => {
  test("A2: SIGKILL mid-download of a 32 MiB file, then the same command fetches only the rest and verifies", async () => {
    // Big enough that the kill lands mid-transfer (throttled to 2 s for the whole file: the kill at
    // 40% leaves 1.2 s before the end), small enough that making, serving and hashing it costs
    // little (it was 200 MB, then 64 MiB).
    const size = 32 * 1024 * 1024;
    const file = fake.addFile({ versionId: 777, bytes: makeBytes(size, 777), name: "big-model.safetensors" });
    const target = join(dest, file.name);
    const paths = transferPaths(target, 777);
    fake.setOptions({ bytesPerSecond: 16 * 1024 * 1024 });
    const args = ["download", "777", "--dest", dest, ...apiFlags()];
    // The issue asks for the compiled binary to be killed (the helper builds it when stale).
    const proc = Bun.spawn(cliCommand(args, { binary: true }), {
      cwd: ROOT,
      env: cliEnv(env, { binary: true }),
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const deadline = Date.now() + 60_000;
    let partSize = 0;
    while (Date.now() < deadline) {
      partSize = existsSync(paths.part) ? statSync(paths.part).size : 0;
      if (partSize >= size * 0.4) break;
      await Bun.sleep(20);
    }
    proc.kill("SIGKILL");
    const firstStderr = await new Response(proc.stderr).text();
    await proc.exited;
    expect(proc.signalCode).toBe("SIGKILL");
    expect(firstStderr).not.toContain(SENTINEL);

    // Only the .part, its resume state and the dead run's lock: never the final name.
    expect(existsSync(target)).toBe(false);
    expect(filesUnder(dest)).toEqual([`${file.name}.777.part`, `${file.name}.777.part.json`, `${file.name}.777.part.lock`].sort());
    partSize = statSync(paths.part).size;
    expect(partSize).toBeGreaterThanOrEqual(size * 0.4);
    expect(partSize).toBeLessThan(size);

    fake.reset();
    fake.setOptions({ bytesPerSecond: 0 });
    const second = await cli(args);
    expect(second.code).toBe(0);
    const ranged = fake.storageRequests.filter((r) => r.status === 206);
    expect(ranged).toHaveLength(1);
    expect(ranged[0]!.headers.range).toBe(`bytes=${partSize}-`);
    expect(ranged[0]!.headers["if-range"]).toBe(file.etag);
    // Only the rest crossed the wire.
    // (Counted per request: the killed run's socket may still have been draining when the counters were reset.)
    expect(fake.storageRequests.reduce((sum, r) => sum + (r.bytes ?? 0), 0)).toBe(size - partSize);
    expect(sha256Hex(readFileSync(target))).toBe(file.sha256);
    expect(filesUnder(dest)).toEqual([file.name]);
    noSecret(second);
    for (const req of fake.apiRequests) expect(req.headers.authorization).toBe(`Bearer ${SENTINEL}`);
  }, 90_000);

  test("inventory restore: missing files fetched at their relative paths; a second run skips them as verified", async () => {
    const a = fake.addFile({ versionId: 801, bytes: makeBytes(50_000, 801), name: "api-name-a.safetensors" });
    const b = fake.addFile({ versionId: 802, bytes: makeBytes(70_000, 802), name: "api-name-b.safetensors" });
    const inventory = inventoryOf([
      rec("/old/models/loras/style/my-a.safetensors", a),
      rec("/old/models/checkpoints/my-b.safetensors", b),
      {
        path: "/old/models/unknown.safetensors",
        aliases: [],
        size: 1,
        mtime: null,
        hashes: { sha256: "c".repeat(64) },
        status: "not_found",
      },
    ]);
    const invPath = join(tmp, `inventory-${n}.json`);
    writeFileSync(invPath, JSON.stringify(inventory));
    mkdirSync(join(dest, "checkpoints"), { recursive: true });
    writeFileSync(join(dest, "checkpoints", "my-b.safetensors"), b.bytes); // already restored

    const dry = await cli(["download", invPath, "--dest", dest, "--dry-run", ...apiFlags()]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`loras/style/my-a.safetensors  ${fake.apiUrl}/api/download/models/801?fileId=8011`);
    expect(dry.stdout).toContain(
      `checkpoints/my-b.safetensors  ${fake.apiUrl}/api/download/models/802?fileId=8021  (exists: will be verified, not fetched)`,
    );
    expect(dry.stdout).toContain("1 file to fetch, 48.8 KiB");
    expect(fake.storageRequests).toHaveLength(0);
    // The file Civitai did not know is said, not left out without a word (a restore is not complete).
    expect(dry.stderr).toContain(
      `${invPath}: 1 file(s) are not restored, Civitai did not know them when scanned (copy them from where they were scanned): unknown.safetensors`,
    );

    const first = await cli(["download", invPath, "--dest", dest, ...apiFlags()]);
    expect(first.code).toBe(0);
    expect(sha256Hex(readFileSync(join(dest, "loras/style/my-a.safetensors")))).toBe(a.sha256);
    expect(first.stderr).toContain("already present, verified");
    expect(first.stderr).toContain("1 file(s) are not restored, Civitai did not know them when scanned");
    expect(first.stderr).not.toMatch(/\x1b\[/); // no progress display on a non-TTY
    noSecret(first);

    fake.reset();
    const again = await cli(["download", invPath, "--dest", dest, ...apiFlags()]);
    expect(again.code).toBe(0);
    expect(fake.bytesServed).toBe(0);
    expect(again.stderr.match(/already present, verified/g)).toHaveLength(2);
  }, 30_000);

  test("sources by SHA-256, URL and AIR resolve through the API; --emit writes lists without the key", async () => {
    const f = fake.addFile({ versionId: 901, bytes: makeBytes(10_000, 901), name: "emit.safetensors" });
    const sources = [
      f.sha256,
      `https://civitai.com/models/${f.modelId}?modelVersionId=901`,
      `urn:air:sdxl:lora:civitai:${f.modelId}@901`,
      `https://civitai.com/models/${f.modelId}`,
    ];
    const urls = await cli(["download", ...sources, "--dest", dest, "--emit", "urls", ...apiFlags()]);
    expect(urls.code).toBe(0);
    expect(urls.stdout).toBe(
      `${fake.apiUrl}/api/download/models/901?fileId=${f.fileId}&token=\${CIVITAI_API_KEY}\t${join(dest, "emit.safetensors")}\t${f.sha256}\n`,
    );
    const aria = await cli(["download", f.sha256, "--dest", dest, "--emit", "aria2", ...apiFlags()]);
    expect(aria.stdout).toContain(`?fileId=${f.fileId}&token=\${CIVITAI_API_KEY}`);
    expect(aria.stdout).toContain(`checksum=sha-256=${f.sha256}`);
    const out = join(tmp, `list-${n}.sh`);
    const sh = await cli(["download", "901", "--dest", dest, "--emit", "sh", "-o", out, ...apiFlags()]);
    expect(sh.code).toBe(0);
    expect(sh.stdout).toBe("");
    const script = readFileSync(out, "utf8");
    expect(script).toContain('-H "Authorization: Bearer ${CIVITAI_API_KEY}"');
    expect(statSync(out).mode & 0o111).not.toBe(0);
    for (const r of [urls, aria, sh]) noSecret(r);
    expect(script).not.toContain(SENTINEL);
    expect(existsSync(dest)).toBe(false); // a list writes nothing under --dest
  });

  test("F6/A7: a 401 from the download route → exit 1, Civitai's message quoted, no secret, nothing written", async () => {
    fake.addFile({ versionId: 950, bytes: makeBytes(1000, 950), name: "locked.safetensors" });
    fake.queueApiFault({
      kind: "status",
      status: 401,
      body: { error: "Unauthorized", message: "The creator of this asset requires you to be logged in to download it" },
    });
    const r = await cli(["download", "950", "--dest", dest, ...apiFlags(), "--verbose"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'login required (401): Civitai says "The creator of this asset requires you to be logged in to download it"',
    );
    expect(filesUnder(dest)).toEqual([]);
    noSecret(r);
  });

  test("Civitai's download quota (429) on the first file: the other files are not asked for, each says why, exit 1", async () => {
    for (const id of [960, 961, 962]) fake.addFile({ versionId: id, bytes: makeBytes(1000, id), name: `quota-${id}.safetensors` });
    fake.queueApiFault({
      kind: "status",
      status: 429,
      body: { error: "We've noticed an unusual amount of downloading from your account." },
    });
    const r = await cli(["download", "960", "961", "962", "--dest", dest, "-j", "1", ...apiFlags()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("download quota reached (429)");
    expect(r.stderr.match(/not asked for: Civitai's download quota was reached \(429\) earlier in this run/g)).toHaveLength(2);
    // One ask of the download route, none after it (the versions are resolved through the API first).
    expect(fake.apiRequests.filter((q) => q.url.includes("/api/download/"))).toHaveLength(1);
    expect(filesUnder(dest)).toEqual([]);
    noSecret(r);
  });

  test("B11: Ctrl-C (SIGINT) mid-download → exit 130, the .part and its resume state kept for resume, the lock released", async () => {
    const size = 8 * 1024 * 1024;
    const file = fake.addFile({ versionId: 960, bytes: makeBytes(size, 960), name: "interrupted.safetensors" });
    const paths = transferPaths(join(dest, file.name), 960);
    fake.setOptions({ bytesPerSecond: 2 * 1024 * 1024 });
    const proc = Bun.spawn(cliCommand(["download", "960", "--dest", dest, ...apiFlags()]), {
      cwd: ROOT,
      env: cliEnv(env),
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !(existsSync(paths.part) && statSync(paths.part).size > 0)) await Bun.sleep(20);
    proc.kill("SIGINT");
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(130);
    expect(stderr).toContain("interrupted (SIGINT)");
    expect(stderr).toContain("run the same command again to resume");
    expect(existsSync(paths.part)).toBe(true);
    expect(existsSync(paths.resumeState)).toBe(true);
    expect(existsSync(paths.lock)).toBe(false);
    expect(existsSync(join(dest, file.name))).toBe(false);
  }, 30_000);

  test("--retries 0: one attempt and no retry, as curl's --retry 0; --retries out of 0..100 is a usage error", async () => {
    const f = fake.addFile({ versionId: 975, bytes: makeBytes(200_000, 975), name: "once.safetensors" });
    fake.queueStorageFault({ kind: "short", after: 50_000 });
    const once = await cli(["download", "975", "--dest", dest, "--retries", "0", ...apiFlags()]);
    expect(once.code).toBe(1);
    expect(once.stderr).toContain("gave up after 0 retries");
    // The bytes that came are counted as received, not as downloaded: the file was not.
    expect(once.stderr).toMatch(/0 downloaded, [\d.]+ KiB received, 0 already present, 1 failed or skipped/);
    expect(fake.storageRequests).toHaveLength(1);
    expect(existsSync(join(dest, f.name))).toBe(false);
    for (const bad of ["-1", "101", "two"]) {
      const r = await cli(["download", "975", "--dest", dest, "--retries", bad, ...apiFlags()]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--retries takes a whole number from 0 to 100");
    }
  });

  test("usage errors exit 2", async () => {
    expect((await cli(["download", "123", ...apiFlags()])).stderr).toContain("--dest");
    for (const args of [
      ["download", "--dest", dest],
      ["download", "not-a-source", "--dest", dest],
      ["download", "1", "--dest", dest, "--emit", "wget"],
      ["download", "1", "--dest", dest, "--jobs", "0"],
    ]) {
      const r = await cli([...args, ...apiFlags()]);
      expect(r.code).toBe(2);
    }
    expect(fake.apiRequests).toHaveLength(0);
  });

  test.skipIf(!Bun.which("script"))(
    "on a terminal: an overall line (bytes, rate, ETA, files) and a line per file",
    async () => {
      fake.addFile({ versionId: 970, bytes: makeBytes(3_000_000, 970), name: "tty.safetensors" });
      fake.setOptions({ bytesPerSecond: 4 * 1024 * 1024 });
      const cmd = cliCommand(["download", "970", "--dest", dest, ...apiFlags()])
        .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
        .join(" ");
      const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], {
        cwd: ROOT,
        env: cliEnv(env),
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(out).toMatch(/downloading .*\/.*\/s ETA .* \d\/1 files/);
      expect(out).toMatch(/ +\d+% tty\.safetensors/);
      expect(out).not.toContain(SENTINEL);
    },
    30_000,
  );

  test("a version Civitai does not know, or an inventory that is not there → exit 1 naming it; no --dest made for nothing", async () => {
    const r = await cli(["download", "424242", "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("version 424242: not found on Civitai");
    expect(existsSync(dest)).toBe(false);
    const missing = join(tmp, "no-such-inventory.json");
    const inv = await cli(["download", missing, "--dest", dest, ...apiFlags()]);
    expect(inv.code).toBe(1);
    expect(inv.stderr).toContain(
      `inventory ${missing}: cannot read it: no such file or folder (ENOENT). Give the path of a JSON inventory`,
    );
    expect(existsSync(dest)).toBe(false);
  });
});

describe("download: trust (issue 9)", () => {
  const writeInventory = (records: object[]): string => {
    const path = join(tmp, `inventory-${n}.json`);
    writeFileSync(path, JSON.stringify(inventoryOf(records)));
    return path;
  };
  const tryMount = (dir: string, size: string, label: string): boolean => {
    mkdirSync(dir, { recursive: true });
    const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
    if (r.exitCode !== 0) console.log(`${label} skipped: cannot mount tmpfs (${r.stderr.toString().trim() || `exit ${r.exitCode}`})`);
    return r.exitCode === 0;
  };

  test.skipIf(!Bun.which("envsubst"))(
    "T3: an API name carrying ${CIVITAI_API_KEY} never puts the key into a file name after the README's envsubst step",
    async () => {
      const f = fake.addFile({ versionId: 1001, bytes: makeBytes(5_000, 1001), name: "lora_${CIVITAI_API_KEY}`id`.safetensors" });
      const aria = await cli(["download", "1001", "--dest", dest, "--emit", "aria2", ...apiFlags()]);
      expect(aria.code).toBe(0);
      const filled = Bun.spawnSync(["envsubst", "$CIVITAI_API_KEY"], {
        stdin: new TextEncoder().encode(aria.stdout),
        env: { CIVITAI_API_KEY: SENTINEL },
      });
      // (The header comment names the envsubst command, so envsubst fills it in too: comments are not names.)
      const lines = filled.stdout
        .toString()
        .split("\n")
        .filter((l) => !l.startsWith("#"));
      // The key is where the README puts it (the URL's token), and nowhere else.
      expect(lines.filter((l) => l.includes(SENTINEL))).toEqual([
        `${fake.apiUrl}/api/download/models/1001?fileId=${f.fileId}&token=${SENTINEL}`,
      ]);
      const out = lines.find((l) => l.startsWith("  out="));
      expect(out).toBe("  out=lora__{CIVITAI_API_KEY}_id_.safetensors");
      for (const format of ["urls", "sh"]) {
        const r = await cli(["download", "1001", "--dest", dest, "--emit", format, ...apiFlags()]);
        expect(r.code).toBe(0);
        const names = r.stdout.split("\n").filter((l) => l.includes("lora_"));
        expect(names.length).toBeGreaterThan(0);
        for (const l of names) expect(l.replace(/token=\$\{CIVITAI_API_KEY\}/, "")).not.toMatch(/[$`]/);
      }
      // `download` saves under the very name the list names.
      const real = await cli(["download", "1001", "--dest", dest, ...apiFlags()]);
      expect(real.code).toBe(0);
      expect(filesUnder(dest)).toEqual(["lora__{CIVITAI_API_KEY}_id_.safetensors"]);
      // A destination that itself holds $ cannot be written into a list safely: refused, not emitted.
      const dollar = await cli(["download", "1001", "--dest", join(tmp, "a$HOME"), "--emit", "aria2", ...apiFlags()]);
      expect(dollar.code).toBe(2);
      expect(dollar.stderr).toContain("--dest");
      expect(dollar.stderr).toMatch(/\$ or a backtick/);
      expect(dollar.stdout).toBe("");
    },
  );

  test("T4: an endless answer from the download route → one clear error at once, nothing written", async () => {
    fake.addFile({ versionId: 1002, bytes: makeBytes(5_000, 1002) });
    fake.queueApiFault({ kind: "endless", status: 403 });
    const started = performance.now();
    const r = await cli(["download", "1002", "--dest", dest, "--stall-timeout", "5s", ...apiFlags()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/download refused \(403\); Civitai's answer is larger than 64 KiB and was not read/);
    expect(performance.now() - started).toBeLessThan(4000);
    expect(filesUnder(dest)).toEqual([]);
    noSecret(r);
  });

  test("T5: a storage redirect to file:///etc/passwd is refused: nothing under DEST, exit 1", async () => {
    fake.addFile({ versionId: 1003, bytes: makeBytes(5_000, 1003), name: "t5.safetensors" });
    fake.queueStorageFault({ kind: "redirect", location: "file:///etc/passwd" });
    const r = await cli(["download", "1003", "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("refusing a redirect to a file: URL; only http and https are followed");
    expect(r.stderr).not.toContain("downloaded and verified");
    expect(filesUnder(dest)).toEqual([]);
  });

  test("T6: no size anywhere and an endless body on a 64 MiB disk → stops with room left, nothing kept, a true message", async () => {
    const f = fake.addFile({ versionId: 1004, bytes: makeBytes(5_000, 1004), name: "t6.safetensors" });
    if (!tryMount(dest, "64m", "T6 e2e")) return;
    try {
      // An AutoV3 match whose Civitai file lists neither size nor hash: nothing tells how large it is.
      const record = { ...rec("/old/models/t6.safetensors", f), matchedBy: "autov3" };
      record.civitai = {
        ...record.civitai,
        matchedFile: { ...record.civitai.matchedFile, sizeKB: null as unknown as number, hashes: {} as { SHA256: string } },
      };
      fake.queueStorageFault({ kind: "no-length", bytes: 512 * 1024 * 1024 });
      const r = await cli(["download", writeInventory([record]), "--dest", dest, ...apiFlags()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /without saying how large the file is .*; stopped to keep .* free on that disk, the partial download was deleted and nothing was saved/,
      );
      expect(filesUnder(dest)).toEqual([]);
    } finally {
      Bun.spawnSync(["umount", dest]);
    }
  });

  test("T7: --stall-timeout 30d is honoured (a timer past 2^31−1 ms used to fire at once)", async () => {
    const f = fake.addFile({ versionId: 1005, bytes: makeBytes(100_000, 1005), name: "t7.safetensors" });
    const r = await cli(["download", "1005", "--dest", dest, "--stall-timeout", "30d", ...apiFlags()]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("TimeoutOverflowWarning");
    expect(sha256Hex(readFileSync(join(dest, f.name)))).toBe(f.sha256);
  });

  test("T14: U+202E and escapes in an API name never reach the file name or the terminal; an inventory path is printed escaped", async () => {
    fake.addFile({ versionId: 1006, bytes: makeBytes(5_000, 1006), name: "invoice\u202Egnp\u001b[31m.safetensors" });
    const r = await cli(["download", "1006", "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(0);
    expect(filesUnder(dest)).toEqual(["invoicegnp[31m.safetensors"]);
    expect(r.stderr).not.toContain("\u202E");
    expect(r.stderr).not.toContain("\u001b");
    // A destination the user named with U+202E in it is shown escaped, not obeyed by the terminal.
    const bidiDest = join(dest, "evil\u202Edir");
    const shown = await cli(["download", "1006", "--dest", bidiDest, ...apiFlags()]);
    expect(shown.code).toBe(0);
    expect(shown.stderr).not.toContain("\u202E");
    expect(shown.stderr).toContain("evil\\u202edir/invoicegnp[31m.safetensors: downloaded and verified");
    const missing = await cli(["download", join(tmp, "no\u001b]52;c;eA==\u0007such.json"), "--dest", dest, ...apiFlags()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no\\x1b]52;c;eA==\\x07such.json");
    expect(missing.stderr).not.toContain("\u001b");
    expect(missing.stderr).not.toContain("\u0007");
  });

  test("T17: a file with three names in the inventory comes back under all three, as hard links; a second run finds them present", async () => {
    const f = fake.addFile({ versionId: 1007, bytes: makeBytes(40_000, 1007), name: "api.safetensors" });
    const inv = writeInventory([
      rec("/old/models/checkpoints/base.safetensors", f, [
        "/old/models/checkpoints/base-link.safetensors",
        "/old/models/sd/Stable-diffusion/base.safetensors",
      ]),
    ]);
    const dry = await cli(["download", inv, "--dest", dest, "--dry-run", ...apiFlags()]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("sd/Stable-diffusion/base.safetensors  (another name of checkpoints/base.safetensors)");
    const r = await cli(["download", inv, "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(0);
    const names = ["checkpoints/base.safetensors", "checkpoints/base-link.safetensors", "sd/Stable-diffusion/base.safetensors"];
    const inodes = new Set(names.map((p) => statSync(join(dest, p)).ino));
    expect(inodes.size).toBe(1);
    expect(statSync(join(dest, names[0]!)).nlink).toBe(3);
    expect(sha256Hex(readFileSync(join(dest, names[2]!)))).toBe(f.sha256);
    expect(r.stderr.match(/restored as a hard link to /g)).toHaveLength(2);
    expect(fake.bytesServed).toBe(40_000); // fetched once
    fake.reset();
    const again = await cli(["download", inv, "--dest", dest, ...apiFlags()]);
    expect(again.code).toBe(0);
    expect(fake.bytesServed).toBe(0);
    expect(again.stderr.match(/already present, verified/g)).toHaveLength(3);
  });

  test("T17: an inventory giving one file 1,000 other names, each twice, plans each name once", async () => {
    // The growth with the count of names (it was quadratic) is judged by `bun run bench hostile-scale`.
    const f = fake.addFile({ versionId: 1008, bytes: makeBytes(1_000, 1008), name: "many.safetensors" });
    const names = Array.from({ length: 1_000 }, (_, i) => `/old/models/names/n${i}.safetensors`);
    // Twice each: the repeats are dropped, as before.
    const inv = writeInventory([rec("/old/models/many.safetensors", f, [...names, ...names])]);
    const dry = await cli(["download", inv, "--dest", dest, "--dry-run", ...apiFlags()]);
    expect(dry.code).toBe(0);
    expect(dry.stdout.match(/\(another name of many\.safetensors\)/g)).toHaveLength(1_000);
  });

  test("T17: where a hard link is impossible (another filesystem) the other name is a verified copy", async () => {
    const f = fake.addFile({ versionId: 1008, bytes: makeBytes(40_000, 1008), name: "api.safetensors" });
    if (!tryMount(join(dest, "other-disk"), "8m", "T17 copy")) return;
    try {
      const inv = writeInventory([rec("/old/models/a.safetensors", f, ["/old/models/other-disk/a.safetensors"])]);
      const r = await cli(["download", inv, "--dest", dest, ...apiFlags()]);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(
        /other-disk\/a\.safetensors: restored as a verified copy of .*a\.safetensors \(a hard link is not possible here: EXDEV\)/,
      );
      expect(statSync(join(dest, "other-disk/a.safetensors")).ino).not.toBe(statSync(join(dest, "a.safetensors")).ino);
      expect(sha256Hex(readFileSync(join(dest, "other-disk/a.safetensors")))).toBe(f.sha256);
      expect(readdirSync(join(dest, "other-disk"))).toEqual(["a.safetensors"]);
    } finally {
      Bun.spawnSync(["umount", join(dest, "other-disk")]);
    }
  });

  test("T12: an inventory path that is not valid UTF-8 is restored with its exact bytes and printed escaped", async () => {
    const f = fake.addFile({ versionId: 1009, bytes: makeBytes(20_000, 1009), name: "api.safetensors" });
    // What the walker writes for the name bytes `dir\xff/bad\xfe\x80.safetensors` (JSON keeps \udcXX).
    const inv = writeInventory([rec("/old/models/dir\udcff/bad\udcfe\udc80.safetensors", f)]);
    const r = await cli(["download", inv, "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(0);
    const dirs = readdirSync(dest, { encoding: "buffer" });
    expect(dirs).toEqual([Buffer.from([...Buffer.from("dir"), 0xff])]);
    const files = readdirSync(Buffer.concat([Buffer.from(`${dest}/`), dirs[0]!]), { encoding: "buffer" });
    expect(files).toEqual([Buffer.concat([Buffer.from("bad"), Buffer.from([0xfe, 0x80]), Buffer.from(".safetensors")])]);
    expect(r.stderr).toContain("dir\\xff/bad\\xfe\\x80.safetensors: downloaded and verified");
    expect(r.stderr).not.toContain("\ufffd");
    fake.reset();
    const again = await cli(["download", inv, "--dest", dest, ...apiFlags()]);
    expect(again.code).toBe(0);
    expect(fake.bytesServed).toBe(0);
    expect(again.stderr).toContain("dir\\xff/bad\\xfe\\x80.safetensors: already present, verified");
  });

  test("T21: --dest that is a file → one clear error naming it, exit 2, no raw EEXIST", async () => {
    const file = join(tmp, `plain-file-${n}`);
    writeFileSync(file, "x");
    for (const extra of [[], ["--dry-run"]]) {
      const r = await cli(["download", "1", "--dest", file, ...extra, ...apiFlags()]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--dest ${file} is a file, not a folder`);
      expect(r.stderr).not.toMatch(/EEXIST|mkdir/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(fake.apiRequests).toHaveLength(0);
  });

  test.skipIf(!roMounted)(
    "a read-only --dest: each file says in words that the folder cannot be written and what to do, no raw errno",
    async () => {
      const a = fake.addFile({ versionId: 1501, bytes: makeBytes(10_000, 1501), name: "a.safetensors" });
      const b = fake.addFile({ versionId: 1502, bytes: makeBytes(10_000, 1502), name: "b.safetensors" });
      // loras/ exists on the read-only mount (the lock is refused); checkpoints/ does not (mkdir is).
      const invPath = join(tmp, `inventory-${n}.json`);
      writeFileSync(
        invPath,
        JSON.stringify(inventoryOf([rec("/old/models/loras/a.safetensors", a), rec("/old/models/checkpoints/b.safetensors", b)])),
      );
      const r = await cli(["download", invPath, "--dest", roDir, ...apiFlags()]);
      expect(r.code).toBe(1);
      for (const folder of ["loras", "checkpoints"]) {
        expect(r.stderr).toContain(
          `cannot write in ${join(roDir, folder)}: read-only file system (EROFS); the filesystem is mounted read-only: choose another --dest or remount it read-write`,
        );
      }
      expect(r.stderr).not.toMatch(/open '|mkdir '/);
      expect(fake.storageRequests).toHaveLength(0);
      noSecret(r);
    },
  );

  /** A safetensors file (8-byte header length, JSON header, tensor bytes), so it has an AutoV3. */
  const safetensors = (size: number, seed: number): Uint8Array => {
    const header = Buffer.from(JSON.stringify({ __metadata__: { seed: String(seed) } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    return new Uint8Array(Buffer.concat([len, header, makeBytes(size, seed)]));
  };

  test("issue 14: a scan right after a restore reads no file content (the download recorded what it verified, every name included)", async () => {
    const a = fake.addFile({ versionId: 1401, bytes: safetensors(3_000_000, 1401), name: "a.safetensors" });
    const b = fake.addFile({ versionId: 1402, bytes: makeBytes(2_000_000, 1402), name: "b.ckpt" });
    const c = fake.addFile({ versionId: 1403, bytes: safetensors(1_000_000, 1403), name: "c.safetensors" });
    const modelBytes = a.bytes.length + b.bytes.length + c.bytes.length;
    const copyDisk = join(dest, "other-disk");
    const copies = tryMount(copyDisk, "4m", "issue 14 copied name");
    const inv = writeInventory([
      rec("/old/models/loras/a.safetensors", a, ["/old/models/loras/a-link.safetensors"]),
      rec("/old/models/b.ckpt", b),
      rec("/old/models/c.safetensors", c, copies ? ["/old/models/other-disk/c.safetensors"] : []),
    ]);
    try {
      const cache = join(tmp, `cache-${n}`);
      const started = Date.now();
      const r = await cli(["download", inv, "--dest", dest, "--cache-dir", cache, ...apiFlags()]);
      expect(r.code).toBe(0);
      if (copies) expect(r.stderr).toContain("restored as a verified copy");
      // Each restored file's mtime is a little in the past: the hash cache may trust it at once.
      for (const path of ["loras/a.safetensors", "b.ckpt", ...(copies ? ["other-disk/c.safetensors"] : [])]) {
        expect(statSync(join(dest, path)).mtimeMs).toBeLessThan(started);
      }
      // Counted from outside too (/proc io counters), against a scan that loads the same code and reads
      // no content (one tiny file, its hash cached): the scan of the restored library reads a few
      // header bytes (local metadata) more, not the 6 MB of content.
      const counting = canCountReads();
      const scanOf = (dir: string) => runCliCountingReads(["scan", dir, "--offline", "--cache-dir", cache], { env });
      const tiny = join(tmp, `tiny-${n}`);
      mkdirSync(tiny);
      writeFileSync(join(tiny, "tiny.ckpt"), "tiny");
      utimesSync(join(tiny, "tiny.ckpt"), new Date(started - 10_000), new Date(started - 10_000));
      expect((await scanOf(tiny)).stderr).toContain("1 hashed");
      const baseline = counting ? await scanOf(tiny) : null;
      if (baseline) expect(baseline.stderr).toContain("0 hashed (0 B read)");
      const scan = await scanOf(dest);
      expect(scan.code).toBe(0);
      expect(scan.stderr).toContain("0 hashed (0 B read)");
      if (baseline) expect(scan.readBytes - baseline.readBytes).toBeLessThan(64 * 1024);
      else console.log("issue 14 byte count from /proc skipped: no /proc/<pid>/io");
      const inventory = JSON.parse(scan.stdout);
      expect(inventory.summary.cacheHits.hashes).toBe(copies ? 4 : 3);
      const recA = inventory.records.find(
        (x: { path: string }) => x.path.endsWith("loras/a-link.safetensors") || x.path.endsWith("loras/a.safetensors"),
      );
      expect(recA.aliases).toHaveLength(1);
      expect(recA.hashes).toMatchObject({ sha256: a.sha256, autov2: a.sha256.slice(0, 10) });
      // The AutoV3 computed while downloading is recorded too (a scan reads it when Civitai does not
      // know the SHA-256), and it is the one the hash worker computes from the file.
      const algos = ["--algo", "sha256,autov3", "--json"];
      const files = [join(dest, "loras/a.safetensors"), ...(copies ? [join(dest, "other-disk/c.safetensors")] : [])];
      const recorded = JSON.parse((await cli(["hash", ...algos, "--cache-dir", cache, ...files])).stdout).files;
      const fresh = JSON.parse((await cli(["hash", ...algos, "--no-cache", ...files])).stdout).files;
      expect(recorded.map((f: { cached: boolean }) => f.cached)).toEqual(files.map(() => true));
      expect(fresh.map((f: { cached: boolean }) => f.cached)).toEqual(files.map(() => false));
      expect(recorded.map((f: { hashes: unknown }) => f.hashes)).toEqual(fresh.map((f: { hashes: unknown }) => f.hashes));
      expect(fresh[0].hashes).toEqual({ sha256: a.sha256, autov3: expect.stringMatching(/^[0-9a-f]{12}$/) });

      // A second run finds them present and verified (read once more): that, too, is recorded.
      expect((await cli(["cache", "clear", "--hashes", "--cache-dir", cache])).code).toBe(0);
      const again = await cli(["download", inv, "--dest", dest, "--cache-dir", cache, ...apiFlags()]);
      expect(again.code).toBe(0);
      expect(again.stderr).toContain("already present, verified");
      const rescan = await cli(["scan", dest, "--offline", "--cache-dir", cache]);
      expect(rescan.stderr).toContain("0 hashed (0 B read)");

      // Without the record (download --no-cache), the same scan reads every byte: the assertion above can fail.
      expect((await cli(["cache", "clear", "--hashes", "--cache-dir", cache])).code).toBe(0);
      const unrecorded = join(tmp, `dest-unrecorded-${n}`);
      expect((await cli(["download", inv, "--dest", unrecorded, "--no-cache", ...apiFlags()])).code).toBe(0);
      const cold = await scanOf(unrecorded);
      expect(cold.stderr).toMatch(/; 3 hashed \(\d+(\.\d+)? MiB read\)/);
      if (baseline) expect(cold.readBytes - baseline.readBytes).toBeGreaterThanOrEqual(modelBytes);
    } finally {
      if (copies) Bun.spawnSync(["umount", copyDisk]);
    }
  });
});

describe("download: what an attacker can plant or send (audit)", () => {
  /** `cli` with a deadline: a hang is killed and shows as exit code null rather than hanging the suite. */
  async function cliWithin(args: string[], ms: number): Promise<CliResult & { killed: boolean }> {
    const proc = Bun.spawn(cliCommand(args), { cwd: ROOT, env: cliEnv(env), stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      proc.kill("SIGKILL");
    }, ms);
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    return { code, stdout, stderr, killed };
  }

  test.skipIf(!Bun.which("mkfifo"))(
    "A16: a FIFO or a link to /dev/zero planted at the resume state or the lock never hangs or exhausts the run",
    async () => {
      const f = fake.addFile({ versionId: 1601, bytes: makeBytes(20_000, 1601), name: "planted.safetensors" });
      const plants: [string, (path: string) => void][] = [
        ["FIFO", (path) => expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0)],
        ["link to /dev/zero", (path) => symlinkSync("/dev/zero", path)],
      ];
      let i = 0;
      for (const [what, plant] of plants) {
        for (const at of ["resumeState", "lock"] as const) {
          const target = join(dest, `case-${++i}`);
          mkdirSync(target, { recursive: true });
          plant(transferPaths(join(target, f.name), f.versionId)[at]);
          const r = await cliWithin(["download", "1601", "--dest", target, ...apiFlags()], 20_000);
          const label = `${what} at the ${at}`;
          expect({ label, killed: r.killed }).toEqual({ label, killed: false });
          if (at === "resumeState") {
            // Not a resume state: ignored, replaced by a real one, and the download completes.
            expect({ label, code: r.code }).toEqual({ label, code: 0 });
            expect(sha256Hex(readFileSync(join(target, f.name)))).toBe(f.sha256);
          } else {
            // Something else holds the lock's name: a clear answer either way, never a partial file.
            expect({ label, code: [0, 1].includes(r.code) }).toEqual({ label, code: true });
            if (r.code === 0) expect(sha256Hex(readFileSync(join(target, f.name)))).toBe(f.sha256);
            else {
              expect(r.stderr).toContain("is being downloaded by another process; skipped");
              expect(existsSync(join(target, f.name))).toBe(false);
            }
          }
          noSecret(r);
        }
      }
    },
    120_000,
  );

  test("A16/F5: a .part that is a hard link to another file is refused: that file is never truncated or overwritten", async () => {
    const f = fake.addFile({ versionId: 1602, bytes: makeBytes(20_000, 1602), name: "linked.safetensors" });
    mkdirSync(dest, { recursive: true });
    // Another model in the folder (or anything the user can write, outside --dest too) with a second name at the .part.
    const other = join(tmp, `precious-${n}.safetensors`);
    writeFileSync(other, "PRECIOUS BYTES");
    const { part } = transferPaths(join(dest, f.name), f.versionId);
    linkSync(other, part);
    const r = await cli(["download", "1602", "--dest", dest, ...apiFlags()]);
    // Before: the .part was opened for writing, filled with the download and renamed: the other file's bytes were gone.
    expect(readFileSync(other, "utf8")).toBe("PRECIOUS BYTES");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${part} has other names (hard links); refusing to write into it (remove it to download)`);
    expect(existsSync(join(dest, f.name))).toBe(false);
    expect(fake.storageRequests).toHaveLength(0);
    noSecret(r);
  });
});

describe("download: names that are our own transfer files (audit)", () => {
  test("F3: an API name equal to another file's .part is renamed: neither download truncates or takes the other's file", async () => {
    // Version 1621's name is exactly the .part name of version 1622's file. Downloaded first, it was
    // then taken for 1622's .part: truncated, refilled with 1622's bytes and renamed away, while both
    // were reported "downloaded and verified" with exit 0.
    const a = fake.addFile({ versionId: 1621, bytes: makeBytes(30_000, 1621), name: "x.safetensors.1622.part" });
    const b = fake.addFile({ versionId: 1622, bytes: makeBytes(20_000, 1622), name: "x.safetensors" });
    const r = await cli(["download", "1621", "1622", "-j", "1", "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(0);
    expect(filesUnder(dest)).toEqual(["x.safetensors", "x.safetensors.1622.part_"]);
    expect(sha256Hex(readFileSync(join(dest, "x.safetensors.1622.part_")))).toBe(a.sha256);
    expect(sha256Hex(readFileSync(join(dest, "x.safetensors")))).toBe(b.sha256);
    // The lists name the same files as the download does.
    const list = await cli(["download", "1621", "--dest", dest, "--emit", "urls", ...apiFlags()]);
    expect(list.stdout).toContain(`${join(dest, "x.safetensors.1622.part_")}\t`);
  });

  test("F3: an API name in our temp files' shape gets a `_`: a scan of the destination lists the file instead of skipping it unseen", async () => {
    // Walkers skip `.civitai-meta-tmp-*` without a word (a killed writer's leftover), so a file
    // downloaded under such a name was missing from every later inventory of the folder.
    const f = fake.addFile({ versionId: 1623, bytes: makeBytes(10_000, 1623), name: ".civitai-meta-tmp-1-0123456789ab.safetensors" });
    const r = await cli(["download", "1623", "--dest", dest, ...apiFlags()]);
    expect(r.code).toBe(0);
    expect(filesUnder(dest)).toEqual(["_.civitai-meta-tmp-1-0123456789ab.safetensors"]);
    const scan = await cli(["scan", dest, "--offline", "--no-cache"]);
    expect(JSON.parse(scan.stdout).records.map((found: { path: string }) => found.path)).toEqual([
      join(dest, "_.civitai-meta-tmp-1-0123456789ab.safetensors"),
    ]);
    expect(sha256Hex(readFileSync(join(dest, "_.civitai-meta-tmp-1-0123456789ab.safetensors")))).toBe(f.sha256);
  });
});

describe("download: the key never shows, not even in part (audit)", () => {
  const PREFIX = SENTINEL.slice(0, 8);

  test("F6: Civitai's long error quoting the key is cut after the key is redacted, so no prefix of it shows", async () => {
    fake.addFile({ versionId: 1611, bytes: makeBytes(5_000, 1611) });
    // The quote is cut at 200 characters (error) or 300 (message): the key straddles the cut.
    for (const body of [{ error: `${"x".repeat(190)} ${SENTINEL}` }, { message: `${"y".repeat(290)} ${SENTINEL}` }]) {
      fake.queueApiFault({ kind: "status", status: 401, body });
      const r = await cli(["download", "1611", "--dest", dest, ...apiFlags()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("login required (401): Civitai says");
      expect(r.stderr).not.toContain(PREFIX);
      noSecret(r);
    }
    expect(filesUnder(dest)).toEqual([]);
  });

  test("F6: a lookup answer of the wrong shape whose key names hold the key is described without any prefix of it", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => Response.json({ [`${"x".repeat(120)}${SENTINEL}`]: 1 }),
    });
    try {
      const r = await cli(["download", "1612", "--dest", dest, "--api-url", `http://127.0.0.1:${server.port}`, "--no-fallback"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("sent JSON of an unexpected shape");
      expect(r.stderr).not.toContain(PREFIX);
      noSecret(r);
    } finally {
      server.stop(true);
    }
  });
});
