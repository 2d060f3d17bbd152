import { describe, expect, test } from "bun:test";
import MarkdownIt, { type Token } from "markdown-it";
import { MD_DESCRIPTION_MAX_CHARS, renderMarkdown } from "../../../src/report/render-md.ts";
import { MD_EMPTY, isCivitaiUrl, mdCode, mdLink, mdText } from "../../../src/report/md-escape.ts";
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
const OUR_TAGS = new Set(["h1", "h2", "h3", "h4", "p", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "strong", "code", "a"]);

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
    // No raw HTML from content, in either html mode.
    expect({ label, html: flat.filter((t) => t.type === "html_inline" || t.type === "html_block").map((t) => t.content) }).toEqual({
      label,
      html: [],
    });
    // No images, no code blocks or fences opened by content.
    expect({ label, types: flat.filter((t) => ["image", "fence", "code_block", "html_block"].includes(t.type)).length }).toEqual({
      label,
      types: 0,
    });
    // Every table row has the header's cell count.
    for (const table of tables(tokens)) {
      for (const row of table.rows) expect({ label, cells: row.length }).toEqual({ label, cells: table.header.length });
    }
    // What md.render(markdown) does, from the tokens already parsed.
    const html = md.renderer.render(tokens, md.options, {});
    // Hostile text may appear as text (`&lt;img …`); what must not appear is markup made from it.
    expect({ label, raw: html.match(/<(img|script|iframe|svg|style|object|embed)\b/i)?.[0] ?? null }).toEqual({ label, raw: null });
    for (const m of html.matchAll(/<[a-zA-Z][^>]*>/g)) {
      expect({ label, tag: m[0], attrs: /\s(on\w+|src|style)\s*=|javascript:/i.test(m[0]) }).toEqual({ label, tag: m[0], attrs: false });
    }
    const tags = new Set([...html.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9]*)/g)].map((m) => m[1]!.toLowerCase()));
    for (const tag of tags) expect({ label, tag, ours: OUR_TAGS.has(tag) }).toEqual({ label, tag, ours: true });
    for (const m of html.matchAll(/<a\s[^>]*>/g)) {
      expect({ label, a: m[0] }).toEqual({ label, a: expect.stringMatching(/^<a href="https:\/\/civitai\.com\/[^"\s]*">$/) });
    }
    // Links only from our own link tokens: none made by linkify from content.
    for (const t of flat) if (t.type === "link_open") expect(t.markup).not.toBe("linkify");
  }
}

describe("md-escape", () => {
  test("mdText escapes backslash first, then markup, and renders back to the input", () => {
    expect(mdText("a|b")).toBe("a\\|b");
    expect(mdText("a\\|b")).toBe("a\\\\\\|b");
    expect(mdText("[x](javascript:alert(1))")).toBe("\\[x\\]\\(javascript\\:alert\\(1\\)\\)");
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

describe("renderMarkdown", () => {
  test("sample: title, summary, files table, model sections, other sections", () => {
    const inv = sampleInventory();
    const markdown = renderMarkdown(inv);
    expect(markdown.startsWith("# Civitai model inventory\n")).toBe(true);
    expect(markdown.endsWith("\n")).toBe(true);
    const md = RENDERERS["html: false"];
    const tokens = parse(md, markdown);
    const [summary, files] = tables(tokens);
    expect(summary!.header).toEqual(["Summary", "Value"]);
    const summaryMap = Object.fromEntries(summary!.rows.map(([k, v]) => [k, v]));
    expect(summaryMap["Files"]).toBe("9");
    expect(summaryMap["Found on Civitai"]).toBe("4");
    expect(summaryMap["Not found"]).toBe("2");
    expect(summaryMap["Errors"]).toBe("1");
    expect(summaryMap["Skipped"]).toBe("2");
    expect(summaryMap["Roots"]).toBe("/models");
    expect(summaryMap["Generated at"]).toBe(inv.generatedAt);
    expect(summaryMap["Tool"]).toBe("civitai-meta 0.1.0");
    expect(summaryMap["Total size"]).toContain(`${inv.summary.bytes} bytes`);
    expect(files!.header).toEqual(["File", "Model", "Version", "Type", "Base model", "Status", "Link"]);
    expect(files!.rows.length).toBe(inv.records.length);
    expect(files!.rows[0]).toEqual([
      "checkpoints/realistic.safetensors",
      "Realistic Vision",
      "V6.0 B1 (VAE)",
      "Checkpoint",
      "SD 1.5",
      "found",
      "page",
    ]);
    expect(files!.rows.find((r) => r[0] === "loras/shared.safetensors")![5]).toBe("found, ambiguous (2 candidates)");
    expect(files!.rows.find((r) => r[0] === "embeddings/mine.pt")).toEqual(["embeddings/mine.pt", "—", "—", "—", "—", "not found", "—"]);

    const headings = tokens.flatMap((t, i) => (t.type === "heading_open" ? [`${t.tag} ${inlineText(tokens[i + 1]!)}`] : []));
    expect(headings).toEqual([
      "h1 Civitai model inventory",
      "h2 Files",
      "h2 Models found (3)",
      "h3 Detail Tweaker",
      "h4 v1.0",
      "h4 v2.0",
      "h3 Realistic Vision",
      "h4 V6.0 B1 (VAE)",
      "h3 Shared Hash A",
      "h4 A1",
      "h2 Not found on Civitai (2)",
      "h2 Errors (1)",
      "h2 Skipped (2)",
    ]);
    // Trigger words, base model, links, reasons.
    expect(markdown).toContain("- **Trigger words:** detailed, sharp focus");
    expect(markdown).toContain("- **Base model:** SDXL 1\\.0");
    expect(markdown).toContain("[model page](https://civitai.com/models/100)");
    expect(markdown).toContain("(https://civitai.com/api/download/models/200?fileId=1001)");
    expect(markdown).toContain("also claimed by [Shared Hash B — B1](https://civitai.com/models/310?modelVersionId=311)");
    expect(markdown).toContain("- `/models/loras/in-progress.safetensors.part` — in progress \\(\\.part\\)");
    expect(markdown).toContain("- `/models/vae/broken.safetensors` — HTTP 503");
    checkSafe(markdown, "sample");
  });

  test("local layer: format, guess (labelled), file trigger words only where Civitai has none, training base, sidecar identity", () => {
    const inv = sampleInventory();
    const markdown = renderMarkdown(inv);
    const files = tables(parse(RENDERERS["html: false"], markdown))[1]!;
    // A name known only from a sidecar is labelled in the table and the status says which sidecar.
    expect(files.rows.find((r) => r[0] === "loras/Ünïcode 模型 🦊.safetensors")).toEqual([
      "loras/Ünïcode 模型 🦊.safetensors",
      "Deleted Model (sidecar)",
      "v3",
      "LORA",
      "SDXL 1.0",
      "not found; known from Civitai Helper sidecar",
      "page",
    ]);
    // Found, Civitai has no trained words: the file's trigger phrase is shown, labelled.
    expect(markdown).toContain("    - **Format:** safetensors\n");
    expect(markdown).toContain("    - **Guess:** Checkpoint, SD 1\\.x \\(guess\\)");
    expect(markdown).toContain("    - **Trigger words (from the file):** mystyle");
    expect(markdown).toContain("    - **Training base model (from the file):** stable\\-diffusion\\-xl\\-v1\\-base/lora");
    // Not found: the sidecar's identity with its source and how it was checked, then the file's facts.
    expect(markdown).toContain(
      "  - **Known from Civitai Helper sidecar** (`Ünïcode 模型 🦊.civitai.info`, its SHA\\-256 matches the file): Deleted Model — v3 (model 700, version 701) — [page](https://civitai.com/models/700?modelVersionId=701)",
    );
    expect(markdown).toContain("  - **From the sidecar:** type LORA; base model SDXL 1\\.0; trigger words oldword; creator gone");
    expect(markdown).toContain("  - **Guess:** LoRA, SDXL \\(guess\\)");
    expect(markdown).toContain("  - **Training base model (from the file):** sdxl\\_base\\_v1\\-0");
    checkSafe(markdown, "sample-local");
  });

  test("local layer: trigger words from the file are not shown where Civitai gave trained words; a not-found sidecar is said", () => {
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
    const markdown = renderMarkdown(makeInventory([found, miss]));
    const modelSection = markdown.slice(markdown.indexOf("## Models found"), markdown.indexOf("## Not found"));
    expect(modelSection).not.toContain("Trigger words (from the file)");
    expect(modelSection).toContain("**Guess:** LoRA, SDXL \\(guess\\)");
    const missSection = markdown.slice(markdown.indexOf("## Not found"));
    expect(missSection).toContain("  - Civitai Helper sidecar `mine.civitai.info` says Civitai did not know this file");
    expect(missSection).toContain("  - **Format:** pickle — **warning:** content is a Python pickle but the name ends in \\.safetensors");
    expect(missSection).toContain("  - **Header error:** invalid safetensors\\: header too large");
    expect(missSection).toContain("  - **Trigger words (from the file):** mystyle");
    checkSafe(markdown, "local-miss");
  });

  test("F2: hostile kohya/ModelSpec metadata and sidecar strings are escaped exactly like Civitai names", () => {
    for (const [key, s] of Object.entries(HOSTILE_STRINGS)) {
      const markdown = renderMarkdown(hostileInventory([s]));
      checkSafe(markdown, `local ${key}`);
      const tokens = parse(RENDERERS["html: false"], markdown);
      const texts = allTokens(tokens)
        .filter((t) => t.type === "inline")
        .map(inlineText);
      // The file's trigger phrase, its training base model and the sidecar's model name each read back as the input text.
      expect({ key, trigger: texts.some((t) => t === `Trigger words (from the file): ${shown(s)}`) }).toEqual({ key, trigger: true });
      expect({ key, base: texts.some((t) => t === `Training base model (from the file): ${shown(s)}`) }).toEqual({ key, base: true });
      expect({
        key,
        side: texts.some(
          (t) => t.startsWith("Known from LoRA Manager sidecar (") && t.includes(`): ${shown(s)} — ${shown(s)} (model 700, version 701)`),
        ),
      }).toEqual({ key, side: true });
    }
    expect(mdText("x")).toBe("x");
  });

  test("descriptions are cut to 300 characters of plain text", () => {
    const markdown = renderMarkdown(sampleInventory());
    const tokens = parse(RENDERERS["html: false"], markdown);
    const paragraphs = tokens.filter((t) => t.type === "inline" && t.content.startsWith("AAAA")).map(inlineText);
    expect(paragraphs.length).toBe(1);
    expect(paragraphs[0]!.length).toBeLessThanOrEqual(MD_DESCRIPTION_MAX_CHARS);
    expect(paragraphs[0]!.endsWith("…")).toBe(true);
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
      const files = tables(tokens)[1]!;
      strings.forEach((s, i) => {
        const path = `hostile/${i}/${s}.safetensors`;
        const row = files.rows.find((r) => r[0] === shown(path));
        expect({ s, row }).toEqual({ s, row: [shown(path), shown(s), shown(s), shown(s), shown(s), "found", "page"] });
      });
      const h3 = tokens.flatMap((t, i) => (t.type === "heading_open" && t.tag === "h3" ? [inlineText(tokens[i + 1]!)] : []));
      for (const s of strings) expect(h3).toContain(shown(s));
      // Rows of the files table carry no markup at all besides our one link.
      for (const rowInline of files.rowTokens) {
        const markup = rowInline.flatMap((t) => t.children ?? []).filter((c) => !["text", "link_open", "link_close"].includes(c.type));
        expect(markup.map((c) => c.type)).toEqual([]);
      }
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
    const inv = makeInventory([makeRecord({ civitai, ambiguous: [civitai, other] })]);
    const markdown = renderMarkdown(inv);
    checkSafe(markdown, "tampered");
    const html = RENDERERS["html: true, linkify"].render(markdown);
    expect(html).not.toContain("<a ");
    expect(html).not.toContain('evil.example"');
  });

  test("an empty inventory still renders a valid report", () => {
    const markdown = renderMarkdown(makeInventory([]));
    expect(markdown).toContain("No files.");
    expect(markdown).toContain("No file was identified on Civitai.");
    checkSafe(markdown, "empty");
  });

  test("paths are shown relative to a single root, whole with several roots", () => {
    const records = [makeRecord({ path: "/models/a/x.safetensors", status: "not_found" })];
    const one = tables(parse(RENDERERS["html: false"], renderMarkdown(makeInventory(records))))[1]!;
    expect(one.rows[0]![0]).toBe("a/x.safetensors");
    const two = tables(parse(RENDERERS["html: false"], renderMarkdown(makeInventory(records, { roots: ["/models", "/other"] }))))[1]!;
    expect(two.rows[0]![0]).toBe("/models/a/x.safetensors");
  });

  test("deterministic and pure", () => {
    const a: Inventory = hostileInventory();
    const b: Inventory = hostileInventory();
    b.records.reverse();
    const before = JSON.stringify(a);
    expect(renderMarkdown(a)).toBe(renderMarkdown(b));
    expect(JSON.stringify(a)).toBe(before);
  });
});
