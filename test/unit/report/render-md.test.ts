import { describe, expect, test } from "bun:test";
import MarkdownIt, { type Token } from "markdown-it";
import { FOLD_ROWS, renderMarkdown } from "../../../src/report/render-md.ts";
import { MD_EMPTY, Slugger, githubSlug, isCivitaiUrl, mdCode, mdLink, mdText } from "../../../src/report/md-escape.ts";
import type { Inventory } from "../../../src/report/inventory-types.ts";
import {
  HOSTILE_STRINGS,
  hostileInventory,
  makeCivitai,
  makeInventory,
  makeLocal,
  makeMatchedFile,
  makeRecord,
  makeSidecarInfo,
  sampleInventory,
} from "../../helpers/sample-inventory.ts";
import { syntheticLibrary } from "../../helpers/synthetic-library.ts";

// GFM tables and strikethrough are on in markdown-it's default preset; linkify mimics GitHub's bare-URL links.
const RENDERERS = {
  "html: false": new MarkdownIt({ html: false }),
  "html: true": new MarkdownIt({ html: true }),
  "html: true, linkify": new MarkdownIt({ html: true, linkify: true }),
} as const;

/**
 * `md.parse(markdown)`, parsed once per renderer and text: markdown-it needs ~0.1–0.4 s for the
 * hostile inventory's Markdown, and several tests read the same text. Tokens are only read.
 */
type Renderer = (typeof RENDERERS)[keyof typeof RENDERERS];
const parsedCache = new Map<Renderer, Map<string, Token[]>>();
function parse(md: Renderer, markdown: string): Token[] {
  let byText = parsedCache.get(md);
  if (!byText) parsedCache.set(md, (byText = new Map()));
  let tokens = byText.get(markdown);
  if (!tokens) byText.set(markdown, (tokens = md.parse(markdown, {})));
  return tokens!;
}

/** Tags we emit ourselves; anything else in the HTML came from content. */
const OUR_TAGS = new Set([
  "h1",
  "h2",
  "h3",
  "h4",
  "p",
  "table",
  "thead",
  "tbody",
  "tr",
  "th",
  "td",
  "ul",
  "li",
  "strong",
  "code",
  "a",
  "details",
  "summary",
]);

/** The only raw HTML we write: our own `<details>` around a long table, its `<summary>` in our own words. */
const OUR_HTML =
  /^(?:<details>\n<summary>[0-9,]+ (?:files?|sets?|models?)(?:, [0-9.]+ (?:B|KiB|MiB|GiB|TiB|PiB))?<\/summary>\n|<\/details>\n)$/;

/** What a reader should see for an untrusted string: one line, controls visible, trimmed. */
function shown(text: string): string {
  return oneLine(text).trim();
}

function oneLine(text: string): string {
  return text
    .replace(/\r\n|[\r\n\u2028\u2029]/g, " ")
    .replace(/\t/g, " ")
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function allTokens(tokens: Token[]): Token[] {
  return tokens.flatMap((t) => [t, ...allTokens(t.children ?? [])]);
}

/** The text an inline token displays (markup tokens contribute nothing, so emphasis would lose its `*`). */
function inlineText(token: Token): string {
  return (token.children ?? [])
    .map((c) => (c.type === "text" || c.type === "code_inline" ? c.content : c.type === "softbreak" ? "\n" : ""))
    .join("");
}

interface Table {
  header: string[];
  rows: string[][];
  rowTokens: Token[][];
}

/** Tables as cell texts, from the token stream (not from regexes over HTML). */
function tables(tokens: Token[]): Table[] {
  const out: Table[] = [];
  let table: Table | undefined;
  let row: string[] | undefined;
  let rowInline: Token[] = [];
  let inHead = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.type === "table_open") table = { header: [], rows: [], rowTokens: [] };
    else if (t.type === "table_close" && table) out.push(table);
    else if (t.type === "thead_open") inHead = true;
    else if (t.type === "thead_close") inHead = false;
    else if (t.type === "tr_open") {
      row = [];
      rowInline = [];
    } else if ((t.type === "th_open" || t.type === "td_open") && row) {
      const inline = tokens[i + 1]!;
      row.push(inline.type === "inline" ? inlineText(inline) : "");
      if (inline.type === "inline") rowInline.push(inline);
    } else if (t.type === "tr_close" && row && table) {
      if (inHead) table.header = row;
      else {
        table.rows.push(row);
        table.rowTokens.push(rowInline);
      }
    }
  }
  return out;
}

function checkSafe(markdown: string, name: string): void {
  for (const [mode, md] of Object.entries(RENDERERS)) {
    const label = `${name} / ${mode}`;
    const tokens = parse(md, markdown);
    const flat = allTokens(tokens);
    // No raw HTML from content, in either html mode: only our own <details>/<summary> blocks.
    const html = flat.filter((t) => t.type === "html_inline" || t.type === "html_block").map((t) => t.content);
    expect({ label, foreign: html.filter((h) => !OUR_HTML.test(h)) }).toEqual({ label, foreign: [] });
    if (mode === "html: false") expect({ label, html }).toEqual({ label, html: [] });
    // No images, no code blocks or fences opened by content.
    expect({ label, types: flat.filter((t) => ["image", "fence", "code_block"].includes(t.type)).length }).toEqual({
      label,
      types: 0,
    });
    // Each check below gathers what breaks it and expects none (one expect per check, not one per row,
    // tag or link: on the 2,000-file library that was ~100,000 expect calls and most of this file's time).
    // Every table row has the header's cell count.
    const badRows = tables(tokens).flatMap((table) => table.rows.filter((row) => row.length !== table.header.length));
    expect({ label, badRows }).toEqual({ label, badRows: [] });
    // What md.render(markdown) does, from the tokens already parsed.
    const rendered = md.renderer.render(tokens, md.options, {});
    // Hostile text may appear as text (`&lt;img …`); what must not appear is markup made from it.
    expect({ label, raw: rendered.match(/<(img|script|iframe|svg|style|object|embed)\b/i)?.[0] ?? null }).toEqual({ label, raw: null });
    // Our right-aligned number columns are the one style markdown-it writes.
    const badAttrs = [...rendered.matchAll(/<[a-zA-Z][^>]*>/g)]
      .map((m) => m[0].replace(/^(<t[hd]) style="text-align:right">$/, "$1>"))
      .filter((tag) => /\s(on\w+|src|style)\s*=|javascript:/i.test(tag));
    expect({ label, badAttrs }).toEqual({ label, badAttrs: [] });
    const tags = new Set([...rendered.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9]*)/g)].map((m) => m[1]!.toLowerCase()));
    expect({ label, foreignTags: [...tags].filter((tag) => !OUR_TAGS.has(tag)) }).toEqual({ label, foreignTags: [] });
    // Links: our civitai.com pages, or anchors of the document's own headings.
    const badLinks = [...rendered.matchAll(/<a\s[^>]*>/g)]
      .map((m) => m[0])
      .filter((a) => !/^<a href="(?:https:\/\/civitai\.com\/[^"\s]*|#[^"\s]*)">$/.test(a));
    expect({ label, badLinks }).toEqual({ label, badLinks: [] });
    // Links only from our own link tokens: none made by linkify from content.
    expect({ label, linkified: flat.filter((t) => t.type === "link_open" && t.markup === "linkify").length }).toEqual({
      label,
      linkified: 0,
    });
  }
}

describe("md-escape", () => {
  test("mdText escapes backslash first, then markup, and renders back to the input", () => {
    expect(mdText("a|b")).toBe("a\\|b");
    expect(mdText("a\\|b")).toBe("a\\\\\\|b");
    expect(mdText("[x](javascript:alert(1))")).toBe("\\[x\\](javascript\\:alert(1))");
    // Only what has a meaning is escaped: names, versions and file names stay readable in the source.
    expect(mdText("velvet-portrait_v1.0 (SDXL 1.0).safetensors")).toBe("velvet-portrait_v1.0 (SDXL 1.0).safetensors");
    expect(mdText("_lead and trail_ a_b")).toBe("\\_lead and trail\\_ a_b");
    expect(mdText("www.evil.example")).toBe("www\\.evil.example");
    // At a line's start, list markers and setext underlines are escaped too.
    expect(mdText("- item")).toBe("\\- item");
    expect(mdText("+1")).toBe("\\+1");
    expect(mdText("=== x")).toBe("\\=== x");
    expect(mdText("12. twelve")).toBe("12\\. twelve");
    expect(mdText("3) three")).toBe("3\\) three");
    expect(mdText("<img src=x>")).toBe("\\<img src=x\\>");
    expect(mdText("two\nlines\r\nhere")).toBe("two lines here");
    expect(mdText("esc\u001b[31m")).toBe("esc\\\\x1b\\[31m");
    expect(mdText("")).toBe(MD_EMPTY);
    expect(mdText("  \n ")).toBe(MD_EMPTY);
    expect(mdText(null)).toBe(MD_EMPTY);
    const md = RENDERERS["html: true"];
    for (const s of Object.values(HOSTILE_STRINGS)) {
      const tokens = md.parseInline(mdText(s), {});
      expect(inlineText(tokens[0]!)).toBe(shown(s));
    }
  });

  test("mdCode replaces backticks and stays one code span", () => {
    expect(mdCode("a`b")).toBe("`a'b`");
    expect(mdCode("```\nx\n```")).toBe("`''' x '''`");
    expect(mdCode(" padded ")).toBe("`  padded  `");
    expect(mdCode("")).toBe(MD_EMPTY);
    const md = RENDERERS["html: true"];
    for (const s of Object.values(HOSTILE_STRINGS)) {
      const children = md.parseInline(mdCode(s), {})[0]!.children!;
      expect(children.map((c) => c.type)).toEqual(["code_inline"]);
      expect(children[0]!.content).toBe(oneLine(s).replace(/`/g, "'"));
    }
  });

  test("isCivitaiUrl accepts only https://civitai.com/ URLs we would build", () => {
    for (const ok of [
      "https://civitai.com/models/1?modelVersionId=2",
      "https://civitai.com/api/download/models/2?fileId=3",
      "https://civitai.com/model-versions/5",
    ]) {
      expect(isCivitaiUrl(ok)).toBe(true);
    }
    for (const bad of [
      "javascript:alert(1)",
      "http://civitai.com/models/1",
      "https://civitai.com.evil.example/",
      "https://civitai.com@evil.example/",
      "https://evil.example/?https://civitai.com/",
      "https://civitai.com:8443/models/1",
      "https://civitai.com",
      "https://civitai.com/a b",
      "https://civitai.com/a)b",
      "https://civitai.com/a(b",
      "https://civitai.com/a\nb",
      "https://civitai.com/a\\b",
      'https://civitai.com/a"b',
      "https://civitai.com/<b>",
      "HTTPS://CIVITAI.COM/models/1",
      " https://civitai.com/models/1",
      "https://civitai.com/models/1#x",
      null,
      42,
    ]) {
      expect({ bad, ok: isCivitaiUrl(bad) }).toEqual({ bad, ok: false });
    }
  });

  test("mdLink: escaped text, or no link at all", () => {
    expect(mdLink("a]b", "https://civitai.com/models/1")).toBe("[a\\]b](https://civitai.com/models/1)");
    expect(mdLink("x", "javascript:alert(1)")).toBe(MD_EMPTY);
    expect(mdLink("x", "https://evil.example/", "plain")).toBe("plain");
  });
});

/** Headings as "h2 text", in document order. */
function headings(tokens: Token[]): string[] {
  return tokens.flatMap((t, i) => (t.type === "heading_open" ? [`${t.tag} ${inlineText(tokens[i + 1]!)}`] : []));
}

/** GitHub's heading anchors, worked out here from the rendered heading texts (lower case, punctuation out, spaces to hyphens, -1 for repeats). */
function anchorsOf(tokens: Token[]): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const h of headings(tokens)) {
    const base = h
      .slice(3)
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
      .replace(/ /g, "-");
    let slug = base;
    for (let n = seen.get(base) ?? 0; out.has(slug);) slug = `${base}-${++n}`;
    seen.set(base, (seen.get(base) ?? 0) + (slug === base ? 0 : 1));
    out.add(slug);
  }
  return out;
}

/** A table found by its header row. */
function tableWith(tokens: Token[], header: string[]): Table {
  const t = tables(tokens).find((x) => JSON.stringify(x.header) === JSON.stringify(header));
  if (!t) throw new Error(`no table ${header.join(" | ")}`);
  return t;
}

const TYPED = ["File", "Model · version", "Size", "Trigger words", "Licence (declared)", "Notes"];

describe("renderMarkdown", () => {
  test("sample: what to act on first, then contents, then one table per type and base model, then the other statuses", () => {
    const inv = sampleInventory();
    const markdown = renderMarkdown(inv);
    expect(
      markdown.startsWith(
        "# Civitai model inventory\n\n**9 files**, 2.5 GiB, in `/models`. Scanned 2025-01-02 03:04:05 UTC by civitai-meta 0.1.0",
      ),
    ).toBe(true);
    expect(markdown.endsWith("\n")).toBe(true);
    const tokens = parse(RENDERERS["html: false"], markdown);
    const status = tableWith(tokens, ["Status", "Files"]);
    expect(Object.fromEntries(status.rows)).toEqual({
      "Found on Civitai": "4",
      "Gone from Civitai": "0",
      "Not found on Civitai": "2",
      Errors: "1",
      Skipped: "2",
    });
    expect(tableWith(tokens, ["Type", "Files", "Size"]).rows).toEqual([
      ["LORA", "3", "422.2 MiB"],
      ["Checkpoint", "1", "2.0 GiB"],
    ]);
    expect(tableWith(tokens, ["Base model", "Files", "Size"]).rows.map((r) => r[0])).toEqual(["SD 1.5", "SDXL 1.0"]);
    expect(headings(tokens)).toEqual([
      "h1 Civitai model inventory",
      "h2 Contents",
      "h2 Checkpoint",
      "h3 Checkpoint · SD 1.5",
      "h2 LORA",
      "h3 LORA · SD 1.5",
      "h3 LORA · SDXL 1.0",
      "h2 Not found on Civitai",
      "h2 Errors",
      "h2 Skipped",
      "h2 Duplicates",
      "h3 Several versions of one model",
    ]);
    // Every link of the contents leads to a heading, by GitHub's anchors.
    const anchors = anchorsOf(tokens);
    const fragments = allTokens(tokens)
      .filter((t) => t.type === "link_open" && String(t.attrGet("href")).startsWith("#"))
      .map((t) => decodeURIComponent(String(t.attrGet("href")).slice(1)));
    expect(fragments.length).toBeGreaterThan(8);
    for (const f of fragments) expect({ f, resolves: anchors.has(f) }).toEqual({ f, resolves: true });

    const sd15 = tables(tokens).filter((t) => JSON.stringify(t.header) === JSON.stringify(TYPED));
    expect(sd15.map((t) => t.rows.length)).toEqual([1, 2, 1]);
    expect(sd15[0]!.rows[0]).toEqual([
      "checkpoints/realistic.safetensors",
      "Realistic Vision · V6.0 B1 (VAE)",
      "2.0 GiB",
      "mystyle (from the file)",
      "—",
      "archived on Civitai",
    ]);
    const lora = sd15[1]!.rows;
    expect(lora[0]).toEqual([
      "loras/detail-tweaker.safetensors",
      "Detail Tweaker · v1.0",
      "140.7 MiB",
      "detailed, sharp focus",
      "commercial: Image; same licence for derivatives",
      "1 other version in the library",
    ]);
    expect(lora[1]![5]).toBe("also claimed by Shared Hash B · B1");
    expect(sd15[2]!.rows[0]![0]).toBe("loras/detail-tweaker-v2.safetensors (also: links/dt2.safetensors)");
    expect(markdown).toContain("[Detail Tweaker · v1.0](https://civitai.com/models/100?modelVersionId=200)");
    expect(markdown).toContain("also claimed by [Shared Hash B · B1](https://civitai.com/models/310?modelVersionId=311)");
    expect(tableWith(tokens, ["File", "Error"]).rows).toEqual([
      ["vae/broken.safetensors", "HTTP 503 from https://civitai.com/api/v1/model-versions/by-hash (after 4 tries)"],
    ]);
    expect(tableWith(tokens, ["File", "Reason"]).rows).toEqual([
      ["fifo.safetensors", "not a regular file"],
      ["loras/in-progress.safetensors.part", "in progress (.part)"],
    ]);
    expect(tableWith(tokens, ["Model", "Versions in the library"]).rows).toEqual([
      ["Detail Tweaker", "v1.0 (loras/detail-tweaker.safetensors), v2.0 (loras/detail-tweaker-v2.safetensors)"],
    ]);
    checkSafe(markdown, "sample");
  });

  test("not found: what a sidecar and the file's own header say; header warnings get their own list", () => {
    const found = makeRecord({ local: makeLocal() });
    const miss = makeRecord({
      path: "/models/x/mine.safetensors",
      status: "not_found",
      local: makeLocal({
        format: "pickle",
        formatMismatch: "content is a Python pickle but the name ends in .safetensors",
        errors: ["invalid safetensors: header too large"],
        sidecars: [makeSidecarInfo({ file: "mine.civitai.info", status: "not-found", modelId: null, versionId: null })],
      }),
    });
    const inv = sampleInventory();
    inv.records.push(found, miss);
    const markdown = renderMarkdown(inv);
    const tokens = parse(RENDERERS["html: false"], markdown);
    const notFound = tableWith(tokens, ["File", "Size", "SHA-256", "What the file says"]).rows;
    expect(notFound.find((r) => r[0] === "loras/Ünïcode 模型 🦊.safetensors")![3]).toBe(
      "Deleted Model · v3 (LORA, SDXL 1.0), from the Civitai Helper sidecar; LoRA, SDXL (guess); trigger words mystyle; trained on sdxl_base_v1-0",
    );
    expect(notFound.find((r) => r[0] === "x/mine.safetensors")![3]).toBe(
      "LoRA, SDXL (guess); trigger words mystyle; trained on sdxl_base_v1-0; Civitai Helper sidecar says Civitai did not know it",
    );
    expect(markdown).toContain("[Deleted Model · v3](https://civitai.com/models/700?modelVersionId=701)");
    expect(tableWith(tokens, ["File", "Warning"]).rows).toEqual([
      ["x/mine.safetensors", "content is a Python pickle but the name ends in .safetensors; invalid safetensors: header too large"],
    ]);
    // A found file shows Civitai's trigger words, not the file's.
    const typed = tables(tokens)
      .filter((t) => JSON.stringify(t.header) === JSON.stringify(TYPED))
      .flatMap((t) => t.rows);
    expect(typed.find((r) => r[0] === "loras/detail-tweaker.safetensors")![3]).toBe("detailed, sharp focus");
    checkSafe(markdown, "local");
  });

  test("copies, other versions held, updates, gone and early access: in the summary, the rows and their own lists", () => {
    const now = "2026-05-01T00:00:00.000Z";
    const newer = (versionId: number, name: string, base: string, inLibrary: string[] = [], access: unknown = null) => ({
      versionId,
      name,
      baseModel: base,
      publishedAt: "2026-04-01T00:00:00.000Z",
      access: access as null,
      inLibrary,
      pageUrl: `https://civitai.com/models/100?modelVersionId=${versionId}`,
    });
    const a = makeRecord({ path: "/models/loras/a.safetensors", size: 1000 });
    const copy = makeRecord({ path: "/models/backup/a-copy.safetensors", size: 1000, hashes: a.hashes });
    a.update = {
      sameBaseModel: newer(205, "v3.0", "SD 1.5", [], { kind: "early_access", endsAt: "2026-05-04T12:00:00.000Z", permanent: false }),
      newest: newer(206, "v4.0", "Flux.1 D"),
    };
    const gone = makeRecord({
      path: "/models/loras/gone.safetensors",
      status: "gone",
      civitai: makeCivitai({ modelId: 900, versionId: 901, modelName: "Vanished" }),
      gone: { reason: "not_found", lastSeenAt: "2026-03-01T00:00:00.000Z" },
    });
    const inv = makeInventory([a, copy, gone], { generatedAt: now });
    const markdown = renderMarkdown(inv);
    const tokens = parse(RENDERERS["html: false"], markdown);
    expect(markdown).toContain("- **Updates:** 1 file with a newer version for the same base model. See [Updates](#updates).");
    expect(markdown).toContain(
      "- **Duplicates:** 1 set of identical files (2 files); 1000 B could be freed. See [Duplicates](#duplicates).",
    );
    expect(markdown).toContain("- **Gone from Civitai:** 1 file. See [Gone from Civitai](#gone-from-civitai).");
    const rows = tables(tokens)
      .filter((t) => JSON.stringify(t.header) === JSON.stringify(TYPED))
      .flatMap((t) => t.rows);
    expect(rows.find((r) => r[0] === "loras/a.safetensors")![5]).toBe(
      "update: v3.0, 2026-04-01, early access until 2026-05-04 (4 days left); newest: v4.0, Flux.1 D, 2026-04-01; 2 copies",
    );
    expect(rows.find((r) => r[0] === "loras/gone.safetensors")![5]).toBe("gone from Civitai (no longer found, last seen 2026-03-01)");
    expect(tableWith(tokens, ["File", "Has", "Newer, same base model", "In the library", "Newest overall"]).rows).toEqual([
      [
        "loras/a.safetensors",
        "Detail Tweaker · v1.0",
        "v3.0, 2026-04-01, early access until 2026-05-04 (4 days left)",
        "no",
        "v4.0, Flux.1 D, 2026-04-01",
      ],
    ]);
    expect(tableWith(tokens, ["File", "Was", "Why", "Last seen"]).rows).toEqual([
      ["loras/gone.safetensors", "Vanished · v1.0", "no longer found", "2026-03-01"],
    ]);
    expect(tableWith(tokens, ["Files", "Size each", "Could free"]).rows).toEqual([
      ["backup/a-copy.safetensors, loras/a.safetensors", "1000 B", "1000 B"],
    ]);
    expect(Object.fromEntries(tableWith(tokens, ["Status", "Files"]).rows)["Gone from Civitai"]).toBe("1");
    checkSafe(markdown, "answers");
  });

  test("copies list each file's other names: deleting one name of a linked file frees nothing", () => {
    const sha = "c".repeat(64);
    const linked = makeRecord({
      path: "/models/loras/a.safetensors",
      aliases: ["/models/loras/a-hard.safetensors", "/models/loras/a-sym.safetensors"],
      size: 1000,
      hashes: { sha256: sha },
    });
    const copy = makeRecord({ path: "/models/backup/a-copy.safetensors", size: 1000, hashes: { sha256: sha } });
    const markdown = renderMarkdown(makeInventory([linked, copy]));
    const tokens = parse(RENDERERS["html: false"], markdown);
    expect(tableWith(tokens, ["Files", "Size each", "Could free"]).rows).toEqual([
      ["backup/a-copy.safetensors, loras/a.safetensors (also: loras/a-hard.safetensors, loras/a-sym.safetensors)", "1000 B", "1000 B"],
    ]);
    expect(markdown).toContain("a file with other names frees its space only when all its names are deleted");
    checkSafe(markdown, "linked copies");
  });

  test("an update the library already holds is not one to fetch", () => {
    const v1 = makeRecord({ path: "/models/loras/v1.safetensors" });
    const v2 = makeRecord({ path: "/models/loras/v2.safetensors", civitai: makeCivitai({ versionId: 205, versionName: "v2.0" }) });
    v1.update = {
      sameBaseModel: {
        versionId: 205,
        name: "v2.0",
        baseModel: "SD 1.5",
        publishedAt: null,
        access: null,
        inLibrary: [],
        pageUrl: "https://civitai.com/models/100?modelVersionId=205",
      },
      newest: {
        versionId: 205,
        name: "v2.0",
        baseModel: "SD 1.5",
        publishedAt: null,
        access: null,
        inLibrary: [],
        pageUrl: "https://civitai.com/models/100?modelVersionId=205",
      },
    };
    const markdown = renderMarkdown(makeInventory([v1, v2]));
    const tokens = parse(RENDERERS["html: false"], markdown);
    expect(markdown).toContain(
      "- **Updates:** 0 files with a newer version for the same base model; 1 more whose newer version the library already holds.",
    );
    expect(tableWith(tokens, ["File", "Has", "Newer, same base model", "In the library", "Newest overall"]).rows[0]![3]).toBe(
      "loras/v2.safetensors",
    );
    const rows = tables(tokens)
      .filter((t) => JSON.stringify(t.header) === JSON.stringify(TYPED))
      .flatMap((t) => t.rows);
    expect(rows.find((r) => r[0] === "loras/v1.safetensors")![5]).toBe("1 other version in the library");
  });

  test(`a table of more than ${FOLD_ROWS} rows is folded in our own <details>, a shorter one is not`, () => {
    const records = Array.from({ length: FOLD_ROWS + 1 }, (_, i) =>
      makeRecord({
        path: `/models/loras/m${String(i).padStart(2, "0")}.safetensors`,
        civitai: makeCivitai({ modelId: 1000 + i, versionId: 2000 + i }),
      }),
    );
    records.push(makeRecord({ path: "/models/x.ckpt", status: "error" }));
    const markdown = renderMarkdown(makeInventory(records));
    expect(markdown).toContain(`### LORA · SD 1.5\n\n<details>\n<summary>${FOLD_ROWS + 1} files, 3.6 GiB</summary>\n\n| File |`);
    expect(markdown).toContain("## Errors\n\n1 file.\n\n| File | Error |");
    const tokens = parse(RENDERERS["html: true"], markdown);
    expect(tables(tokens).find((t) => t.header[0] === "File" && t.header.length === TYPED.length)!.rows.length).toBe(FOLD_ROWS + 1);
    checkSafe(markdown, "folded");
  });

  test("F2: hostile kohya/ModelSpec metadata and sidecar strings are escaped exactly like Civitai names", () => {
    for (const [key, s] of Object.entries(HOSTILE_STRINGS)) {
      const markdown = renderMarkdown(hostileInventory([s]));
      checkSafe(markdown, `local ${key}`);
      const tokens = parse(RENDERERS["html: false"], markdown);
      const notFound = tableWith(tokens, ["File", "Size", "SHA-256", "What the file says"]).rows;
      const says = notFound.find((r) => r[0]!.startsWith("hostile-miss/"))![3]!;
      expect({ key, says }).toEqual({
        key,
        says: `${shown(s)} · ${shown(s)} (${shown(s)}, ${shown(s)}), from the LoRA Manager sidecar; LoRA, SDXL (guess); trigger words ${shown(s)}; trained on ${shown(s)}; Civitai Helper sidecar says Civitai did not know it`,
      });
    }
  });

  test("F2: hostile strings in every field keep tables intact, make no HTML, images or foreign links", () => {
    const inv = hostileInventory();
    const markdown = renderMarkdown(inv);
    checkSafe(markdown, "hostile");
    // docs/cases.md D6: no raw control or bidi characters in the Markdown source.
    expect(markdown).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  });

  test("F2: each hostile string is shown as its own text in table cells and headings", () => {
    const strings = Object.values(HOSTILE_STRINGS);
    const markdown = renderMarkdown(hostileInventory());
    for (const md of Object.values(RENDERERS)) {
      const tokens = parse(md, markdown);
      const rows = tables(tokens)
        .filter((t) => JSON.stringify(t.header) === JSON.stringify(TYPED))
        .flatMap((t) => t.rows.map((row, i) => ({ row, inline: t.rowTokens[i]! })));
      strings.forEach((s, i) => {
        const path = `hostile/${i}/${s}.safetensors`;
        const found = rows.find((r) => r.row[0] === shown(path));
        expect({ s, row: found?.row }).toEqual({
          s,
          row: [
            shown(path),
            `${shown(s)} · ${shown(s)}`,
            "140.7 MiB",
            `${shown(s)}, word ${i}`,
            "commercial: Image; same licence for derivatives",
            "header warning",
          ],
        });
        // No markup in the row but our one link.
        const markup = found!.inline.flatMap((t) => t.children ?? []).filter((c) => !["text", "link_open", "link_close"].includes(c.type));
        expect({ s, markup: markup.map((c) => c.type) }).toEqual({ s, markup: [] });
      });
      const h3 = headings(tokens).filter((h) => h.startsWith("h3 "));
      for (const s of strings) expect(h3).toContain(`h3 ${shown(s)} · ${shown(s)}`);
    }
  });

  test("F2: each hostile string alone, in every field (one render per string)", () => {
    for (const s of [
      "|",
      "\\|",
      "a \\\\| b",
      "`",
      "```",
      "[x](javascript:alert(1))",
      "<img src=x onerror=alert(1)>",
      "![](http://tracker/p.png)",
      "<script>alert(1)</script>",
      "<details><summary>x</summary>",
      "</details><script>alert(1)</script>",
      "name\nwith newline",
      "\r\n| injected | row |\r\n",
    ]) {
      checkSafe(renderMarkdown(hostileInventory([s])), JSON.stringify(s));
    }
  });

  test("URLs in a tampered inventory are never linked unless they are ours", () => {
    const civitai = makeCivitai({
      pageUrl: "javascript:alert(1)",
      downloadUrl: "https://evil.example/x.safetensors",
      primaryDownloadUrl: "https://civitai.com.evil.example/",
      modelId: null,
      matchedFile: makeMatchedFile({ name: "[x](https://evil.example)" }),
    });
    const other = makeCivitai({ versionId: 999, pageUrl: "https://civitai.com/models/1) [y](javascript:alert(1)" });
    const inv = makeInventory([makeRecord({ civitai, ambiguous: [civitai, other] })], { generatedAt: "<script>x</script>" });
    const markdown = renderMarkdown(inv);
    checkSafe(markdown, "tampered");
    const html = RENDERERS["html: true, linkify"].render(markdown);
    expect(html).not.toContain('href="javascript');
    expect(html).not.toContain('evil.example"');
    expect([...html.matchAll(/<a href="([^"]*)"/g)].map((m) => m[1]).filter((h) => !h!.startsWith("#"))).toEqual([]);
  });

  test("an empty inventory still renders a valid report", () => {
    const markdown = renderMarkdown(makeInventory([]));
    expect(markdown).toContain("**0 files**");
    expect(markdown).toContain("## Contents\n\nNo files.");
    expect(markdown).toContain("- Nothing to act on");
    checkSafe(markdown, "empty");
  });

  test("paths are shown relative to a single root, whole with several roots", () => {
    const records = [makeRecord({ path: "/models/a/x.safetensors", status: "not_found" })];
    const header = ["File", "Size", "SHA-256", "What the file says"];
    expect(tableWith(parse(RENDERERS["html: false"], renderMarkdown(makeInventory(records))), header).rows[0]![0]).toBe("a/x.safetensors");
    const two = renderMarkdown(makeInventory(records, { roots: ["/models", "/other"] }));
    expect(tableWith(parse(RENDERERS["html: false"], two), header).rows[0]![0]).toBe("/models/a/x.safetensors");
  });

  test("deterministic and pure", () => {
    const a: Inventory = hostileInventory();
    const b: Inventory = hostileInventory();
    b.records.reverse();
    const before = JSON.stringify(a);
    expect(renderMarkdown(a)).toBe(renderMarkdown(b));
    expect(JSON.stringify(a)).toBe(before);
  });

  test("GitHub's anchors: punctuation dropped, repeats numbered", () => {
    expect(githubSlug("LORA · SDXL 1.0")).toBe("lora--sdxl-10");
    expect(githubSlug("Not found on Civitai")).toBe("not-found-on-civitai");
    expect(githubSlug("模型 Ünïcode")).toBe("模型-ünïcode");
    const s = new Slugger();
    expect(["Errors", "Errors", "Errors-1", "Errors"].map((t) => s.slug(t))).toEqual(["errors", "errors-1", "errors-1-1", "errors-2"]);
  });
});

describe("a 2,000-file library", () => {
  /**
   * The Markdown of the same 2,000-file library before issue 12 (the renderer of commit 10534fb on
   * syntheticLibrary(2000)): one flat table and a section per model, 41,388 lines, 22,948 backslashes.
   */
  const BEFORE_BYTES = 1_622_074;
  const markdown = renderMarkdown(syntheticLibrary(2000, () => new Uint8Array(1)).inventory);

  test("at most 40 % of the size it had, with far fewer backslashes", () => {
    const bytes = Buffer.byteLength(markdown);
    expect(bytes).toBeLessThanOrEqual(0.4 * BEFORE_BYTES);
    expect((markdown.match(/\\/g) ?? []).length).toBeLessThan(200);
    expect(markdown.split("\n").length).toBeLessThan(4000);
  });

  test("a person finds their way from the first screen: counts by status, what to act on, type and base model, then contents", () => {
    const firstScreen = markdown.split("\n").slice(0, 45).join("\n");
    for (const label of [
      "| Status | Files |",
      "**To act on**",
      "- **Updates:**",
      "- **Gone from Civitai:**",
      "| Type | Files | Size |",
      "| Base model | Files | Size |",
    ]) {
      expect({ label, there: firstScreen.includes(label) }).toEqual({ label, there: true });
    }
    const tokens = parse(RENDERERS["html: true"], markdown);
    const anchors = anchorsOf(tokens);
    const fragments = allTokens(tokens)
      .filter((t) => t.type === "link_open" && String(t.attrGet("href")).startsWith("#"))
      .map((t) => decodeURIComponent(String(t.attrGet("href")).slice(1)));
    for (const f of fragments) expect({ f, resolves: anchors.has(f) }).toEqual({ f, resolves: true });
    // Sections by type, then base model, each table with size and trigger words.
    expect(headings(tokens).filter((h) => h.startsWith("h3 ")).length).toBe(25);
    expect(
      tables(tokens)
        .filter((t) => JSON.stringify(t.header) === JSON.stringify(TYPED))
        .reduce((n, t) => n + t.rows.length, 0),
    ).toBe(1868);
  });

  test("rendered by a CommonMark renderer: the only HTML is our own <details>/<summary>, no link but ours", () => {
    checkSafe(markdown, "2,000 files");
    const html = allTokens(parse(RENDERERS["html: true"], markdown)).filter((t) => t.type === "html_block" || t.type === "html_inline");
    expect(html.length).toBeGreaterThan(20);
    for (const t of html) expect(t.content).toMatch(OUR_HTML);
  });
});
