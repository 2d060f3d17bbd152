/**
 * A fake Civitai API plus a fake signed-storage origin, both on 127.0.0.1 (node:http, so
 * Content-Length and mid-body resets behave as on the wire).
 *
 * The API answers `/api/download/models/{v}[?fileId=]` with a 307 to the storage origin, like
 * civitai.com → R2 (docs/civitai-api.md §4.4), and serves `/api/v1/model-versions/{id}`,
 * `/by-hash/{hash}` and `/models/{id}` for the files added. Storage speaks Range / If-Range /
 * 206 / 416, sends ETag and Content-Disposition, expires signed links, and injects faults.
 * Every request is recorded with its headers, and storage counts the body bytes it sent.
 *
 *   const fake = await startFakeStorage();
 *   const file = fake.addFile({ versionId: 11, fileId: 12, name: "a.safetensors", bytes });
 *   fake.queueStorageFault({ kind: "short", after: 1000 });
 *   … downloadFile(task, { apiHost: fake.apiUrl, … }) …
 *   expect(fake.storageRequests.every((r) => !r.headers.authorization)).toBe(true);
 *   await fake.stop();
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { ApiModelVersion } from "../../src/civitai/civitai-types.ts";

const STORAGE_FIXTURES_DIR = join(import.meta.dir, "../fixtures/civitai");

export function fixtureBody(name: string): object {
  return JSON.parse(readFileSync(join(STORAGE_FIXTURES_DIR, name), "utf8")) as object;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Deterministic pseudo-random bytes (xorshift), so big test files need no disk fixture. Each step
 * gives four bytes, lowest first, written as one 32-bit word where the machine is little-endian:
 * byte by byte, the 160 MiB of the A14 test took ~0.4 s of the suite's CPU.
 */
export function makeBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  const whole = LITTLE_ENDIAN ? size >>> 2 : 0;
  const words = new Uint32Array(out.buffer, 0, whole);
  for (let w = 0; w < whole; w++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[w] = x >>> 0;
  }
  x >>>= 0;
  for (let i = whole * 4; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
    if (i + 1 < size) out[i + 1] = (x >>> 8) & 0xff;
    if (i + 2 < size) out[i + 2] = (x >>> 16) & 0xff;
    if (i + 3 < size) out[i + 3] = (x >>> 24) & 0xff;
  }
  return out;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface FakeFile {
  versionId: number;
  fileId: number;
  modelId: number;
  name: string;
  bytes: Uint8Array;
  sha256: string;
  etag: string;
  /** Sent as Content-Disposition by storage; defaults to `name`. Raw header value when `rawDisposition`. */
  disposition?: string;
  rawDisposition?: boolean;
  /** What the API lists as the SHA-256 (defaults to the real one). */
  apiSha256?: string;
  /** What the API lists as sizeKB (defaults to the real size / 1024). */
  apiSizeKB?: number;
}

type ApiFault =
  | { kind: "status"; status: number; body?: object | string; headers?: Record<string, string> }
  | { kind: "html" }
  /** A redirect to any URL (an evil host, an http downgrade…). */
  | { kind: "redirect"; location: string; status?: number }
  /**
   * A body that does not end (until the client hangs up, or after `limit` bytes, default 1 GiB) at
   * about `bytesPerSecond` (default 16 MB/s), optionally claiming a Content-Length.
   */
  | { kind: "endless"; status: number; contentType?: string; declaredLength?: number; bytesPerSecond?: number; limit?: number };

type StorageFault =
  /** Sends the full Content-Length but resets the connection after `after` bytes of this response. */
  | { kind: "short"; after: number }
  /** Ignores Range: 200 with the full body. */
  | { kind: "ignore-range" }
  /** 206 starting at byte 0 whatever was asked. */
  | { kind: "wrong-offset" }
  /** The file's ETag changes before this request (If-Range then fails → 200 full). */
  | { kind: "change-etag" }
  /** One byte flipped at `at` (default the middle) in this response. */
  | { kind: "flip-byte"; at?: number }
  /** 200 text/html login page. */
  | { kind: "html" }
  /** Any status with a body. */
  | { kind: "status"; status: number; body?: string; headers?: Record<string, string> }
  /** Sends `after` bytes, then nothing (connection kept open) until the client gives up. */
  | { kind: "stall"; after: number }
  /** A redirect from storage to `location`. */
  | { kind: "redirect"; location: string }
  /** 200 with `bytes` bytes of junk and no Content-Length (chunked): a server that never says the size. */
  | { kind: "no-length"; bytes: number };

interface RecordedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  status?: number;
  /** Body bytes storage wrote for this request. */
  bytes?: number;
}

export interface FakeStorageOptions {
  /** Signed links stop working after this many storage requests made with them. */
  expireAfterUses?: number;
  /** Throttle storage bodies to about this many bytes per second (0 = as fast as possible). */
  bytesPerSecond?: number;
  /** Chunk size for writing bodies (default 64 KiB). */
  chunkSize?: number;
}

export interface FakeStorage {
  apiUrl: string;
  storageUrl: string;
  addFile(file: Partial<FakeFile> & { versionId: number; bytes: Uint8Array }): FakeFile;
  file(versionId: number): FakeFile;
  /** The API JSON for a version (as `/api/v1/model-versions/{id}` returns it). */
  versionJson(versionId: number): ApiModelVersion;
  queueApiFault(fault: ApiFault): void;
  queueStorageFault(fault: StorageFault): void;
  setStorageFault(fault: StorageFault | null): void;
  setOptions(options: FakeStorageOptions): void;
  /** Makes every signed link issued so far invalid (403 AccessDenied). */
  expireAll(): void;
  apiRequests: RecordedRequest[];
  storageRequests: RecordedRequest[];
  /** Body bytes storage has written (all responses since the last reset; see also `RecordedRequest.bytes`). */
  bytesServed: number;
  reset(): void;
  stop(): Promise<void>;
}

const ACCESS_DENIED = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>`;
const LOGIN_PAGE = `<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head><body>Please log in</body></html>`;

/** `filename` (ASCII fallback) plus RFC 5987 `filename*` for anything else, as storage servers send it. */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

export async function startFakeStorage(initial: FakeStorageOptions = {}): Promise<FakeStorage> {
  let options: FakeStorageOptions = { ...initial };
  const files = new Map<number, FakeFile>();
  const apiFaults: ApiFault[] = [];
  const storageFaults: StorageFault[] = [];
  let persistent: StorageFault | null = null;
  /** Signed link id → uses so far; a link outside the map is expired. */
  const links = new Map<string, number>();
  let linkCounter = 0;
  const sockets = new Set<import("node:net").Socket>();

  const fake: FakeStorage = {
    apiUrl: "",
    storageUrl: "",
    apiRequests: [],
    storageRequests: [],
    bytesServed: 0,
    addFile(partial) {
      const sha256 = sha256Hex(partial.bytes);
      const file: FakeFile = {
        fileId: partial.versionId * 10 + 1,
        modelId: partial.versionId * 100,
        name: `model-${partial.versionId}.safetensors`,
        etag: `"${sha256.slice(0, 16)}"`,
        ...partial,
        sha256,
      };
      files.set(file.versionId, file);
      return file;
    },
    file(versionId) {
      const f = files.get(versionId);
      if (!f) throw new Error(`no fake file for version ${versionId}`);
      return f;
    },
    versionJson(versionId) {
      const f = fake.file(versionId);
      return {
        id: f.versionId,
        modelId: f.modelId,
        name: `v${f.versionId}`,
        air: `urn:air:sdxl:lora:civitai:${f.modelId}@${f.versionId}`,
        model: { name: `Model ${f.modelId}`, type: "LORA" },
        files: [
          {
            id: f.fileId,
            name: f.name,
            sizeKB: f.apiSizeKB ?? f.bytes.byteLength / 1024,
            type: "Model",
            primary: true,
            hashes: { SHA256: (f.apiSha256 ?? f.sha256).toUpperCase(), AutoV2: (f.apiSha256 ?? f.sha256).slice(0, 10).toUpperCase() },
            downloadUrl: `${fake.apiUrl}/api/download/models/${f.versionId}`,
          },
        ],
        downloadUrl: `${fake.apiUrl}/api/download/models/${f.versionId}`,
      };
    },
    queueApiFault(fault) {
      apiFaults.push(fault);
    },
    queueStorageFault(fault) {
      storageFaults.push(fault);
    },
    setStorageFault(fault) {
      persistent = fault;
    },
    setOptions(next) {
      options = { ...options, ...next };
    },
    expireAll() {
      links.clear();
    },
    reset() {
      apiFaults.length = 0;
      storageFaults.length = 0;
      persistent = null;
      fake.apiRequests.length = 0;
      fake.storageRequests.length = 0;
      fake.bytesServed = 0;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise((r) => api.close(r)), new Promise((r) => storage.close(r))]);
    },
  };

  const record = (list: RecordedRequest[], req: IncomingMessage): RecordedRequest => {
    const entry: RecordedRequest = { method: req.method ?? "GET", url: req.url ?? "", headers: { ...req.headers } };
    list.push(entry);
    return entry;
  };

  const api = createServer((req, res) => {
    const entry = record(fake.apiRequests, req);
    const url = new URL(req.url ?? "/", fake.apiUrl);
    const reply = (status: number, body: unknown, headers?: Record<string, string>) => {
      entry.status = status;
      sendJson(res, status, body, headers);
    };
    let m = /^\/api\/download\/models\/(\d+)$/.exec(url.pathname);
    if (m) {
      const fault = apiFaults.shift();
      if (fault?.kind === "status") return reply(fault.status, fault.body ?? { error: "error" }, fault.headers);
      if (fault?.kind === "html") {
        entry.status = 200;
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        return res.end(LOGIN_PAGE);
      }
      if (fault?.kind === "redirect") {
        entry.status = fault.status ?? 307;
        res.writeHead(fault.status ?? 307, { location: fault.location });
        return res.end();
      }
      if (fault?.kind === "endless") {
        entry.status = fault.status;
        res.writeHead(fault.status, {
          "content-type": fault.contentType ?? "application/json",
          ...(fault.declaredLength === undefined ? {} : { "content-length": String(fault.declaredLength) }),
        });
        return void pumpJunk(res, entry, fault.limit ?? 1024 ** 3, fault.bytesPerSecond ?? 16_000_000);
      }
      const f = files.get(Number(m[1]));
      const fileId = url.searchParams.get("fileId");
      if (!f || (fileId !== null && Number(fileId) !== f.fileId)) return reply(404, fixtureBody("error-404-download-file-not-found.json"));
      const link = `sig${++linkCounter}`;
      links.set(link, 0);
      const disposition = encodeURIComponent(`attachment; filename="${f.name}"`);
      entry.status = 307;
      res.writeHead(307, {
        location: `${fake.storageUrl}/delivery/${f.versionId}/${encodeURIComponent(f.name)}?X-Amz-Expires=86400&response-content-disposition=${disposition}&X-Amz-Signature=${link}`,
        "cache-control": "no-store, max-age=0",
      });
      return res.end();
    }
    m = /^\/api\/v1\/model-versions\/by-hash\/([0-9a-fA-F]+)$/.exec(url.pathname);
    if (m) {
      const hash = m[1]!.toLowerCase();
      const f = [...files.values()].find((x) => (x.apiSha256 ?? x.sha256) === hash);
      return f ? reply(200, fake.versionJson(f.versionId)) : reply(404, fixtureBody("error-404-by-hash.json"));
    }
    m = /^\/api\/v1\/model-versions\/(\d+)$/.exec(url.pathname);
    if (m) {
      const f = files.get(Number(m[1]));
      return f ? reply(200, fake.versionJson(f.versionId)) : reply(404, { error: "Model not found" });
    }
    m = /^\/api\/v1\/models\/(\d+)$/.exec(url.pathname);
    if (m) {
      const modelId = Number(m[1]);
      const versions = [...files.values()].filter((f) => f.modelId === modelId).sort((a, b) => b.versionId - a.versionId);
      if (versions.length === 0) return reply(404, fixtureBody("error-404-model.json"));
      return reply(200, {
        id: modelId,
        name: `Model ${modelId}`,
        type: "LORA",
        modelVersions: versions.map((v) => fake.versionJson(v.versionId)),
      });
    }
    reply(404, { error: "Not found" });
  });

  const storage = createServer((req, res) => {
    const entry = record(fake.storageRequests, req);
    const url = new URL(req.url ?? "/", fake.storageUrl);
    const m = /^\/delivery\/(\d+)\//.exec(url.pathname);
    const f = m ? files.get(Number(m[1])) : undefined;
    const status = (code: number, body: string, headers: Record<string, string> = {}) => {
      entry.status = code;
      res.writeHead(code, { "content-length": Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    if (!f) return status(404, "<Error><Code>NoSuchKey</Code></Error>", { "content-type": "application/xml" });
    const link = url.searchParams.get("X-Amz-Signature") ?? "";
    const uses = links.get(link);
    if (uses === undefined || (options.expireAfterUses !== undefined && uses >= options.expireAfterUses)) {
      links.delete(link);
      return status(403, ACCESS_DENIED, { "content-type": "application/xml" });
    }
    links.set(link, uses + 1);

    const fault = storageFaults.shift() ?? persistent;
    if (fault?.kind === "change-etag") f.etag = `"changed-${Date.now()}-${Math.random().toString(16).slice(2)}"`;
    if (fault?.kind === "html") return status(200, LOGIN_PAGE, { "content-type": "text/html; charset=utf-8" });
    if (fault?.kind === "status") return status(fault.status, fault.body ?? "", fault.headers);
    if (fault?.kind === "redirect") {
      entry.status = 302;
      res.writeHead(302, { location: fault.location });
      return res.end();
    }
    if (fault?.kind === "no-length") {
      entry.status = 200;
      res.writeHead(200, { "content-type": "application/octet-stream" });
      return void pumpJunk(res, entry, fault.bytes, 0);
    }

    const size = f.bytes.byteLength;
    const headers: Record<string, string | number> = {
      "content-type": "application/octet-stream",
      etag: f.etag,
      "last-modified": "Wed, 01 Jan 2025 00:00:00 GMT",
      "accept-ranges": "bytes",
      "content-disposition": f.rawDisposition ? (f.disposition ?? "") : contentDisposition(f.disposition ?? f.name),
    };
    let start = 0;
    let code = 200;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ""));
    const ifRange = req.headers["if-range"];
    const rangeValid = range && (ifRange === undefined || ifRange === f.etag || ifRange === headers["last-modified"]);
    if (range && rangeValid && fault?.kind !== "ignore-range") {
      start = Number(range[1]);
      if (start >= size) return status(416, "", { "content-range": `bytes */${size}` });
      code = 206;
    }
    let body = f.bytes.subarray(start);
    if (fault?.kind === "wrong-offset" && code === 206) body = f.bytes;
    if (fault?.kind === "flip-byte") {
      body = Uint8Array.from(body);
      const at = Math.min(body.byteLength - 1, fault.at ?? Math.floor(body.byteLength / 2));
      body[at]! ^= 0xff;
    }
    const sentStart = fault?.kind === "wrong-offset" ? 0 : start;
    if (code === 206) headers["content-range"] = `bytes ${sentStart}-${sentStart + body.byteLength - 1}/${size}`;
    headers["content-length"] = body.byteLength;
    entry.status = code;
    res.writeHead(code, headers);

    const limit = fault?.kind === "short" || fault?.kind === "stall" ? Math.min(fault.after, body.byteLength) : body.byteLength;
    const chunk = options.chunkSize ?? 64 * 1024;
    let pos = 0;
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    let flushed: Promise<void> = Promise.resolve();
    const pump = () => {
      if (closed) return;
      if (pos >= limit) {
        // Reset only once what was written has reached the socket, so the client holds exactly `after` bytes.
        if (fault?.kind === "short") return void flushed.then(() => setTimeout(() => res.destroy(), 20));
        if (fault?.kind === "stall") return; // keep the socket open, send nothing more
        return void res.end();
      }
      const piece = body.subarray(pos, Math.min(limit, pos + chunk));
      pos += piece.byteLength;
      fake.bytesServed += piece.byteLength;
      entry.bytes = (entry.bytes ?? 0) + piece.byteLength;
      const ok = res.write(piece);
      // Only a reset after `after` bytes waits for them to reach the socket: an empty write per piece
      // cost every other download its share of the 10,000 pieces of a 160 MiB file.
      if (fault?.kind === "short") flushed = new Promise((r) => res.write(new Uint8Array(0), () => r()));
      const next = () => {
        const rate = options.bytesPerSecond ?? 0;
        if (rate > 0) setTimeout(pump, Math.max(1, Math.round((piece.byteLength / rate) * 1000)));
        else setImmediate(pump);
      };
      if (ok) next();
      else res.once("drain", next);
    };
    pump();
  });

  /** Writes `limit` junk bytes (`rate` bytes/s, 0 = as fast as the socket takes them), counted in `entry.bytes`. */
  function pumpJunk(res: ServerResponse, entry: RecordedRequest, limit: number, rate: number): void {
    const piece = makeBytes(64 * 1024, 7);
    let sent = 0;
    let closed = false;
    res.on("close", () => {
      closed = true;
    });
    const pump = () => {
      if (closed) return;
      if (sent >= limit) return void res.end();
      const n = Math.min(piece.byteLength, limit - sent);
      sent += n;
      entry.bytes = (entry.bytes ?? 0) + n;
      fake.bytesServed += n;
      const ok = res.write(piece.subarray(0, n));
      const next = () => (rate > 0 ? setTimeout(pump, Math.max(1, Math.round((n / rate) * 1000))) : setImmediate(pump));
      if (ok) next();
      else res.once("drain", next);
    };
    pump();
  }

  for (const server of [api, storage])
    server.on("connection", (s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
  fake.apiUrl = await listen(api);
  fake.storageUrl = await listen(storage);
  return fake;
}
