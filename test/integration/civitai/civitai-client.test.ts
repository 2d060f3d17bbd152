import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiError } from "../../../src/civitai/api-types.ts";
import { createCivitaiClient, type CivitaiClientOptions } from "../../../src/civitai/civitai-client.ts";
import { redirectRefusal } from "../../../src/civitai/http/classify.ts";
import { MAX_API_BODY_BYTES } from "../../../src/civitai/http/http.ts";
import { faults, makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../../helpers/fake-civitai.ts";
import { seededRandom } from "../../helpers/seeded-random.ts";
import { makeSelfSignedCertificate } from "../../helpers/tls-cert.ts";

const UA = "civitai-meta/0.0.0-test";
const KEY = "SENTINEL_KEY_c0ffee0123456789abcdef";
const START = Date.parse("2026-08-20T12:00:00Z");

const sha = (n: number) => n.toString(16).padStart(8, "0").repeat(8);
const SHA_A = sha(0xa1);
const SHA_B = sha(0xb2);
const SHA_C = sha(0xc3);
const SHA_NO_PRIMARY = sha(0xd4);

/** A clock that only moves when the client sleeps. */
function fakeClock() {
  let t = START;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms: number, signal?: AbortSignal) => {
      if (signal?.aborted) throw signal.reason;
      sleeps.push(ms);
      const target = t + ms;
      await Promise.resolve();
      t = Math.max(t, target);
    },
  };
}

async function caught(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected the call to fail");
}

let civitai: FakeCivitai;

function makeClient(over: Partial<CivitaiClientOptions> = {}) {
  const clock = fakeClock();
  const lines: string[] = [];
  const sent: { url: string; at: number }[] = [];
  const client = createCivitaiClient({
    userAgent: UA,
    civitaiHosts: [civitai.origin],
    apiKey: KEY,
    timeoutMs: 5000,
    maxAttempts: 5,
    sleep: clock.sleep,
    now: clock.now,
    random: seededRandom(42),
    logger: { debug: (m) => lines.push(`debug ${m}`), warn: (m) => lines.push(`warn ${m}`) },
    fetch: ((input: string | URL | Request, init?: RequestInit) => {
      sent.push({ url: String(input), at: clock.now() });
      return fetch(input, init);
    }) as typeof fetch,
    ...over,
  });
  return { client, clock, lines, sent };
}

beforeAll(async () => {
  civitai = await startFakeCivitai();
  const a = makeVersion({ versionId: 101, modelId: 100, sha256: SHA_A, autov3: "0123456789AB" });
  const b = makeVersion({
    versionId: 201,
    modelId: 200,
    sha256: SHA_B,
    files: [{ sha256: SHA_C, name: "extra.vae.safetensors", type: "VAE" }],
  });
  const noPrimary = makeVersion({ versionId: 301, modelId: 300, sha256: SHA_NO_PRIMARY });
  noPrimary.files = (noPrimary.files ?? []).map((f) => ({ ...f, primary: false }));
  civitai.addVersion(noPrimary);
  civitai.addModel(makeModel({ modelId: 100, name: "Frog", versions: [a] }), makeModel({ modelId: 200, versions: [b] }));
  civitai.addVersion(a, b);
  for (let i = 0; i < 40; i++) civitai.addVersion(makeVersion({ versionId: 1000 + i, modelId: 900, sha256: sha(0x1000 + i) }));
});

afterEach(() => civitai.reset());
afterAll(async () => {
  await civitai.stop();
});

describe("endpoints", () => {
  test("versionByHash: GET, case-insensitive, any hash type, UA/Accept/Bearer sent", async () => {
    const { client, lines } = makeClient();
    const v = await client.versionByHash(civitai.url, SHA_A.toUpperCase());
    expect(v?.id).toBe(101);
    expect((await client.versionByHash(civitai.url, "0123456789ab"))?.id).toBe(101);
    const req = civitai.requests[0];
    expect(req?.method).toBe("GET");
    expect(req?.path).toBe(`/api/v1/model-versions/by-hash/${SHA_A.toUpperCase()}`);
    expect(req?.headers["user-agent"]).toBe(UA);
    expect(req?.headers.accept).toBe("application/json");
    expect(req?.authorization).toBe(`Bearer ${KEY}`);
    expect(
      lines.some((l) => new RegExp(`^debug GET ${civitai.url}/api/v1/model-versions/by-hash/\\w+ -> 200 \\(\\d+ ms\\)$`).test(l)),
    ).toBe(true);
  });

  test("versionsByHashes: JSON array body, one element per matching file, nulls kept", async () => {
    const { client } = makeClient();
    const out = await client.versionsByHashes(civitai.url, [SHA_A, SHA_C, SHA_NO_PRIMARY, sha(0xeeee)]);
    expect(out.map((v) => v?.id ?? null).sort()).toEqual([101, 201, null].sort());
    const req = civitai.requests[0];
    expect(req?.method).toBe("POST");
    expect(req?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(req?.body ?? "")).toEqual([SHA_A, SHA_C, SHA_NO_PRIMARY, sha(0xeeee)].map((h) => h.toUpperCase()));
    expect(await client.versionsByHashes(civitai.url, [])).toEqual([]);
    expect(civitai.requests.length).toBe(1);
  });

  test("modelsByIds: ids=…&nsfw=true&limit=100, unknown ids absent", async () => {
    const { client } = makeClient();
    const models = await client.modelsByIds(civitai.url, [100, 200, 424242]);
    expect(models.map((m) => m.id)).toEqual([100, 200]);
    expect(models[0]?.modelVersions?.[0]?.id).toBe(101);
    const q = civitai.requests[0]?.query;
    expect(q?.ids).toEqual(["100", "200", "424242"]);
    expect(q?.nsfw).toEqual(["true"]);
    expect(q?.limit).toEqual(["100"]);
  });

  test("model: found, and 404 'No model with id' is null", async () => {
    const { client } = makeClient();
    expect((await client.model(civitai.url, 2833924))?.name).toBe("Mihaila Krea");
    expect(await client.model(civitai.url, 777777)).toBeNull();
    expect(civitai.counts.model).toBe(2);
  });

  test("bad input is refused before any request", async () => {
    const { client } = makeClient();
    expect((await caught(client.versionByHash(civitai.url, "../../etc/passwd"))).message).toContain("not a hex hash");
    await caught(client.versionByHash(civitai.url, `${SHA_A}?x=1`));
    await caught(client.versionsByHashes(civitai.url, ["abc"]));
    await caught(
      client.versionsByHashes(
        civitai.url,
        Array.from({ length: 101 }, (_, i) => sha(i)),
      ),
    );
    await caught(client.modelsByIds(civitai.url, [1.5]));
    expect(civitai.requests.length).toBe(0);
  });
});

describe("B: HTTP / API resilience", () => {
  test("B1: 429 Retry-After: 2 then 200: waits ≥ 2 s, one retry, a queued request waits too", async () => {
    const { client, clock, sent, lines } = makeClient({ concurrency: 1 });
    civitai.queueFaults("versionByHash", faults.rateLimit(2));
    const [a, b] = await Promise.all([client.versionByHash(civitai.url, SHA_A), client.versionByHash(civitai.url, SHA_B)]);
    expect(a?.id).toBe(101);
    expect(b?.id).toBe(201);
    expect(civitai.counts.versionByHash).toBe(3);
    expect(civitai.requests[0]?.fault).toBe("status");
    expect(client.stats.retries).toBe(1);
    expect(sent.length).toBe(3);
    // The first request got the 429; both later ones (B, queued, and A's retry) started ≥ 2 s later.
    expect(sent[1]!.at - sent[0]!.at).toBeGreaterThanOrEqual(2000);
    expect(sent[2]!.at - sent[0]!.at).toBeGreaterThanOrEqual(2000);
    expect(sent[1]!.url).toContain(SHA_B.toUpperCase());
    expect(clock.sleeps.reduce((s, x) => s + x, 0)).toBeGreaterThanOrEqual(2000);
    expect(lines.filter((l) => l.startsWith("warn ") && l.includes("asked us to slow down; pausing 2 s")).length).toBe(1);
  });

  test("T19: a shared pause is told to the display, before its log line: until when, and who asked", async () => {
    const events: string[] = [];
    const { client, clock } = makeClient({
      concurrency: 1,
      onRateLimitPause: (p) => events.push(`pause ${p.until - START} ${p.service}`),
      logger: { debug() {}, warn: (m) => events.push(`warn ${m}`) },
    });
    civitai.queueFaults("versionByHash", faults.rateLimit(2));
    expect((await client.versionByHash(civitai.url, SHA_A))?.id).toBe(101);
    const host = civitai.url.slice(7);
    expect(events).toEqual([`pause 2000 ${host}`, `warn ${host} asked us to slow down; pausing 2 s`]);
    expect(clock.now() - START).toBeGreaterThanOrEqual(2000);
  });

  test("B2: 429 Retry-After: 3600 → rate_limited with retryAt, fast; pending calls fail fast too", async () => {
    const { client, clock } = makeClient({ concurrency: 1 });
    civitai.queueFaults("versionByHash", faults.rateLimit(3600));
    const calls = [SHA_A, SHA_B, SHA_C].map((h) => caught(client.versionByHash(civitai.url, h)));
    const errors = await Promise.all(calls);
    for (const e of errors) {
      expect(e.kind).toBe("rate_limited");
      expect(e.status).toBe(429);
      expect(e.retryAt?.getTime()).toBe(START + 3_600_000);
      expect(e.message).toBe(`rate limited by ${civitai.url.slice(7)}; retry after ${new Date(START + 3_600_000).toISOString()}`);
    }
    expect(civitai.counts.versionByHash).toBe(1);
    expect(clock.sleeps).toEqual([]);
    // Later calls do not even reach the server.
    expect((await caught(client.versionsByHashes(civitai.url, [SHA_A]))).kind).toBe("rate_limited");
    expect(civitai.requests.length).toBe(1);
  });

  test("B2: 429 with an HTTP-date one hour ahead → rate_limited at that date", async () => {
    const { client, clock } = makeClient();
    civitai.queueFaults("versionByHash", faults.rateLimit(new Date(START + 3_600_000)));
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("rate_limited");
    expect(e.retryAt?.toISOString()).toBe("2026-08-20T13:00:00.000Z");
    expect(clock.sleeps).toEqual([]);
  });

  test("B2: a wait under maxRateLimitWaitMs is honoured, over it stops", async () => {
    const { client } = makeClient({ maxRateLimitWaitMs: 5_000 });
    civitai.queueFaults("versionByHash", faults.rateLimit(4), faults.rateLimit(6));
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("rate_limited");
    expect(civitai.counts.versionByHash).toBe(2);
  });

  test("B3: five 429s without Retry-After: jittered exponential delays (seeded), bounded, clear error", async () => {
    const { client, clock } = makeClient({ random: seededRandom(7) });
    civitai.setFault("versionByHash", faults.rateLimit());
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(civitai.counts.versionByHash).toBe(5);
    expect(e.kind).toBe("rate_limited");
    expect(e.message).toMatch(/^rate limited by 127\.0\.0\.1:\d+; retry after \d{4}-\d\d-\d\dT/);
    const rng = seededRandom(7);
    const expected = [0, 1, 2, 3].map((n) => Math.floor(rng() * Math.min(30_000, 1000 * 2 ** n)));
    expect(clock.sleeps).toEqual(expected);
    expect(new Set(clock.sleeps).size).toBeGreaterThan(1);
    clock.sleeps.forEach((ms, n) => expect(ms).toBeLessThan(1000 * 2 ** n));
    expect(client.stats.retries).toBe(4);
  });

  test("B4: a burst of 500/502/503/504/524 then success", async () => {
    const { client } = makeClient({ maxAttempts: 6 });
    civitai.queueFaults(
      "versionByHash",
      [500, 502, 503, 504, 524].map((s) => faults.status(s, { error: "boom" })),
    );
    expect((await client.versionByHash(civitai.url, SHA_A))?.id).toBe(101);
    expect(civitai.counts.versionByHash).toBe(6);
    expect(client.stats.retries).toBe(5);
    expect(client.stats.requests).toBe(6);
  });

  test("B4: the attempt count stays within the limit", async () => {
    const { client, clock } = makeClient({ maxAttempts: 3 });
    civitai.queueFaults("versionByHash", faults.burst(503, 5));
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("http");
    expect(e.status).toBe(503);
    expect(e.message).toContain("(3 attempts)");
    expect(civitai.counts.versionByHash).toBe(3);
    expect(clock.sleeps.length).toBe(2);
  });

  test("B4: a 503 whose Retry-After is past maxRateLimitWaitMs fails at once, unslept; a shorter one is waited out and said", async () => {
    const { client, clock, lines } = makeClient({ maxRateLimitWaitMs: 60_000 });
    civitai.queueFaults("versionByHash", faults.status(503, { error: "down" }, { "retry-after": "3600" }));
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("http");
    expect(e.status).toBe(503);
    expect(e.retryAt?.getTime()).toBe(START + 3_600_000);
    expect(e.message).toContain(`asks to be retried after ${new Date(START + 3_600_000).toISOString()}, later than the 60 s allowed`);
    expect(clock.sleeps).toEqual([]);
    expect(civitai.counts.versionByHash).toBe(1);
    civitai.reset();
    civitai.queueFaults("versionByHash", faults.status(503, { error: "down" }, { "retry-after": "45" }));
    expect((await client.versionByHash(civitai.url, SHA_A))?.id).toBe(101);
    expect(clock.sleeps).toEqual([45_000]);
    expect(lines.filter((l) => l.startsWith("warn "))).toEqual([
      expect.stringMatching(/^warn GET .* answered 503 Service Unavailable; .*; retrying in 45 s as it asks$/),
    ]);
  });

  test("B5: truncated JSON once is retried; persistent → bad_response, never a string", async () => {
    const { client } = makeClient({ maxAttempts: 3 });
    civitai.queueFaults("versionByHash", faults.truncatedJson());
    const v = await client.versionByHash(civitai.url, SHA_A);
    expect(typeof v).toBe("object");
    expect(v?.id).toBe(101);
    civitai.reset();
    civitai.setFault("*", faults.truncatedJson());
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("bad_response");
    expect(e.message).toContain("invalid or truncated JSON");
    expect(civitai.counts.versionByHash).toBe(3);
    expect((await caught(client.versionsByHashes(civitai.url, [SHA_A]))).kind).toBe("bad_response");
  });

  test("B5: wrong-shaped JSON on each endpoint → retried, then bad_response", async () => {
    const { client } = makeClient({ maxAttempts: 2 });
    civitai.setFault("*", faults.wrongShape());
    const byHash = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(byHash.kind).toBe("bad_response");
    expect(byHash.message).toContain('"items"');
    expect((await caught(client.versionsByHashes(civitai.url, [SHA_A]))).message).toContain("expected an array");
    expect((await caught(client.modelsByIds(civitai.url, [100]))).kind).toBe("bad_response");
    expect((await caught(client.model(civitai.url, 100))).kind).toBe("bad_response");
    expect(civitai.counts.versionByHash).toBe(2);
    expect(civitai.counts.versionsByHashes).toBe(2);
  });

  test("B6: Cloudflare challenge HTML with 200 → retried, then a message about a block/challenge and the User-Agent", async () => {
    const { client } = makeClient({ maxAttempts: 2 });
    civitai.setFault("versionByHash", faults.cloudflare());
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("bad_response");
    expect(e.message).toContain("Cloudflare challenge");
    expect(e.message).toContain("blocked or challenged");
    expect(e.message).toContain(UA);
    expect(civitai.counts.versionByHash).toBe(2);
  });

  test("B6: a maintenance page is named as such", async () => {
    const { client } = makeClient({ maxAttempts: 1 });
    civitai.setFault("*", faults.maintenance());
    expect((await caught(client.modelsByIds(civitai.url, [100]))).message).toContain("maintenance");
  });

  test("B7: 404 Model not found → null after exactly one request; 'Missing model file' too", async () => {
    const { client } = makeClient();
    expect(await client.versionByHash(civitai.url, sha(0xfeed))).toBeNull();
    expect(civitai.requests.length).toBe(1);
    expect(await client.versionByHash(civitai.url, SHA_NO_PRIMARY)).toBeNull();
    expect(civitai.requests.length).toBe(2);
    expect(client.stats.retries).toBe(0);
  });

  test("B8: connection refused → network error, bounded attempts", async () => {
    const closed = await startFakeCivitai({ fixtures: false });
    const host = closed.url;
    await closed.stop();
    const { client, clock } = makeClient({ civitaiHosts: [host], maxAttempts: 3 });
    const e = await caught(client.versionByHash(host, SHA_A));
    expect(e.kind).toBe("network");
    expect(e.message).toMatch(/cannot reach 127\.0\.0\.1:\d+ \(connection refused\)/);
    expect(e.message).toContain("(3 attempts)");
    expect(client.stats.requests).toBe(3);
    expect(clock.sleeps.length).toBe(2);
  });

  test("B9: a server that never answers: every attempt has a fresh timeout and reaches the server", async () => {
    const { client } = makeClient({ timeoutMs: 150, maxAttempts: 3 });
    civitai.setFault("versionByHash", faults.hang());
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("network");
    expect(e.message).toContain("no answer from");
    expect(civitai.counts.versionByHash).toBe(3);
  });

  test("B9: a body cut mid-stream is retried like a network error", async () => {
    const { client } = makeClient({ maxAttempts: 3 });
    civitai.queueFaults("versionsByHashes", faults.cutBody());
    expect((await client.versionsByHashes(civitai.url, [SHA_A]))[0]?.id).toBe(101);
    expect(civitai.counts.versionsByHashes).toBe(2);
    civitai.setFault("versionByHash", faults.cutBody());
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("network");
    expect(e.message).toContain("connection closed before the answer was complete");
    expect(civitai.counts.versionByHash).toBe(3);
  });

  test("B10: POST by-hash answered 503 once is retried", async () => {
    const { client } = makeClient();
    civitai.queueFaults("versionsByHashes", faults.status(503, { error: "Service Unavailable" }));
    const out = await client.versionsByHashes(civitai.url, [SHA_B]);
    expect(out.map((v) => v?.id)).toEqual([201]);
    expect(civitai.counts.versionsByHashes).toBe(2);
    expect(civitai.requests[0]?.body).toBe(civitai.requests[1]?.body);
  });

  test("B11: abort during an in-flight request → aborted, no request after the abort", async () => {
    const controller = new AbortController();
    const { client } = makeClient({ signal: controller.signal, concurrency: 1 });
    civitai.setFault("versionByHash", faults.hang());
    const first = caught(client.versionByHash(civitai.url, SHA_A));
    const queued = caught(client.versionByHash(civitai.url, SHA_B));
    while (civitai.counts.versionByHash < 1) await Bun.sleep(5);
    controller.abort();
    const [e1, e2] = await Promise.all([first, queued]);
    expect(e1.kind).toBe("aborted");
    expect(e2.kind).toBe("aborted");
    expect((await caught(client.modelsByIds(civitai.url, [100]))).kind).toBe("aborted");
    await Bun.sleep(50);
    expect(civitai.requests.length).toBe(1);
    expect(client.stats.retries).toBe(0);
  });

  test("unauthorized, forbidden, region_blocked and other 4xx get specific messages", async () => {
    const { client } = makeClient();
    civitai.queueFaults("versionByHash", faults.unauthorized());
    const e401 = await caught(client.versionByHash(civitai.url, SHA_A));
    expect([e401.kind, e401.status]).toEqual(["unauthorized", 401]);
    expect(e401.message).toContain(`${civitai.url.slice(7)} rejected the API key (401): check CIVITAI_API_KEY`);

    civitai.queueFaults("versionByHash", faults.cloudflare(403));
    const e403 = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e403.kind).toBe("forbidden");
    expect(e403.message).toMatch(/Cloudflare/);

    civitai.queueFaults("model", faults.regionBlocked());
    const e451 = await caught(client.model(civitai.url, 100));
    expect(e451.kind).toBe("region_blocked");
    expect(e451.message).toContain('"Access to this service is not available in your region due to legal restrictions."');

    civitai.queueFaults(
      "versionsByHashes",
      faults.status(400, { error: `Request must include an array of SHA256 Hashes. ${"x".repeat(400)}` }),
    );
    const e400 = await caught(client.versionsByHashes(civitai.url, [SHA_A]));
    expect([e400.kind, e400.status]).toEqual(["http", 400]);
    expect(e400.message).toContain('"Request must include an array of SHA256 Hashes. xxx');
    expect(e400.message.length).toBeLessThan(400);
    expect(civitai.requests.length).toBe(4);
  });

  test("adaptive concurrency: a 429 halves it (max in-flight at the server) and successes restore it", async () => {
    const { client } = makeClient({ concurrency: 4, concurrencyRecoverAfter: 4 });
    civitai.queueFaults("versionByHash", faults.rateLimit(1));
    civitai.setFault("versionByHash", faults.delay(60));
    const hashes = Array.from({ length: 30 }, (_, i) => sha(0x1000 + i));
    const out = await Promise.all(hashes.map((h) => client.versionByHash(civitai.url, h)));
    expect(out.every((v) => v !== null)).toBe(true);
    const reqs = civitai.requests;
    expect(reqs[0]?.fault).toBe("status");
    expect(Math.max(...reqs.slice(0, 4).map((r) => r.inFlight))).toBeGreaterThan(2);
    // The first requests started after the 429 see at most 2 in flight.
    expect(reqs[4]!.inFlight).toBeLessThanOrEqual(2);
    expect(reqs[5]!.inFlight).toBeLessThanOrEqual(2);
    expect(client.concurrency).toBe(4);
    expect(Math.max(...reqs.slice(-8).map((r) => r.inFlight))).toBeGreaterThan(2);
  });
});

describe("F6/F8: the key", () => {
  test("F6: a sentinel key appears in no error, cause, log line or stats on any error path", async () => {
    const other = await startFakeCivitai({ fixtures: false });
    const closed = await startFakeCivitai({ fixtures: false });
    const closedUrl = closed.url;
    await closed.stop();
    const echo = { error: `invalid token ${KEY}`, message: `Authorization: Bearer ${KEY}` };
    const { client, lines } = makeClient({
      civitaiHosts: [civitai.origin, closedUrl],
      timeoutMs: 100,
      maxAttempts: 2,
      maxRateLimitWaitMs: 60_000,
    });
    const cases: [string, () => void, () => Promise<unknown>][] = [
      ["401", () => civitai.setFault("*", faults.status(401, echo)), () => client.versionByHash(civitai.url, SHA_A)],
      ["403", () => civitai.setFault("*", faults.status(403, echo)), () => client.versionByHash(civitai.url, SHA_A)],
      ["404", () => civitai.setFault("*", faults.status(404, echo)), () => client.versionByHash(civitai.url, SHA_A)],
      ["451", () => civitai.setFault("*", faults.status(451, echo)), () => client.modelsByIds(civitai.url, [100])],
      ["500", () => civitai.setFault("*", faults.status(500, echo)), () => client.versionsByHashes(civitai.url, [SHA_A])],
      ["html", () => civitai.setFault("*", faults.status(200, `<html>${KEY}</html>`)), () => client.model(civitai.url, 100)],
      ["shape", () => civitai.setFault("*", faults.wrongShape({ [KEY]: KEY })), () => client.versionByHash(civitai.url, SHA_A)],
      ["truncated", () => civitai.setFault("*", faults.truncatedJson()), () => client.versionByHash(civitai.url, SHA_A)],
      ["timeout", () => civitai.setFault("*", faults.hang()), () => client.versionByHash(civitai.url, SHA_A)],
      ["cut", () => civitai.setFault("*", faults.cutBody()), () => client.versionByHash(civitai.url, SHA_A)],
      ["refused", () => {}, () => client.versionByHash(closedUrl, SHA_A)],
      [
        "redirect",
        () => civitai.setFault("*", faults.redirect(`${other.url}/x?token=${KEY}&key=${KEY}`)),
        () => client.versionByHash(civitai.url, SHA_A),
      ],
      ["429-limit", () => civitai.setFault("*", faults.rateLimit(3600)), () => client.versionByHash(civitai.url, SHA_A)],
    ];
    const seen: string[] = [];
    for (const [name, arrange, act] of cases) {
      civitai.reset();
      arrange();
      const e = await caught(act());
      seen.push(`${name}:${e.kind}`);
      for (const text of [
        e.message,
        String(e),
        e.stack ?? "",
        JSON.stringify(e),
        Bun.inspect(e),
        Bun.inspect(e.cause),
        JSON.stringify(Object.entries(e)),
      ]) {
        expect(text).not.toContain(KEY);
      }
      expect(e.cause).toBeUndefined();
    }
    expect(seen).toEqual([
      "401:unauthorized",
      "403:forbidden",
      "404:http",
      "451:region_blocked",
      "500:http",
      "html:bad_response",
      "shape:bad_response",
      "truncated:bad_response",
      "timeout:network",
      "cut:network",
      "refused:network",
      "redirect:http",
      "429-limit:rate_limited",
    ]);
    expect(lines.length).toBeGreaterThan(20);
    expect(lines.some((l) => l.includes("***"))).toBe(true);
    for (const l of lines) expect(l).not.toContain(KEY);
    expect(JSON.stringify(client.stats)).not.toContain(KEY);
    expect(other.requests.length).toBe(0);
    await other.stop();
  });

  test("F6: the key goes as Bearer to a Civitai host only, never in a URL", async () => {
    const other = await startFakeCivitai();
    const { client } = makeClient();
    await client.versionByHash(civitai.url, SHA_A);
    await client.versionByHash(other.url, "0DF040C8CD48125174B54C251A87822E8ED61D529A92C42C1FA1BEF483B10B0D");
    expect(civitai.requests[0]?.authorization).toBe(`Bearer ${KEY}`);
    expect(other.requests.length).toBe(1);
    expect(other.requests[0]?.authorization).toBeNull();
    for (const r of [...civitai.requests, ...other.requests]) expect(JSON.stringify(r.query) + r.path).not.toContain(KEY);
    await other.stop();
  });

  test("F8: a redirect to another origin is refused: that origin never sees the request or the key", async () => {
    const other = await startFakeCivitai();
    const { client } = makeClient();
    civitai.queueFaults("versionByHash", faults.redirect(`${other.url}/api/v1/model-versions/by-hash/${SHA_A}`));
    const e = await caught(client.versionByHash(civitai.url, SHA_A));
    expect(e.kind).toBe("http");
    expect(e.status).toBe(302);
    expect(e.message).toContain("redirect leads to another host");
    expect(other.requests.length).toBe(0);
    expect(civitai.requests[0]?.authorization).toBe(`Bearer ${KEY}`);
    await other.stop();
  });

  test("F8: same-origin and configured-host redirects are followed; the key goes only to configured hosts", async () => {
    const mirror = await startFakeCivitai();
    mirror.addVersion(makeVersion({ versionId: 101, modelId: 100, sha256: SHA_A }));
    const { client } = makeClient({ civitaiHosts: [civitai.origin, mirror.origin] });
    civitai.queueFaults("versionByHash", faults.redirect(`/api/v1/model-versions/by-hash/${SHA_A}`, 301));
    expect((await client.versionByHash(civitai.url, SHA_A))?.id).toBe(101);
    expect(civitai.requests.map((r) => r.authorization)).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`]);
    civitai.queueFaults("versionByHash", faults.redirect(`${mirror.url}/api/v1/model-versions/by-hash/${SHA_A}`, 307));
    expect((await client.versionByHash(civitai.url, SHA_A))?.id).toBe(101);
    expect(mirror.requests[0]?.authorization).toBe(`Bearer ${KEY}`);
    await mirror.stop();
  });

  test("F8: redirect policy: https → http is refused, even to a configured host", () => {
    const trusted = new Set(["https://civitai.com", "http://civitai.com"]);
    expect(redirectRefusal("https://civitai.com/a", "http://civitai.com/b", trusted)).toContain("downgrades https to http");
    expect(redirectRefusal("https://civitai.com/a", "/b", trusted)).toBeUndefined();
    expect(redirectRefusal("https://civitai.com/a", "https://evil.example/b", trusted)).toContain("another host");
    expect(redirectRefusal("https://civitai.com/a", "file:///etc/passwd", trusted)).toContain("file:");
    expect(redirectRefusal("https://civitai.com/a", "http://[bad", trusted)).toContain("not a valid URL");
  });

  const openssl = Bun.which("openssl");
  test.skipIf(!openssl)("F8: an https → http downgrade redirect is refused end to end (self-signed TLS)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "civitai-meta-tls-"));
    try {
      const pem = makeSelfSignedCertificate(dir);
      const plain = await startFakeCivitai();
      const tls = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        tls: { cert: readFileSync(pem.cert, "utf8"), key: readFileSync(pem.key, "utf8") },
        fetch: (req) => new Response(null, { status: 302, headers: { location: `${plain.url}${new URL(req.url).pathname}` } }),
      });
      const httpsOrigin = `https://127.0.0.1:${tls.port}`;
      const insecureFetch = ((input: string | URL | Request, init?: RequestInit) =>
        fetch(input, { ...init, tls: { rejectUnauthorized: false } } as RequestInit)) as typeof fetch;
      const { client } = makeClient({ civitaiHosts: [httpsOrigin, plain.origin], fetch: insecureFetch });
      const e = await caught(client.versionByHash(httpsOrigin, SHA_A));
      expect(e.kind).toBe("http");
      expect(e.message).toContain("downgrades https to http");
      expect(plain.requests.length).toBe(0);
      await tls.stop(true);
      await plain.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the fake Civitai itself", () => {
  const post = (url: string, body: unknown) =>
    fetch(`${url}/api/v1/model-versions/by-hash`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  test("POST by-hash validates like the real endpoint", async () => {
    const tooMany = await post(
      civitai.url,
      Array.from({ length: 101 }, (_, i) => sha(i)),
    );
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { error: string }).error).toStartWith("Request must include an array of SHA256 Hashes.");
    expect((await post(civitai.url, { hashes: [SHA_A] })).status).toBe(400);
    expect((await post(civitai.url, ["abc"])).status).toBe(400);
  });

  test("POST by-hash: duplicates across versions, deterministic shuffle; GET picks the oldest published", async () => {
    const a = await startFakeCivitai({ fixtures: false, seed: 3 });
    const b = await startFakeCivitai({ fixtures: false, seed: 3 });
    for (const f of [a, b]) {
      f.addVersion(
        makeVersion({ versionId: 2, modelId: 1, sha256: SHA_A, publishedAt: "2024-01-01T00:00:00Z" }),
        makeVersion({ versionId: 1, modelId: 1, sha256: SHA_A, publishedAt: "2025-01-01T00:00:00Z" }),
        ...Array.from({ length: 6 }, (_, i) => makeVersion({ versionId: 10 + i, modelId: 5, sha256: sha(0x500 + i) })),
      );
    }
    const hashes = [SHA_A, ...Array.from({ length: 6 }, (_, i) => sha(0x500 + i))];
    const idsA = ((await (await post(a.url, hashes)).json()) as { id: number }[]).map((v) => v.id);
    const idsB = ((await (await post(b.url, hashes)).json()) as { id: number }[]).map((v) => v.id);
    expect(idsA).toEqual(idsB);
    expect([...idsA].sort((x, y) => x - y)).toEqual([1, 2, 10, 11, 12, 13, 14, 15]);
    expect(idsA).not.toEqual([...idsA].sort((x, y) => x - y));
    const got = (await (await fetch(`${a.url}/api/v1/model-versions/by-hash/${SHA_A.toLowerCase()}`)).json()) as { id: number };
    expect(got.id).toBe(2);
    await a.stop();
    await b.stop();
  });

  test("fixtures are served: version 1318 by SHA-256 and by AutoV2, model 2833924 by id", async () => {
    const byHash = (await (await fetch(`${civitai.url}/api/v1/model-versions/by-hash/0df040c8cd`)).json()) as { id: number };
    expect(byHash.id).toBe(1318);
    const res = await fetch(`${civitai.url}/api/v1/models?ids=2833924&ids=1`);
    const page = (await res.json()) as { items: { id: number }[]; metadata: unknown };
    expect(page.items.map((m) => m.id)).toEqual([2833924]);
    expect(page.metadata).toEqual({});
    const missing = await fetch(`${civitai.url}/api/v1/models/5`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "No model with id 5" });
  });

  test("a hanging request ends when the client gives up, so in-flight counts stay true", async () => {
    civitai.setFault("*", faults.hang());
    await fetch(`${civitai.url}/api/v1/models/1`, { signal: AbortSignal.timeout(50) }).catch(() => undefined);
    for (let i = 0; i < 100 && civitai.inFlight > 0; i++) await Bun.sleep(5);
    expect(civitai.inFlight).toBe(0);
  });
});

describe("T4: answer sizes are capped as they stream", () => {
  /** A server answering GET by-hash with `body()` and counting the bytes it sent. */
  function sizedServer(answer: () => { status: number; stream: ReadableStream<Uint8Array> | string }) {
    let sent = 0;
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      idleTimeout: 0,
      fetch() {
        const { status, stream } = answer();
        if (typeof stream === "string") {
          sent += Buffer.byteLength(stream);
          return new Response(stream, { status, headers: { "content-type": "application/json" } });
        }
        const reader = stream.getReader();
        const counted = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            sent += value.byteLength;
            controller.enqueue(value);
          },
          cancel: () => reader.cancel(),
        });
        return new Response(counted, { status, headers: { "content-type": "application/json" } });
      },
    });
    const url = `http://127.0.0.1:${server.port}`;
    return { url, sent: () => sent, stop: () => server.stop(true) };
  }

  const endless = (): ReadableStream<Uint8Array> => {
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    // 64 MiB at most, so a client without a cap cannot run away in this test; the kernel's socket
    // buffers let the server get a few MiB ahead of what the client reads, never 64.
    let left = 1024;
    return new ReadableStream({
      pull(controller) {
        if (left-- <= 0) return controller.close();
        controller.enqueue(chunk);
      },
    });
  };

  test("T4: exactly the cap is read; a declared length over it fails that request at once (not retried)", async () => {
    const version = JSON.stringify(makeVersion({ versionId: 7, modelId: 70, sha256: SHA_A }));
    const body = version.padEnd(10_000, " ");
    const server = sizedServer(() => ({ status: 200, stream: body }));
    try {
      const ok = makeClient({ civitaiHosts: [server.url], maxBodyBytes: 10_000 });
      expect((await ok.client.versionByHash(server.url, SHA_A))?.id).toBe(7);
      const tight = makeClient({ civitaiHosts: [server.url], maxBodyBytes: 9_999 });
      const e = await caught(tight.client.versionByHash(server.url, SHA_A));
      expect(e.kind).toBe("bad_response");
      expect(e.message).toContain("the answer declares 10000 bytes, more than 9999 bytes, the most one API answer may be");
      expect(tight.sent).toHaveLength(1);
    } finally {
      server.stop();
    }
  });

  test("T4: an endless 2xx body stops at the cap", async () => {
    const server = sizedServer(() => ({ status: 200, stream: endless() }));
    try {
      const { client, sent } = makeClient({ civitaiHosts: [server.url], maxBodyBytes: 256 * 1024 });
      const e = await caught(client.versionByHash(server.url, SHA_A));
      expect(e.message).toContain("the answer is larger than 262144 bytes, the most one API answer may be; reading stopped there");
      expect(sent).toHaveLength(1);
      expect(server.sent()).toBeLessThan(16 * 1024 * 1024);
    } finally {
      server.stop();
    }
  });

  test("T4: an endless error body is cut to 64 KiB; its status still decides (a 503 is retried)", async () => {
    let calls = 0;
    const version = JSON.stringify(makeVersion({ versionId: 8, modelId: 80, sha256: SHA_A }));
    const server = sizedServer(() => (++calls === 1 ? { status: 503, stream: endless() } : { status: 200, stream: version }));
    try {
      const { client, sent } = makeClient({ civitaiHosts: [server.url] });
      expect((await client.versionByHash(server.url, SHA_A))?.id).toBe(8);
      expect(sent).toHaveLength(2);
      expect(server.sent()).toBeLessThan(16 * 1024 * 1024);
    } finally {
      server.stop();
    }
  });

  test("T4: the default cap holds a real 100-version by-hash answer many times over", () => {
    // The 2023 wiki model's versions carry 10 images each with their generation parameters.
    const model = JSON.parse(
      readFileSync(join(import.meta.dir, "../../fixtures/civitai/model-detail-1102-wiki-2023-example.json"), "utf8"),
    );
    const versions = Array.from({ length: 100 }, (_, i) => model.modelVersions[i % model.modelVersions.length]);
    const realistic = Buffer.byteLength(JSON.stringify(versions));
    expect(versions.every((v) => v.images.length === 10)).toBe(true);
    expect(realistic * 32).toBeLessThan(MAX_API_BODY_BYTES);
    // Even a 60 KB ComfyUI workflow in the meta of every one of the 1,000 images fits.
    const comfy = "x".repeat(60_000);
    const heavy = versions.map((v) => ({ ...v, images: v.images.map((img: object) => ({ ...img, meta: { comfy } })) }));
    expect(Buffer.byteLength(JSON.stringify(heavy))).toBeLessThan(MAX_API_BODY_BYTES);
  });
});
