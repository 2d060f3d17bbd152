/**
 * A fake Civitai API on 127.0.0.1 for every test that would otherwise talk to civitai.com.
 *
 * It mirrors the real endpoints (docs/civitai-api.md §1–§3): by-hash GET (case-insensitive, any hash
 * type, oldest published version first, 404 bodies from the fixtures), by-hash POST (≤ 100
 * 64-char strings, one element per matching file, shuffled, null for versions without a primary
 * file), by-hash/ids POST (≤ 10,000, `{modelVersionId, modelId, hash}` per matching file),
 * /models?ids= and /models/{id}. Like Civitai, it matches hashes against every file it holds but
 * shows only public files (a file with `visibility` other than "Public" is matched, not listed),
 * and an archived model's versions (`model.mode: "Archived"`) list no file and no download URL. It records every request and injects faults. It also plays
 * Civitai's image CDN on its own origin (`/<account>/<key>/<variant>/<name>`, images added with
 * addImage), so preview tests run with `--api-url` pointing here.
 *
 * Usage:
 *   const civitai = await startFakeCivitai();
 *   civitai.addVersion(makeVersion({ versionId: 11, modelId: 10, sha256 }));
 *   civitai.queueFaults("versionByHash", faults.rateLimit(2));     // one-shot, in order
 *   civitai.setFault("*", faults.status(503));                      // persistent until cleared
 *   … client.versionByHash(civitai.url, sha256) …
 *   expect(civitai.counts.versionByHash).toBe(2);
 *   await civitai.stop();
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ApiFile, ApiImage, ApiModel, ApiModelVersion } from "../../src/civitai/civitai-types.ts";
import { seededRandom } from "./seeded-random.ts";

const FIXTURES_DIR = join(import.meta.dir, "../fixtures/civitai");

/** Parsed fixture from test/fixtures/civitai (copied from shared/fixtures; see SOURCES.md). */
export function loadFixture<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES_DIR, name), "utf8")) as T;
}

/** The routes the fake knows; "other" is anything served by `options.handle` or unknown. */
export type FakeRoute =
  | "versionByHash"
  | "versionsByHashes"
  | "versionIdsByHashes"
  | "versionById"
  | "modelsByIds"
  | "model"
  | "image"
  | "other";
export const FAKE_ROUTES: readonly FakeRoute[] = [
  "versionByHash",
  "versionsByHashes",
  "versionIdsByHashes",
  "versionById",
  "modelsByIds",
  "model",
  "image",
  "other",
];

/** The account segment of Civitai's image URLs (docs/civitai-api.md §1.2), reused by the fake CDN. */
const IMAGE_ACCOUNT = "xG1nkqKTMzGDvpLrqFT7WA";
type FaultTarget = FakeRoute | "*";

export type Fault =
  /** Any status with a body (object → JSON) and headers. */
  | { kind: "status"; status: number; body?: string | object; headers?: Record<string, string> }
  /** An HTML page (Cloudflare "Just a moment…" challenge or a maintenance page), status 200 by default. */
  | { kind: "html"; page?: "cloudflare" | "maintenance"; status?: number }
  /** The normal answer cut in half, status 200, Content-Type JSON. */
  | { kind: "truncated-json" }
  /** Valid JSON of the wrong shape (an `{items}` where a version or array is expected, …). */
  | { kind: "wrong-shape"; body?: unknown }
  /** Accepts the request and never answers (until stop()). */
  | { kind: "hang" }
  /** Sends half of the normal body, then resets the connection. */
  | { kind: "cut-body" }
  /** A redirect (302 by default) to `location`. */
  | { kind: "redirect"; location: string; status?: number }
  /** Answers normally after `ms`. */
  | { kind: "delay"; ms: number };

/** Fault builders. */
export const faults = {
  status: (status: number, body?: string | object, headers?: Record<string, string>): Fault => ({ kind: "status", status, body, headers }),
  /** 429; `retryAfter` as seconds, a raw header string, or a Date (sent as an HTTP-date). */
  rateLimit: (retryAfter?: number | string | Date): Fault => ({
    kind: "status",
    status: 429,
    body: { error: "Too Many Requests" },
    headers: retryAfter === undefined ? {} : { "retry-after": retryAfter instanceof Date ? retryAfter.toUTCString() : String(retryAfter) },
  }),
  /** `n` copies of a status (e.g. a 503 burst). */
  burst: (status: number, n: number, body?: string | object): Fault[] =>
    Array.from({ length: n }, () => faults.status(status, body ?? { error: "Service Unavailable" })),
  unauthorized: (): Fault => faults.status(401, loadFixture("error-401-unauthorized.json")),
  forbidden: (): Fault => faults.status(403, { error: "Forbidden" }),
  regionBlocked: (): Fault => faults.status(451, loadFixture("error-451-region-blocked.json")),
  serverError: (): Fault => faults.status(500, loadFixture("error-500-unexpected.json")),
  cloudflare: (status = 200): Fault => ({ kind: "html", page: "cloudflare", status }),
  maintenance: (status = 200): Fault => ({ kind: "html", page: "maintenance", status }),
  truncatedJson: (): Fault => ({ kind: "truncated-json" }),
  wrongShape: (body?: unknown): Fault => ({ kind: "wrong-shape", body }),
  hang: (): Fault => ({ kind: "hang" }),
  cutBody: (): Fault => ({ kind: "cut-body" }),
  redirect: (location: string, status = 302): Fault => ({ kind: "redirect", location, status }),
  delay: (ms: number): Fault => ({ kind: "delay", ms }),
};

interface RecordedRequest {
  route: FakeRoute;
  method: string;
  path: string;
  query: Record<string, string[]>;
  /** Lower-case names. */
  headers: Record<string, string>;
  authorization: string | null;
  body: string;
  /** Requests being answered when this one arrived, itself included. */
  inFlight: number;
  /** Fault applied to this request, if any. */
  fault?: Fault["kind"];
}

export interface FakeCivitaiOptions {
  /** Seed the data with the fixtures' versions and models (default true). */
  fixtures?: boolean;
  /** Seed of the deterministic shuffle of POST by-hash answers (default 1). */
  seed?: number;
  /** Delay before every answer, ms (default 0). */
  delayMs?: number;
  /** Extra routes (e.g. downloads): return a Response to answer, undefined to fall through to 404. */
  handle?: (req: Request, url: URL) => Response | undefined | Promise<Response | undefined>;
}

export interface FakeCivitai {
  /** `http://127.0.0.1:<port>`, what the client takes as host. */
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** Requests per route since the last reset. */
  readonly counts: Record<FakeRoute, number>;
  readonly inFlight: number;
  /** Highest in-flight count since the last reset. */
  readonly maxInFlight: number;
  addVersion(...versions: ApiModelVersion[]): void;
  /** Registers a model for /models; its versions become findable by hash too (unless already added). */
  addModel(...models: ApiModel[]): void;
  /** One-shot faults, used in order, before any persistent fault. */
  queueFaults(target: FaultTarget, ...list: (Fault | Fault[])[]): void;
  /** A fault for every request of `target` until cleared with null. */
  setFault(target: FaultTarget, fault: Fault | null): void;
  /** Delay before every answer. */
  setDelay(ms: number): void;
  /** Forgets requests, faults, delay and in-flight maximum; keeps the data. */
  reset(): void;
  /** Forgets all versions and models. */
  clearData(): void;
  /** Serves `bytes` as the image `key` (Content-Type from `contentType`, default by magic number). */
  addImage(key: string, bytes: Uint8Array | string, contentType?: string): void;
  /** This server's URL of image `key`, in Civitai's shape (`…/original=true/<key>.jpeg`). */
  imageUrl(key: string): string;
  stop(): Promise<void>;
}

// --- data generators ---------------------------------------------------------------------------

const upper = (s: string) => s.toUpperCase();
const derive = (label: string, sha256: string, length: number) =>
  createHash("sha256").update(`${label}:${sha256.toLowerCase()}`).digest("hex").slice(0, length).toUpperCase();

interface MakeFileSpec {
  sha256: string;
  autov3?: string;
  name?: string;
  primary?: boolean;
  type?: string;
  sizeKB?: number;
  format?: string;
  /** Replaces or adds hash entries (Civitai type names, e.g. { CRC32: "…" }). */
  hashes?: Record<string, string>;
  id?: number;
}

/**
 * A file record as by-hash returns it: upper-case hashes. AutoV2 comes from the SHA-256; AutoV1,
 * CRC32 and BLAKE3 are derived deterministically (fake but stable); AutoV3 only when given.
 */
function makeFile(
  spec: MakeFileSpec,
  versionId: number,
  index = 0,
  downloadBase = "https://civitai.com",
): ApiFile & Record<string, unknown> {
  const sha = upper(spec.sha256);
  const hashes: Record<string, string> = {
    AutoV1: derive("autov1", sha, 8),
    AutoV2: sha.slice(0, 10),
    SHA256: sha,
    CRC32: derive("crc32", sha, 8),
    BLAKE3: derive("blake3", sha, 64),
  };
  if (spec.autov3) hashes.AutoV3 = upper(spec.autov3);
  for (const [k, v] of Object.entries(spec.hashes ?? {})) hashes[k] = upper(v);
  const primary = spec.primary ?? index === 0;
  const format = spec.format ?? "SafeTensor";
  return {
    id: spec.id ?? versionId * 10 + index,
    sizeKB: spec.sizeKB ?? 223231.3515625,
    name: spec.name ?? `model_${versionId}${index ? `_${index}` : ""}.safetensors`,
    overrideName: null,
    type: spec.type ?? "Model",
    pickleScanResult: "Success",
    pickleScanMessage: "No Pickle imports",
    virusScanResult: "Success",
    virusScanMessage: null,
    scannedAt: "2026-08-09T15:02:50.938Z",
    metadata: { format, size: null, fp: null },
    hashes,
    primary,
    downloadUrl: primary
      ? `${downloadBase}/api/download/models/${versionId}`
      : `${downloadBase}/api/download/models/${versionId}?type=${encodeURIComponent(spec.type ?? "Model")}&format=${format}`,
  };
}

export interface MakeVersionSpec {
  versionId: number;
  modelId: number;
  /** SHA-256 of the primary file (any case). */
  sha256: string;
  autov3?: string;
  /** Additional files after the primary one (not primary unless they say so). */
  files?: MakeFileSpec[];
  name?: string;
  modelName?: string;
  modelType?: string;
  baseModel?: string;
  nsfw?: boolean;
  publishedAt?: string;
  /** Origin used for downloadUrl (default https://civitai.com). */
  downloadBase?: string;
  /** Merged last: overrides anything above (e.g. `files: []`, `model: {…, mode: "Archived"}`). */
  extra?: Partial<ApiModelVersion> & Record<string, unknown>;
}

/** A model version in the current by-hash shape (docs/civitai-api.md §1.2). */
export function makeVersion(spec: MakeVersionSpec): ApiModelVersion & Record<string, unknown> {
  const base = spec.downloadBase ?? "https://civitai.com";
  const type = spec.modelType ?? "LORA";
  const files = [makeFile({ sha256: spec.sha256, autov3: spec.autov3, primary: true }, spec.versionId, 0, base)];
  for (const [i, f] of (spec.files ?? []).entries()) files.push(makeFile({ primary: false, ...f }, spec.versionId, i + 1, base));
  const publishedAt = spec.publishedAt ?? "2026-08-09T15:12:32.918Z";
  return {
    id: spec.versionId,
    modelId: spec.modelId,
    name: spec.name ?? `v${spec.versionId}`,
    nsfwLevel: spec.nsfw ? 4 : 1,
    createdAt: "2026-08-04T16:51:49.483Z",
    updatedAt: publishedAt,
    publishedAt,
    status: "Published",
    availability: "Public",
    trainedWords: ["trigger"],
    trainingStatus: null,
    trainingDetails: null,
    baseModel: spec.baseModel ?? "SDXL 1.0",
    baseModelType: "Standard",
    description: "<p>Version notes</p>",
    uploadType: "Created",
    usageControl: "Download",
    licensingFee: null,
    paidAccess: null,
    air: `urn:air:sdxl:${type.toLowerCase()}:civitai:${spec.modelId}@${spec.versionId}`,
    stats: { downloadCount: 16, thumbsUpCount: 1 },
    model: { name: spec.modelName ?? `Model ${spec.modelId}`, type, nsfw: spec.nsfw ?? false, poi: false },
    files,
    images: [
      {
        url: `https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/${spec.versionId}/original=true/${spec.versionId}.jpeg`,
        nsfwLevel: 1,
        width: 768,
        height: 1152,
        hash: "U2BW6.ov03_30exH=Cxt00xt~p0M8^NftAn2",
        type: "image",
        metadata: { hash: "U2BW6", size: 123456, width: 768, height: 1152 },
        minor: false,
        poi: false,
        meta: { prompt: "a frog", steps: 20 },
        availability: "Public",
        hasMeta: true,
        hasPositivePrompt: true,
        onSite: false,
        remixOfId: null,
      } as ApiImage,
    ],
    downloadUrl: `${base}/api/download/models/${spec.versionId}`,
    ...spec.extra,
  };
}

export interface MakeModelSpec {
  modelId: number;
  name?: string;
  type?: string;
  nsfw?: boolean;
  poi?: boolean;
  mode?: "Archived" | "TakenDown";
  tags?: string[];
  creator?: { username?: string; image?: string | null } | null;
  description?: string;
  allowCommercialUse?: string[] | string;
  /** Versions made with makeVersion (by-hash shape); trimmed to the /models shape. */
  versions?: ApiModelVersion[];
  extra?: Partial<ApiModel> & Record<string, unknown>;
}

/** A /models/{id} body (docs/civitai-api.md §2.1): `modelVersions` lack modelId, model, air, updatedAt. */
export function makeModel(spec: MakeModelSpec): ApiModel & Record<string, unknown> {
  const modelVersions = (spec.versions ?? []).map((v, index) => {
    const { model: _m, modelId: _id, air: _air, updatedAt: _u, ...rest } = v as ApiModelVersion & Record<string, unknown>;
    return { ...rest, index };
  });
  return {
    id: spec.modelId,
    name: spec.name ?? `Model ${spec.modelId}`,
    description: spec.description ?? "<p>A <strong>test</strong> model.</p>",
    allowNoCredit: true,
    allowCommercialUse: spec.allowCommercialUse ?? ["Image", "RentCivit"],
    allowDerivatives: true,
    allowDifferentLicense: false,
    type: spec.type ?? "LORA",
    minor: false,
    sfwOnly: false,
    poi: spec.poi ?? false,
    nsfw: spec.nsfw ?? false,
    nsfwLevel: spec.nsfw ? 4 : 1,
    availability: "Public",
    cosmetic: null,
    supportsGeneration: false,
    ...(spec.mode ? { mode: spec.mode } : {}),
    stats: { downloadCount: 16, thumbsUpCount: 1, thumbsDownCount: 0, commentCount: 0, tippedAmountCount: 0 },
    creator: spec.creator === undefined ? { username: "creator", image: null } : spec.creator,
    tags: spec.tags ?? ["character", "style"],
    modelVersions,
    ...spec.extra,
  } as ApiModel & Record<string, unknown>;
}

// --- server --------------------------------------------------------------------------------------

const CLOUDFLARE_PAGE = `<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta name="robots" content="noindex,nofollow"></head><body><div class="main-wrapper" role="main"><div class="main-content"><h1 class="zone-name-title h1">civitai.com</h1><h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2><noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript></div></div><script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=8f1e2d3c4b5a6978"></script></body></html>`;
const MAINTENANCE_PAGE = `<!DOCTYPE html><html><head><title>Civitai</title></head><body><h1>We're adjusting a few things, be back in a few minutes...</h1></body></html>`;

function sniffedType(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "image/jpeg";
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return "image/png";
  if (bytes[0] === 0x52 && bytes[8] === 0x57) return "image/webp";
  if (bytes[0] === 0x47 && bytes[1] === 0x49) return "image/gif";
  return "application/octet-stream";
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", ...headers } });
}

function routeOf(method: string, path: string, params: URLSearchParams): FakeRoute {
  if (method === "GET" && /^\/api\/v1\/model-versions\/by-hash\/[^/]+$/.test(path)) return "versionByHash";
  if (method === "POST" && path === "/api/v1/model-versions/by-hash") return "versionsByHashes";
  if (method === "POST" && path === "/api/v1/model-versions/by-hash/ids") return "versionIdsByHashes";
  if (method === "GET" && /^\/api\/v1\/model-versions\/[^/]+$/.test(path)) return "versionById";
  if (method === "GET" && path === "/api/v1/models" && params.has("ids")) return "modelsByIds";
  if (method === "GET" && /^\/api\/v1\/models\/[^/]+$/.test(path)) return "model";
  if (method === "GET" && path.startsWith(`/${IMAGE_ACCOUNT}/`)) return "image";
  return "other";
}

const hasPrimary = (v: ApiModelVersion) => (v.files ?? []).some((f) => f.primary === true);
const isPublished = (v: ApiModelVersion) => v.status === undefined || v.status === "Published";
const isPublic = (f: ApiFile) =>
  (f as { visibility?: unknown }).visibility === undefined || (f as { visibility?: unknown }).visibility === "Public";

/**
 * What Civitai shows of a stored version (SRC prepareModelVersionResponse): public files only,
 * none (and no download URL) when the model is archived, no images when it is taken down.
 */
function shown(v: ApiModelVersion): ApiModelVersion {
  const mode = v.model?.mode;
  const { downloadUrl: _d, ...rest } = v;
  return {
    ...rest,
    files:
      mode === "Archived" ? [] : (v.files ?? []).filter(isPublic).map(({ visibility: _v, ...f }: ApiFile & { visibility?: unknown }) => f),
    images: mode === "TakenDown" ? [] : (v.images ?? []),
    ...(mode === "Archived" ? {} : { downloadUrl: v.downloadUrl }),
  };
}

/** Starts the fake on 127.0.0.1 with a free port. */
export async function startFakeCivitai(options: FakeCivitaiOptions = {}): Promise<FakeCivitai> {
  const versions = new Map<number, ApiModelVersion>();
  const models = new Map<number, ApiModel>();
  const images = new Map<string, { bytes: Uint8Array; contentType: string }>();
  const requests: RecordedRequest[] = [];
  const queued = new Map<FaultTarget, Fault[]>();
  const persistent = new Map<FaultTarget, Fault>();
  const hanging = new Set<() => void>();
  const random = seededRandom(options.seed ?? 1);
  let delayMs = options.delayMs ?? 0;
  let inFlight = 0;
  let maxInFlight = 0;

  /** Published versions' files by each of their hashes (upper-case), built when first needed: 10k-version benchmarks stay fast. */
  let index: Map<string, { version: ApiModelVersion; file: ApiFile; type: string; order: number }[]> | null = null;
  function hashIndex() {
    if (index) return index;
    index = new Map();
    for (const v of [...versions.values()].filter(isPublished).sort((a, b) => a.id - b.id)) {
      for (const [order, file] of (v.files ?? []).entries()) {
        for (const [type, hash] of Object.entries(file.hashes ?? {})) {
          const key = String(hash).toUpperCase();
          const list = index.get(key) ?? [];
          list.push({ version: v, file, type, order });
          index.set(key, list);
        }
      }
    }
    return index;
  }
  /** Files whose SHA256 is one of `wanted`, in version-id order, then file order (as the scan of every version gave). */
  function sha256Matches(wanted: Set<string>) {
    const hits = [...wanted].flatMap((h) => (hashIndex().get(h) ?? []).filter((m) => m.type === "SHA256"));
    return hits.sort((a, b) => a.version.id - b.version.id || a.order - b.order);
  }

  function addVersion(...list: ApiModelVersion[]): void {
    index = null;
    for (const v of list) versions.set(v.id, structuredClone(v));
  }

  function addModel(...list: ApiModel[]): void {
    for (const m of list) {
      models.set(m.id, structuredClone(m));
      for (const mv of m.modelVersions ?? []) {
        if (versions.has(mv.id)) continue;
        addVersion({
          ...mv,
          modelId: m.id,
          model: { name: m.name, type: m.type, nsfw: m.nsfw, poi: m.poi, ...(m.mode ? { mode: m.mode } : {}) },
        });
      }
    }
  }

  if (options.fixtures !== false) {
    addVersion(loadFixture<ApiModelVersion>("model-version-1318-wiki-2023-example.json"));
    addModel(loadFixture<ApiModel>("model-detail-lora-2026-example.json"), loadFixture<ApiModel>("model-detail-lora-2025-example.json"));
  }

  function nextFault(route: FakeRoute): Fault | undefined {
    for (const target of [route, "*"] as const) {
      const q = queued.get(target);
      if (q?.length) return q.shift();
    }
    return persistent.get(route) ?? persistent.get("*");
  }

  function byHash(hash: string): Response {
    const wanted = hash.toUpperCase();
    const matches = [...new Set((hashIndex().get(wanted) ?? []).map((m) => m.version))].sort(
      (a, b) => String(a.publishedAt ?? "").localeCompare(String(b.publishedAt ?? "")) || a.id - b.id,
    );
    const found = matches[0];
    if (!found) return json(loadFixture("error-404-by-hash.json"), 404);
    if (!hasPrimary(found)) return json(loadFixture("error-404-missing-model-file.json"), 404);
    return json(shown(found));
  }

  function byHashes(body: string): Response {
    const fail = (detail: string) => json({ error: `Request must include an array of SHA256 Hashes. ${detail}` }, 400);
    let input: unknown;
    try {
      input = JSON.parse(body);
    } catch {
      return fail("Expected array, received undefined");
    }
    if (!Array.isArray(input)) return fail(`Expected array, received ${input === null ? "null" : typeof input}`);
    if (input.length > 100) return fail("Array must contain at most 100 element(s)");
    if (!input.every((h) => typeof h === "string" && h.length === 64)) return fail("String must contain exactly 64 character(s)");
    const wanted = new Set((input as string[]).map(upper));
    const out: (ApiModelVersion | null)[] = sha256Matches(wanted).map(({ version }) => (hasPrimary(version) ? shown(version) : null));
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j] as ApiModelVersion | null, out[i] as ApiModelVersion | null];
    }
    return json(out);
  }

  function idsByHashes(body: string): Response {
    const fail = (detail: string) => json({ error: `Request must include an array of SHA256 Hashes. ${detail}` }, 400);
    let input: unknown;
    try {
      input = JSON.parse(body);
    } catch {
      return fail("Expected array, received undefined");
    }
    if (!Array.isArray(input)) return fail(`Expected array, received ${input === null ? "null" : typeof input}`);
    if (input.length > 10_000) return fail("Too many hashes");
    if (!input.every((h) => typeof h === "string" && h.length === 64)) return fail("Invalid hash");
    const wanted = new Set((input as string[]).map(upper));
    const out = sha256Matches(wanted).map(({ version, file }) => ({
      modelVersionId: version.id,
      modelId: version.modelId,
      hash: String(file.hashes?.SHA256).toUpperCase(),
    }));
    return json(out);
  }

  function modelsByIds(params: URLSearchParams): Response {
    const ids = params
      .getAll("ids")
      .flatMap((s) => s.split(","))
      .map(Number);
    if (ids.some((id) => !Number.isInteger(id) || id <= 0)) return json({ error: "Invalid ids" }, 400);
    const items = ids.map((id) => models.get(id)).filter((m): m is ApiModel => m !== undefined);
    return json({ items, metadata: {} });
  }

  function modelById(raw: string): Response {
    const id = Number(raw);
    if (!Number.isInteger(id) || id <= 0 || id > 2_147_483_647) return json({ error: `Invalid id: ${raw}` }, 400);
    const m = models.get(id);
    return m ? json(m) : json({ error: `No model with id ${id}` }, 404);
  }

  function versionById(raw: string): Response {
    const v = versions.get(Number(raw));
    if (!v || !isPublished(v)) return json(loadFixture("error-404-by-hash.json"), 404);
    if (!hasPrimary(v)) return json(loadFixture("error-404-missing-model-file.json"), 404);
    return json(shown(v));
  }

  function image(path: string): Response {
    // /<account>/<key>/<variant>/<name> or /<account>/<key>/<name>, as the CDN takes them.
    const key = decodeURIComponent(path.split("/")[2] ?? "");
    const found = images.get(key);
    if (!found) return new Response("Not Found", { status: 404, headers: { "content-type": "text/plain" } });
    return new Response(found.bytes, {
      status: 200,
      headers: { "content-type": found.contentType, "cache-control": "public, max-age=31536000" },
    });
  }

  async function normalAnswer(route: FakeRoute, req: Request, url: URL, body: string): Promise<Response> {
    const last = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    switch (route) {
      case "image":
        return image(url.pathname);
      case "versionByHash":
        return byHash(last);
      case "versionsByHashes":
        return byHashes(body);
      case "versionIdsByHashes":
        return idsByHashes(body);
      case "versionById":
        return versionById(last);
      case "modelsByIds":
        return modelsByIds(url.searchParams);
      case "model":
        return modelById(last);
      case "other":
        return (await options.handle?.(req, url)) ?? json({ error: "Not found" }, 404);
    }
  }

  function wrongShape(route: FakeRoute): unknown {
    if (
      route === "versionsByHashes" ||
      route === "versionIdsByHashes" ||
      route === "versionByHash" ||
      route === "versionById" ||
      route === "model"
    )
      return { items: [], metadata: {} };
    return [];
  }

  async function faultAnswer(fault: Fault, route: FakeRoute, req: Request, url: URL, body: string): Promise<Response> {
    switch (fault.kind) {
      case "status": {
        const text = fault.body === undefined ? "" : typeof fault.body === "string" ? fault.body : JSON.stringify(fault.body);
        const type =
          typeof fault.body === "string" && /^\s*</.test(fault.body) ? "text/html; charset=UTF-8" : "application/json; charset=utf-8";
        return new Response(text, { status: fault.status, headers: { "content-type": type, ...fault.headers } });
      }
      case "html":
        return new Response(fault.page === "maintenance" ? MAINTENANCE_PAGE : CLOUDFLARE_PAGE, {
          status: fault.status ?? 200,
          headers: { "content-type": "text/html; charset=UTF-8", ...(fault.page === "maintenance" ? {} : { "cf-mitigated": "challenge" }) },
        });
      case "truncated-json": {
        if (route === "image") {
          const bytes = new Uint8Array(await (await normalAnswer(route, req, url, body)).arrayBuffer());
          return new Response(bytes.slice(0, Math.floor(bytes.length / 2)), { status: 200, headers: { "content-type": "image/png" } });
        }
        const full = await (await normalAnswer(route, req, url, body)).text();
        const cut = full.length > 4 ? full.slice(0, Math.floor(full.length / 2)) : '{"items":[{"id":1,"na';
        return new Response(cut, { status: 200, headers: { "content-type": "application/json; charset=utf-8" } });
      }
      case "wrong-shape":
        return json(fault.body ?? wrongShape(route));
      case "hang":
        return new Promise<Response>((resolve) => {
          // Ends when the client gives up (so `inFlight` stays true) or at stop().
          const release = () => {
            hanging.delete(release);
            resolve(new Response("", { status: 503 }));
          };
          hanging.add(release);
          req.signal.addEventListener("abort", release, { once: true });
        });
      case "cut-body": {
        const full = new Uint8Array(await (await normalAnswer(route, req, url, body)).arrayBuffer());
        const half = full.slice(0, Math.max(1, Math.floor(full.length / 2)));
        const stream = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(half);
            await Bun.sleep(5);
            // No argument: Bun resets the connection without printing an error.
            controller.error();
          },
        });
        return new Response(stream, {
          status: 200,
          headers: {
            "content-type": route === "image" ? sniffedType(full) : "application/json; charset=utf-8",
            "content-length": String(full.length),
          },
        });
      }
      case "redirect":
        return new Response(null, { status: fault.status ?? 302, headers: { location: fault.location } });
      case "delay":
        await Bun.sleep(fault.ms);
        return normalAnswer(route, req, url, body);
    }
  }

  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    // A "hang" fault must outlive any client timeout; 0 turns Bun's idle timeout off.
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url);
      const route = routeOf(req.method, url.pathname, url.searchParams);
      const body = req.method === "GET" || req.method === "HEAD" ? "" : await req.text();
      const query: Record<string, string[]> = {};
      for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
      const headers: Record<string, string> = {};
      req.headers.forEach((value, key) => {
        headers[key.toLowerCase()] = value;
      });
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const fault = nextFault(route);
      requests.push({
        route,
        method: req.method,
        path: url.pathname,
        query,
        headers,
        authorization: req.headers.get("authorization"),
        body,
        inFlight,
        fault: fault?.kind,
      });
      try {
        if (delayMs > 0 && fault?.kind !== "hang") await Bun.sleep(delayMs);
        return fault ? await faultAnswer(fault, route, req, url, body) : await normalAnswer(route, req, url, body);
      } finally {
        inFlight -= 1;
      }
    },
  });

  const origin = `http://127.0.0.1:${server.port}`;

  return {
    url: origin,
    origin,
    port: server.port ?? 0,
    requests,
    get counts() {
      const counts = Object.fromEntries(FAKE_ROUTES.map((r) => [r, 0])) as Record<FakeRoute, number>;
      for (const r of requests) counts[r.route] += 1;
      return counts;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    addVersion,
    addModel,
    queueFaults(target, ...list) {
      const q = queued.get(target) ?? [];
      q.push(...list.flat());
      queued.set(target, q);
    },
    setFault(target, fault) {
      if (fault) persistent.set(target, fault);
      else persistent.delete(target);
    },
    setDelay(ms) {
      delayMs = ms;
    },
    reset() {
      requests.length = 0;
      queued.clear();
      persistent.clear();
      delayMs = options.delayMs ?? 0;
      maxInFlight = inFlight;
    },
    clearData() {
      versions.clear();
      index = null;
      models.clear();
      images.clear();
    },
    addImage(key, bytes, contentType) {
      const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
      images.set(key, { bytes: data, contentType: contentType ?? sniffedType(data) });
    },
    imageUrl(key) {
      return `${origin}/${IMAGE_ACCOUNT}/${encodeURIComponent(key)}/original=true/${encodeURIComponent(key)}.jpeg`;
    },
    async stop() {
      // Close the sockets first so a hanging request never gets a late answer.
      const stopped = server.stop(true);
      for (const release of Array.from(hanging)) release();
      await stopped;
    },
  };
}
