import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fetchImage, MAX_IMAGE_BYTES, type ImageFetchOptions } from "../../../src/preview/image-fetch.ts";
import { imageCachePath, openImageCache } from "../../../src/preview/image-cache.ts";
import { loadPreviews } from "../../../src/preview/previews.ts";
import { nsfwMask } from "../../../src/preview/nsfw.ts";
import { sizedImageUrl, thumbnailVariant } from "../../../src/preview/image-url.ts";
import { faults, startFakeCivitai, type FakeCivitai } from "../../helpers/fake-civitai.ts";
import { makeJpeg, makePng, TINY_GIF, TINY_WEBP } from "../../helpers/images.ts";
import { makeCivitai, makeRecord } from "../../helpers/sample-inventory.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

let civitai: FakeCivitai;
const tmp = tmpDirs("civitai-meta-previews-");
const jpeg = makeJpeg(4, 6, (x, y) => [40 * x, 30 * y, 120]);
const png = makePng(8, 12, (x, y) => [x * 20, y * 10, 200]);

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
  civitai.addImage("jpeg", jpeg);
  civitai.addImage("png", png);
  civitai.addImage("webp", TINY_WEBP);
  civitai.addImage("gif", TINY_GIF);
  civitai.addImage("html", "<!DOCTYPE html><html><title>Just a moment...</title></html>", "image/jpeg");
  civitai.addImage("svg", '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml");
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});
beforeEach(() => civitai.reset());

const opts = (over: Partial<ImageFetchOptions> = {}): ImageFetchOptions => ({
  policy: { extraOrigin: civitai.url },
  userAgent: "civitai-meta/test",
  timeoutMs: 2000,
  retryDelayMs: 10,
  ...over,
});

describe("fetchImage", () => {
  test("JPEG, PNG, WebP and GIF bytes come back as they are, sniffed", async () => {
    for (const [key, kind] of [
      ["jpeg", "jpeg"],
      ["png", "png"],
      ["webp", "webp"],
      ["gif", "gif"],
    ] as const) {
      const got = await fetchImage(civitai.imageUrl(key), opts());
      expect(got.ok).toBe(true);
      if (got.ok) expect(got.image.kind).toBe(kind);
    }
  });

  test("never with the API key or a cookie: only Accept and a User-Agent", async () => {
    await fetchImage(civitai.imageUrl("jpeg"), opts());
    const req = civitai.requests.find((r) => r.route === "image")!;
    expect(req.authorization).toBeNull();
    expect(req.headers.cookie).toBeUndefined();
    expect(req.headers["user-agent"]).toBe("civitai-meta/test");
  });

  test("a host that is not Civitai's (nor the API origin) is refused without a request", async () => {
    const got = await fetchImage("https://evil.example/x.jpeg", opts());
    expect(got).toEqual({ ok: false, reason: "the image is on another host (evil.example), not Civitai's image hosts" });
    const other = await fetchImage(civitai.imageUrl("jpeg"), opts({ policy: {} }));
    expect(other.ok).toBe(false);
    expect(civitai.requests).toHaveLength(0);
  });

  test("a redirect to another host is refused", async () => {
    civitai.queueFaults("image", faults.redirect("https://evil.example/x.jpeg"));
    const got = await fetchImage(civitai.imageUrl("jpeg"), opts());
    expect(got).toEqual({ ok: false, reason: "redirected away: the image is on another host (evil.example), not Civitai's image hosts" });
  });

  test("a redirect on the allowed host is followed", async () => {
    civitai.queueFaults("image", faults.redirect(civitai.imageUrl("png")));
    const got = await fetchImage(civitai.imageUrl("jpeg"), opts());
    expect(got.ok && got.image.kind).toBe("png");
  });

  test("HTML sent as image/jpeg, SVG, a 404, a 50 MB body, a truncated body and a silent server each fail with a reason", async () => {
    expect(await fetchImage(civitai.imageUrl("html"), opts())).toEqual({ ok: false, reason: "an HTML page, not an image" });
    expect(await fetchImage(civitai.imageUrl("svg"), opts())).toEqual({
      ok: false,
      reason: "an SVG image (not accepted: SVG can carry scripts)",
    });
    expect(await fetchImage(civitai.imageUrl("missing"), opts())).toEqual({
      ok: false,
      reason: `HTTP 404 from 127.0.0.1:${civitai.port} (the image is gone)`,
    });

    civitai.queueFaults("image", faults.status(200, "x".repeat(50 * 1024 * 1024), { "content-type": "image/jpeg" }));
    expect(await fetchImage(civitai.imageUrl("jpeg"), opts())).toEqual({ ok: false, reason: `larger than 1.0 MiB` });

    civitai.queueFaults("image", faults.cutBody(), faults.cutBody());
    const cut = await fetchImage(civitai.imageUrl("png"), opts());
    expect(cut.ok).toBe(false);
    if (!cut.ok) expect(cut.reason).toMatch(/truncated|closed/);

    civitai.queueFaults("image", faults.truncatedJson()); // half the image, status 200, no length
    expect(await fetchImage(civitai.imageUrl("png"), opts())).toEqual({ ok: false, reason: "truncated PNG image" });

    civitai.queueFaults("image", faults.hang()); // a timeout is not retried
    const started = Date.now();
    expect(await fetchImage(civitai.imageUrl("jpeg"), opts({ timeoutMs: 300 }))).toEqual({
      ok: false,
      reason: "no complete answer within 0.3 s",
      unreachable: true,
    });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test("a 503 is tried once more", async () => {
    civitai.queueFaults("image", faults.status(503, "busy"));
    const got = await fetchImage(civitai.imageUrl("jpeg"), opts());
    expect(got.ok).toBe(true);
    expect(civitai.counts.image).toBe(2);
  });

  test("the body cap is the documented 1 MiB", () => {
    expect(MAX_IMAGE_BYTES).toBe(1024 * 1024);
  });
});

describe("loadPreviews with the image cache", () => {
  const record = (path: string, key: string, nsfwLevel = 1) =>
    makeRecord({
      path,
      civitai: makeCivitai({ images: [{ url: civitai.imageUrl(key), nsfwLevel, width: 768, height: 1152, type: "image" }] }),
    });

  test("each image is fetched once, ever: a second run (and a second record with the same image) uses the cache", async () => {
    const dir = tmp.make();
    const cache = openImageCache(dir);
    const records = [record("/m/a.safetensors", "jpeg"), record("/m/b.safetensors", "jpeg"), record("/m/c.safetensors", "png")];
    const options = { nsfwMask: nsfwMask("pg13"), width: 224, cache, offline: false, fetch: opts() };
    const first = await loadPreviews(records, options);
    expect(first.stats).toMatchObject({ images: 3, fetched: 2, fromCache: 0, failed: 0 });
    expect(civitai.counts.image).toBe(2);
    // The CDN was asked for a small still, not the original.
    for (const r of civitai.requests) expect(r.path).toContain(`/${thumbnailVariant(224)}/`);
    const second = await loadPreviews(records, options);
    expect(second.stats).toMatchObject({ images: 3, fetched: 0, fromCache: 2 });
    expect(civitai.counts.image).toBe(2);
    const a = second.outcomes.get("/m/a.safetensors");
    expect(a?.kind === "image" && Buffer.from(a.bytes).equals(Buffer.from(jpeg))).toBe(true);
    // Cached files are named by a hash of the URL, in two-character folders; no temp file left.
    const files = readdirSync(join(dir, "images"), { recursive: true }) as string[];
    expect(files.filter((f) => f.includes("/"))).toHaveLength(2);
    expect(files.some((f) => f.includes(".civitai-meta-tmp-"))).toBe(false);
  });

  test("a damaged cache entry is a miss and is replaced; offline, a miss fails and says so", async () => {
    const dir = tmp.make();
    const cache = openImageCache(dir);
    const records = [record("/m/a.safetensors", "png")];
    const url = sizedImageUrl(civitai.imageUrl("png"), 224);
    const options = { nsfwMask: 3, width: 224, cache, offline: true, fetch: opts() };
    const offline = await loadPreviews(records, options);
    expect(offline.outcomes.get("/m/a.safetensors")).toEqual({
      kind: "failed",
      url,
      reason: "offline, and the image is not in the image cache",
    });
    expect(civitai.counts.image).toBe(0);

    await loadPreviews(records, { ...options, offline: false });
    const path = imageCachePath(join(dir, "images"), url);
    expect(existsSync(path)).toBe(true);
    writeFileSync(path, png.subarray(0, 20)); // torn
    const again = await loadPreviews(records, { ...options, offline: false });
    expect(again.stats.fetched).toBe(1);
    expect(civitai.counts.image).toBe(2);
  });

  test("records without an allowed image are 'none' with the reason; failures are counted by reason", async () => {
    const records = [
      record("/m/r.safetensors", "jpeg", 4),
      makeRecord({ path: "/m/nf.safetensors", status: "not_found" }),
      record("/m/404a.safetensors", "nope1"),
      record("/m/404b.safetensors", "nope2"),
      record("/m/html.safetensors", "html"),
    ];
    const result = await loadPreviews(records, { nsfwMask: 3, width: 224, cache: null, offline: false, fetch: opts() });
    expect(result.outcomes.get("/m/r.safetensors")).toEqual({
      kind: "none",
      reason: "no image is rated PG-13 or lower (--nsfw-level allows more)",
    });
    expect(result.outcomes.get("/m/nf.safetensors")).toEqual({ kind: "none", reason: "not identified on Civitai" });
    expect(result.stats).toMatchObject({ images: 0, none: 2, failed: 3 });
    expect(result.stats.failures).toEqual([
      { reason: `HTTP 404 from 127.0.0.1:${civitai.port} (the image is gone)`, count: 2 },
      { reason: "an HTML page, not an image", count: 1 },
    ]);
  });
});

describe("a host that stops answering", () => {
  test("one dead image host does not stop the images of another: the count is per host, and the reason names it", async () => {
    const dead = "https://imagecache.civitai.com/xG1nkqKTMzGDvpLrqFT7WA";
    const image = (url: string) => [{ url, nsfwLevel: 1, width: 1, height: 1, type: "image" }];
    // Ten previews on a host that never answers (answered here, no request made), then three on the fake.
    const records = [
      ...Array.from({ length: 10 }, (_, i) =>
        makeRecord({ path: `/m/dead${i}.safetensors`, civitai: makeCivitai({ images: image(`${dead}/d${i}/original=true/d${i}.jpeg`) }) }),
      ),
      ...["jpeg", "png", "webp"].map((key) =>
        makeRecord({ path: `/m/live-${key}.safetensors`, civitai: makeCivitai({ images: image(civitai.imageUrl(key)) }) }),
      ),
    ];
    const result = await loadPreviews(records, {
      nsfwMask: 3,
      width: 224,
      cache: null,
      offline: false,
      concurrency: 1,
      fetch: opts(),
      fetchImage: (url, options) =>
        url.startsWith(dead)
          ? Promise.resolve({ ok: false, reason: "host name not found (DNS)", unreachable: true })
          : fetchImage(url, options),
    });
    expect(["jpeg", "png", "webp"].map((key) => result.outcomes.get(`/m/live-${key}.safetensors`)?.kind)).toEqual([
      "image",
      "image",
      "image",
    ]);
    expect(result.stats.failures.map((f) => [f.reason, f.count])).toEqual([
      ["host name not found (DNS)", 8],
      ["not asked: the image host imagecache.civitai.com did not answer 8 times in a row", 2],
    ]);
  });

  test(`after ${8} images in a row without an answer, the rest are not asked`, async () => {
    const records = Array.from({ length: 20 }, (_, i) =>
      makeRecord({
        path: `/m/${i}.safetensors`,
        civitai: makeCivitai({ images: [{ url: civitai.imageUrl(`k${i}`), nsfwLevel: 1, width: 1, height: 1, type: "image" }] }),
      }),
    );
    civitai.setFault("image", faults.hang());
    try {
      const started = Date.now();
      const result = await loadPreviews(records, {
        nsfwMask: 3,
        width: 224,
        cache: null,
        offline: false,
        concurrency: 1, // with more, the fetches in flight when it gives up still finish
        fetch: opts({ timeoutMs: 100 }),
      });
      expect(result.stats.failed).toBe(20);
      const reasons = result.stats.failures.map((f) => [f.reason, f.count]);
      expect(reasons).toEqual([
        [`not asked: the image host 127.0.0.1:${civitai.port} did not answer 8 times in a row`, 12],
        ["no complete answer within 0.1 s", 8],
      ]);
      // Timeouts are not retried: one request per image asked, and the run stayed short.
      expect(civitai.counts.image).toBe(8);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      civitai.setFault("image", null);
    }
  });
});
