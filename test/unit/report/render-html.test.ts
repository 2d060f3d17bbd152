import { createHash } from "node:crypto";
import { describe, expect, test } from "bun:test";
import { GALLERY_CSP, HTML_DESCRIPTION_MAX_CHARS, renderHtml } from "../../../src/report/render-html.ts";
import { GALLERY_CSS, GALLERY_JS } from "../../../src/report/gallery-assets.ts";
import { recordBadges } from "../../../src/report/gallery-badges.ts";
import { escapeHtml, jsonForScript } from "../../../src/report/html-escape.ts";
import type { PreviewOutcome } from "../../../src/preview/previews.ts";
import type { FileRecord } from "../../../src/report/record-types.ts";
import {
  HOSTILE_STRINGS,
  hostileInventory,
  makeCivitai,
  makeInventory,
  makeRecord,
  sampleInventory,
} from "../../helpers/sample-inventory.ts";
import { makePng } from "../../helpers/images.ts";

/** Strings aimed at HTML attributes, scripts and comments, on top of the shared hostile set. */
const HTML_ATTACKS = [
  "</script><script>alert(1)</script>",
  '"><svg onload=alert(1)>',
  "' onmouseover='alert(1)",
  "<!-- <script>",
  "javascript:alert(document.domain)",
  "<a href=javascript:alert(1)>x</a>",
  "\u2028line\u2029sep",
];

const between = (html: string, open: RegExp, close: string): string[] => {
  const out: string[] = [];
  let m: RegExpExecArray | null;
  const re = new RegExp(open.source, "g");
  while ((m = re.exec(html)) !== null) {
    const start = m.index + m[0].length;
    out.push(html.slice(start, html.indexOf(close, start)));
  }
  return out;
};

const sha = (s: string) => `'sha256-${createHash("sha256").update(s).digest("base64")}'`;

describe("the page allows nothing but itself", () => {
  const html = renderHtml(sampleInventory());

  test("a CSP meta tag forbids every fetch, allows data: images, and names our style and script by hash", () => {
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="${GALLERY_CSP}">`);
    expect(GALLERY_CSP).toContain("default-src 'none'");
    expect(GALLERY_CSP).toContain("img-src data:");
    expect(GALLERY_CSP).not.toContain("unsafe");
    const styles = between(html, /<style>/, "</style>");
    const scripts = between(html, /<script>/, "</script>");
    expect(styles).toEqual([GALLERY_CSS]);
    expect(scripts).toEqual([GALLERY_JS]);
    expect(GALLERY_CSP).toContain(`style-src ${sha(GALLERY_CSS)}`);
    expect(GALLERY_CSP).toContain(`script-src ${sha(GALLERY_JS)}`);
    // The CSP must come before anything it governs.
    expect(html.indexOf("Content-Security-Policy")).toBeLessThan(html.indexOf("<style>"));
  });

  test("our style sheet and script cannot end their element early", () => {
    expect(GALLERY_CSS).not.toContain("</");
    expect(GALLERY_JS).not.toContain("</");
    expect(GALLERY_JS).not.toContain("<!--");
    expect(GALLERY_JS).not.toContain("innerHTML");
    expect(GALLERY_JS).not.toContain("insertAdjacentHTML");
  });

  test("every src and href is a data: URI, an in-page anchor or a civitai.com page", () => {
    const urls = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url).toMatch(/^(data:|#|https:\/\/civitai\.com\/)/);
  });

  test("the same inventory gives the same bytes", () => {
    expect(renderHtml(sampleInventory())).toBe(html);
  });
});

describe("untrusted text is text", () => {
  const strings = [...Object.values(HOSTILE_STRINGS), ...HTML_ATTACKS];
  const inv = hostileInventory(strings);
  // A page URL the file claims is never used: links are built from ids.
  inv.records[0]!.civitai!.pageUrl = "javascript:alert(1)";
  const html = renderHtml(inv);

  test("no markup, event handler or script comes from a record", () => {
    expect(html.match(/<script/g)).toHaveLength(2); // the JSON block and ours
    expect(html).not.toMatch(/<(?:img|svg|iframe|object|embed|a href=javascript)/i);
    // No attribute that starts a handler, anywhere in a tag (quoted values are data, not attributes).
    for (const tag of html.match(/<[a-z][^>]*>/gi) ?? []) expect(tag.replace(/"[^"]*"/g, '""')).not.toMatch(/\son[a-z]+\s*=|'/i);
    expect(html).not.toContain('javascript:alert(1)"');
    expect(html).not.toContain('href="javascript');
  });

  test("each hostile string is shown escaped in the card", () => {
    for (const s of [HOSTILE_STRINGS.imgOnerror, HOSTILE_STRINGS.script, HTML_ATTACKS[0]!, HTML_ATTACKS[1]!]) {
      expect(html).toContain(`<h2 id="name-`);
      expect(html).toContain(escapeHtml(s));
    }
    // Bidi overrides and escapes are made visible, as in the Markdown report.
    expect(html).toContain("abc\\u202egpj.exe");
    expect(html).toContain("evil\\x1b]52;c;SGVsbG8=\\x07name");
  });

  test("the card data is JSON that no </script> can close, and reads back to the same strings", () => {
    const [json] = between(html, /<script type="application\/json" id="gallery-data">/, "</script>");
    expect(json).toBeDefined();
    expect(json).not.toMatch(/[<>&\u2028\u2029]/);
    const data = JSON.parse(json!) as { t: string; s: string }[];
    expect(data).toHaveLength(inv.records.length);
    expect(data.some((d) => d.t === HTML_ATTACKS[0])).toBe(true);
    expect(data.some((d) => d.s.includes(HTML_ATTACKS[0]!.toLowerCase()))).toBe(true);
  });

  test("jsonForScript escapes exactly what could end the block", () => {
    expect(jsonForScript({ a: "</script><!--&\u2028" })).toBe('{"a":"\\u003c/script\\u003e\\u003c!--\\u0026\\u2028"}');
    expect(JSON.parse(jsonForScript({ a: "</script>" }))).toEqual({ a: "</script>" });
  });
});

describe("cards", () => {
  test("cards are in reading order: case-insensitive, numbers in names as numbers, the same on every machine", () => {
    const names = ["Model 10", "model 9", "Model 2", "Model 02b", "Alpha", "Zeta 1.10", "Zeta 1.9", "_under", "Ölfarbe"];
    const inv = makeInventory(
      names.map((modelName, i) => makeRecord({ path: `/m/${i}.safetensors`, civitai: makeCivitai({ modelName, versionId: 900 + i }) })),
    );
    const shown = [...renderHtml(inv).matchAll(/<h2 id="name-\d+">([^<]*)<\/h2>/g)].map((m) => m[1]);
    expect(shown).toEqual(["_under", "Alpha", "Model 2", "Model 02b", "model 9", "Model 10", "Zeta 1.9", "Zeta 1.10", "Ölfarbe"]);
  });

  test("one card per record with name, version, type, base model, size, status, trigger words with copy buttons, licence and link", () => {
    const inv = sampleInventory();
    const html = renderHtml(inv);
    expect(html.match(/<article class="card"/g)).toHaveLength(inv.records.length);
    expect(html).toContain("<h2 id=");
    expect(html).toContain(">Detail Tweaker</h2>");
    expect(html).toContain('<p class="ver">v2.0</p>');
    expect(html).toContain("<dt>Base model</dt><dd>SDXL 1.0</dd>");
    expect(html).toContain("<dt>Size</dt><dd>140.7 MiB</dd>");
    expect(html).toContain('<dt>Status</dt><dd class="st-found">Found</dd>');
    expect(html).toContain(
      '<li><code>sharp focus</code><button type="button" class="copy" aria-label="Copy trigger word: sharp focus" hidden>Copy</button></li>',
    );
    expect(html).toContain("commercial use: Image; no credit needed; derivatives allowed");
    expect(html).toContain(
      '<a href="https://civitai.com/models/100?modelVersionId=201" rel="noopener noreferrer" target="_blank">Civitai page</a>',
    );
    // A file only a sidecar names: its identity, said to be from the sidecar.
    expect(html).toContain("Not found on Civitai; known from a Civitai Helper sidecar");
    expect(html).toContain("Civitai page (from sidecar)");
    // Errors and skips say why.
    expect(html).toContain("Error: HTTP 503");
    expect(html).toContain("Skipped: in progress (.part)");
    expect(html).toContain('<p class="ver">V6.0 B1 (VAE)</p><ul class="badges" aria-label="Badges"><li class="badge b-archived"');
  });

  test("descriptions are plain text, cut", () => {
    const inv = makeInventory([makeRecord({ civitai: makeCivitai({ description: `<b>bold</b>\nline two ${"x".repeat(2000)}` }) })]);
    const html = renderHtml(inv);
    const [desc] = between(html, /<details><summary>More<\/summary><dl class="facts">.*?<\/dl><p>/, "</p>");
    expect(desc).toStartWith("&lt;b&gt;bold&lt;/b&gt;\nline two");
    expect(desc!.length).toBeLessThan(HTML_DESCRIPTION_MAX_CHARS + 40);
  });

  test("the summary counts files by status and size; filters list the types, base models and statuses present", () => {
    const html = renderHtml(sampleInventory());
    expect(html).toContain(
      '<ul class="summary" aria-label="Summary"><li><b>9</b> files</li><li><b>4</b> found</li><li><b>2</b> not found</li>',
    );
    expect(html).toContain('<option value="Checkpoint">Checkpoint</option>');
    expect(html).toContain('<option value="SDXL 1.0">SDXL 1.0</option>');
    expect(html).toContain('<option value="not_found">Not found</option>');
    expect(html).not.toContain('<option value="update">');
    expect(html).toContain("Images left out (--no-images).");
    expect(html).not.toContain('class="thumb');
  });
});

describe("previews", () => {
  const png = makePng(2, 3, () => [1, 2, 3]);
  const records = [
    makeRecord({ path: "/models/a.safetensors", civitai: makeCivitai({ modelName: "Alpha" }) }),
    makeRecord({ path: "/models/b.safetensors", civitai: makeCivitai({ modelName: "Beta" }) }),
    makeRecord({ path: "/models/c.safetensors", civitai: makeCivitai({ modelName: "Gamma" }) }),
  ];
  const previews = new Map<string, PreviewOutcome>([
    [
      "/models/a.safetensors",
      { kind: "image", url: "u", bytes: png, image: { kind: "png", mime: "image/png", ext: "png" }, fromCache: false },
    ],
    ["/models/b.safetensors", { kind: "failed", url: "u2", reason: "HTTP 404 from image.civitai.com (the image is gone)" }],
    ["/models/c.safetensors", { kind: "none", reason: "no image is rated PG-13 or lower (--nsfw-level allows more)" }],
  ]);
  const html = renderHtml(makeInventory(records), { previews, nsfwLabel: "PG-13" });

  test("an image is embedded as a data: URI; a failure and a missing image say why", () => {
    expect(html).toContain(
      `<img src="data:image/png;base64,${Buffer.from(png).toString("base64")}" alt="" loading="lazy" decoding="async">`,
    );
    expect(html).toContain(
      '<figure class="thumb failed"><figcaption>Preview not loaded: HTTP 404 from image.civitai.com (the image is gone)</figcaption>',
    );
    expect(html).toContain("<figcaption>No preview: no image is rated PG-13 or lower (--nsfw-level allows more)</figcaption>");
  });

  test("the header counts previews and lists why some failed", () => {
    expect(html).toContain("<li><b>1</b> previews</li>");
    expect(html).toContain("1 preview could not be loaded (the cards say why): HTTP 404 from image.civitai.com (the image is gone) ×1");
    expect(html).toContain("Previews show images rated PG-13 or lower.");
  });
});

describe("badges for update, duplicate and gone (schema 2 answers, read by shape)", () => {
  const withExtra = (extra: Record<string, unknown>, base: Partial<FileRecord> = {}) => ({ ...makeRecord(base), ...extra }) as FileRecord;
  const newer = (versionId: number, name: string, more: Record<string, unknown> = {}) => ({
    versionId,
    name,
    baseModel: "SDXL 1.0",
    publishedAt: "2026-05-01T00:00:00.000Z",
    access: null,
    inLibrary: [],
    pageUrl: `https://civitai.com/models/100?modelVersionId=${versionId}`,
    ...more,
  });

  test("recordBadges reads update, duplicate and gone as scan writes them", () => {
    const r = withExtra({
      update: { sameBaseModel: newer(999, "v3.0"), newest: newer(999, "v3.0") },
      duplicate: { copies: 2, others: ["/models/copy.safetensors"] },
      gone: { reason: "not_found", lastSeenAt: "2026-01-02T00:00:00Z" },
    });
    expect(recordBadges(r).map((b) => [b.kind, b.label])).toEqual([
      ["update", "Update: v3.0"],
      ["duplicate", "Duplicate"],
      ["gone", "Gone from Civitai"],
    ]);
    expect(recordBadges(r)[2]!.detail).toBe("Removed from Civitai; last seen 2026-01-02");
    expect(recordBadges(withExtra({ duplicate: { copies: 3, others: ["/a", "/b"] }, gone: true })).map((b) => b.label)).toEqual([
      "Duplicate ×3",
      "Gone from Civitai",
    ]);
    // Shapes that are not what we expect add nothing.
    expect(recordBadges(withExtra({ update: { sameBaseModel: { versionId: "9" } }, duplicate: "x", gone: "yes" }))).toEqual([]);
  });

  test("an update the library already holds is no badge; a newer version for another base model is shown but is not an update", () => {
    const held = withExtra({
      update: {
        sameBaseModel: newer(999, "v3.0", { inLibrary: ["/models/v3.safetensors"] }),
        newest: newer(999, "v3.0", { inLibrary: ["/x"] }),
      },
    });
    expect(recordBadges(held)).toEqual([]);
    const other = withExtra({ update: { sameBaseModel: null, newest: newer(1001, "v4 Flux", { baseModel: "Flux.1 D" }) } });
    expect(recordBadges(other).map((b) => [b.kind, b.label])).toEqual([
      ["newer-other-base", "Newer for another base model: v4 Flux (Flux.1 D)"],
    ]);
    expect(renderHtml(makeInventory([other]))).not.toContain('<option value="update">');
  });

  test("a record with status gone gets the badge even without its details", () => {
    expect(recordBadges(withExtra({}, { status: "gone" })).map((b) => b.kind)).toEqual(["gone"]);
  });

  test("cards show them, the update links to the new version, and the status filter offers them", () => {
    const inv = makeInventory([
      withExtra({ update: { sameBaseModel: newer(999, "v3.0 <b>"), newest: newer(999, "v3.0 <b>") } }, { path: "/models/u.safetensors" }),
      withExtra({ duplicate: { copies: 2, others: ["/models/d2.safetensors"] } }, { path: "/models/d1.safetensors" }),
      withExtra({ gone: { reason: "archived", lastSeenAt: null } }, { path: "/models/g.safetensors" }),
    ]);
    const html = renderHtml(inv);
    expect(html).toContain(
      '<li class="badge b-update" title="A newer version for the same base model is on Civitai: v3.0 &lt;b&gt;"><a href="https://civitai.com/models/100?modelVersionId=999" rel="noopener noreferrer" target="_blank">Update: v3.0 &lt;b&gt;</a></li>',
    );
    expect(html).toContain('<li class="badge b-duplicate" title="Same SHA-256 as: /models/d2.safetensors">Duplicate</li>');
    expect(html).toContain('<li class="badge b-gone" title="Removed from Civitai">Gone from Civitai</li>');
    expect(html).toContain(
      '<option value="update">Update available</option><option value="duplicate">Duplicate</option><option value="gone">Gone from Civitai</option>',
    );
    expect(html).toContain("<li><b>1</b> update available</li><li><b>1</b> duplicate</li><li><b>1</b> gone from civitai</li>");
    const [json] = between(html, /<script type="application\/json" id="gallery-data">/, "</script>");
    const data = JSON.parse(json!) as { p: string; st: string[] }[];
    expect(data.find((d) => d.p === "/models/u.safetensors")!.st).toEqual(["found", "update"]);
  });
});

describe("an edited inventory (report reads files from disk)", () => {
  test("fields of the wrong type render as absent, never as a crash or markup", () => {
    const odd = makeRecord({ path: "/models/odd.safetensors" }) as unknown as Record<string, any>;
    Object.assign(odd.civitai, {
      versionName: 42,
      creator: { name: "<b>x</b>" },
      license: "MIT",
      publishedAt: 1234,
      images: "not a list",
      trainedWords: ["ok", 7, null],
    });
    const side = makeRecord({ path: "/models/side.safetensors", status: "not_found" }) as unknown as Record<string, any>;
    side.sidecar = { source: "<script>", modelName: ["x"], trainedWords: "word", versionName: { a: 1 }, modelId: "1", versionId: 2 };
    side.local = { guess: "lora" };
    const inv = makeInventory([odd as unknown as FileRecord, side as unknown as FileRecord]);
    const html = renderHtml(inv, { previews: new Map() });
    expect(html).toContain("<code>ok</code>");
    expect(html).not.toContain("<b>x</b>");
    expect(html).not.toContain('<script>"');
    expect(html).toContain("Not found on Civitai; known from a &lt;script&gt; sidecar");
    expect(html).toContain('<a href="https://civitai.com/model-versions/2"');
    const [json] = between(html, /<script type="application\/json" id="gallery-data">/, "</script>");
    expect((JSON.parse(json!) as { d: unknown }[]).map((d) => d.d)).toEqual([null, null]);
  });
});
