import { describe, expect, test } from "bun:test";
import { renderJunit, xmlText } from "../../../src/report/render-junit.ts";
import {
  HOSTILE_STRINGS,
  hostileInventory,
  makeCivitai,
  makeInventory,
  makeRecord,
  sampleInventory,
} from "../../helpers/sample-inventory.ts";
import { junitSchemaErrors, junitSchemaErrorsEach } from "../../helpers/junit-schema.ts";

/** Test cases as [classname, name, outcome element or "pass"], read back with a regex over our own fixed layout. */
function cases(xml: string): [string, string, string][] {
  return [...xml.matchAll(/<testcase name="([^"]*)" classname="([^"]*)" time="0"(?:\/>|>\n\s+<(failure|error|skipped)[^>]*)/g)].map((m) => [
    m[2]!,
    m[1]!,
    m[3] ?? "pass",
  ]);
}

describe("JUnit XML", () => {
  test("a test case per file: not found and gone fail, error is an error, skipped is skipped; a JUnit schema accepts it", async () => {
    const inv = sampleInventory();
    inv.records.push(
      makeRecord({
        path: "/models/loras/gone.safetensors",
        status: "gone",
        civitai: makeCivitai(),
        gone: { reason: "not_found", lastSeenAt: "2024-12-01T00:00:00.000Z" },
      }),
    );
    const xml = renderJunit(inv);
    expect(await junitSchemaErrors(xml)).toEqual([]);
    expect(
      xml.startsWith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="civitai-meta" tests="10" failures="3" errors="1" time="1.234">',
      ),
    ).toBe(true);
    expect(xml).toContain('skipped="2" time="1.234" timestamp="2025-01-02T03:04:05" hostname="localhost" id="0" package="civitai-meta"');
    expect(cases(xml)).toEqual([
      ["checkpoints", "realistic.safetensors", "pass"],
      ["embeddings", "mine.pt", "failure"],
      [".", "fifo.safetensors", "skipped"],
      ["loras", "detail-tweaker-v2.safetensors", "pass"],
      ["loras", "detail-tweaker.safetensors", "pass"],
      ["loras", "gone.safetensors", "failure"],
      ["loras", "in-progress.safetensors.part", "skipped"],
      ["loras", "shared.safetensors", "pass"],
      ["loras", "Ünïcode 模型 🦊.safetensors", "failure"],
      ["vae", "broken.safetensors", "error"],
    ]);
    expect(xml).toContain(
      '<failure type="gone" message="Gone from Civitai: no longer found on Civitai, last seen 2024-12-01">Was Detail Tweaker · v1.0</failure>',
    );
    expect(xml).toContain('<failure type="not_found" message="Civitai does not know this file">SHA-256 8faccc0d');
    expect(xml).toContain(
      '<error type="error" message="HTTP 503 from https://civitai.com/api/v1/model-versions/by-hash (after 4 tries)"/>',
    );
    expect(xml).toContain('<skipped message="in progress (.part)"/>');
  });

  test("T17: a failing, erroring or skipped file with other names (hard or soft links) names them all; the schema still accepts it", async () => {
    const at = (name: string) => `/models/loras/${name}`;
    const inv = makeInventory([
      makeRecord({ path: at("a.safetensors"), aliases: [at("b.safetensors")], status: "not_found" }),
      makeRecord({ path: at("c.safetensors"), aliases: [at("d.safetensors"), at("e<&>.safetensors")], status: "error", error: "EIO" }),
      makeRecord({ path: at("f.safetensors"), aliases: [at("g.safetensors")], status: "skipped", reason: "offline" }),
      makeRecord({ path: at("h.safetensors"), aliases: [at("i.safetensors")] }),
      makeRecord({ path: at("j.safetensors"), status: "error", error: "EIO" }),
    ]);
    const xml = renderJunit(inv);
    expect(await junitSchemaErrors(xml)).toEqual([]);
    expect(xml).toContain(`>SHA-256 ${inv.records[0]!.hashes.sha256}; also at loras/b.safetensors</failure>`);
    expect(xml).toContain('<error type="error" message="EIO">also at loras/d.safetensors, loras/e&lt;&amp;&gt;.safetensors</error>');
    expect(xml).toContain('<skipped message="offline">also at loras/g.safetensors</skipped>');
    expect(xml).toContain('<testcase name="h.safetensors" classname="loras" time="0"/>');
    expect(xml).toContain('<testcase name="j.safetensors" classname="loras" time="0">\n      <error type="error" message="EIO"/>');
  });

  test("hostile names, errors and reasons stay text: the schema still accepts it, nothing XML 1.0 forbids is written", async () => {
    const inv = hostileInventory();
    inv.records.push(makeRecord({ path: "/models/raw\udcff\ud800 lone.safetensors", status: "error", error: "bad \u0000 \ufffe end" }));
    const xml = renderJunit(inv);
    expect(await junitSchemaErrors(xml)).toEqual([]);
    expect(xml).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/);
    expect(xml).not.toMatch(/<script|<img/);
    expect(cases(xml).length).toBe(inv.records.length);
    expect(xmlText(HOSTILE_STRINGS.script)).toBe("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(xmlText("a\"b'c&d")).toBe("a&quot;b&apos;c&amp;d");
    expect(xmlText("x\ud800y")).toBe("x\\ud800y");
  });

  test("an empty inventory is a valid empty suite; the schema rejects what a JUnit reader would", async () => {
    const xml = renderJunit(makeInventory([]));
    // The validator is real: a missing required attribute or a stray element is refused (the three
    // documents in one run of it, each judged on its own).
    const [errors, noHostname, stray] = await junitSchemaErrorsEach([
      xml,
      xml.replace(' hostname="localhost"', ""),
      xml.replace("<system-err/>", "<system-err/><extra/>"),
    ]);
    expect(errors).toEqual([]);
    expect(xml).toContain('tests="0" failures="0" errors="0"');
    expect(noHostname!.join("\n")).toContain("hostname");
    expect(stray!.join("\n")).toContain("extra");
  });
});
