/**
 * Issue 9, the API side: where the key may go (docs/cases.md T1), whose answers the metadata cache serves (docs/cases.md T2),
 * hostile answer sizes (docs/cases.md T4), long durations (docs/cases.md T7), the lookup progress bar (docs/cases.md T19) and small things
 * (docs/cases.md T21). Every test runs the CLI as a child process against fake servers on 127.0.0.1.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { faults, makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { cliCommand, cliEnv, runCli, runCliBytes } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs("civitai-meta-trust-");
/** Several CLI runs per test: generous, since the machine may be shared and slow. */
const E2E_TIMEOUT_MS = 120_000;
const SENTINEL = "SENTINEL-KEY-9b1e77d0";
let good: FakeCivitai;
let evil: FakeCivitai;

beforeAll(async () => {
  good = await startFakeCivitai({ fixtures: false });
  evil = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await good.stop();
  await evil.stop();
  tmp.cleanup();
});
beforeEach(() => {
  for (const f of [good, evil]) {
    f.reset();
    f.clearData();
  }
});

const sha256 = (data: string) => createHash("sha256").update(data).digest("hex");
const PAST = new Date(Date.now() - 3600_000);

/** A folder with one model file per content; returns the folder and the SHA-256s. */
function library(contents: string[]): { dir: string; shas: string[] } {
  const dir = tmp.make();
  contents.forEach((content, i) => {
    const file = join(dir, `m${i}.safetensors`);
    writeFileSync(file, content);
    utimesSync(file, PAST, PAST);
  });
  return { dir, shas: contents.map(sha256) };
}

/** Registers a found version (and its model, named `modelName`) on a fake. */
function publish(on: FakeCivitai, sha: string, id: number, modelName: string): void {
  const version = makeVersion({ versionId: id, modelId: id * 10, sha256: sha, modelName });
  on.addModel(makeModel({ modelId: id * 10, name: modelName, versions: [version] }));
}

/** The user's own config under a fresh XDG_CONFIG_HOME. */
function userConfig(content: object): string {
  const xdg = tmp.make();
  mkdirSync(join(xdg, "civitai-meta"), { recursive: true });
  writeFileSync(join(xdg, "civitai-meta", "config.json"), JSON.stringify(content));
  return xdg;
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((p) => statSync(join(dir, p)).isFile());
}

describe("T1: keys and hosts", () => {
  test(
    "T1: a civitai-meta.json in the current folder cannot choose the API hosts; the key goes only where the user chose",
    async () => {
      const { dir, shas } = library(["t1 hosts"]);
      publish(good, shas[0]!, 11, "Good Model");
      publish(evil, shas[0]!, 66, "EVIL MODEL");
      const cwd = tmp.make();
      // A downloaded folder that tries to pull the key to its own server.
      writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ apiUrl: evil.url, fallbackUrl: evil.url, modelDirectories: [dir] }));
      const xdg = userConfig({ apiUrl: good.url });
      const r = await runCli(["scan", "--no-cache"], { cwd, env: { CIVITAI_API_KEY: SENTINEL, XDG_CONFIG_HOME: xdg } });
      expect(evil.requests).toHaveLength(0);
      expect(good.requests.length).toBeGreaterThan(0);
      expect(good.requests.every((q) => q.authorization === `Bearer ${SENTINEL}`)).toBe(true);
      expect(r.code).toBe(0);
      // The folder's other settings still apply (its modelDirectories were scanned).
      const inv = JSON.parse(r.stdout);
      expect(inv.records[0].civitai.modelName).toBe("Good Model");
      // One warning, naming the file, the keys and why.
      const warnings = r.stderr.split("\n").filter((l) => l.includes("civitai-meta.json"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('"apiUrl"');
      expect(warnings[0]).toContain('"fallbackUrl"');
      expect(warnings[0]).toMatch(/current folder/);
      expect(warnings[0]).toContain("--config");
      expect(r.stdout + r.stderr).not.toContain(SENTINEL);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: a server that echoes the key inside answer data gets it into no record, report, cache or sidecar",
    async () => {
      const { dir, shas } = library(["t1 echo"]);
      // The key as plain text in the version's names, and JSON-escaped (\uXXXX) in the model's details.
      const version = makeVersion({ versionId: 31, modelId: 310, sha256: shas[0]!, modelName: `Echo ${SENTINEL}` });
      good.addModel(makeModel({ modelId: 310, name: `Echo ${SENTINEL}`, versions: [version] }));
      const escaped = [...SENTINEL].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
      const details = makeModel({
        modelId: 310,
        name: "Echo ESCAPED",
        creator: { username: "ESCAPED", image: null },
        tags: ["ESCAPED"],
        versions: [version],
      });
      good.setFault("modelsByIds", faults.status(200, JSON.stringify({ items: [details], metadata: {} }).replaceAll("ESCAPED", escaped)));
      const cacheDir = tmp.make();
      const out = join(tmp.make(), "inv.json");
      const r = await runCli(["scan", dir, "--api-url", good.url, "--cache-dir", cacheDir, "--write-sidecars", "-o", out], {
        env: { CIVITAI_API_KEY: SENTINEL },
      });
      expect(r.code).toBe(0);
      expect(good.requests.some((q) => q.route === "modelsByIds")).toBe(true);
      const inv = readFileSync(out, "utf8");
      const record = JSON.parse(inv).records[0];
      expect(record.civitai.modelName).toBe("Echo ***");
      expect(record.civitai.creator).toBe("***");
      expect(record.civitai.tags).toEqual(["***"]);
      expect(inv).not.toContain(SENTINEL);
      const written = [...files(cacheDir).map((f) => join(cacheDir, f)), ...files(dir).map((f) => join(dir, f))];
      expect(written.some((f) => f.endsWith(".civitai.info"))).toBe(true);
      for (const f of written) expect(readFileSync(f).includes(SENTINEL), f).toBe(false);
      expect(r.stdout + r.stderr).not.toContain(SENTINEL);
      // Offline from the cache, as Markdown: still nothing.
      const md = await runCli(["scan", dir, "--offline", "--api-url", good.url, "--cache-dir", cacheDir, "--format", "md"], {
        env: { CIVITAI_API_KEY: SENTINEL },
      });
      expect(md.code).toBe(0);
      expect(md.stdout).toContain("Echo \\*\\*\\*");
      expect(md.stdout + md.stderr).not.toContain(SENTINEL);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "F6: a server that echoes the key in its status line (the reason phrase) gets it into no record, and a long one is cut",
    async () => {
      const { dir } = library(["f6 reason phrase", "f6 reason phrase 2"]);
      // Bun.serve sends the standard reason phrase whatever a Response says: a raw socket sends any.
      let longPhrase = false;
      const server = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          data(socket, data) {
            const key = /authorization: Bearer (\S+)/i.exec(Buffer.from(data).toString("latin1"))?.[1] ?? "";
            const phrase = longPhrase ? "A".repeat(50_000) : `Key ${key} refused`;
            socket.end(`HTTP/1.1 418 ${phrase}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
          },
        },
      });
      try {
        const api = `http://127.0.0.1:${server.port}`;
        const out = join(tmp.make(), "inv.json");
        const r = await runCli(["scan", dir, "--api-url", api, "--no-cache", "--verbose", "-o", out], {
          env: { CIVITAI_API_KEY: SENTINEL },
        });
        expect(r.code).toBe(1);
        const inv = readFileSync(out, "utf8");
        const errors = JSON.parse(inv).records.map((rec: { error: string }) => rec.error);
        expect(errors).toHaveLength(2);
        for (const e of errors) expect(e).toContain("answered 418 Key *** refused");
        expect(inv + r.stdout + r.stderr).not.toContain(SENTINEL);

        // Each record's error quoted the whole phrase: 50 KB per file, 5 GB for 100,000 files.
        longPhrase = true;
        const long = await runCli(["scan", dir, "--api-url", api, "--no-cache", "-o", out], { env: { CIVITAI_API_KEY: SENTINEL } });
        expect(long.code).toBe(1);
        for (const rec of JSON.parse(readFileSync(out, "utf8")).records) expect(rec.error.length).toBeLessThan(400);
      } finally {
        server.stop(true);
      }
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: a civitai-meta.json in the current folder cannot swap the user's own API key for another",
    async () => {
      const sha = sha256("t1 folder key");
      const xdg = userConfig({ apiKey: SENTINEL, apiUrl: good.url });
      chmodSync(join(xdg, "civitai-meta", "config.json"), 0o600);
      const cwd = tmp.make();
      writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ apiKey: "STRANGER-KEY-0001", outputFormat: "csv" }));
      const r = await runCli(["lookup", sha, "--no-cache"], {
        cwd,
        env: { XDG_CONFIG_HOME: xdg, CIVITAI_API_KEY: undefined, CIVITAI_TOKEN: undefined },
      });
      expect(r.code).toBe(0);
      // Before the fix the request carried the folder's key, and nothing said so.
      expect(good.requests[0]?.authorization).toBe(`Bearer ${SENTINEL}`);
      expect(r.stderr).toContain('"apiKey" ignored');
      expect(r.stderr + r.stdout).not.toContain("STRANGER-KEY-0001");
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: --config naming that same file is the user's choice: its hosts are used",
    async () => {
      const { dir, shas } = library(["t1 explicit"]);
      publish(evil, shas[0]!, 67, "Mirror Model");
      const cwd = tmp.make();
      writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ apiUrl: evil.url }));
      const r = await runCli(["scan", dir, "--no-cache", "--config", "civitai-meta.json"], { cwd, env: { CIVITAI_API_KEY: SENTINEL } });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain("ignored");
      expect(evil.requests.length).toBeGreaterThan(0);
      expect(evil.requests[0]!.authorization).toBe(`Bearer ${SENTINEL}`);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: a folder config cannot move the cache; CIVITAI_META_CACHE_DIR beats a config's cache.dir",
    async () => {
      const { dir, shas } = library(["t1 cache"]);
      publish(good, shas[0]!, 12, "Cached Model");
      const cwd = tmp.make();
      const planted = join(cwd, "planted-cache");
      writeFileSync(join(cwd, "civitai-meta.json"), JSON.stringify({ cache: { dir: planted } }));
      const xdgCache = tmp.make();
      const r = await runCli(["scan", dir], { cwd, env: { CIVITAI_API_URL: good.url, XDG_CACHE_HOME: xdgCache } });
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('"cache.dir"');
      expect(existsSync(planted)).toBe(false);
      expect(files(join(xdgCache, "civitai-meta", "meta")).length).toBeGreaterThan(0);

      // The user's own config may move the cache, but the environment variable beats it (README).
      const fromConfig = join(tmp.make(), "config-cache");
      const fromEnv = join(tmp.make(), "env-cache");
      const config = join(tmp.make(), "mine.json");
      writeFileSync(config, JSON.stringify({ apiUrl: good.url, cache: { dir: fromConfig } }));
      const e = await runCli(["scan", dir, "--config", config], { env: { CIVITAI_META_CACHE_DIR: fromEnv } });
      expect(e.code).toBe(0);
      expect(existsSync(fromConfig)).toBe(false);
      expect(files(join(fromEnv, "meta")).length).toBeGreaterThan(0);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: a key bound for an http:// host off this machine is warned about, once per host, never shown",
    async () => {
      const sha = sha256("t1 plain http");
      const port = new URL(good.url).port;
      // 0.0.0.0 reaches this machine's 127.0.0.1 on Linux but is not a loopback name: it stands
      // for a LAN mirror here, so the test needs no network.
      const r = await runCli(["lookup", sha, "--api-url", `http://0.0.0.0:${port}`, "--no-cache"], {
        env: { CIVITAI_API_KEY: SENTINEL },
      });
      expect(r.stderr).toContain(`the API key will be sent unencrypted to http://0.0.0.0:${port} (plain HTTP)`);
      expect(r.stderr.match(/sent unencrypted/g)?.length).toBe(1);
      expect(r.stderr + r.stdout).not.toContain(SENTINEL);
      expect(good.requests[0]?.authorization).toBe(`Bearer ${SENTINEL}`);

      // The fake itself (loopback) and --offline are not warned about.
      const quiet = await runCli(["lookup", sha, "--api-url", good.url, "--no-cache"], { env: { CIVITAI_API_KEY: SENTINEL } });
      expect(quiet.stderr).not.toContain("unencrypted");
      const { dir } = library(["t1 plain http offline"]);
      const offline = await runCli(["scan", dir, "--offline", "--no-cache", "--api-url", "http://0.0.0.0:9", "-o", "/dev/null"], {
        env: { CIVITAI_API_KEY: SENTINEL },
      });
      expect(offline.code).toBe(0);
      expect(offline.stderr).not.toContain("unencrypted");
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T21: an apiUrl or fallbackUrl the run cannot use (a query, a fragment, a space) is refused naming the config file and the key",
    async () => {
      const dir = tmp.make();
      for (const apiUrl of ["https://mirror.lan/?token=1", "https://mirror.lan/#x", "https://mirror.lan/a b"]) {
        const config = join(dir, "mine.json");
        writeFileSync(config, JSON.stringify({ fallbackUrl: apiUrl }));
        const r = await runCli(["lookup", sha256("t21 url"), "--no-cache", "--config", config]);
        expect(r.code).toBe(2);
        // Before the fix: 'fallbackUrl must be an http(s) URL …', with no file named.
        expect(r.stderr).toContain(`Config ${config}: "fallbackUrl" must be an http(s) URL`);
      }
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: relative cache.dir, logFile and modelDirectories in the user's config are relative to its folder, so a scan run inside a model folder writes nothing there",
    async () => {
      const { dir } = library(["t1 relative paths"]);
      const xdg = userConfig({ cache: { dir: "cache" }, logFile: "run.log", modelDirectories: ["../models"] });
      const configDir = join(xdg, "civitai-meta");
      mkdirSync(join(xdg, "models"));
      writeFileSync(join(xdg, "models", "other.safetensors"), "t1 relative models");
      const before = readdirSync(dir).sort();
      const r = await runCli(["scan", ".", "--offline", "-o", "-"], { cwd: dir, env: { XDG_CONFIG_HOME: xdg } });
      expect(r.code).toBe(0);
      // Before the fix "cache" and "run.log" were created in the model folder scanned.
      expect(readdirSync(dir).sort()).toEqual(before);
      expect(existsSync(join(configDir, "cache", "hashes"))).toBe(true);
      expect(readFileSync(join(configDir, "run.log"), "utf8")).toContain("1 file (17 B)");
      // modelDirectories too: without a path, "../models" is the folder beside the config folder.
      const bare = await runCli(["scan", "--offline", "-o", "-"], { cwd: dir, env: { XDG_CONFIG_HOME: xdg } });
      expect(bare.code).toBe(0);
      expect(JSON.parse(bare.stdout).roots).toEqual([join(xdg, "models")]);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T1: `~/` in the config's cache.dir and logFile is the home folder, as README says, never a folder named ~ where the scan runs",
    async () => {
      const { dir } = library(["t1 tilde paths"]);
      const home = tmp.make();
      const xdg = userConfig({ cache: { dir: "~/tilde-cache" }, logFile: "~/tilde.log" });
      const before = readdirSync(dir).sort();
      const r = await runCli(["scan", ".", "--offline", "-o", "-"], { cwd: dir, env: { XDG_CONFIG_HOME: xdg, HOME: home } });
      // Before the fix: exit 2, 'cannot open "logFile" ~/tilde.log (ENOENT)'; without logFile, the
      // cache went to a folder named "~" in the model folder scanned.
      expect(r.code).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(before);
      expect(existsSync(join(home, "tilde-cache", "hashes"))).toBe(true);
      expect(readFileSync(join(home, "tilde.log"), "utf8")).toContain("1 file (");
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "D2/T1: a config that is a FIFO, a device, a dangling or looping link, huge or not UTF-8 is one clear error (exit 2), never a hang nor silently skipped",
    async () => {
      const { dir } = library(["t1 odd config"]);
      const run = (args: string[], opts: { cwd?: string; xdg?: string } = {}) =>
        runCli(["scan", dir, "--offline", "--no-cache", "-o", "/dev/null", ...args], {
          cwd: opts.cwd ?? tmp.make(),
          env: { XDG_CONFIG_HOME: opts.xdg ?? tmp.make() },
          // Before the fix a FIFO config blocked in open() forever, deaf to SIGTERM: killed here.
          timeoutMs: 15_000,
        });
      const expectRefused = (r: { code: number; stderr: string }, file: string, why: string) => {
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(`Cannot read config ${file}: ${why}`);
        expect(r.stderr).not.toContain("    at ");
      };

      // A downloaded folder can carry a FIFO named civitai-meta.json (tar keeps them).
      const cwd = tmp.make();
      Bun.spawnSync(["mkfifo", join(cwd, "civitai-meta.json")]);
      const fifo = await run([], { cwd });
      expectRefused(fifo, join(cwd, "civitai-meta.json"), "not a regular file");
      expect(fifo.stderr).toContain("run from another folder");

      expectRefused(await run(["--config", "/dev/zero"]), "/dev/zero", "not a regular file");

      // The user's own config as a dangling link (dotfiles not yet synced) or a loop: said, not skipped.
      const xdg = tmp.make();
      mkdirSync(join(xdg, "civitai-meta"));
      const user = join(xdg, "civitai-meta", "config.json");
      symlinkSync(join(xdg, "nowhere.json"), user);
      expectRefused(await run([], { xdg }), user, "no such file or folder (ENOENT)");
      rmSync(user);
      symlinkSync(user, user);
      expectRefused(await run([], { xdg }), user, "too many levels of symbolic links (ELOOP)");

      const huge = join(tmp.make(), "huge.json");
      writeFileSync(huge, `{"concurrency": 4${" ".repeat(2 * 1024 * 1024)}}`);
      expectRefused(await run(["--config", huge]), huge, "larger than 1048576 bytes");

      const latin1 = join(tmp.make(), "latin1.json");
      writeFileSync(latin1, Buffer.from('{"modelDirectories": ["/mod\xe8les"]}', "latin1"));
      expectRefused(await run(["--config", latin1]), latin1, "not UTF-8 text");

      // A byte-order mark is still fine.
      const bom = join(tmp.make(), "bom.json");
      writeFileSync(bom, '\uFEFF{"concurrency": 2}');
      expect((await run(["--config", bom])).code).toBe(0);
    },
    E2E_TIMEOUT_MS,
  );
});

describe("T2: the metadata cache is keyed by API origin", () => {
  test(
    "T2: an answer cached from one origin is never shown for another; each origin keeps its own",
    async () => {
      const { dir, shas } = library(["t2 poisoned"]);
      publish(evil, shas[0]!, 66, "EVIL MODEL");
      publish(good, shas[0]!, 21, "Good Model");
      const cacheDir = tmp.make();
      const first = await runCli(["scan", dir, "--api-url", evil.url, "--cache-dir", cacheDir]);
      expect(JSON.parse(first.stdout).records[0].civitai.modelName).toBe("EVIL MODEL");

      const second = await runCli(["scan", dir, "--api-url", good.url, "--cache-dir", cacheDir]);
      expect(second.code).toBe(0);
      expect(good.requests.length).toBeGreaterThan(0);
      expect(JSON.parse(second.stdout).records[0].civitai.modelName).toBe("Good Model");

      // Each origin's answers are still cached for it: no request the second time.
      good.reset();
      evil.reset();
      const third = await runCli(["scan", dir, "--api-url", good.url, "--cache-dir", cacheDir]);
      expect(JSON.parse(third.stdout).records[0].civitai.modelName).toBe("Good Model");
      const fourth = await runCli(["scan", dir, "--api-url", evil.url, "--cache-dir", cacheDir]);
      expect(JSON.parse(fourth.stdout).records[0].civitai.modelName).toBe("EVIL MODEL");
      expect(good.requests.length + evil.requests.length).toBe(0);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T2: entries of the previous cache format are ignored (asked again), not trusted",
    async () => {
      const { dir, shas } = library(["t2 old format"]);
      publish(good, shas[0]!, 22, "Fresh Model");
      const cacheDir = tmp.make();
      // What 9db3a85 wrote: meta/version/sha256/<sha>.json, format 1, no origin in the key.
      const oldDir = join(cacheDir, "meta", "version", "sha256");
      mkdirSync(oldDir, { recursive: true });
      const stale = makeVersion({ versionId: 99, modelId: 990, sha256: shas[0]!, modelName: "STALE MODEL" });
      const now = Date.now();
      writeFileSync(
        join(oldDir, `${shas[0]}.json`),
        JSON.stringify({ v: 1, storedAt: now, expiresAt: now + 86_400_000, kind: "found", data: [stale], host: "https://civitai.com" }),
      );
      const r = await runCli(["scan", dir, "--api-url", good.url, "--cache-dir", cacheDir]);
      expect(r.code).toBe(0);
      expect(good.counts.versionsByHashes).toBe(1);
      expect(JSON.parse(r.stdout).records[0].civitai.modelName).toBe("Fresh Model");
    },
    E2E_TIMEOUT_MS,
  );
});

/**
 * A server whose API answers are huge: an endless body (Bun.serve), or a raw HTTP answer declaring
 * 5 GiB (Bun.serve would replace the header), which then sends bytes as fast as they are taken.
 * Counts the requests and what it sent; stops at 256 MiB so a client without a cap cannot eat the machine.
 */
function hostileServer(kind: "endless" | "declared") {
  let sent = 0;
  let requests = 0;
  const MAX = 256 * 1024 * 1024;
  const chunk = new Uint8Array(256 * 1024).fill(0x20);
  if (kind === "declared") {
    const pump = (socket: { write(data: Uint8Array): number; end(): void }) => {
      while (sent < MAX) {
        const n = socket.write(chunk);
        sent += n;
        if (n < chunk.byteLength) return; // the socket is full: drain() resumes
      }
      socket.end();
    };
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          requests++;
          socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${5 * 1024 ** 3}\r\n\r\n`);
          pump(socket);
        },
        drain: pump,
      },
    });
    return { url: `http://127.0.0.1:${listener.port}`, sent: () => sent, requests: () => requests, stop: () => listener.stop(true) };
  }
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch() {
      requests++;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("["));
        },
        pull(controller) {
          if (sent >= MAX) return controller.close();
          sent += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, sent: () => sent, requests: () => requests, stop: () => server.stop(true) };
}

describe("T4: hostile answer sizes", () => {
  test("T4: an endless answer to the bulk POST fails that request at the cap, with a clear error; memory stays bounded", async () => {
    const server = hostileServer("endless");
    try {
      const { dir } = library(["t4 endless"]);
      const started = Date.now();
      // Measured through test/helpers/peak-rss.ts: a child's ru_maxrss starts from its parent's, and a
      // test worker that ran a memory-heavy file before this one would inflate a direct child's figure.
      const {
        stdout,
        stderr,
        code,
        maxRss: rss,
      } = await runCliBytes(["scan", dir, "--api-url", server.url, "--no-cache"], { measureRss: true });
      expect(code).toBe(1);
      const rec = JSON.parse(stdout.toString("utf8")).records[0];
      expect(rec.status).toBe("error");
      expect(rec.error).toMatch(/the answer is larger than 64 MiB, the most one API answer may be/);
      expect(stderr).toContain("1 error,");
      // One request, stopped at the cap: not retried, and the body never read to the server's end.
      // (What the server counts includes what its side buffered ahead of the client: on a loaded
      // machine that was up to ~30 MB past the 64 MiB cap, so the bound is far from the cap.)
      expect(server.requests()).toBe(1);
      expect(server.sent()).toBeLessThan(192 * 1024 * 1024);
      expect(Date.now() - started).toBeLessThan(20_000);
      // Peak memory (bytes): Bun alone is ~100 MiB; the cap bounds what one answer adds.
      expect(rss).toBeGreaterThan(0);
      expect(rss).toBeLessThan(300 * 1024 * 1024);
    } finally {
      server.stop();
    }
  }, 60_000);

  test("T4: an answer declaring 5 GiB is refused before its body is read", async () => {
    const server = hostileServer("declared");
    try {
      const r = await runCli(["lookup", "0123456789", "--api-url", server.url, "--no-cache"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/declares 5368709120 bytes, more than 64 MiB/);
      expect(server.sent()).toBeLessThan(16 * 1024 * 1024);
    } finally {
      server.stop();
    }
  }, 60_000);
});

describe("T7: long durations", () => {
  test(
    "T7: --timeout 30d is honoured, not an instant timeout",
    async () => {
      const { dir, shas } = library(["t7 timeout"]);
      publish(good, shas[0]!, 31, "Slow Model");
      const r = await runCli(["scan", dir, "--api-url", good.url, "--no-cache", "--timeout", "30d"], { timeoutMs: 30_000 });
      expect(r.stderr).not.toContain("TimeoutOverflowWarning");
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).records[0].status).toBe("found");
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T7: --max-wait 30d with Retry-After: 2200000 pauses quietly (no timer overflow), asking nothing meanwhile",
    async () => {
      const { dir } = library(["t7 max wait"]);
      good.setFault("*", faults.rateLimit(2_200_000));
      const proc = Bun.spawn(cliCommand(["scan", dir, "--api-url", good.url, "--no-cache", "--max-wait", "30d"]), {
        env: cliEnv(),
        stdout: "pipe",
        stderr: "pipe",
      });
      let stderr = "";
      const decoder = new TextDecoder();
      const reading = (async () => {
        for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
      })();
      const deadline = Date.now() + 20_000;
      while (!stderr.includes("pausing") && Date.now() < deadline) await Bun.sleep(20);
      // The pause has begun. An overflowing timer would fire within a millisecond and ask again
      // (and warn); a second of quiet shows it does not.
      await Bun.sleep(1000);
      proc.kill("SIGINT");
      const code = await proc.exited;
      await reading;
      good.setFault("*", null);
      expect(stderr).not.toContain("TimeoutOverflowWarning");
      expect(stderr).toMatch(/pausing (25\.5 days|2200000 s)/);
      expect(good.requests).toHaveLength(1);
      expect(code).toBe(130);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T7: an absurd Retry-After stops with a rate-limit message, not a crash",
    async () => {
      const { dir } = library(["t7 absurd"]);
      good.setFault("*", faults.rateLimit("99999999999999999999"));
      const r = await runCli(["scan", dir, "--api-url", good.url, "--no-cache"]);
      good.setFault("*", null);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/rate limited by 127\.0\.0\.1:\d+; retry after \d{4}-\d\d-\d\dT/);
      expect(r.stdout + r.stderr).not.toMatch(/Invalid time value|RangeError/);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T7: durations beyond a year, or of 0, are refused up front, naming the flag",
    async () => {
      for (const flag of ["--max-wait", "--timeout"]) {
        const r = await runCli(["lookup", "0123456789", "--api-url", good.url, flag, "400d"]);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(`${flag} takes at most 365d`);
        // Zero reads as a duration; what is wrong with it is said.
        const zero = await runCli(["lookup", "0123456789", "--api-url", good.url, flag, "0s"]);
        expect(zero.code).toBe(2);
        expect(zero.stderr).toContain(`${flag} takes a duration longer than 0, such as 30s`);
      }
      expect(good.requests).toHaveLength(0);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T7: a timeout under a second is refused up front, naming the flag (it failed every request only after all retries)",
    async () => {
      const dir = tmp.make();
      for (const [args, flag] of [
        [["lookup", "0123456789", "--api-url", good.url, "--timeout", "0.0001s"], "--timeout"],
        [["scan", dir, "--api-url", good.url, "--timeout", "500ms"], "--timeout"],
        [["download", "1", "--dest", dir, "--api-url", good.url, "--stall-timeout", "10ms"], "--stall-timeout"],
      ] as const) {
        const r = await runCli([...args]);
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(`${flag} takes at least 1s`);
      }
      // One second is enough to be taken.
      const ok = await runCli(["lookup", "0123456789", "--api-url", good.url, "--no-cache", "--timeout", "1s"]);
      expect(ok.stderr).not.toContain("takes at least");
      expect(good.requests.length).toBeGreaterThan(0);
    },
    E2E_TIMEOUT_MS,
  );
});

/** Runs the CLI under a pseudo-terminal (util-linux script), returning everything it drew. */
async function runOnTty(args: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // A wide terminal, so lines are not cut at the pty's default 80 columns.
  const command = `stty cols 150; ${cliCommand(args).map(quote).join(" ")}`;
  const proc = Bun.spawn(["script", "-qfec", command, "/dev/null"], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: cliEnv(env),
  });
  const [output, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return { code, output };
}

const hasScript = Bun.spawnSync(["sh", "-c", "command -v script"]).exitCode === 0;

describe("T19: the lookup progress bar", () => {
  test.skipIf(!hasScript)(
    "T19: one bar in files done of total, never bytes, never going back; a rate-limit pause says so and for how long",
    async () => {
      const contents = Array.from({ length: 8 }, (_, i) => `t19 file ${i}`);
      const { dir, shas } = library(contents);
      for (const [i, sha] of shas.slice(0, 2).entries()) publish(good, sha, 40 + i, `Model ${i}`);
      // The bulk lookup is rate limited for 1 s first (the countdown shows whole seconds); then the
      // answers come 150 ms apart.
      good.setDelay(150);
      good.queueFaults("versionsByHashes", faults.rateLimit(1));
      const out = join(tmp.make(), "inv.json");
      const r = await runOnTty(["scan", dir, "--api-url", good.url, "--no-cache", "--concurrency", "1", "-o", out]);
      good.setFault("*", null);
      expect(r.code).toBe(0);
      const lines = r.output.split(/\r|\n/).filter((l) => l.includes("looking up"));
      expect(lines.length).toBeGreaterThan(2);
      for (const l of lines) expect(l).not.toMatch(/\d B\/|B\/s/);
      const counts = lines.map((l) => /(\d+)\/(\d+) files/.exec(l)).filter((m) => m !== null);
      expect(counts.length).toBeGreaterThan(2);
      for (const m of counts) expect(Number(m[2])).toBe(8);
      const done = counts.map((m) => Number(m[1]));
      for (let i = 1; i < done.length; i++) expect(done[i]!).toBeGreaterThanOrEqual(done[i - 1]!);
      expect(lines.some((l) => /paused: rate limited by 127\.0\.0\.1:\d+, resuming in 1 s/.test(l))).toBe(true);
    },
    60_000,
  );

  test(
    "T19: no bar when stderr is not a terminal",
    async () => {
      const { dir, shas } = library(["t19 pipe"]);
      publish(good, shas[0]!, 45, "Piped");
      const r = await runCli(["scan", dir, "--api-url", good.url, "--no-cache"]);
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain("\r");
      expect(r.stderr).not.toContain("looking up");
    },
    E2E_TIMEOUT_MS,
  );
});

describe("B13: oversized text in an answer", () => {
  test(
    "B13: a 1.6 MB model name and 5,000 trigger words: the inventory and Markdown keep 1,000 characters and 1,000 words",
    async () => {
      const { dir, shas } = library(["b13 oversized"]);
      const huge = "\u{1F600}".repeat(400_000); // 1.6 MB of emoji: cut between code points, never inside one
      const words = Array.from({ length: 5_000 }, (_, i) => `word${i}`);
      const version = makeVersion({ versionId: 131, modelId: 1310, sha256: shas[0]!, modelName: huge, extra: { trainedWords: words } });
      good.addModel(makeModel({ modelId: 1310, name: huge, versions: [version] }));
      const out = tmp.make();
      const r = await runCli(["scan", dir, "--no-cache", "--api-url", good.url, "-o", join(out, "inv.json")]);
      expect(r.code).toBe(0);
      const record = JSON.parse(readFileSync(join(out, "inv.json"), "utf8")).records[0];
      expect(record.status).toBe("found");
      expect(record.civitai.modelName.length).toBeLessThanOrEqual(1000);
      expect(record.civitai.modelName.endsWith("…")).toBe(true);
      expect(record.civitai.modelName.isWellFormed()).toBe(true);
      expect(record.civitai.trainedWords).toHaveLength(1000);
      expect(record.civitai.trainedWords.slice(0, 2)).toEqual(["word0", "word1"]);
      const md = await runCli(["report", join(out, "inv.json"), "--format", "md"]);
      expect(md.code).toBe(0);
      expect(md.stdout.length).toBeLessThan(100_000);
    },
    E2E_TIMEOUT_MS,
  );
});

describe("T21: small things", () => {
  test(
    "T21: a JSON syntax error in the config names the line and column",
    async () => {
      const config = join(tmp.make(), "broken.json");
      writeFileSync(config, '{\n  "apiUrl": "https://civitai.com",\n  "concurrency": 4,,\n  "outputFormat": "md"\n}\n');
      const r = await runCli(["lookup", "0123456789", "--config", config]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(config);
      expect(r.stderr).toMatch(/line 3, column 20/);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T21: with --api-url elsewhere, messages name that host, not civitai.com",
    async () => {
      const { dir } = library(["t21 host"]);
      good.setFault("*", faults.unauthorized());
      const r = await runCli(["scan", dir, "--api-url", good.url, "--no-cache"], { env: { CIVITAI_API_KEY: SENTINEL } });
      good.setFault("*", faults.status(418));
      const s = await runCli(["lookup", "0123456789", "--api-url", good.url, "--no-cache"]);
      good.setFault("*", null);
      const host = `127.0.0.1:${good.port}`;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${host} rejected the API key (401)`);
      expect(s.stdout + s.stderr).toContain(`${host} answered 418`);
      for (const text of [r.stdout, r.stderr, s.stdout, s.stderr]) expect(text).not.toMatch(/Civitai (rejected|answered)/);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T21: a key with a line break or a character HTTP cannot carry is refused up front, never printed",
    async () => {
      const cases: [Record<string, string>, string[], string][] = [
        [{ CIVITAI_API_KEY: "SENTINEL-A\nSENTINEL-B" }, [], "CIVITAI_API_KEY"],
        [{ CIVITAI_API_KEY: "SENTINEL-A€SENTINEL-B" }, [], "CIVITAI_API_KEY"],
        [{}, ["--api-key", "SENTINEL-A\u200bSENTINEL-B"], "--api-key"],
      ];
      for (const [env, extra, source] of cases) {
        const started = Date.now();
        const r = await runCli(["lookup", "0123456789", "--api-url", good.url, "--no-cache", ...extra], { env });
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(source);
        expect(r.stderr).toMatch(/line break|cannot be sent in an HTTP header/);
        expect(r.stderr).not.toContain("network error");
        expect(r.stdout + r.stderr).not.toMatch(/SENTINEL-A|SENTINEL-B/);
        expect(Date.now() - started).toBeLessThan(10_000);
      }
      expect(good.requests).toHaveLength(0);
    },
    E2E_TIMEOUT_MS,
  );

  test(
    "T21: a key of a few characters is refused up front: hidden everywhere, it garbled every message and record",
    async () => {
      const { dir } = library(["t21 short key"]);
      for (const [env, extra, source] of [
        [{ CIVITAI_API_KEY: "k" }, [], "CIVITAI_API_KEY"],
        [{}, ["--api-key", "o0o0"], "--api-key"],
      ] as const) {
        const r = await runCli(["scan", dir, "--api-url", good.url, "--no-cache", ...extra], { env });
        expect(r.code).toBe(2);
        expect(r.stderr).toContain(source);
        expect(r.stderr).toContain("too short to be a key");
        expect(r.stderr).not.toContain("***");
        expect(r.stdout).toBe("");
      }
      expect(good.requests).toHaveLength(0);
    },
    E2E_TIMEOUT_MS,
  );
});
