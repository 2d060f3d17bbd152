/**
 * `civitai-meta diff` of two real scans of a folder changed in between, its outputs and
 * `--fail-on`, bad inputs (never a crash), the CI step summary, and JUnit through the CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Papa from "papaparse";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import { junitSchemaErrorsEach } from "../helpers/junit-schema.ts";
import { SCHEMA_VERSION } from "../../src/report/inventory-types.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
  for (const [i, content] of ["keep bytes", "move bytes", "edit bytes v1", "delete bytes", "added bytes"].entries()) {
    civitai.addModel(
      makeModel({
        modelId: 60 + i,
        name: `Model ${i}`,
        versions: [makeVersion({ versionId: 600 + i, modelId: 60 + i, sha256: sha256(content) })],
      }),
    );
  }
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

function put(dir: string, name: string, content: string): void {
  mkdirSync(join(dir, name, ".."), { recursive: true });
  writeFileSync(join(dir, name), content);
  utimesSync(join(dir, name), PAST, PAST);
}

/** Two inventories of one folder: before, then after a file was added, one moved, one edited, one deleted. */
async function twoScans(): Promise<{ dir: string; before: string; after: string; out: string }> {
  const dir = tmp.make();
  const out = tmp.make();
  const cache = tmp.make();
  put(dir, "loras/keep.safetensors", "keep bytes");
  put(dir, "loras/move.safetensors", "move bytes");
  put(dir, "loras/edit.safetensors", "edit bytes v1");
  put(dir, "loras/delete.safetensors", "delete bytes");
  const scan = (file: string) => runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "-o", join(out, file)]);
  expect((await scan("before.json")).code).toBe(0);
  put(dir, "loras/new/added.safetensors", "added bytes");
  renameSync(join(dir, "loras/move.safetensors"), join(dir, "loras/moved-here.safetensors"));
  put(dir, "loras/edit.safetensors", "edit bytes v2: unknown to Civitai");
  rmSync(join(dir, "loras/delete.safetensors"));
  expect((await scan("after.json")).code).toBe(0);
  return { dir, before: join(out, "before.json"), after: join(out, "after.json"), out };
}

describe("diff of two real scans", () => {
  let s: Awaited<ReturnType<typeof twoScans>>;
  beforeAll(async () => {
    s = await twoScans();
  });

  test("JSON: added, removed, moved, changed (with its status change) and the unchanged count", async () => {
    const r = await runCli(["diff", s.before, s.after]);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    const p = (name: string) => join(s.dir, "loras", name);
    expect(d.summary).toEqual({
      added: 1,
      removed: 1,
      moved: 1,
      changed: 1,
      statusChanged: 0,
      gone: 0,
      found: 0,
      updates: 0,
      unchanged: 1,
    });
    expect(d.added.map((x: { path: string }) => x.path)).toEqual([p("new/added.safetensors")]);
    expect(d.removed.map((x: { path: string }) => x.path)).toEqual([p("delete.safetensors")]);
    expect(d.moved.map((x: { old: { path: string }; new: { path: string } }) => [x.old.path, x.new.path])).toEqual([
      [p("move.safetensors"), p("moved-here.safetensors")],
    ]);
    expect(d.changed[0].old).toMatchObject({ path: p("edit.safetensors"), status: "found", sha256: sha256("edit bytes v1") });
    expect(d.changed[0].new).toMatchObject({ status: "not_found", sha256: sha256("edit bytes v2: unknown to Civitai") });
    expect(d.old).toMatchObject({ path: s.before, schemaVersion: SCHEMA_VERSION, files: 4 });
    expect(r.stderr).toContain("1 added, 1 removed, 1 moved, 1 changed");
  });

  test("Markdown (for a PR comment) and CSV; -o picks the format; --fail-on exits 3 only for the kinds asked", async () => {
    const md = await runCli(["diff", s.before, s.after, "--format", "md"]);
    expect(md.stdout).toContain("### civitai-meta diff");
    expect(md.stdout).toContain(
      "#### Moved (1)\n\n| From | To | Size |\n| --- | --- | --: |\n| loras/move.safetensors | loras/moved-here.safetensors | 10 B |",
    );
    const csvFile = join(s.out, "diff.csv");
    expect((await runCli(["diff", s.before, s.after, "-o", csvFile])).code).toBe(0);
    const rows = Papa.parse<string[]>(readFileSync(csvFile, "utf8"), { skipEmptyLines: true }).data;
    expect(rows.slice(1).map((r) => r[0])).toEqual(["added", "removed", "moved", "changed"]);
    for (const kind of ["added", "removed", "moved", "changed"]) {
      const r = await runCli(["diff", s.before, s.after, "--fail-on", kind, "-o", join(s.out, "x.json")]);
      expect({ kind, code: r.code }).toEqual({ kind, code: 3 });
      expect(r.stderr).toContain(`--fail-on: 1 ${kind}`);
    }
    expect((await runCli(["diff", s.before, s.after, "--fail-on", "gone,update,found", "-o", join(s.out, "x.json")])).code).toBe(0);
    expect((await runCli(["diff", s.before, s.before, "--fail-on", "added,removed,moved,changed,gone,update"])).code).toBe(0);
    const bad = await runCli(["diff", s.before, s.after, "--fail-on", "not-found"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--fail-on takes added, removed, moved, changed, gone, found, update");
  });

  test("scan --previous puts the same changes in the inventory's summary; --fail-on changed needs --previous", async () => {
    const r = await runCli(["scan", s.dir, "--api-url", civitai.url, "--no-cache", "--previous", s.before, "--fail-on", "changed"]);
    expect(r.code).toBe(3);
    const inv = JSON.parse(r.stdout);
    expect(inv.summary.changes).toMatchObject({ added: 1, removed: 1, moved: 1, changed: 1, unchanged: 1 });
    const usage = await runCli(["scan", s.dir, "--offline", "--no-cache", "--fail-on", "added"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("add --previous OLD.json");
    const missing = await runCli(["scan", s.dir, "--offline", "--no-cache", "--previous", join(s.out, "nope.json")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nope.json");
  });

  test("GITHUB_STEP_SUMMARY: scan and diff append their Markdown summary; an unwritable one is a warning, not a failure", async () => {
    const summary = join(tmp.make(), "step_summary.md");
    writeFileSync(summary, "earlier step\n");
    const scan = await runCli(
      [
        "scan",
        s.dir,
        "--api-url",
        civitai.url,
        "--no-cache",
        "--previous",
        s.before,
        "--fail-on",
        "not-found",
        "-o",
        join(s.out, "y.json"),
      ],
      {
        env: { GITHUB_STEP_SUMMARY: summary },
      },
    );
    expect(scan.code).toBe(3);
    const diff = await runCli(["diff", s.before, s.after, "-o", join(s.out, "z.json")], { env: { GITHUB_STEP_SUMMARY: summary } });
    expect(diff.code).toBe(0);
    const text = readFileSync(summary, "utf8");
    expect(text.startsWith("earlier step\n### civitai-meta scan: 4 files")).toBe(true);
    expect(text).toContain("| Found | Gone | Not found | Errors | Skipped |");
    expect(text).toContain("- **--fail-on matched:** 1 not found (exit 3)");
    expect(text).toContain("**Since the inventory of");
    expect(text).toContain("| loras/edit.safetensors | not found | not found on Civitai |");
    expect(text).toContain("### civitai-meta diff");
    const unwritable = await runCli(["diff", s.before, s.after, "-o", join(s.out, "w.json")], {
      env: { GITHUB_STEP_SUMMARY: join(s.out, "no/such/dir/summary.md") },
    });
    expect(unwritable.code).toBe(0);
    expect(unwritable.stderr).toContain("Could not append to GITHUB_STEP_SUMMARY");
  });

  test("T17: every name of a linked file is a path of the diff: a link added is added, one name of two deleted is removed, never a move", async () => {
    const dir = tmp.make();
    const out = tmp.make();
    const cache = tmp.make();
    put(dir, "b.safetensors", "keep bytes");
    const scan = (file: string) => runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "-o", join(out, file)]);
    expect((await scan("one-name.json")).code).toBe(0);
    // The hard link sorts first, so the new inventory's record is a.safetensors with alias b.safetensors.
    linkSync(join(dir, "b.safetensors"), join(dir, "a.safetensors"));
    expect((await scan("two-names.json")).code).toBe(0);
    const withLink = JSON.parse(readFileSync(join(out, "two-names.json"), "utf8")).records;
    expect(withLink.map((r: { path: string; aliases: string[] }) => [r.path, r.aliases])).toEqual([
      [join(dir, "a.safetensors"), [join(dir, "b.safetensors")]],
    ]);
    const summary = { removed: 0, moved: 0, changed: 0, statusChanged: 0, gone: 0, found: 0, updates: 0 };
    const added = await runCli(["diff", join(out, "one-name.json"), join(out, "two-names.json"), "--fail-on", "moved,removed"]);
    expect(added.code).toBe(0);
    const a = JSON.parse(added.stdout);
    expect(a.summary).toEqual({ ...summary, added: 1, unchanged: 1 });
    expect(a.added.map((x: { path: string }) => x.path)).toEqual([join(dir, "a.safetensors")]);
    rmSync(join(dir, "a.safetensors"));
    rmSync(join(dir, "b.safetensors"));
    put(dir, "a.safetensors", "keep bytes");
    const removed = await runCli(["diff", join(out, "two-names.json"), join(out, "one-name.json"), "--fail-on", "moved"]);
    expect(removed.code).toBe(0);
    const d = JSON.parse(removed.stdout);
    expect(d.summary).toEqual({ ...summary, added: 0, removed: 1, unchanged: 1 });
    expect(d.removed.map((x: { path: string }) => x.path)).toEqual([join(dir, "a.safetensors")]);
    // scan --previous compares the same way.
    const prev = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "--previous", join(out, "two-names.json")]);
    expect(prev.code).toBe(0);
    expect(JSON.parse(prev.stdout).summary.changes).toMatchObject({ added: 0, removed: 1, moved: 0, unchanged: 1 });
  });

  test("GITHUB_STEP_SUMMARY with more than 50 failing files: the first 50 are listed, and the counts say how many there are", async () => {
    const dir = tmp.make();
    for (let i = 0; i < 60; i++) put(dir, `unknown-${String(i).padStart(2, "0")}.safetensors`, `not on Civitai ${i}`);
    const summary = join(tmp.make(), "step_summary.md");
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "-o", join(s.out, "sixty.json")], {
      env: { GITHUB_STEP_SUMMARY: summary },
    });
    expect(r.code).toBe(0);
    const text = readFileSync(summary, "utf8");
    expect(text).toContain("<summary>60 files to look at</summary>");
    expect(text.split("\n").filter((l) => l.startsWith("| unknown-"))).toHaveLength(50);
    expect(text).toContain("…and 10 more (see the inventory).");
  });

  test("GITHUB_STEP_SUMMARY naming a FIFO no one reads (or a link to one): a warning, the run ends; one someone reads gets the summary", async () => {
    const dir = tmp.make();
    const fifo = join(dir, "summary.fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    symlinkSync(fifo, join(dir, "link.md"));
    for (const summary of [fifo, join(dir, "link.md")]) {
      // A blocking open of the FIFO waits for a reader forever, after the output is written.
      const r = await runCli(["diff", s.before, s.after, "-o", join(s.out, "fifo.json"), "--fail-on", "added"], {
        env: { GITHUB_STEP_SUMMARY: summary },
        timeoutMs: 15_000,
      });
      expect({ summary, code: r.code }).toEqual({ summary, code: 3 });
      expect(r.stderr).toContain("Could not append to GITHUB_STEP_SUMMARY");
      expect(r.stderr).toContain("a FIFO that no one reads");
    }
    const read = Bun.spawn(["cat", fifo], { stdout: "pipe" });
    const text = new Response(read.stdout).text();
    await Bun.sleep(200);
    const r = await runCli(["diff", s.before, s.after, "-o", join(s.out, "fifo.json")], {
      env: { GITHUB_STEP_SUMMARY: fifo },
      timeoutMs: 15_000,
    });
    expect(r.code).toBe(0);
    expect(await text).toContain("### civitai-meta diff");
  });

  test("JUnit through the CLI: scan -o FILE.xml and report --format junit; a JUnit schema accepts both", async () => {
    const xml = join(s.out, "inv.xml");
    const r = await runCli(["scan", s.dir, "--api-url", civitai.url, "--no-cache", "-o", xml]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("Wrote JUnit report");
    const text = readFileSync(xml, "utf8");
    expect(text).toContain('tests="4" failures="1" errors="0"');
    const viaReport = await runCli(["report", s.after, "--format", "junit"]);
    expect(await junitSchemaErrorsEach([text, viaReport.stdout])).toEqual([[], []]);
    expect(viaReport.stdout).toContain('<testcase name="edit.safetensors" classname="loras" time="0">');
  });
});

describe("a library scanned again from another place (a mount point, a CI workspace)", () => {
  test("nothing moved: files are matched by their path under the root, by diff and by scan --previous", async () => {
    const first = join(tmp.make(), "models");
    put(first, "loras/keep.safetensors", "keep bytes");
    put(first, "checkpoints/move.safetensors", "move bytes");
    const out = tmp.make();
    const cache = tmp.make();
    const scan = (dir: string, file: string, ...more: string[]) =>
      runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cache, "-o", join(out, file), ...more]);
    expect((await scan(first, "at-first.json")).code).toBe(0);
    // The same folder, moved whole: only the root differs.
    const second = join(tmp.make(), "elsewhere", "models");
    mkdirSync(join(second, ".."), { recursive: true });
    renameSync(first, second);
    expect((await scan(second, "at-second.json")).code).toBe(0);
    const r = await runCli([
      "diff",
      join(out, "at-first.json"),
      join(out, "at-second.json"),
      "--format",
      "json",
      "--fail-on",
      "added,removed,moved",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).summary).toMatchObject({ added: 0, removed: 0, moved: 0, changed: 0, unchanged: 2 });
    // A real move under the new root is still one.
    renameSync(join(second, "checkpoints/move.safetensors"), join(second, "loras/move.safetensors"));
    const again = await scan(second, "moved.json", "--previous", join(out, "at-first.json"));
    expect(again.code).toBe(0);
    const changes = JSON.parse(readFileSync(join(out, "moved.json"), "utf8")).summary.changes;
    expect(changes).toMatchObject({ added: 0, removed: 0, moved: 1, unchanged: 1 });
  });
});

describe("diff: bad input is one clear error (or a defined answer), never a crash", () => {
  let before: string;
  let after: string;
  beforeAll(async () => {
    const s = await twoScans();
    before = s.before;
    after = s.after;
  });

  async function refused(args: string[], ...expected: string[]) {
    const r = await runCli(["diff", ...args]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    for (const e of expected) expect(r.stderr).toContain(e);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    return r;
  }

  test("a file that is not an inventory, a missing file, a truncated one, one listing a path twice", async () => {
    const dir = tmp.make();
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "x", version: "1" }));
    await refused([join(dir, "package.json"), after], "package.json", "not a civitai-meta inventory");
    await refused([before, join(dir, "missing.json")], "missing.json", "Cannot read");
    const text = readFileSync(after, "utf8");
    writeFileSync(join(dir, "cut.json"), text.slice(0, Math.floor(text.length * 0.6)));
    await refused([before, join(dir, "cut.json")], "cut.json", "is not valid JSON", "cut short");
    const twice = JSON.parse(text);
    twice.records.push(twice.records[0]);
    writeFileSync(join(dir, "twice.json"), JSON.stringify(twice));
    await refused([before, join(dir, "twice.json")], "twice.json", "twice", "remove one of the two");
  });

  test("two schema versions: the older is migrated, and compared like the newer", async () => {
    const dir = tmp.make();
    const v1 = JSON.parse(readFileSync(before, "utf8"));
    v1.schemaVersion = 1;
    delete v1.summary.byStatus.gone;
    delete v1.summary.duplicates;
    const v1Path = join(dir, "v1.json");
    writeFileSync(v1Path, JSON.stringify(v1, null, 4));
    const r = await runCli(["diff", v1Path, after]);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.old.schemaVersion).toBe(1);
    expect(d.new.schemaVersion).toBe(SCHEMA_VERSION);
    expect(d.summary).toMatchObject({ added: 1, removed: 1, moved: 1, changed: 1 });
  });

  test("F9: -o naming one of the two inventories is refused (exit 2) and both stay as they were, also through a link", async () => {
    const keptBefore = readFileSync(before, "utf8");
    const keptAfter = readFileSync(after, "utf8");
    const over = await runCli(["diff", before, after, "-o", after]);
    expect(over.code).toBe(2);
    expect(over.stderr).toContain(after);
    expect(over.stderr).toContain("would replace it");
    const link = join(tmp.make(), "old-link.json");
    symlinkSync(before, link);
    expect((await runCli(["diff", link, after, "--format", "md", "-o", before])).code).toBe(2);
    expect(readFileSync(before, "utf8")).toBe(keptBefore);
    expect(readFileSync(after, "utf8")).toBe(keptAfter);
  });

  test("usage: one inventory, stdin twice, a format diff does not write", async () => {
    expect((await runCli(["diff", before])).code).toBe(2);
    expect((await runCli(["diff", "-", "-"])).code).toBe(2);
    const html = await runCli(["diff", before, after, "--format", "html"]);
    expect(html.code).toBe(2);
    expect(html.stderr).toContain(
      "diff writes json, md or csv (got html): give --format json|md|csv, or an -o name ending .json, .md or .csv",
    );
    // The advice names only what diff writes (it offered .html, .xml and --format junit before).
    const txt = await runCli(["diff", before, after, "-o", join(tmp.make(), "changes.txt")]);
    expect(txt.code).toBe(2);
    expect(txt.stderr.trim()).toEndWith(
      'Cannot tell the report format from "changes.txt": use a .json, .md or .csv file name, or say which with --format json|md|csv',
    );
    const bogus = await runCli(["diff", before, after, "--format", "xls"]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr.trim()).toEndWith('--format must be json, md or csv (got "xls")');
  });
});
