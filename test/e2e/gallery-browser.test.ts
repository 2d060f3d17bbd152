/**
 * The HTML gallery in a real browser (headless Chromium, test/helpers/browser.ts): it loads from
 * disk with no console error and no network request, search and each filter narrow the cards,
 * hostile names show as text and run nothing, JavaScript off still lists every model, the
 * keyboard reaches every control, light and dark both apply, and a 200-model screenshot is written.
 * Layout: an empty inventory, a phone's screen, focus under the sticky controls, the opening order,
 * 2,000-character names and trigger words, and previews of every shape.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import { hueColour, makeJpeg, makePng, picture, TINY_WEBP } from "../helpers/images.ts";
import { artifactsDir, BROWSER_REQUIRED, findChromium, launchChromium } from "../helpers/browser.ts";
import { syntheticLibrary } from "../helpers/synthetic-library.ts";
import { renderHtml } from "../../src/report/render-html.ts";
import { makeInventory } from "../helpers/sample-inventory.ts";

// What the page-side callbacks use: the project compiles without the DOM library (it clashes with Bun's types).
declare const document: any;
declare const window: any;
declare const navigator: any;
declare function getComputedStyle(element: unknown): any;
type HTMLImageElement = { naturalWidth: number };
type HTMLAnchorElement = { href: string };
type HTMLElement = { id: string; classList: { contains(name: string): boolean }; tagName: string };

// A browser on a shared 2-core machine: launching and rendering take seconds, not milliseconds.
setDefaultTimeout(60_000);

const chromiumPath = findChromium({ shell: true });
if (!chromiumPath && !BROWSER_REQUIRED) {
  console.warn("SKIPPED gallery browser tests: no Chromium (apt-get install -y chromium, or set CHROMIUM_PATH)");
}
const run = chromiumPath || BROWSER_REQUIRED ? describe : describe.skip;

const tmp = tmpDirs("civitai-meta-browser-");
let civitai: FakeCivitai;
let browser: Browser;
let galleryUrl: string;

/** Payloads that would run if any of them were inserted as markup. */
const HOSTILE = {
  name: `<img src=x onerror="window.pwned='name'">`,
  version: `</script><script>window.pwned='version'</script>`,
  word: `"><svg onload="window.pwned='word'">`,
  description: `<a href="javascript:window.pwned='desc'">click</a>`,
  file: `<img src=y onerror=alert(1)>`,
};

interface Spec {
  file: string;
  name: string;
  type: string;
  base: string;
  words?: string[];
  description?: string;
  image?: string;
  version?: string;
}

const SPECS: Spec[] = [
  {
    file: "loras/alpha.safetensors",
    name: "Alpha Portrait",
    type: "LORA",
    base: "SDXL 1.0",
    words: ["alpha face", "portrait"],
    image: "a",
  },
  { file: "loras/beta.safetensors", name: "Beta Ink", type: "LORA", base: "SD 1.5", words: ["ink style"], image: "b" },
  { file: "checkpoints/gamma.safetensors", name: "Gamma Mix", type: "Checkpoint", base: "SDXL 1.0", image: "c" },
  { file: "embeddings/delta.safetensors", name: "Delta Hands", type: "TextualInversion", base: "SD 1.5", words: ["bad-hands"], image: "d" },
  { file: "loras/epsilon.safetensors", name: "Epsilon Neon", type: "LORA", base: "Pony", words: ["neon glow"], image: "e" },
  {
    file: `loras/${HOSTILE.file}.safetensors`,
    name: HOSTILE.name,
    type: "LORA",
    base: "SDXL 1.0",
    words: [HOSTILE.word, "safe word"],
    description: `<p>${HOSTILE.description.replace(/</g, "&lt;")}</p>`,
    version: HOSTILE.version,
  },
];

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

beforeAll(async () => {
  if (!chromiumPath && !BROWSER_REQUIRED) return;
  civitai = await startFakeCivitai({ fixtures: false });
  civitai.addImage(
    "a",
    makeJpeg(28, 38, (x, y) => picture(28, 38, hueColour(1), hueColour(4))(x, y)),
  );
  civitai.addImage("b", makePng(40, 54, picture(40, 54, hueColour(2), hueColour(6))));
  civitai.addImage("c", TINY_WEBP);
  civitai.addImage(
    "d",
    makeJpeg(10, 14, () => [90, 140, 200]),
  );
  const dir = tmp.make();
  const past = new Date(Date.now() - 3600_000);
  SPECS.forEach((s, i) => {
    const path = join(dir, s.file);
    mkdirSync(join(path, ".."), { recursive: true });
    const content = `bytes of model ${i}`;
    writeFileSync(path, content);
    utimesSync(path, past, past);
    const modelId = 500 + i;
    const images = s.image ? [{ url: civitai.imageUrl(s.image), nsfwLevel: 1, width: 768, height: 1024, type: "image" }] : [];
    const version = makeVersion({
      versionId: modelId * 10,
      modelId,
      sha256: sha256(content),
      name: s.version ?? `v${i}.0`,
      modelName: s.name,
      modelType: s.type,
      baseModel: s.base,
      extra: { images, trainedWords: s.words ?? [] },
    });
    civitai.addModel(makeModel({ modelId, name: s.name, type: s.type, description: s.description, versions: [version] }));
  });
  writeFileSync(join(dir, "loras/unknown.safetensors"), "not on civitai");
  const out = join(tmp.make(), "gallery.html");
  const r = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "-o", out]);
  if (r.code !== 0) throw new Error(`scan failed: ${r.stderr}`);
  galleryUrl = pathToFileURL(out).href;
  browser = await launchChromium({ shell: true });
});

afterAll(async () => {
  await browser?.close();
  await civitai?.stop();
  tmp.cleanup();
});

interface Watched {
  page: Page;
  context: BrowserContext;
  requests: string[];
  problems: string[];
  dialogs: string[];
}

/** A fresh context and page that record every request, console error, page error and dialog. */
async function open(
  url: string,
  options: { javaScriptEnabled?: boolean; colorScheme?: "light" | "dark"; viewport?: { width: number; height: number } } = {},
): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  const watched: Watched = { page, context, requests: [], problems: [], dialogs: [] };
  page.on("request", (req) => watched.requests.push(req.url()));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") watched.problems.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => watched.problems.push(`pageerror: ${err.message}`));
  page.on("dialog", (dialog) => {
    watched.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  await page.goto(url, { waitUntil: "load" });
  return watched;
}

/** A gallery rendered in-process (renderHtml) and written to a file; its file:// URL. */
function galleryFile(name: string, html: string): string {
  const file = join(tmp.make(), name);
  writeFileSync(file, html);
  return pathToFileURL(file).href;
}

const visibleCards = (page: Page) => page.locator("article.card:visible").count();
const visibleNames = (page: Page) => page.locator("article.card:visible h2").allTextContents();

run("the gallery in headless Chromium", () => {
  test("loads with no console error and no request but the file itself; the CSP blocks any fetch", async () => {
    civitai.reset();
    const w = await open(galleryUrl);
    try {
      expect(w.problems).toEqual([]);
      expect(w.requests.filter((u) => !u.startsWith("data:"))).toEqual([galleryUrl]);
      expect(await w.page.locator("img").count()).toBe(4);
      // Every embedded image decoded.
      const sizes = await w.page.$$eval("img", (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
      expect(sizes.every((width) => width > 0)).toBe(true);
      const attempt = await w.page.evaluate(
        (url) =>
          fetch(url).then(
            () => "loaded",
            () => "blocked",
          ),
        `${civitai.url}/api/v1/models?ids=1`,
      );
      expect(attempt).toBe("blocked");
      expect(civitai.requests).toHaveLength(0);
      expect(await w.page.locator("#count").textContent()).toBe(`${SPECS.length + 1} models`);
      expect(await w.page.locator("#controls").isVisible()).toBe(true);
      expect(await w.page.locator("#nojs").isVisible()).toBe(false);
    } finally {
      await w.context.close();
    }
  });

  test("the search box and each filter narrow the cards; Clear brings them all back", async () => {
    const w = await open(galleryUrl);
    const { page } = w;
    try {
      const all = SPECS.length + 1;
      expect(await visibleCards(page)).toBe(all);
      await page.fill("#q", "alpha");
      expect(await visibleNames(page)).toEqual(["Alpha Portrait"]);
      await page.fill("#q", "ink style"); // both words, from the trigger words
      expect(await visibleNames(page)).toEqual(["Beta Ink"]);
      await page.fill("#q", "no such model");
      expect(await visibleCards(page)).toBe(0);
      expect(await page.locator("#none").isVisible()).toBe(true);
      await page.fill("#q", "");

      await page.selectOption("#f-type", "Checkpoint");
      expect(await visibleNames(page)).toEqual(["Gamma Mix"]);
      await page.selectOption("#f-type", "LORA");
      expect(await visibleCards(page)).toBe(4);
      await page.selectOption("#f-base", "SDXL 1.0");
      expect((await visibleNames(page)).sort()).toEqual([HOSTILE.name, "Alpha Portrait"].sort());
      await page.selectOption("#f-type", "");
      await page.selectOption("#f-base", "SD 1.5");
      expect((await visibleNames(page)).sort()).toEqual(["Beta Ink", "Delta Hands"]);
      await page.selectOption("#f-base", "");
      await page.selectOption("#f-status", "not_found");
      expect(await visibleNames(page)).toEqual(["unknown.safetensors"]);
      expect(await page.locator("#count").textContent()).toBe(`1 of ${all} models shown`);

      await page.click("#reset");
      expect(await visibleCards(page)).toBe(all);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("q");

      await page.selectOption("#sort", "path");
      const paths = await page.locator("article.card dd").filter({ hasText: ".safetensors" }).allTextContents();
      expect(paths).toEqual([...paths].sort());
      expect(w.problems).toEqual([]);
    } finally {
      await w.context.close();
    }
  });

  test("a hostile model name, version, trigger word, description and file name show as text and run nothing", async () => {
    const w = await open(galleryUrl);
    const { page } = w;
    try {
      await page.fill("#q", "safe word");
      const card = page.locator("article.card:visible");
      expect(await card.count()).toBe(1);
      expect(await card.locator("h2").textContent()).toBe(HOSTILE.name);
      expect(await card.locator("h2").isVisible()).toBe(true);
      expect(await card.locator(".ver").textContent()).toBe(HOSTILE.version);
      expect(await card.locator("code").first().textContent()).toBe(HOSTILE.word);
      expect(await card.locator("dd").filter({ hasText: HOSTILE.file }).count()).toBe(1);
      await card.locator("summary").click();
      expect(await card.locator("details p").textContent()).toBe(HOSTILE.description);
      // The only link is the civitai.com page we built.
      expect(await card.locator("a").evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href))).toEqual([
        "https://civitai.com/models/505?modelVersionId=5050",
      ]);
      expect(await card.locator("img, svg, script").count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { pwned?: string }).pwned ?? null)).toBeNull();
      expect(w.dialogs).toEqual([]);
      expect(w.problems).toEqual([]);
    } finally {
      await w.context.close();
    }
  });

  test("copy buttons copy the trigger word and say so", async () => {
    const w = await open(galleryUrl);
    const { page, context } = w;
    try {
      await context.grantPermissions(["clipboard-read", "clipboard-write"]);
      await page.fill("#q", "alpha");
      await page.locator("article.card:visible button.copy").first().click();
      await page.waitForFunction(() => document.getElementById("announce")?.textContent !== "");
      expect(await page.locator("#announce").textContent()).toBe("Copied: alpha face");
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("alpha face");
    } finally {
      await w.context.close();
    }
  });

  test("with JavaScript off every model is listed, and the controls that need it are hidden", async () => {
    const w = await open(galleryUrl, { javaScriptEnabled: false });
    const { page } = w;
    try {
      expect(await page.locator("article.card").count()).toBe(SPECS.length + 1);
      expect(await visibleCards(page)).toBe(SPECS.length + 1);
      expect(await page.locator("#controls").isVisible()).toBe(false);
      expect(await page.locator("button.copy:visible").count()).toBe(0);
      expect(await page.getByText("JavaScript is off: every model is listed below").isVisible()).toBe(true);
      expect(await page.getByText("ink style").isVisible()).toBe(true);
    } finally {
      await w.context.close();
    }
  });

  test("the keyboard reaches the search box, every filter, the sort, Clear and the copy buttons, with a visible focus ring", async () => {
    const w = await open(galleryUrl);
    const { page } = w;
    try {
      const seen: string[] = [];
      let outline = "";
      for (let i = 0; i < 20; i++) {
        await page.keyboard.press("Tab");
        const info = await page.evaluate(() => {
          const el = document.activeElement as HTMLElement | null;
          if (!el) return { key: "", outline: "" };
          const key = el.id ? `#${el.id}` : el.classList.contains("copy") ? "copy" : el.tagName.toLowerCase();
          return { key, outline: getComputedStyle(el).outlineStyle };
        });
        seen.push(info.key);
        if (info.key === "#q") outline = info.outline;
        if (info.key === "copy") break;
      }
      const firstCopy = seen.indexOf("copy");
      expect(firstCopy).toBeGreaterThan(0);
      const order = ["#q", "#f-type", "#f-base", "#f-status", "#sort", "#reset"];
      expect(seen.filter((k) => order.includes(k))).toEqual(order);
      expect(outline).not.toBe("none");
      // Enter on a focused copy button works like a click.
      await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => document.getElementById("announce")?.textContent !== "");
      expect(await page.locator("#announce").textContent()).toStartWith("Copied: ");
    } finally {
      await w.context.close();
    }
  });

  test("light and dark colour schemes both apply", async () => {
    const light = await open(galleryUrl, { colorScheme: "light" });
    const dark = await open(galleryUrl, { colorScheme: "dark" });
    try {
      const bg = (p: Page) => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const luminance = (rgb: string) => {
        const [r, g, b] = rgb.match(/\d+/g)!.map(Number);
        return (0.2126 * r! + 0.7152 * g! + 0.0722 * b!) / 255;
      };
      expect(luminance(await bg(light.page))).toBeGreaterThan(0.8);
      expect(luminance(await bg(dark.page))).toBeLessThan(0.2);
    } finally {
      await light.context.close();
      await dark.context.close();
    }
  });

  test("an empty inventory says so once, without the controls or a 'no match' message", async () => {
    const w = await open(galleryFile("empty.html", renderHtml(makeInventory([]), { previews: new Map() })));
    const { page } = w;
    try {
      expect(await page.getByText("No model files in this inventory.").isVisible()).toBe(true);
      expect(await page.locator("#none").isVisible()).toBe(false);
      expect(await page.locator("#controls").isVisible()).toBe(false);
      expect(await page.locator("#nojs").isVisible()).toBe(false);
      expect(w.problems).toEqual([]);
    } finally {
      await w.context.close();
    }
  });

  test("on a phone the controls scroll away with the page instead of covering a third of the screen", async () => {
    const lib = syntheticLibrary(30);
    const url = galleryFile("gallery-phone.html", renderHtml(lib.inventory, { previews: lib.previews }));
    const w = await open(url, { viewport: { width: 375, height: 667 } });
    const { page } = w;
    try {
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBe(375);
      await page.evaluate(() => window.scrollTo(0, 3000));
      const covered = await page.evaluate(() => {
        const r = document.getElementById("controls").getBoundingClientRect();
        return Math.max(0, Math.min(r.bottom, window.innerHeight) - Math.max(r.top, 0));
      });
      expect(covered).toBeLessThan(667 * 0.15);
    } finally {
      await w.context.close();
    }
    // On a desktop screen they stay at the top, in reach.
    const desk = await open(url);
    try {
      await desk.page.evaluate(() => window.scrollTo(0, 3000));
      expect(await desk.page.evaluate(() => document.getElementById("controls").getBoundingClientRect().top)).toBe(0);
    } finally {
      await desk.context.close();
    }
  });

  test("a control or link reached with Shift+Tab is not left hidden under the sticky controls", async () => {
    const lib = syntheticLibrary(60);
    const url = galleryFile("gallery-focus.html", renderHtml(lib.inventory, { previews: lib.previews }));
    for (const width of [1280, 1024, 800]) {
      const w = await open(url, { viewport: { width, height: 900 } });
      const { page } = w;
      try {
        // Put a card's link just under the controls' top edge, focus what follows it, then Shift+Tab back to it.
        const hidden = await page.evaluate(() => {
          const all = Array.from(document.querySelectorAll("#cards a, #cards summary")) as any[];
          const target = all[12];
          window.scrollBy(0, target.getBoundingClientRect().top - 10);
          const next = all[13];
          next.focus({ preventScroll: true });
          return target.getBoundingClientRect().top;
        });
        expect(hidden).toBeLessThan(20);
        await page.keyboard.press("Shift+Tab");
        const seen = await page.evaluate(() => {
          const el = document.activeElement as any;
          return {
            tag: el.tagName,
            top: el.getBoundingClientRect().top,
            controls: document.getElementById("controls").getBoundingClientRect().bottom,
          };
        });
        expect(["A", "SUMMARY"]).toContain(seen.tag);
        expect(seen.top).toBeGreaterThanOrEqual(seen.controls);
      } finally {
        await w.context.close();
      }
    }
  });

  test("the page opens in the order 'Sort by: Name' gives, with numbers in names read as numbers", async () => {
    const lib = syntheticLibrary(300);
    const w = await open(galleryFile("gallery-order.html", renderHtml(lib.inventory, { previews: lib.previews })));
    const { page } = w;
    try {
      expect(await page.locator("#sort").inputValue()).toBe("name");
      const opened = await page.locator("article.card h2").allTextContents();
      const crystal = opened.filter((n) => n.startsWith("Crystal Armor "));
      expect(crystal.slice(0, 3)).toEqual(["Crystal Armor 1", "Crystal Armor 7", "Crystal Armor 13"]);
      await page.selectOption("#sort", "size");
      await page.selectOption("#sort", "name");
      expect(await page.locator("article.card h2").allTextContents()).toEqual(opened);
    } finally {
      await w.context.close();
    }
  });

  test("a 2,000-character name or trigger word keeps its card about as tall as the others; the full text stays reachable", async () => {
    const lib = syntheticLibrary(8);
    const long = "Supercalifragilistic".repeat(100);
    const spaced = "word ".repeat(400).trim();
    const first = lib.inventory.records[0]!.civitai!;
    first.modelName = long;
    first.versionName = spaced;
    first.trainedWords = [long, "short"];
    const w = await open(galleryFile("gallery-long.html", renderHtml(lib.inventory, { previews: lib.previews })), {
      viewport: { width: 1280, height: 900 },
    });
    const { page } = w;
    try {
      const heights = await page.$$eval("article.card", (cards) => cards.map((c: any) => c.getBoundingClientRect().height));
      const normal = [...heights].sort((a, b) => a - b)[Math.floor(heights.length / 2)]!;
      expect(Math.max(...heights)).toBeLessThan(normal * 1.5);
      const card = page.locator("article.card").filter({ hasText: "short" });
      expect(await card.locator("h2").textContent()).toBe(long);
      expect(await card.locator("h2").getAttribute("title")).toBe(long);
      await card.locator("summary").click();
      expect(await card.locator("details dd").first().textContent()).toBe(long);
      // Copy still copies the whole word.
      await w.context.grantPermissions(["clipboard-read", "clipboard-write"]);
      await card.locator("button.copy").first().click();
      await page.waitForFunction(() => document.getElementById("announce")?.textContent !== "");
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(long);
    } finally {
      await w.context.close();
    }
  });

  test("copying a long trigger word does not make the page scroll sideways", async () => {
    const lib = syntheticLibrary(4);
    const word = "x".repeat(1500);
    lib.inventory.records[0]!.civitai!.trainedWords = [word];
    const w = await open(galleryFile("gallery-copy-long.html", renderHtml(lib.inventory, { previews: lib.previews })));
    const { page } = w;
    try {
      await w.context.grantPermissions(["clipboard-read", "clipboard-write"]);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBe(1280);
      await page.fill("#q", "xxxxxxxx");
      await page.locator("article.card:visible button.copy").first().click();
      await page.waitForFunction(() => document.getElementById("announce")?.textContent !== "");
      expect(await page.locator("#announce").textContent()).toBe(`Copied: ${word}`);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBe(1280);
    } finally {
      await w.context.close();
    }
  });

  test("previews of any shape, and cards without one, get picture areas of one height", async () => {
    const lib = syntheticLibrary(6);
    const shapes: [number, number][] = [
      [40, 54],
      [40, 80],
      [80, 30],
    ];
    const found = lib.inventory.records.filter((r) => lib.previews.has(r.path));
    found.slice(0, 3).forEach((r, i) => {
      const [width, height] = shapes[i]!;
      lib.previews.set(r.path, {
        kind: "image",
        url: `https://image.civitai.com/x/${i}.png`,
        bytes: makePng(width, height, picture(width, height, hueColour(i), hueColour(i + 2))),
        image: { kind: "png", mime: "image/png", ext: "png" },
        fromCache: true,
      });
    });
    lib.previews.delete(found[3]!.path);
    const w = await open(galleryFile("gallery-shapes.html", renderHtml(lib.inventory, { previews: lib.previews })));
    try {
      const heights = await w.page.$$eval("figure.thumb", (figs) => figs.map((f: any) => f.getBoundingClientRect().height));
      expect(heights).toHaveLength(6);
      expect(Math.max(...heights) - Math.min(...heights)).toBeLessThanOrEqual(1);
    } finally {
      await w.context.close();
    }
  });

  test("a 200-model gallery opens cleanly and its screenshot is written", async () => {
    const lib = syntheticLibrary(200);
    const file = join(tmp.make(), "gallery-200.html");
    writeFileSync(file, renderHtml(lib.inventory, { previews: lib.previews, nsfwLabel: "PG-13" }));
    const started = performance.now();
    const w = await open(pathToFileURL(file).href);
    try {
      const loadMs = performance.now() - started;
      expect(w.problems).toEqual([]);
      expect(await w.page.locator("article.card").count()).toBe(200);
      const shot = join(artifactsDir(), "gallery-200.png");
      await w.page.screenshot({ path: shot });
      expect(statSync(shot).size).toBeGreaterThan(20_000);
      console.log(`gallery-200: ${(statSync(file).size / 1024).toFixed(0)} KiB, opened in ${loadMs.toFixed(0)} ms; screenshot ${shot}`);
    } finally {
      await w.context.close();
    }
  });
});
