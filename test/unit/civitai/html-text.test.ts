/**
 * Simple descriptions are converted without html-to-text (src/civitai/html-text.ts, simpleHtmlText):
 * whatever it accepts must come out exactly as html-to-text would have made it, and anything it is
 * not sure of must be left to html-to-text.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { convertedText, finishText, htmlToPlainText, simpleHtmlText } from "../../../src/civitai/html-text.ts";
import { seededRandom } from "../../helpers/seeded-random.ts";

/** Both ways, cleaned as records keep them (and cut short, to compare the cut too). */
function bothWays(html: string, maxChars: number): { fast: string | null; htmlToText: string | null } {
  const fast = simpleHtmlText(html);
  return { fast: fast === null ? null : finishText(fast, maxChars), htmlToText: finishText(convertedText(html), maxChars) };
}

describe("simple descriptions without html-to-text", () => {
  const random = seededRandom(7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const texts = [
    "a",
    "word",
    "x y",
    "é",
    "😀",
    "\u00a0",
    "\u2028",
    "\v",
    "\u0001",
    "\u0085",
    "\u3000",
    "\ufeff",
    "* item",
    "1. one",
    "    code",
    '"q"',
  ];
  const spaces = ["", "", " ", "  ", "\t", "\r", "\n", "\r\n", " \n "];
  const tags = ["<p>", "</p>", "<strong>", "</strong>", "<b>", "</b>", "<em>", "</em>", "<i>", "</i>", "<br>", "<br/>", "<br />"];
  const inline = (depth: number): string => {
    let html = "";
    for (let n = Math.floor(random() * 5); n > 0; n--) {
      const r = random();
      if (r < 0.5 || depth > 3) html += pick(spaces) + pick(texts) + pick(spaces);
      else if (r < 0.65) html += pick(["<br>", "<br/>", "<br />"]) + pick(spaces);
      else {
        const tag = pick(["b", "strong", "em", "i"]);
        html += `<${tag}>${inline(depth + 1)}</${tag}>`;
      }
    }
    return html;
  };
  /** Paragraphs and inline runs, well formed. */
  const wellFormed = () => {
    let html = pick(spaces);
    for (let n = Math.floor(random() * 6); n > 0; n--) html += random() < 0.6 ? `<p>${inline(0)}</p>${pick(spaces)}` : inline(0);
    return html;
  };
  /** The same pieces in any order: tags that close what they did not open, paragraphs inside bold… */
  const anyOrder = () => {
    let html = "";
    for (let n = Math.floor(random() * 25); n > 0; n--) {
      const r = random();
      html += r < 0.4 ? pick(texts) : r < 0.65 ? pick(spaces) : pick(tags);
    }
    return html;
  };

  test("generated descriptions: what the fast path accepts comes out as html-to-text makes it, cut or not", () => {
    let accepted = 0;
    for (let n = 0; n < 300; n++) {
      for (const html of [wellFormed(), anyOrder()]) {
        if (simpleHtmlText(html) === null) continue;
        accepted++;
        const { fast, htmlToText } = bothWays(html, n % 2 ? 2000 : 7);
        expect({ html, text: fast }).toEqual({ html, text: htmlToText });
      }
    }
    // Nearly all well-formed ones and some of the others are taken by the fast path.
    expect(accepted).toBeGreaterThan(330);
  });

  test("the recorded Civitai descriptions: the simple ones come out as html-to-text makes them", () => {
    const dir = join(import.meta.dir, "../../fixtures/civitai");
    const descriptions: string[] = [];
    const collect = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(collect);
      else if (v && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) {
          if (k === "description" && typeof x === "string") descriptions.push(x);
          else collect(x);
        }
      }
    };
    for (const name of readdirSync(dir)) if (name.endsWith(".json")) collect(JSON.parse(readFileSync(join(dir, name), "utf8")));
    const simple = descriptions.filter((d) => simpleHtmlText(d) !== null);
    expect(simple.length).toBeGreaterThan(0);
    expect(simple.length).toBeLessThan(descriptions.length);
    for (const html of simple) {
      const { fast, htmlToText } = bothWays(html, 2000);
      expect({ html, text: fast }).toEqual({ html, text: htmlToText });
    }
  });

  test("anything else is left to html-to-text", () => {
    for (const html of [
      '<p class="x">a</p>',
      "a &amp; b",
      '<a href="https://x">a</a>',
      "<P>a</P>",
      "<ul><li>a</li></ul>",
      "<b><p>a</p></b>",
      "<p><p>a</p></p>",
      "<b>a</i>",
      "<p>a",
      "a</p>",
      "</br>",
      "a > b",
      "a\u200bb",
      "a\fb",
      "<p>a</p>".repeat(31),
    ]) {
      expect({ html, fast: simpleHtmlText(html) }).toEqual({ html, fast: null });
    }
    expect(simpleHtmlText("<p>a</p>".repeat(30))).not.toBeNull();
  });

  test("htmlToPlainText gives the same either way", () => {
    expect(htmlToPlainText("<p>A <strong>test</strong>\n model.</p><p>Second<br/>line</p>")).toBe("A test model.\n\nSecond\nline");
    expect(htmlToPlainText("<p> </p><br>")).toBeNull();
    expect(htmlToPlainText(`<p>${"word ".repeat(1000)}</p>`)?.endsWith("…")).toBe(true);
  });
});
