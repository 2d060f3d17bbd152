import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildPlan, wantedFromVersion } from "../../../src/download/download-plan.ts";
import {
  downloadFile,
  transferPaths,
  type DownloadResult,
  type DownloadTask,
  type DownloaderOptions,
} from "../../../src/download/transfer.ts";
import { openResume } from "../../../src/download/resume-state.ts";
import { createCivitaiClient } from "../../../src/civitai/civitai-client.ts";
import { formatBytes } from "../../../src/shared/format.ts";
import { fixtureBody, makeBytes, sha256Hex, startFakeStorage, type FakeFile, type FakeStorage } from "../../helpers/fake-storage.ts";

const SENTINEL = "SENTINEL-KEY-0123456789abcdef";
const SIZE = 256 * 1024;

let fake: FakeStorage;
let root: string;
let dir: string;
let warnings: string[];
let n = 0;

beforeAll(async () => {
  fake = await startFakeStorage({ chunkSize: 16 * 1024 });
  root = mkdtempSync(join(tmpdir(), "civitai-meta-dl-"));
});

afterAll(async () => {
  await fake.stop();
  rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  fake.reset();
  fake.setOptions({ expireAfterUses: undefined, bytesPerSecond: 0 });
  dir = join(root, `case-${++n}`);
  mkdirSync(dir, { recursive: true });
  warnings = [];
});

function addFile(versionId: number, size = SIZE, extra: Partial<FakeFile> = {}): FakeFile {
  return fake.addFile({ versionId, bytes: makeBytes(size, versionId), ...extra });
}

/** What the CLI hashes downloads with: a worker thread. */
const WORKER_HASH: Partial<DownloaderOptions> = { inlineHash: false };

function taskFor(f: FakeFile, dest = join(dir, f.name)): DownloadTask {
  return {
    versionId: f.versionId,
    fileId: f.fileId,
    url: `https://civitai.com/api/download/models/${f.versionId}?fileId=${f.fileId}`,
    dest,
    size: f.bytes.byteLength,
    sizeExact: true,
    sha256: f.sha256,
  };
}

/**
 * Options for an in-process download. The SHA-256 is computed on this thread (`inlineHash`): a
 * worker per download cost ~13 ms of CPU to start, ~80 times in this file. The tests that judge
 * the hash itself (a clean download, resumes seeded from the .part, a mismatch, a whole .part)
 * ask for the worker the CLI uses (`WORKER_HASH`), and A14 runs the default in its own process.
 */
function opts(extra: Partial<DownloaderOptions> = {}): DownloaderOptions {
  return {
    apiHost: fake.apiUrl,
    apiKey: SENTINEL,
    inlineHash: true,
    retryDelayMs: 5,
    stallTimeoutMs: 5000,
    root: dir,
    onWarning: (m) => warnings.push(m),
    ...extra,
  };
}

function sha(path: string): string {
  return sha256Hex(readFileSync(path));
}

/** The key reaches the API only, never storage, and no message carries it. */
function assertNoLeak(result?: DownloadResult): void {
  for (const r of fake.storageRequests) expect(r.headers.authorization).toBeUndefined();
  for (const r of fake.apiRequests) expect(r.headers.authorization).toBe(`Bearer ${SENTINEL}`);
  const text = JSON.stringify([result?.message ?? "", warnings]);
  expect(text).not.toContain(SENTINEL);
  expect(text).not.toContain("X-Amz-Signature=sig");
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name);
    if (lstatSync(p).isFile() && name.endsWith(".json")) expect(readFileSync(p, "utf8")).not.toContain(SENTINEL);
  }
}

function leftovers(dest: string, versionId: number): { part: boolean; resumeState: boolean; lock: boolean } {
  const p = transferPaths(dest, versionId);
  return { part: existsSync(p.part), resumeState: existsSync(p.resumeState), lock: existsSync(p.lock) };
}

/** Starts a download and aborts it once `fraction` of the file is in the .part (a kill in miniature). */
async function interrupted(task: DownloadTask, fraction: number): Promise<number> {
  const controller = new AbortController();
  fake.setOptions({ bytesPerSecond: 2 * 1024 * 1024 });
  let at = 0;
  await expect(
    downloadFile(
      task,
      opts({
        signal: controller.signal,
        onProgress: (p) => {
          at = p.received;
          if (p.received >= (task.size ?? 0) * fraction) controller.abort(new Error("killed"));
        },
      }),
    ),
  ).rejects.toThrow("killed");
  fake.setOptions({ bytesPerSecond: 0 });
  return at;
}

describe("downloads (docs/cases.md A1–A16)", () => {
  test("clean download: 307 followed by hand, key only to the API, Accept-Encoding identity, final name only after verification", async () => {
    const f = addFile(100);
    const result = await downloadFile(taskFor(f), opts(WORKER_HASH));
    expect(result.status).toBe("downloaded");
    expect(sha(join(dir, f.name))).toBe(f.sha256);
    expect(leftovers(join(dir, f.name), f.versionId)).toEqual({ part: false, resumeState: false, lock: false });
    expect(fake.apiRequests[0]!.url).toBe(`/api/download/models/100?fileId=${f.fileId}`);
    expect(fake.storageRequests[0]!.headers["accept-encoding"]).toBe("identity");
    expect(String(fake.storageRequests[0]!.headers["user-agent"])).toMatch(/^civitai-meta\//);
    expect(result.bytesReceived).toBe(SIZE);
    assertNoLeak(result);
  });

  test("A1: short body → .part keeps the bytes, resumes with Range: bytes=N/2-, one warning, verified", async () => {
    const f = addFile(101);
    fake.queueStorageFault({ kind: "short", after: SIZE / 2 });
    const result = await downloadFile(taskFor(f), opts(WORKER_HASH));
    expect(result.status).toBe("downloaded");
    expect(sha(join(dir, f.name))).toBe(f.sha256);
    expect(fake.storageRequests).toHaveLength(2);
    expect(fake.storageRequests[1]!.headers.range).toBe(`bytes=${SIZE / 2}-`);
    expect(fake.storageRequests[1]!.headers["if-range"]).toBe(f.etag);
    expect(warnings.filter((w) => /resuming at/.test(w))).toHaveLength(1);
    // Bun's advice to programmers ("pass `verbose: true` … to fetch()") is no advice to a user.
    expect(warnings.join("\n")).not.toContain("verbose");
    assertNoLeak(result);
  });

  test("A2 (in-process): an interrupted run leaves only .part + resume state; the next run fetches only the rest with Range + If-Range", async () => {
    const f = addFile(102, 1024 * 1024);
    const dest = join(dir, f.name);
    await interrupted(taskFor(f), 0.4);
    expect(existsSync(dest)).toBe(false);
    const left = leftovers(dest, f.versionId);
    expect(left).toEqual({ part: true, resumeState: true, lock: false });
    const partSize = lstatSync(transferPaths(dest, f.versionId).part).size;
    expect(partSize).toBeGreaterThan(0);
    fake.reset();
    const result = await downloadFile(taskFor(f), opts(WORKER_HASH));
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests[0]!.headers.range).toBe(`bytes=${partSize}-`);
    expect(fake.storageRequests[0]!.headers["if-range"]).toBe(f.etag);
    // Counted per request: the aborted run's socket may still be draining when the counters are reset.
    expect(fake.storageRequests.reduce((sum, r) => sum + (r.bytes ?? 0), 0)).toBe(f.bytes.byteLength - partSize);
    expect(result.bytesReceived).toBe(f.bytes.byteLength - partSize);
    expect(sha(dest)).toBe(f.sha256);
    assertNoLeak(result);
  });

  test("A3: resume answered 200 (Range ignored) → truncate and restart from 0, never old bytes + full body", async () => {
    const f = addFile(103, 1024 * 1024);
    const dest = join(dir, f.name);
    await interrupted(taskFor(f), 0.3);
    fake.reset();
    fake.queueStorageFault({ kind: "ignore-range" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests[0]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(fake.storageRequests[0]!.status).toBe(200);
    expect(lstatSync(dest).size).toBe(f.bytes.byteLength);
    expect(sha(dest)).toBe(f.sha256);
    expect(warnings.some((w) => /ignored the resume request; restarting from 0/.test(w))).toBe(true);
  });

  test("A4: 206 at the wrong offset → hard error, .part discarded, nothing spliced", async () => {
    const f = addFile(104, 1024 * 1024);
    const dest = join(dir, f.name);
    await interrupted(taskFor(f), 0.3);
    fake.reset();
    fake.queueStorageFault({ kind: "wrong-offset" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/resumed at the wrong offset \(asked for byte \d+, got 0\)/);
    expect(existsSync(dest)).toBe(false);
    expect(leftovers(dest, f.versionId)).toEqual({ part: false, resumeState: false, lock: false });
    assertNoLeak(result);
  });

  test("A5: remote file changed (ETag differs, If-Range → 200) → restart from 0 with a warning", async () => {
    const f = addFile(105, 1024 * 1024);
    const dest = join(dir, f.name);
    await interrupted(taskFor(f), 0.3);
    fake.reset();
    fake.queueStorageFault({ kind: "change-etag" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests[0]!.status).toBe(200);
    expect(warnings.some((w) => /remote file changed/.test(w))).toBe(true);
    expect(sha(dest)).toBe(f.sha256);
  });

  test("A5: the server's size differs from Civitai's → 'remote file changed', nothing saved", async () => {
    const f = addFile(115);
    const task = { ...taskFor(f), size: SIZE + 4096 };
    const result = await downloadFile(task, opts());
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/remote file changed/);
    expect(existsSync(task.dest)).toBe(false);
  });

  test("A6: one flipped byte → SHA-256 mismatch before the rename, expected vs actual, .part deleted", async () => {
    const f = addFile(106);
    fake.queueStorageFault({ kind: "flip-byte" });
    const result = await downloadFile(taskFor(f), opts(WORKER_HASH));
    expect(result.status).toBe("failed");
    const corrupt = Uint8Array.from(f.bytes);
    corrupt[SIZE / 2]! ^= 0xff;
    expect(result.message).toContain(`SHA-256 mismatch: expected ${f.sha256}, got ${sha256Hex(corrupt)}`);
    // What to do next: a fresh try, and where to look when the mismatch comes back.
    expect(result.message).toContain("Run the same command again to fetch it afresh");
    expect(result.message).toContain("look it up again with civitai-meta lookup");
    expect(existsSync(join(dir, f.name))).toBe(false);
    expect(leftovers(join(dir, f.name), f.versionId)).toEqual({ part: false, resumeState: false, lock: false });
    assertNoLeak(result);
  });

  test("A7: storage answers 200 text/html → nothing written, clear error", async () => {
    const f = addFile(107);
    fake.queueStorageFault({ kind: "html" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/web page \(text\/html\) instead of the file; nothing was saved/);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("A7: the API answers 200 HTML (login / Cloudflare) → nothing written", async () => {
    const f = addFile(117);
    fake.queueApiFault({ kind: "html" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/web page instead of the file/);
    expect(readdirSync(dir)).toEqual([]);
    expect(fake.storageRequests).toHaveLength(0);
  });

  const apiErrors: [string, number, object, RegExp][] = [
    [
      "401 login required",
      401,
      fixtureBody("error-401-download-login-required.json"),
      /login required \(401\): Civitai says "The creator of this asset requires you to be logged in to download it"; your API key was not accepted/,
    ],
    [
      "401 downloads disabled",
      401,
      fixtureBody("error-401-download-disabled.json"),
      /Civitai says "The creator of this asset has disabled downloads on this file"; the creator does not allow downloads/,
    ],
    [
      "403 early access",
      403,
      {
        error: "Early Access",
        deadline: "2030-01-01T00:00:00.000Z",
        message: "This asset is in Early Access. You can use Buzz access it now!",
      },
      /in Early Access \(403\)/,
    ],
    ["403 forbidden", 403, { error: "Forbidden" }, /download refused \(403\): Civitai says "Forbidden"/],
    [
      "404 file not found",
      404,
      fixtureBody("error-404-download-file-not-found.json"),
      /not found on Civitai \(404\): Civitai says "File not found"/,
    ],
    ["410 archived", 410, { error: "Model archived, not available for download" }, /archived on Civitai \(410\)/],
    [
      "429 download quota",
      429,
      fixtureBody("error-429-download-quota.json"),
      /download quota reached \(429\): Civitai says "We've noticed an unusual amount of downloading/,
    ],
  ];
  for (const [name, status, body, expected] of apiErrors) {
    test(`A7/F6: API ${name} → its own message, no .part, no secret`, async () => {
      const f = addFile(120 + status);
      fake.queueApiFault({ kind: "status", status, body });
      const result = await downloadFile(taskFor(f), opts());
      expect(result.status).toBe("failed");
      expect(result.message).toMatch(expected);
      expect(readdirSync(dir)).toEqual([]);
      expect(fake.apiRequests).toHaveLength(1); // no retry of a definitive answer
      assertNoLeak(result);
    });
  }

  test("a 429 with a short Retry-After is waited out as given, then the download goes on", async () => {
    const f = addFile(132);
    fake.queueApiFault({ kind: "status", status: 429, body: { error: "Too Many Requests" }, headers: { "retry-after": "1" } });
    const started = performance.now();
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("downloaded");
    expect(fake.apiRequests).toHaveLength(2);
    // retryDelayMs is 5 ms here: only the server's Retry-After makes the second ask wait ~1 s.
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(warnings.some((w) => /Civitai asks to wait 1 s \(429\)/.test(w))).toBe(true);
  });

  test("the download quota (a 429 without a short Retry-After) stops the run's asking: the next file is not requested", async () => {
    const a = addFile(133);
    const b = addFile(134);
    const quota = { reached: null as string | null };
    fake.queueApiFault({
      kind: "status",
      status: 429,
      body: fixtureBody("error-429-download-quota.json"),
      headers: { "retry-after": "3600" },
    });
    const first = await downloadFile(taskFor(a), opts({ quota }));
    expect(first.status).toBe("failed");
    expect(first.message).toMatch(/download quota reached \(429\).*; try again after \d{4}-\d\d-\d\dT/);
    const second = await downloadFile(taskFor(b), opts({ quota }));
    expect(second.status).toBe("failed");
    expect(second.message).toMatch(/not asked for: Civitai's download quota was reached \(429\) earlier in this run/);
    expect(fake.apiRequests).toHaveLength(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("401 without a key suggests CIVITAI_API_KEY", async () => {
    const f = addFile(130);
    fake.queueApiFault({ kind: "status", status: 401, body: fixtureBody("error-401-download-login-required.json") });
    const result = await downloadFile(taskFor(f), opts({ apiKey: null }));
    expect(result.message).toMatch(/set CIVITAI_API_KEY/);
    expect(fake.apiRequests[0]!.headers.authorization).toBeUndefined();
  });

  test("a 503 from the API is retried, then the download succeeds", async () => {
    const f = addFile(131);
    fake.queueApiFault({ kind: "status", status: 503, body: { error: "Service Unavailable" } });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("downloaded");
    expect(fake.apiRequests).toHaveLength(2);
  });

  test("a .part without its resume state, or with another file's, is started over with one warning saying so", async () => {
    const f = addFile(110);
    const task = taskFor(f);
    const p = transferPaths(task.dest, f.versionId);
    writeFileSync(p.part, new Uint8Array(1000));
    const result = await downloadFile(task, opts());
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests[0]!.headers.range).toBeUndefined();
    expect(warnings).toEqual([`${task.dest}: the .part (1000 B) has no resume state to check it against; starting over`]);

    const g = addFile(111);
    const other = taskFor(g);
    const q = transferPaths(other.dest, g.versionId);
    writeFileSync(q.part, new Uint8Array(2000));
    writeFileSync(
      q.resumeState,
      JSON.stringify({
        versionId: g.versionId,
        fileId: g.fileId + 1,
        url: other.url,
        size: SIZE,
        sha256: g.sha256,
        etag: null,
        lastModified: null,
      }),
    );
    warnings.length = 0;
    expect((await downloadFile(other, opts())).status).toBe("downloaded");
    expect(warnings).toEqual([`${other.dest}: the .part (2.0 KiB) was for another file (its resume state differs); starting over`]);
  });

  test("A8: .part already whole and the server answers 416 → hash it, matching → renamed", async () => {
    const f = addFile(108);
    const task = taskFor(f);
    const p = transferPaths(task.dest, f.versionId);
    writeFileSync(p.part, f.bytes);
    writeFileSync(
      p.resumeState,
      JSON.stringify({
        versionId: f.versionId,
        fileId: f.fileId,
        url: task.url,
        size: SIZE,
        sha256: f.sha256,
        etag: f.etag,
        lastModified: null,
      }),
    );
    const result = await downloadFile(task, opts(WORKER_HASH));
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests[0]!.status).toBe(416);
    expect(fake.bytesServed).toBe(0);
    expect(sha(task.dest)).toBe(f.sha256);
  });

  test("A8: .part of full size but wrong bytes and a 416 → never renamed on size alone: deleted and restarted", async () => {
    const f = addFile(109);
    const task = taskFor(f);
    const p = transferPaths(task.dest, f.versionId);
    writeFileSync(p.part, new Uint8Array(SIZE));
    writeFileSync(
      p.resumeState,
      JSON.stringify({
        versionId: f.versionId,
        fileId: f.fileId,
        url: task.url,
        size: SIZE,
        sha256: f.sha256,
        etag: f.etag,
        lastModified: null,
      }),
    );
    const result = await downloadFile(task, opts(WORKER_HASH));
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests[0]!.status).toBe(416);
    expect(fake.storageRequests[1]!.headers.range).toBeUndefined();
    expect(sha(task.dest)).toBe(f.sha256);
    // One warning, saying why and where it goes on from.
    expect(warnings).toEqual([
      `${task.dest}: the .part (256.0 KiB) does not match the remote file (416), so it starts over; resuming at 0 B (retry 1/5)`,
    ]);
  });

  test("A9: the signed URL expires mid-transfer (403 AccessDenied) → a new link from the API, same offset, finished", async () => {
    const f = addFile(110);
    fake.setOptions({ expireAfterUses: 1 });
    fake.queueStorageFault({ kind: "short", after: SIZE / 4 });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("downloaded");
    expect(fake.apiRequests).toHaveLength(2);
    expect(fake.storageRequests.map((r) => r.status)).toEqual([200, 403, 206]);
    expect(fake.storageRequests[2]!.headers.range).toBe(`bytes=${SIZE / 4}-`);
    expect(fake.storageRequests[2]!.url).not.toBe(fake.storageRequests[1]!.url);
    expect(sha(join(dir, f.name))).toBe(f.sha256);
    assertNoLeak(result);
  });

  test("A10: free space below the expected size → fails before the first byte, with needed and free", async () => {
    const f = addFile(111);
    const result = await downloadFile(taskFor(f), opts({ freeSpace: async () => 1000 }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/not enough disk space: needs 256\.0 KiB more, 1000 B free/);
    expect(fake.storageRequests).toHaveLength(0);
  });

  test("A10: ENOSPC mid-stream on a small tmpfs → clear error with needed/free, .part kept, no final file", async () => {
    const mnt = join(root, "tmpfs");
    mkdirSync(mnt, { recursive: true });
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
    if (mounted.exitCode !== 0) {
      console.log(`A10 ENOSPC skipped: cannot mount tmpfs (${mounted.stderr.toString().trim() || `exit ${mounted.exitCode}`})`);
      return;
    }
    try {
      const f = addFile(112, 3 * 1024 * 1024);
      const task = taskFor(f, join(mnt, f.name));
      // The pre-check is bypassed (it would refuse); the disk then fills for real.
      const result = await downloadFile(task, opts({ root: mnt, freeSpace: async () => null }));
      expect(result.status).toBe("failed");
      expect(result.message).toMatch(/disk full after .*: needs .* more, .* free; the \.part \(.*\) is kept/);
      expect(existsSync(task.dest)).toBe(false);
      expect(existsSync(transferPaths(task.dest, f.versionId).part)).toBe(true);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });

  test("A11: target present with the right hash → skipped 'already present, verified', nothing fetched", async () => {
    const f = addFile(113);
    writeFileSync(join(dir, f.name), f.bytes);
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("present");
    expect(result.message).toBe("already present, verified");
    expect(fake.apiRequests).toHaveLength(0);
  });

  test("A11: target with another hash → left alone without --force; replaced only after verification with --force", async () => {
    const f = addFile(114);
    const dest = join(dir, f.name);
    const mine = makeBytes(SIZE, 999);
    writeFileSync(dest, mine);
    const kept = await downloadFile(taskFor(f), opts());
    expect(kept.status).toBe("exists");
    expect(kept.message).toMatch(/hash differs.*use --force/);
    expect(sha(dest)).toBe(sha256Hex(mine));
    const forced = await downloadFile(taskFor(f), opts({ force: true }));
    expect(forced.status).toBe("downloaded");
    expect(sha(dest)).toBe(f.sha256);
  });

  test("A12: two downloads of one file at once → one writer; the other skips naming the lock owner", async () => {
    const f = addFile(140, 1024 * 1024);
    fake.setOptions({ bytesPerSecond: 8 * 1024 * 1024 });
    const [a, b] = await Promise.all([downloadFile(taskFor(f), opts()), downloadFile(taskFor(f), opts())]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual(["downloaded", "locked"]);
    const locked = a.status === "locked" ? a : b;
    expect(locked.message).toMatch(new RegExp(`being downloaded by pid ${process.pid}`));
    expect(sha(join(dir, f.name))).toBe(f.sha256);
  });

  test("A12: a lock held by a live process → skipped; a dead owner's lock is taken over", async () => {
    const f = addFile(141);
    const task = taskFor(f);
    const { lock } = transferPaths(task.dest, f.versionId);
    const live = Bun.spawn(["sleep", "30"]);
    try {
      writeFileSync(lock, JSON.stringify({ pid: live.pid, startedAt: "2025-01-01T00:00:00Z", host: "" }));
      const skipped = await downloadFile(task, opts());
      expect(skipped.status).toBe("locked");
      expect(skipped.lockOwner?.pid).toBe(live.pid);
    } finally {
      live.kill();
      await live.exited;
    }
    const dead = Bun.spawnSync(["true"]).pid;
    writeFileSync(lock, JSON.stringify({ pid: dead, startedAt: "2025-01-01T00:00:00Z", host: "" }));
    const result = await downloadFile(task, opts());
    expect(result.status).toBe("downloaded");
    expect(existsSync(lock)).toBe(false);
  });

  test("A13: a stalled body trips the per-read stall timeout and resumes with Range (no whole-file deadline)", async () => {
    const f = addFile(142);
    fake.queueStorageFault({ kind: "stall", after: SIZE / 2 });
    const result = await downloadFile(taskFor(f), opts({ stallTimeoutMs: 300 }));
    expect(result.status).toBe("downloaded");
    expect(warnings.some((w) => /stalled: no data/.test(w))).toBe(true);
    expect(fake.storageRequests[1]!.headers.range).toBe(`bytes=${SIZE / 2}-`);
    expect(sha(join(dir, f.name))).toBe(f.sha256);
  });

  test("A15: a server that cuts the body and answers the resume with 416 is not retried forever", async () => {
    // Each cycle: 1/4 of the file, then a 416 that throws it away, then the same 1/4 again. Fetching
    // bytes already fetched once is no progress: --retries must end it. (It used to count the
    // refetch as progress, reset the count, and loop for as long as the server liked.)
    const f = addFile(144);
    for (let i = 0; i < 12; i++) {
      fake.queueStorageFault({ kind: "short", after: SIZE / 4 });
      fake.queueStorageFault({ kind: "status", status: 416 });
    }
    const result = await downloadFile(taskFor(f), opts({ maxRetries: 3 }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/gave up after 3 retries/);
    expect(fake.storageRequests.length).toBeLessThanOrEqual(6);
    expect(existsSync(join(dir, f.name))).toBe(false);
  });

  test("A13: a slow but steady body longer than the stall timeout is not killed", async () => {
    // ~1 s in 16 chunks ~62 ms apart, stall timeout 500 ms: the body lasts twice the timeout, and a
    // loaded machine may pause this process 8× a chunk's gap (it was 4 chunks 250 ms apart against
    // 400 ms, which a run at load average 15 did not keep).
    const f = addFile(143, 256 * 1024);
    fake.setOptions({ bytesPerSecond: 256 * 1024 });
    const result = await downloadFile(taskFor(f), opts({ stallTimeoutMs: 500 }));
    fake.setOptions({ bytesPerSecond: 0 });
    expect(result.status).toBe("downloaded");
    expect(fake.storageRequests).toHaveLength(1);
    expect(warnings).toEqual([]);
  });

  test("A14: memory stays flat: a separate process streams a 160 MiB file with peak RSS under 150 MB", async () => {
    const f = addFile(144, 160 * 1024 * 1024);
    const task = taskFor(f);
    const script = join(root, "a14-child.ts");
    const downloader = join(import.meta.dir, "../../../src/download/transfer.ts");
    writeFileSync(
      script,
      `import { downloadFile } from ${JSON.stringify(downloader)};
import { readFileSync } from "node:fs";
const task = JSON.parse(process.argv[2]);
const r = await downloadFile(task, { apiHost: process.argv[3], apiKey: null });
const hwm = Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0") * 1024;
console.log(JSON.stringify({ status: r.status, message: r.message ?? null, peak: hwm }));
`,
    );
    // Async spawn: the fake server lives in this process and must keep serving.
    const child = Bun.spawn([process.execPath, script, JSON.stringify(task), fake.apiUrl], { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    const line = out.trim().split("\n").pop() ?? "";
    if (!line.startsWith("{")) throw new Error(`child failed: ${err}`);
    const got = JSON.parse(line) as { status: string; message: string | null; peak: number };
    expect(got.status).toBe("downloaded");
    expect(got.peak).toBeGreaterThan(0);
    // Buffering the 160 MiB file would put the peak above it; streaming keeps it near Bun's baseline.
    expect(got.peak).toBeLessThan(150 * 1024 * 1024);
    expect(sha(task.dest)).toBe(f.sha256);
  }, 30_000);
});

describe("names, symlinks and redirects (docs/cases.md F3–F5, F8)", () => {
  test("F3: hostile API file names land inside DIR, sanitised, ≤ 255 bytes; nothing outside", async () => {
    const names = [
      "../../.bashrc",
      "..\\..\\x.safetensors",
      "/etc/passwd",
      "CON.safetensors",
      "a:b.safetensors",
      `${"模".repeat(100)}.safetensors`,
    ];
    const outside = readdirSync(root).sort();
    const wanted = names.map((name, i) => {
      const f = addFile(150 + i, 4096, { name });
      const w = wantedFromVersion(fake.versionJson(f.versionId));
      if (!w.ok) throw new Error(w.reason);
      return w.wanted;
    });
    const plan = buildPlan(wanted, dir);
    expect(plan.conflicts).toEqual([]);
    for (const item of plan.items) {
      const f = fake.file(item.versionId);
      const result = await downloadFile({ ...item, size: f.bytes.byteLength, sizeExact: true }, opts());
      expect(result.status).toBe("downloaded");
    }
    const got = readdirSync(dir).sort();
    const cjk = got.find((g) => g.startsWith("模"));
    expect(got.filter((g) => g !== cjk)).toEqual([".bashrc", "CON_.safetensors", "a_b.safetensors", "passwd", "x.safetensors"]);
    expect(cjk).toMatch(/^模+\.safetensors$/);
    for (const name of got) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(readdirSync(root).sort()).toEqual(outside);
  });

  test("F3: a symlinked sub-folder pointing outside DIR is refused", async () => {
    const f = addFile(160, 4096);
    const elsewhere = mkdtempSync(join(tmpdir(), "civitai-meta-elsewhere-"));
    try {
      symlinkSync(elsewhere, join(dir, "sub"));
      const result = await downloadFile(taskFor(f, join(dir, "sub", f.name)), opts());
      expect(result.status).toBe("failed");
      expect(result.message).toMatch(/resolves outside/);
      expect(readdirSync(elsewhere)).toEqual([]);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test("F4: a hostile Content-Disposition on storage never names the file", async () => {
    const f = addFile(161, 4096, {
      rawDisposition: true,
      disposition: `attachment; filename="../../evil"; filename*=UTF-8''..%2F..%2Fevil`,
    });
    const before = readdirSync(root).sort();
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("downloaded");
    expect(readdirSync(dir)).toEqual([f.name]);
    expect(readdirSync(root).sort()).toEqual(before);
  });

  test("F5: a symlink planted at <target>.part is not followed; its target is untouched", async () => {
    const f = addFile(162, 4096);
    const task = taskFor(f);
    const victim = join(root, `victim-${n}`);
    writeFileSync(victim, "precious");
    symlinkSync(victim, transferPaths(task.dest, f.versionId).part);
    const result = await downloadFile(task, opts());
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/\.part is a symlink; refusing/);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(existsSync(task.dest)).toBe(false);
  });

  test("F5: a symlink planted at <target> is not written through", async () => {
    const f = addFile(163, 4096);
    const task = taskFor(f);
    const victim = join(root, `victim-${n}`);
    writeFileSync(victim, "precious");
    symlinkSync(victim, task.dest);
    const result = await downloadFile(task, opts({ force: true }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/is a symlink; refusing/);
    expect(readFileSync(victim, "utf8")).toBe("precious");
  });

  test("F8: the redirect target on another host never receives Authorization", async () => {
    const evil = await startFakeStorage();
    try {
      const f = addFile(164, 4096);
      evil.addFile({ versionId: 164, bytes: f.bytes, name: f.name });
      // The evil host issues its own valid link so the transfer can complete.
      const res = await fetch(`${evil.apiUrl}/api/download/models/164`, { redirect: "manual" });
      fake.queueApiFault({ kind: "redirect", location: res.headers.get("location")! });
      evil.reset();
      const result = await downloadFile(taskFor(f), opts());
      expect(result.status).toBe("downloaded");
      expect(evil.storageRequests.length).toBeGreaterThan(0);
      for (const r of evil.storageRequests) expect(r.headers.authorization).toBeUndefined();
      expect(fake.apiRequests[0]!.headers.authorization).toBe(`Bearer ${SENTINEL}`);
    } finally {
      await evil.stop();
    }
  });

  test("F8: an https → http downgrade is refused before any request to the http host", async () => {
    const seen: string[] = [];
    const fetchStub = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input);
      seen.push(`${url} auth=${new Headers(init?.headers).get("authorization") ? "yes" : "no"}`);
      if (url.startsWith("https://civitai.test/"))
        return new Response(null, { status: 307, headers: { location: "http://evil.test/file" } });
      return new Response("x");
    }) as typeof fetch;
    const f = addFile(165, 4096);
    const result = await downloadFile(taskFor(f), opts({ apiHost: "https://civitai.test", fetch: fetchStub }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/refusing a redirect from https to http \(evil\.test\)/);
    expect(seen).toEqual([`https://civitai.test/api/download/models/165?fileId=${f.fileId} auth=yes`]);
    expect(result.message).not.toContain(SENTINEL);
  });
});

describe("download's API calls (the shared Civitai client)", () => {
  const createDownloadApi = (o: { apiKey: string; civitaiHosts: string[] }) => {
    const c = createCivitaiClient({ ...o, userAgent: "civitai-meta/test", maxAttempts: 1 });
    return { versionById: c.versionById, versionByHash: c.versionByHash, modelById: c.model };
  };
  test("versionById / versionByHash / modelById against the fake; key sent only to listed hosts; 404 → null", async () => {
    const f = addFile(170, 1024);
    const api = createDownloadApi({ apiKey: SENTINEL, civitaiHosts: [fake.apiUrl] });
    expect((await api.versionById(fake.apiUrl, 170))?.id).toBe(170);
    expect((await api.versionByHash(fake.apiUrl, f.sha256.toUpperCase()))?.id).toBe(170);
    expect((await api.modelById(fake.apiUrl, f.modelId))?.modelVersions?.[0]?.id).toBe(170);
    expect(await api.versionById(fake.apiUrl, 999_999)).toBeNull();
    for (const r of fake.apiRequests) expect(r.headers.authorization).toBe(`Bearer ${SENTINEL}`);
    fake.reset();
    const other = createDownloadApi({ apiKey: SENTINEL, civitaiHosts: ["https://civitai.com"] });
    await other.versionById(fake.apiUrl, 170);
    expect(fake.apiRequests[0]!.headers.authorization).toBeUndefined();
  });
});

describe("hostile servers and truthful messages (issue 9)", () => {
  test("T4: an endless error body from the download route is read only up to its cap: one clear error, at once", async () => {
    const f = addFile(180, 4096);
    fake.queueApiFault({ kind: "endless", status: 403 });
    const started = performance.now();
    const result = await downloadFile(taskFor(f), opts({ stallTimeoutMs: 3000, maxRetries: 0 }));
    const elapsed = performance.now() - started;
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/download refused \(403\); Civitai's answer is larger than 64 KiB and was not read/);
    // Cut at the cap, not at the stall timeout (which let a hostile body grow to 3.6 GB in 3 s).
    expect(elapsed).toBeLessThan(1500);
    // The connection was dropped: the server stops sending soon after the cap.
    await Bun.sleep(300);
    const sent = fake.apiRequests[0]!.bytes ?? 0;
    await Bun.sleep(300);
    expect(fake.apiRequests[0]!.bytes ?? 0).toBe(sent);
    expect(sent).toBeLessThan(16 * 1024 * 1024);
    expect(readdirSync(dir)).toEqual([]);
    assertNoLeak(result);
  });

  test("T4: an answer declaring Content-Length 5 GB is refused before its body is read", async () => {
    const f = addFile(181, 4096);
    fake.queueApiFault({ kind: "endless", status: 500, declaredLength: 5_000_000_000 });
    const started = performance.now();
    const result = await downloadFile(taskFor(f), opts({ stallTimeoutMs: 3000, maxRetries: 0 }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/Civitai answered 500; Civitai's answer declares 5000000000 bytes, more than 64 KiB, and was not read/);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  test("T4: a 200 from the download route (no redirect) is judged by its status, its endless body never read", async () => {
    const f = addFile(182, 4096);
    fake.queueApiFault({ kind: "endless", status: 200, contentType: "application/octet-stream" });
    const started = performance.now();
    const result = await downloadFile(taskFor(f), opts({ stallTimeoutMs: 3000, maxRetries: 0 }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/Civitai answered 200 without redirecting to the file/);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  const localCopy = () => {
    const path = join(root, `local-copy-${n}.safetensors`);
    return path;
  };
  const redirects: [string, (f: FakeFile) => string][] = [
    ["file:///etc/passwd", () => "file:///etc/passwd"],
    [
      "a local file with the right SHA-256",
      (f) => {
        const path = localCopy();
        writeFileSync(path, f.bytes);
        return `file://${path}`;
      },
    ],
    ["a data: URL with the right bytes", (f) => `data:application/octet-stream;base64,${Buffer.from(f.bytes).toString("base64")}`],
  ];
  for (const [name, location] of redirects) {
    test(`T5: a storage redirect to ${name} is refused; nothing lands under DEST`, async () => {
      const f = addFile(183, 4096);
      fake.queueStorageFault({ kind: "redirect", location: location(f) });
      const result = await downloadFile(taskFor(f), opts());
      expect(result.status).toBe("failed");
      expect(result.message).toMatch(/refusing a redirect to a (file|data): URL; only http and https are followed/);
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  test("API hop: a redirect to a file: URL is refused before any request (held already)", async () => {
    const f = addFile(184, 4096);
    fake.queueApiFault({ kind: "redirect", location: "file:///etc/passwd" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/refusing a redirect to a file: URL/);
    expect(fake.storageRequests).toHaveLength(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  const unknownSize = (f: FakeFile, dest = join(dir, f.name)): DownloadTask => ({
    ...taskFor(f, dest),
    size: null,
    sizeExact: false,
    sha256: null,
  });

  test("T6: no size from Civitai or the server and a body that does not end → stopped at the upper limit, nothing kept", async () => {
    const f = addFile(185, 4096);
    fake.queueStorageFault({ kind: "no-length", bytes: 64 * 1024 * 1024 });
    const result = await downloadFile(unknownSize(f), opts({ unknownSizeLimit: 1024 * 1024 }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(
      /the server sent more than 1\.0 MiB without saying how large the file is \(no size from Civitai, no Content-Length\); stopped, the partial download was deleted and nothing was saved/,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  test("T6: no size from Civitai, the server's Content-Length does not fit on the disk → refused before a byte is written", async () => {
    const f = addFile(191, 4096);
    const result = await downloadFile(unknownSize(f), opts({ freeSpace: async () => 1000 }));
    expect(result.status).toBe("failed");
    expect(result.message).toMatch(/not enough disk space: the server says the file is 4\.0 KiB, needs 4\.0 KiB more, 1000 B free/);
    expect(readdirSync(dir)).toEqual([]);
  });

  const withTmpfs = async (size: string, label: string, body: (mnt: string) => Promise<void>): Promise<void> => {
    const mnt = join(root, `tmpfs-${n}`);
    mkdirSync(mnt, { recursive: true });
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mnt]);
    if (mounted.exitCode !== 0) {
      console.log(`${label} skipped: cannot mount tmpfs (${mounted.stderr.toString().trim() || `exit ${mounted.exitCode}`})`);
      return;
    }
    try {
      await body(mnt);
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  };

  test("T6: an endless body of unknown size on a small disk stops while the disk still has room; nothing kept", async () => {
    await withTmpfs("64m", "T6 free-space margin", async (mnt) => {
      const f = addFile(186, 4096);
      fake.queueStorageFault({ kind: "no-length", bytes: 256 * 1024 * 1024 });
      const result = await downloadFile(unknownSize(f, join(mnt, f.name)), opts({ root: mnt }));
      expect(result.status).toBe("failed");
      expect(result.message).toMatch(/without saying how large the file is .*; stopped to keep .* free on that disk/);
      expect(readdirSync(mnt)).toEqual([]);
      const fs = await import("node:fs/promises");
      const s = await fs.statfs(mnt);
      expect(Number(s.bavail) * Number(s.bsize)).toBeGreaterThan(60 * 1024 * 1024); // the .part is gone, the room is back
    });
  });

  test("T6: disk full mid-stream (known size) → the message states the bytes the .part really keeps", async () => {
    await withTmpfs("1m", "T6 ENOSPC message", async (mnt) => {
      const f = addFile(187, 3 * 1024 * 1024);
      const task = taskFor(f, join(mnt, f.name));
      const result = await downloadFile(task, opts({ root: mnt, freeSpace: async () => null }));
      expect(result.status).toBe("failed");
      const part = transferPaths(task.dest, f.versionId).part;
      expect(existsSync(task.dest)).toBe(false);
      const kept = existsSync(part) ? lstatSync(part).size : 0;
      if (kept > 0) {
        expect(result.message).toContain(`disk full after ${formatBytes(kept)}`);
        expect(result.message).toContain(`the .part (${formatBytes(kept)}) is kept`);
      } else {
        expect(result.message).toMatch(/disk full before the first byte was saved; nothing was kept/);
      }
    });
  });

  test("T7: a stall timeout past 2^31−1 ms (30 days) is honoured, not fired at once", async () => {
    const f = addFile(188, 64 * 1024);
    const result = await downloadFile(taskFor(f), opts({ stallTimeoutMs: 30 * 24 * 3600 * 1000 }));
    expect(result.status).toBe("downloaded");
    expect(warnings).toEqual([]);
    expect(sha(join(dir, f.name))).toBe(f.sha256);
  });

  test("T21: a 206 at the wrong offset names the byte that was asked for", async () => {
    const f = addFile(189, 1024 * 1024);
    const dest = join(dir, f.name);
    await interrupted(taskFor(f), 0.3);
    const partSize = lstatSync(transferPaths(dest, f.versionId).part).size;
    expect(partSize).toBeGreaterThan(0);
    fake.reset();
    fake.queueStorageFault({ kind: "wrong-offset" });
    const result = await downloadFile(taskFor(f), opts());
    expect(result.status).toBe("failed");
    expect(result.message).toContain(`asked for byte ${partSize}, got 0`);
  });

  test("T21: giving up says the .part is kept only when there is one", async () => {
    const f = addFile(190, SIZE);
    fake.queueApiFault({ kind: "status", status: 503, body: { error: "Service Unavailable" } });
    fake.queueApiFault({ kind: "status", status: 503, body: { error: "Service Unavailable" } });
    const none = await downloadFile(taskFor(f), opts({ maxRetries: 1 }));
    expect(none.status).toBe("failed");
    expect(none.message).not.toContain(".part");
    expect(none.message).toMatch(/gave up after 1 retry; nothing was saved/);
    expect(readdirSync(dir)).toEqual([]);

    fake.reset();
    fake.queueStorageFault({ kind: "short", after: SIZE / 4 });
    fake.setStorageFault({ kind: "status", status: 500 });
    const some = await downloadFile(taskFor(f), opts({ maxRetries: 1 }));
    fake.setStorageFault(null);
    expect(some.status).toBe("failed");
    const part = transferPaths(join(dir, f.name), f.versionId).part;
    expect(lstatSync(part).size).toBe(SIZE / 4);
    expect(some.message).toContain(`the .part (${formatBytes(SIZE / 4)}) is kept: run again to resume`);
  });
});

describe("the .part is opened only when it is the one file it names (docs/cases.md A16)", () => {
  test("A16: openResume refuses a .part that has another name on the open file, so a link made after the first look writes nothing", async () => {
    const f = addFile(1603, 4096);
    const task = taskFor(f);
    const { part } = transferPaths(task.dest, task.versionId);
    const other = join(dir, "other.safetensors");
    writeFileSync(other, "OTHER FILE");
    linkSync(other, part);
    await expect(openResume(task, part, { apiHost: fake.apiUrl, apiKey: null })).rejects.toThrow(
      `${part} has other names (hard links); refusing to write into it (remove it to download)`,
    );
    expect(readFileSync(other, "utf8")).toBe("OTHER FILE");
  });
});
