import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import MarkdownIt from "markdown-it";
import Papa from "papaparse";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { validateInventory } from "../helpers/schema.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
let dir: string;
let cacheDir: string;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const HOSTILE = '=HYPERLINK("http://x?"&A1) | [x](javascript:alert(1)) <img src=x onerror=alert(1)>';

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
  dir = tmp.make();
  cacheDir = tmp.make();
  const files = { "loras/hostile.safetensors": "hostile bytes", "loras/plain.safetensors": "plain bytes", "own/mine.ckpt": "my own" };
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
    utimesSync(join(dir, name), PAST, PAST);
  }
  const v1 = makeVersion({ versionId: 21, modelId: 2, sha256: sha256("hostile bytes"), name: HOSTILE });
  const v2 = makeVersion({ versionId: 31, modelId: 3, sha256: sha256("plain bytes") });
  civitai.addModel(
    makeModel({ modelId: 2, name: HOSTILE, tags: ["-2+3", "@SUM(1)"], creator: { username: "=cmd|' /C calc'!A0" }, versions: [v1] }),
  );
  civitai.addModel(makeModel({ modelId: 3, name: "Plain", versions: [v2] }));
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

const scan = (...extra: string[]) => runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, ...extra]);

describe("formats and report", () => {
  test("the format follows -o's extension; --format wins; CSV parses back with the hostile names neutralised", async () => {
    const out = tmp.make();
    expect((await scan("-o", join(out, "inv.json"))).code).toBe(0);
    expect((await scan("-o", join(out, "inv.csv"))).code).toBe(0);
    expect((await scan("-o", join(out, "inv.md"))).code).toBe(0);
    expect((await scan("--format", "csv", "-o", join(out, "csv.txt"))).code).toBe(0);

    const inv = JSON.parse(readFileSync(join(out, "inv.json"), "utf8"));
    expect(validateInventory(inv)).toEqual([]);
    const csv = readFileSync(join(out, "inv.csv"), "utf8");
    expect(readFileSync(join(out, "csv.txt"), "utf8")).toBe(csv);
    const rows = Papa.parse<string[]>(csv, { skipEmptyLines: true }).data;
    expect(rows).toHaveLength(4);
    const header = rows[0]!;
    const hostileRow = rows.find((r) => r[header.indexOf("path")]!.endsWith("hostile.safetensors"))!;
    expect(hostileRow[header.indexOf("model_name")]).toBe(`'${HOSTILE}`);
    expect(hostileRow[header.indexOf("tags")]).toBe("'-2+3; @SUM(1)");
    expect(hostileRow[header.indexOf("creator")]).toBe("'=cmd|' /C calc'!A0");
    for (const row of rows) expect(row).toHaveLength(header.length);

    const html = new MarkdownIt({ html: true }).render(readFileSync(join(out, "inv.md"), "utf8"));
    expect(html).not.toContain("<img");
    expect(html).not.toMatch(/href="javascript/i);
    // Links go to civitai.com pages we built, or to the document's own headings.
    for (const href of html.match(/href="[^"]*"/g) ?? []) expect(href).toMatch(/^href="(?:https:\/\/civitai\.com\/|#)/);
  });

  test("report re-renders a saved inventory to exactly what scan writes directly", async () => {
    const out = tmp.make();
    await scan("-o", join(out, "inv.json"));
    await scan("-o", join(out, "direct.csv"));
    await scan("-o", join(out, "direct.md"));
    const csv = await runCli(["report", join(out, "inv.json"), "--format", "csv"]);
    expect(csv.code).toBe(0);
    expect(csv.stdout).toBe(readFileSync(join(out, "direct.csv"), "utf8"));
    const md = await runCli(["report", join(out, "inv.json"), "-o", join(out, "report.md")]);
    expect(md.code).toBe(0);
    // The line saying when: the scan that wrote the JSON ran a moment before the one that wrote the Markdown.
    const strip = (s: string) => s.replace(/^.* Scanned .*$/m, "");
    expect(strip(readFileSync(join(out, "report.md"), "utf8"))).toBe(strip(readFileSync(join(out, "direct.md"), "utf8")));
    const json = await runCli(["report", join(out, "inv.json")]);
    expect(json.stdout).toBe(readFileSync(join(out, "inv.json"), "utf8"));
  });

  test("the same inputs give byte-identical CSV; --excel adds a BOM", async () => {
    const a = await scan("--format", "csv");
    const b = await scan("--format", "csv");
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout.startsWith("\ufeff")).toBe(false);
    // Read bytes from a file: decoding stdout as text would swallow the BOM.
    const file = join(tmp.make(), "excel.csv");
    await scan("--excel", "-o", file);
    expect([...readFileSync(file).subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
  });

  test("report refuses a file that is not an inventory, naming it", async () => {
    const f = join(tmp.make(), "package.json");
    writeFileSync(f, JSON.stringify({ name: "x", version: "1.0.0" }));
    const r = await runCli(["report", f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(f);
    expect(r.stderr).toContain("not a civitai-meta inventory");
    expect(r.stdout).toBe("");
    const missing = await runCli(["report", join(tmp.make(), "nope.json")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nope.json");
  });

  test("report reads an older schemaVersion", async () => {
    const out = tmp.make();
    await scan("-o", join(out, "inv.json"));
    const inv = JSON.parse(readFileSync(join(out, "inv.json"), "utf8"));
    const { records, ...rest } = inv;
    const v0 = {
      ...rest,
      schemaVersion: 0,
      files: records.map((r: { status: string }) => ({ ...r, status: r.status === "not_found" ? "notfound" : r.status })),
    };
    writeFileSync(join(out, "v0.json"), JSON.stringify(v0));
    const r = await runCli(["report", join(out, "v0.json"), "--format", "csv"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("not_found");
  });
});

describe("exit codes", () => {
  test("0 when done; 3 when --fail-on matches; 0 when it does not; 2 for a bad --fail-on or --format", async () => {
    expect((await scan()).code).toBe(0);
    const notFound = await scan("--fail-on", "not-found");
    expect(notFound.code).toBe(3);
    expect(notFound.stderr).toContain("1 not found");
    expect((await scan("--fail-on", "error,skipped")).code).toBe(0);
    const bad = await scan("--fail-on", "missing");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--fail-on");
    expect((await scan("--format", "xml")).code).toBe(2);
  });

  test("F9: -o naming the inventory it reads is refused unless JSON is written: a typo never replaces the inventory with its Markdown", async () => {
    const out = tmp.make();
    const inv = join(out, "inv.json");
    expect((await scan("-o", inv)).code).toBe(0);
    const kept = readFileSync(inv, "utf8");
    const md = await runCli(["report", inv, "--format", "md", "-o", inv]);
    expect(md.code).toBe(2);
    expect(md.stderr).toContain(inv);
    expect(md.stderr).toContain("would replace it");
    // The same file read through a link, and scan writing CSV over its --previous inventory.
    symlinkSync(inv, join(out, "link.json"));
    expect((await runCli(["report", join(out, "link.json"), "--format", "csv", "-o", inv])).code).toBe(2);
    expect((await scan("--previous", inv, "--format", "csv", "-o", inv)).code).toBe(2);
    expect(readFileSync(inv, "utf8")).toBe(kept);
    // JSON over itself is an inventory again (an older schema re-rendered, a scan replacing its --previous).
    expect((await runCli(["report", inv, "-o", inv])).code).toBe(0);
    expect((await scan("--previous", inv, "-o", inv)).code).toBe(0);
    expect(JSON.parse(readFileSync(inv, "utf8")).records).toHaveLength(3);
  });

  test("1 on failure (a missing path), 2 on a usage error", async () => {
    expect((await scan(join(dir, "does-not-exist"))).code).toBe(1);
    expect((await runCli(["scan", "--concurrency", "0", dir])).code).toBe(2);
  });
});
