/**
 * `--format html` and `scan --write-previews` end to end: the CLI as a child process against the
 * fake Civitai, which also serves the images (`--api-url` allows its host for images).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { faults, makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import { makeJpeg, makePng, TINY_WEBP } from "../helpers/images.ts";
import { validateInventory } from "../helpers/schema.ts";
import type { ApiImage } from "../../src/civitai/civitai-types.ts";

// Each test runs the CLI several times, on a shared 2-core machine.
setDefaultTimeout(60_000);

const tmp = tmpDirs("civitai-meta-gallery-");
let civitai: FakeCivitai;
const KEY = "SENTINEL-KEY-5d1e7a90";
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const jpeg = makeJpeg(3, 4, (x, y) => [60 * x, 50 * y, 150]);
const png = makePng(6, 8, () => [200, 80, 40]);

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});
beforeEach(() => {
  civitai.reset();
  civitai.clearData();
  civitai.addImage("jpeg", jpeg);
  civitai.addImage("png", png);
  civitai.addImage("webp", TINY_WEBP);
  civitai.addImage("html", "<!DOCTYPE html><html><body>Just a moment...</body></html>", "image/jpeg");
});

interface Spec {
  name: string;
  model: string;
  /** Image keys on the fake, or full URLs, with their rating. */
  images: { key: string; nsfwLevel: number }[];
}

let nextId = 100;
/** Model files on disk, each known to the fake with the given images. */
function library(specs: Spec[]): string {
  const dir = tmp.make();
  for (const s of specs) {
    const file = join(dir, s.name);
    mkdirSync(join(file, ".."), { recursive: true });
    const content = `model bytes of ${s.name}`;
    writeFileSync(file, content);
    utimesSync(file, PAST, PAST);
    const modelId = nextId++;
    const images: ApiImage[] = s.images.map((i) => ({
      url: i.key.startsWith("http") ? i.key : civitai.imageUrl(i.key),
      nsfwLevel: i.nsfwLevel,
      width: 768,
      height: 1152,
      type: "image",
    }));
    const version = makeVersion({ versionId: modelId * 10, modelId, sha256: sha256(content), modelName: s.model, extra: { images } });
    civitai.addModel(makeModel({ modelId, name: s.model, versions: [version] }));
  }
  return dir;
}

const imageRequests = () => civitai.requests.filter((r) => r.route === "image");

describe("scan --format html", () => {
  test("one file with embedded previews; bad images leave their card without one, say why, and the gallery is still written", async () => {
    const dir = library([
      { name: "loras/a.safetensors", model: "Alpha", images: [{ key: "jpeg", nsfwLevel: 1 }] },
      {
        name: "loras/b.safetensors",
        model: "Beta",
        images: [
          { key: "png", nsfwLevel: 4 },
          { key: "webp", nsfwLevel: 2 },
        ],
      },
      { name: "loras/c.safetensors", model: "Gamma", images: [{ key: "png", nsfwLevel: 8 }] },
      { name: "loras/d.safetensors", model: "Delta", images: [{ key: "gone-404", nsfwLevel: 1 }] },
      { name: "loras/e.safetensors", model: "Epsilon", images: [{ key: "html", nsfwLevel: 1 }] },
      { name: "loras/f.safetensors", model: "Zeta", images: [{ key: "https://evil.example/x/original=true/y.jpeg", nsfwLevel: 1 }] },
    ]);
    writeFileSync(join(dir, "loras/unknown.safetensors"), "nobody knows me");
    const cache = tmp.make();
    const out = join(tmp.make(), "gallery.html");
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "-o", out], { env: { CIVITAI_API_KEY: KEY } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("Wrote HTML gallery to");
    expect(r.stderr).toContain("3 preview images could not be loaded:");
    expect(r.stderr).toContain("HTTP 404");
    const html = readFileSync(out, "utf8");
    expect(html).toStartWith("<!DOCTYPE html>");
    expect(html.match(/<img src="data:image\/jpeg;base64,/g)).toHaveLength(1);
    expect(html.match(/<img src="data:image\/webp;base64,/g)).toHaveLength(1); // Beta: the PG-13 image, not the R one
    expect(html).toContain(`<img src="data:image/jpeg;base64,${Buffer.from(jpeg).toString("base64")}"`);
    expect(html).toContain("No preview: no image is rated PG-13 or lower (--nsfw-level allows more)");
    expect(html).toContain(`Preview not loaded: HTTP 404 from 127.0.0.1:${civitai.port} (the image is gone)`);
    expect(html).toContain("Preview not loaded: an HTML page, not an image");
    expect(html).toContain("Preview not loaded: the image is on another host (evil.example)");
    expect(html).toContain("No preview: not identified on Civitai");
    expect(html).toContain("3 previews could not be loaded (the cards say why)");
    // The key went to the API, never to the image host.
    const api = civitai.requests.filter((q) => q.route !== "image");
    expect(api.length).toBeGreaterThan(0);
    expect(api.every((q) => q.authorization === `Bearer ${KEY}`)).toBe(true);
    expect(imageRequests().length).toBe(4);
    expect(imageRequests().every((q) => q.authorization === null)).toBe(true);
    expect(html).not.toContain(KEY);
    // Nothing was written into the model folder.
    expect(readdirSync(join(dir, "loras")).sort()).toEqual([
      "a.safetensors",
      "b.safetensors",
      "c.safetensors",
      "d.safetensors",
      "e.safetensors",
      "f.safetensors",
      "unknown.safetensors",
    ]);

    // Fetched once, ever: the next run reads every image from the cache (the failures are asked again).
    civitai.reset();
    const again = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--format", "html"]);
    expect(again.code).toBe(0);
    expect(
      imageRequests()
        .map((q) => q.path.split("/")[2])
        .sort(),
    ).toEqual(["gone-404", "html"]);
    const undated = (page: string) => page.replace(/Generated \S+ by/, "Generated … by");
    expect(undated(again.stdout)).toBe(undated(html)); // the same page, on stdout
  });

  test("--nsfw-level r shows the R image and records the limit; --nsfw-level with a bad value is a usage error", async () => {
    const dir = library([{ name: "c.safetensors", model: "Gamma", images: [{ key: "png", nsfwLevel: 4 }] }]);
    const cache = tmp.make();
    const out = join(tmp.make(), "g.html");
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "-o", out, "--nsfw-level", "r"]);
    expect(r.code).toBe(0);
    expect(readFileSync(out, "utf8")).toContain("data:image/png;base64,");
    expect(readFileSync(out, "utf8")).toContain("Previews show images rated R or lower.");

    const json = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--nsfw-level", "R"]);
    const inv = JSON.parse(json.stdout);
    expect(validateInventory(inv)).toEqual([]);
    expect(inv.options.nsfwLevel).toBe("r");
    expect(inv.records[0].civitai.previewImageUrl).toBe(civitai.imageUrl("png"));
    expect(inv.records[0].civitai.images).toEqual([
      { url: civitai.imageUrl("png"), nsfwLevel: 4, width: 768, height: 1152, type: "image" },
    ]);
    const pg = JSON.parse((await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache])).stdout);
    expect(pg.options.nsfwLevel).toBe("pg13");
    expect(pg.records[0].civitai.previewImageUrl).toBeNull();

    const bad = await runCli(["scan", dir, "--api-url", civitai.url, "--nsfw-level", "spicy"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--nsfw-level must be one of pg, pg13, r, x, xxx (got "spicy")');
  });

  test("--no-images: a light gallery, nothing fetched", async () => {
    const dir = library([{ name: "a.safetensors", model: "Alpha", images: [{ key: "jpeg", nsfwLevel: 1 }] }]);
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "--format", "html", "--no-images"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("<h2 id=");
    expect(r.stdout).not.toContain("data:image");
    expect(r.stdout).toContain("Images left out (--no-images).");
    expect(imageRequests()).toHaveLength(0);
  });

  test("a slow image server: the card says it timed out and the gallery is written in bounded time", async () => {
    const dir = library([
      { name: "a.safetensors", model: "Alpha", images: [{ key: "jpeg", nsfwLevel: 1 }] },
      { name: "b.safetensors", model: "Beta", images: [{ key: "png", nsfwLevel: 1 }] },
    ]);
    civitai.setFault("image", faults.hang());
    const started = Date.now();
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "--format", "html", "--timeout", "1s"]);
    civitai.setFault("image", null);
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.stdout.match(/Preview not loaded: no complete answer within 1 s/g)).toHaveLength(2);
    expect(r.stderr).toContain("2 preview images could not be loaded: no complete answer within 1 s (2)");
  });
});

describe("report --format html", () => {
  test("re-renders a saved inventory into a gallery from the image cache, offline; -o x.html picks HTML", async () => {
    const dir = library([
      { name: "a.safetensors", model: "Alpha", images: [{ key: "jpeg", nsfwLevel: 1 }] },
      { name: "b.safetensors", model: "Beta", images: [{ key: "png", nsfwLevel: 1 }] },
    ]);
    const cache = tmp.make();
    const work = tmp.make();
    const scanned = await runCli([
      "scan",
      dir,
      "--api-url",
      civitai.url,
      "--cache-dir",
      cache,
      "-o",
      join(work, "inv.json"),
      "--format",
      "html",
      "-o",
      join(work, "g1.html"),
    ]);
    expect(scanned.code).toBe(0);
    const inv = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "-o", join(work, "inv.json")]);
    expect(inv.code).toBe(0);
    civitai.reset();
    const r = await runCli(["report", join(work, "inv.json"), "-o", join(work, "g2.html"), "--offline", "--cache-dir", cache]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("Wrote HTML gallery to");
    expect(civitai.requests).toHaveLength(0);
    const html = readFileSync(join(work, "g2.html"), "utf8");
    expect(html.match(/<img src="data:image\//g)).toHaveLength(2);

    // The image cache is found as scan finds it: CIVITAI_META_CACHE_DIR beats the config's cache.dir.
    const config = join(work, "config.json");
    writeFileSync(config, JSON.stringify({ cache: { dir: tmp.make() } }));
    const fromEnv = await runCli(["report", join(work, "inv.json"), "--format", "html", "--offline", "--config", config], {
      env: { CIVITAI_META_CACHE_DIR: cache },
    });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout.match(/<img src="data:image\//g)).toHaveLength(2);

    // Offline with an empty cache: cards say so, the gallery is still written.
    const empty = await runCli(["report", join(work, "inv.json"), "--format", "html", "--offline", "--cache-dir", tmp.make()]);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toContain("Preview not loaded: offline, and the image is not in the image cache");
    expect(empty.stderr).toContain("2 preview images could not be loaded");

    // Online, report may fetch images (from the configured API origin's host only), without a key.
    const online = await runCli(["report", join(work, "inv.json"), "--format", "html", "--no-cache", "--api-url", civitai.url], {
      env: { CIVITAI_API_KEY: KEY },
    });
    expect(online.code).toBe(0);
    expect(online.stdout.match(/<img src="data:image\//g)).toHaveLength(2);
    expect(imageRequests().every((q) => q.authorization === null)).toBe(true);
    // Without --api-url, the fake's host is not an image host: nothing is fetched from it.
    civitai.reset();
    const foreign = await runCli(["report", join(work, "inv.json"), "--format", "html", "--no-cache"], { env: { CIVITAI_API_URL: "" } });
    expect(foreign.stdout).toContain("Preview not loaded: the image URL is not https (http)");
    expect(civitai.requests).toHaveLength(0);
  });
});

describe("scan --write-previews", () => {
  test("writes <base>.preview.<ext> beside found models, keeps existing previews, and writes nothing without the flag", async () => {
    const dir = library([
      { name: "loras/a.safetensors", model: "Alpha", images: [{ key: "jpeg", nsfwLevel: 1 }] },
      { name: "loras/b.safetensors", model: "Beta", images: [{ key: "webp", nsfwLevel: 2 }] },
      { name: "loras/mine.safetensors", model: "Mine", images: [{ key: "png", nsfwLevel: 1 }] },
      { name: "loras/r.safetensors", model: "Rated", images: [{ key: "png", nsfwLevel: 4 }] },
    ]);
    writeFileSync(join(dir, "loras/mine.png"), "my own picture");
    const cache = tmp.make();
    const before = readdirSync(join(dir, "loras")).sort();
    const plain = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--format", "html"]);
    expect(plain.code).toBe(0);
    expect(readdirSync(join(dir, "loras")).sort()).toEqual(before);

    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--write-previews"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(".preview images: 2 written, 1 kept (a preview exists), 1 without an image to use, 0 failed");
    expect(readFileSync(join(dir, "loras/a.preview.jpg")).equals(Buffer.from(jpeg))).toBe(true);
    expect(readFileSync(join(dir, "loras/b.preview.webp")).equals(Buffer.from(TINY_WEBP))).toBe(true);
    expect(readFileSync(join(dir, "loras/mine.png"), "utf8")).toBe("my own picture");
    expect(existsSync(join(dir, "loras/mine.preview.png"))).toBe(false);
    expect(existsSync(join(dir, "loras/r.preview.png"))).toBe(false);
    // Previews are asked larger than gallery thumbnails.
    expect(imageRequests().some((q) => q.path.includes("width=450"))).toBe(true);

    // A second run changes nothing.
    const again = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--write-previews"]);
    expect(again.stderr).toContain(".preview images: 0 written, 3 kept (a preview exists), 1 without an image to use, 0 failed");
  });
});

describe("scan --write-previews: names that are not UTF-8", () => {
  test("T12: in a folder whose name is not UTF-8, previews are written under the raw bytes and a user's preview is kept", async () => {
    // The folder was listed by its string, which names no folder: every model in it counted as
    // "failed", silently (no path, so no warning said why).
    const root = tmp.make();
    const raw = (...parts: (string | number[] | Buffer)[]) => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
    const folder = raw(root, "/caf", [0xe9]);
    mkdirSync(folder);
    const models = [
      { name: raw(folder, "/a", [0xff], ".safetensors"), id: 901, image: "jpeg" },
      { name: raw(folder, "/b", [0xfe], ".safetensors"), id: 902, image: "png" },
    ];
    for (const m of models) {
      const content = `model bytes of ${m.id}`;
      writeFileSync(m.name, content);
      utimesSync(m.name, PAST, PAST);
      const images: ApiImage[] = [{ url: civitai.imageUrl(m.image), nsfwLevel: 1, width: 768, height: 1152, type: "image" }];
      const version = makeVersion({
        versionId: m.id * 10,
        modelId: m.id,
        sha256: sha256(content),
        modelName: `M${m.id}`,
        extra: { images },
      });
      civitai.addModel(makeModel({ modelId: m.id, name: `M${m.id}`, versions: [version] }));
    }
    writeFileSync(raw(folder, "/b", [0xfe], ".PNG"), "my own picture");
    const r = await runCli([
      "scan",
      root,
      "--api-url",
      civitai.url,
      "--cache-dir",
      tmp.make(),
      "--write-previews",
      "-o",
      join(tmp.make(), "inv.json"),
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(".preview images: 1 written, 1 kept (a preview exists), 0 without an image to use, 0 failed");
    const names = readdirSync(folder, { encoding: "buffer" })
      .map((n) => n.toString("latin1"))
      .sort();
    expect(names).toEqual(["a\xff.preview.jpg", "a\xff.safetensors", "b\xfe.PNG", "b\xfe.safetensors"]);
    expect(readFileSync(raw(folder, "/a", [0xff], ".preview.jpg")).equals(Buffer.from(jpeg))).toBe(true);
    expect(readFileSync(raw(folder, "/b", [0xfe], ".PNG"), "utf8")).toBe("my own picture");
  });
});

describe("cache and the image cache", () => {
  test("info counts images, prune drops damaged ones, clear --images empties only them", async () => {
    const dir = library([
      { name: "a.safetensors", model: "Alpha", images: [{ key: "jpeg", nsfwLevel: 1 }] },
      { name: "b.safetensors", model: "Beta", images: [{ key: "png", nsfwLevel: 1 }] },
    ]);
    const cache = tmp.make();
    expect((await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--format", "html"])).code).toBe(0);
    const info = await runCli(["cache", "info", "--cache-dir", cache]);
    expect(info.stdout).toMatch(/images {4}2 entries, /);
    // Damage one entry: prune removes it.
    const shard = readdirSync(join(cache, "images"))[0]!;
    const entry = join(cache, "images", shard, readdirSync(join(cache, "images", shard))[0]!);
    writeFileSync(entry, "<html>not an image</html>");
    const prune = await runCli(["cache", "prune", "--cache-dir", cache]);
    expect(prune.stderr).toContain(", 1 of 2 images and 0 of 0 record packs");
    expect((await runCli(["cache", "info", "--cache-dir", cache])).stdout).toMatch(/images {4}1 entry, /);
    const clear = await runCli(["cache", "clear", "--images", "--cache-dir", cache]);
    expect(clear.stderr).toContain("cleared the image cache: 1 file removed");
    const after = (await runCli(["cache", "info", "--cache-dir", cache])).stdout;
    expect(after).toMatch(/images {4}0 entries, /);
    expect(after).not.toMatch(/metadata {2}0 entries/); // the metadata cache was left alone
  });
});
