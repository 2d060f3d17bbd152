/**
 * Gallery benchmark (issue #13): a 2,000-model HTML gallery, written by `report --format html`
 * from a saved inventory with every preview already in the image cache (so no network), with and
 * without images, and opened from disk in headless Chromium.
 * - Size: with images, target < 30 MB. Thumbnails here are 9 KiB of incompressible bytes each, about
 *   what Civitai's CDN sends for a 224-px still (`anim=false,width=224,optimized=true`); the line
 *   "fits the target up to" says how heavy the average thumbnail may be before 30 MB is passed.
 * - Open time, median of 5: the first contentful paint (the first cards on screen; target < 1 s)
 *   and the whole page loaded with the script's first pass done (searchable; target < 5 s),
 *   interleaved with the same page opened with JavaScript off (the reference: what the browser
 *   needs for the cards alone) and the light gallery.
 * Needs Chromium (apt-get install -y chromium); never touches the network beyond the machine.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { renderJson } from "../src/report/render-json.ts";
import { openImageCache } from "../src/preview/image-cache.ts";
import { GALLERY_IMAGE_WIDTH, sizedImageUrl } from "../src/preview/image-url.ts";
import { syntheticLibrary } from "../test/helpers/synthetic-library.ts";
import { hueColour, makePng, picture } from "../test/helpers/images.ts";
import { findChromium, launchChromium } from "../test/helpers/browser.ts";
import type { Browser } from "playwright-core";
import { check, cliCommand, median, timeCommand } from "./_util.ts";

const MODELS = 2000;
const THUMB_BYTES = 9 * 1024;
const TARGET_BYTES = 30_000_000;
const FIRST_PAINT_TARGET_MS = 1000;
const LOADED_TARGET_MS = 5000;
const RUNS = 5;

/** A PNG of about `bytes`: noise does not compress, so its size is set by its pixel count. */
function thumbnail(i: number, bytes: number): Uint8Array {
  for (let w = 24; ; w += 2) {
    const h = Math.round((w * 4) / 3);
    const png = makePng(w, h, picture(w, h, hueColour(i), hueColour(i + 3, 0.35)), 255);
    if (png.length >= bytes) return png;
  }
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

interface Opened {
  /** First contentful paint, from the page's own performance entries. */
  firstPaintMs: number;
  /** From navigation start to the load event and, with JavaScript, the script's first pass. */
  loadedMs: number;
}

/** Opens `file` in a fresh context and times it. */
async function openPage(browser: Browser, file: string, javaScriptEnabled: boolean): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled });
  try {
    const page = await context.newPage();
    const started = performance.now();
    await page.goto(pathToFileURL(file).href, { waitUntil: "load", timeout: 120_000 });
    // The page's script sets the counter at the end of its first pass (gallery-assets.ts).
    if (javaScriptEnabled) await page.waitForFunction(() => (globalThis as any).document.getElementById("count").textContent !== "");
    const loadedMs = performance.now() - started;
    // Read with JavaScript on or off: evaluate runs in Playwright's own world.
    const firstPaintMs = await page.evaluate(
      () => (globalThis as any).performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? Number.NaN,
    );
    return { firstPaintMs, loadedMs };
  } finally {
    await context.close();
  }
}

export async function benchGallery(): Promise<boolean> {
  const chromium = findChromium();
  if (!chromium) {
    console.log("# gallery: SKIPPED, no Chromium (apt-get install -y chromium)");
    return false;
  }
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-bench-gallery-"));
  try {
    const lib = syntheticLibrary(MODELS, (i) => thumbnail(i, THUMB_BYTES));
    const inventory = join(dir, "inventory.json");
    writeFileSync(inventory, renderJson(lib.inventory));
    const cacheRoot = join(dir, "cache");
    const cache = openImageCache(cacheRoot);
    let imageBytes = 0;
    for (const p of lib.previews.values()) {
      if (p.kind !== "image") continue;
      await cache.put(sizedImageUrl(p.url, GALLERY_IMAGE_WIDTH), p.bytes);
      imageBytes += p.bytes.length;
    }

    const withImages = join(dir, "gallery.html");
    const light = join(dir, "gallery-light.html");
    const render = (out: string, extra: string[]) =>
      timeCommand([...cliCommand(), "report", inventory, "-o", out, "--offline", "--cache-dir", cacheRoot, "-q", ...extra]);
    const renderMs: number[] = [];
    const lightMs: number[] = [];
    let peakRss = 0;
    for (let i = 0; i < 3; i++) {
      const a = await render(withImages, []);
      if (a.code !== 0) throw new Error(`report failed: ${a.stderr}`);
      renderMs.push(a.ms);
      peakRss = Math.max(peakRss, a.maxRssBytes ?? 0);
      const b = await render(light, ["--no-images"]);
      if (b.code !== 0) throw new Error(`report --no-images failed: ${b.stderr}`);
      lightMs.push(b.ms);
    }
    const size = statSync(withImages).size;
    const lightSize = statSync(light).size;
    const previews = lib.previews.size;
    const perImageBudget = (TARGET_BYTES - lightSize) / previews / (4 / 3);

    const browser = await launchChromium();
    const runs = { images: [] as Opened[], light: [] as Opened[], noJs: [] as Opened[] };
    try {
      await openPage(browser, withImages, true); // warm-up: the first navigation also starts the renderer
      for (let i = 0; i < RUNS; i++) {
        runs.images.push(await openPage(browser, withImages, true));
        runs.noJs.push(await openPage(browser, withImages, false));
        runs.light.push(await openPage(browser, light, true));
      }
    } finally {
      await browser.close();
    }
    const paint = median(runs.images.map((r) => r.firstPaintMs));
    const loaded = median(runs.images.map((r) => r.loadedMs));
    const noJs = median(runs.noJs.map((r) => r.loadedMs));
    console.log(
      `# gallery: ${MODELS} models, ${previews} previews of ~${(imageBytes / previews / 1024).toFixed(1)} KiB, Chromium ${chromium}`,
    );
    console.log(
      `      with images: ${mb(size)} (${mb(imageBytes)} of images before base64); rendered in ${median(renderMs).toFixed(0)} ms, peak RSS ${mb(peakRss)}`,
    );
    console.log(`      --no-images: ${mb(lightSize)}; rendered in ${median(lightMs).toFixed(0)} ms`);
    console.log(`      fits the target up to ${(perImageBudget / 1024).toFixed(1)} KiB per thumbnail on average`);
    console.log(
      `      open with images: first cards painted at ${paint.toFixed(0)} ms, loaded and searchable at ${loaded.toFixed(0)} ms ` +
        `(JavaScript off, the reference: ${noJs.toFixed(0)} ms); --no-images: ${median(runs.light.map((r) => r.firstPaintMs)).toFixed(0)} / ` +
        `${median(runs.light.map((r) => r.loadedMs)).toFixed(0)} ms`,
    );
    const sizeOk = check("2,000-model gallery with images", size < TARGET_BYTES, `${mb(size)} (target < 30 MB)`);
    const paintOk = check(
      "first cards on screen",
      paint < FIRST_PAINT_TARGET_MS,
      `${paint.toFixed(0)} ms (target < ${FIRST_PAINT_TARGET_MS} ms)`,
    );
    const loadedOk = check(
      "whole gallery loaded and searchable",
      loaded < LOADED_TARGET_MS,
      `${loaded.toFixed(0)} ms (target < ${LOADED_TARGET_MS} ms)`,
    );
    return sizeOk && paintOk && loadedOk;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) process.exitCode = (await benchGallery()) ? 0 : 1;
