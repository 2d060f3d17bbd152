import { describe, expect, test } from "bun:test";
import { changeSummary, diffRecords, type DiffRecord } from "../../../src/report/diff.ts";
import {
  DIFF_MD_MAX_CHARS,
  renderDiffCsv,
  renderDiffJson,
  renderDiffMarkdown,
  type DiffDocument,
} from "../../../src/report/render-diff.ts";
import Papa from "papaparse";
import MarkdownIt from "markdown-it";
import { HOSTILE_STRINGS } from "../../helpers/sample-inventory.ts";

function rec(path: string, sha: string | null, over: Partial<DiffRecord> = {}): DiffRecord {
  return {
    path,
    sha256: sha,
    size: 10,
    status: "found",
    modelId: 1,
    modelName: "M",
    versionId: 2,
    versionName: "v1",
    update: null,
    ...over,
  };
}
const h = (c: string) => c.repeat(64);

function doc(oldR: DiffRecord[], newR: DiffRecord[]): DiffDocument {
  const diff = diffRecords(oldR, newR);
  const { previous: _p, ...summary } = changeSummary(diff, { generatedAt: "2026-01-01T00:00:00.000Z", files: oldR.length });
  const side = (n: number) => ({ path: "x.json", generatedAt: "2026-01-01T00:00:00.000Z", schemaVersion: 2, files: n, roots: ["/m"] });
  return { old: side(oldR.length), new: side(newR.length), summary, diff };
}

describe("diffRecords", () => {
  test("2,000 copies of one file, every one moved, and as many more removed: each paired once, in path order", () => {
    // The growth with the copies (it was quadratic) is judged by `bun run bench hostile-scale`.
    const n = 2_000;
    const old = Array.from({ length: 2 * n }, (_, i) => rec(`/a/${String(i).padStart(7, "0")}`, h("c")));
    const now = Array.from({ length: n }, (_, i) => rec(`/b/${String(i).padStart(7, "0")}`, h("c")));
    const d = diffRecords(old, now);
    expect(d.moved).toHaveLength(n);
    expect(d.moved[0]).toEqual({ old: old[0]!, new: now[0]! });
    expect(d.removed).toHaveLength(n);
    expect(d.removed[0]).toBe(old[n]);
  });

  test("T17: the names of a linked file are paths of their own, but its status change, update or being unchanged counts once", () => {
    const named = (r: DiffRecord, ...aliases: string[]) => [r, ...aliases.map((path) => ({ ...r, path, aliasOf: r.path }))];
    const update = { versionId: 3, name: "v2" };
    const d = diffRecords(
      [...named(rec("/m/a", h("a")), "/m/b", "/m/c"), ...named(rec("/m/x", h("b")), "/m/y")],
      [
        ...named(rec("/m/a", h("a"), { status: "gone", update }), "/m/b", "/m/new-link"),
        ...named(rec("/m/x", h("b"), { update }), "/m/y"),
        ...named(rec("/m/z", h("c"), { update }), "/m/z-link"),
      ],
    );
    const { previous: _p, ...summary } = changeSummary(d, { generatedAt: "2026-01-01T00:00:00.000Z", files: 2 });
    // c vanished and new-link appeared with the same bytes: a name renamed, one move.
    expect(summary).toEqual({
      added: 2,
      removed: 0,
      moved: 1,
      changed: 0,
      statusChanged: 1,
      gone: 1,
      found: 0,
      updates: 3,
      unchanged: 1,
    });
    expect(d.added.map((r) => r.path)).toEqual(["/m/z", "/m/z-link"]);
    expect(d.moved.map((p) => [p.old.path, p.new.path])).toEqual([["/m/c", "/m/new-link"]]);
    expect(d.statusChanged.map((p) => p.new.path)).toEqual(["/m/a"]);
    expect(d.updates.map((r) => r.path)).toEqual(["/m/a", "/m/x", "/m/z"]);
  });

  test("added, removed, moved (same bytes, new path), changed (same path, new bytes), status changes, updates, unchanged", () => {
    const before = [
      rec("/m/same.safetensors", h("a")),
      rec("/m/old-name.safetensors", h("b")),
      rec("/m/edited.safetensors", h("c")),
      rec("/m/deleted.safetensors", h("d")),
      rec("/m/vanished-from-civitai.safetensors", h("e")),
      rec("/m/now-known.safetensors", h("f"), { status: "not_found", modelId: null, modelName: null, versionId: null, versionName: null }),
      rec("/m/skipped.fifo", null, { status: "skipped" }),
    ];
    const after = [
      rec("/m/same.safetensors", h("a")),
      rec("/m/new-name.safetensors", h("b")),
      rec("/m/edited.safetensors", h("9")),
      rec("/m/vanished-from-civitai.safetensors", h("e"), { status: "gone" }),
      rec("/m/now-known.safetensors", h("f")),
      rec("/m/added.safetensors", h("1"), { update: { versionId: 7, name: "v2" } }),
      rec("/m/skipped.fifo", null, { status: "skipped" }),
    ];
    const d = diffRecords(before, after);
    expect(d.added.map((r) => r.path)).toEqual(["/m/added.safetensors"]);
    expect(d.removed.map((r) => r.path)).toEqual(["/m/deleted.safetensors"]);
    expect(d.moved.map((p) => [p.old.path, p.new.path])).toEqual([["/m/old-name.safetensors", "/m/new-name.safetensors"]]);
    expect(d.changed.map((p) => [p.new.path, p.old.sha256, p.new.sha256])).toEqual([["/m/edited.safetensors", h("c"), h("9")]]);
    expect(d.statusChanged.map((p) => [p.new.path, p.old.status, p.new.status])).toEqual([
      ["/m/now-known.safetensors", "not_found", "found"],
      ["/m/vanished-from-civitai.safetensors", "found", "gone"],
    ]);
    expect(d.updates.map((r) => r.path)).toEqual(["/m/added.safetensors"]);
    expect(d.unchanged).toBe(2);
    const s = changeSummary(d, { generatedAt: "t", files: before.length });
    expect(s).toEqual({
      previous: { generatedAt: "t", files: 7 },
      added: 1,
      removed: 1,
      moved: 1,
      changed: 1,
      statusChanged: 2,
      gone: 1,
      found: 1,
      updates: 1,
      unchanged: 2,
    });
  });

  test("found → not found counts as gone; a new update on an unchanged file is news, the same one again is not", () => {
    const u = { versionId: 7, name: "v2" };
    const d = diffRecords(
      [rec("/m/a", h("a")), rec("/m/b", h("b"), { update: u }), rec("/m/c", h("c"), { update: { versionId: 6, name: "v1.5" } })],
      [rec("/m/a", h("a"), { status: "not_found" }), rec("/m/b", h("b"), { update: u }), rec("/m/c", h("c"), { update: u })],
    );
    const s = changeSummary(d, { generatedAt: "t", files: 3 });
    expect([s.gone, s.updates]).toEqual([1, 1]);
    expect(d.updates.map((r) => r.path)).toEqual(["/m/c"]);
  });

  test("copies moved at once pair off in path order; the rest are added or removed", () => {
    const d = diffRecords([rec("/m/a1", h("a")), rec("/m/a2", h("a"))], [rec("/m/z1", h("a")), rec("/m/z2", h("a")), rec("/m/z3", h("a"))]);
    expect(d.moved.map((p) => [p.old.path, p.new.path])).toEqual([
      ["/m/a1", "/m/z1"],
      ["/m/a2", "/m/z2"],
    ]);
    expect(d.added.map((r) => r.path)).toEqual(["/m/z3"]);
    expect(d.removed).toEqual([]);
  });

  test("one root on each side, the roots differ: matched by the path under the root; outside it, by the whole path", () => {
    const oldR = [
      rec("/mnt/a/models/x.safetensors", h("a")),
      rec("/mnt/a/models/sub/y.safetensors", h("b")),
      rec("/elsewhere/z.safetensors", h("c")),
    ];
    const newR = [
      rec("/srv/models/x.safetensors", h("a")),
      rec("/srv/models/sub/y.safetensors", h("d")),
      rec("/elsewhere/z.safetensors", h("c")),
    ];
    const diff = diffRecords(oldR, newR, { old: ["/mnt/a/models"], new: ["/srv/models"] });
    expect(diff.unchanged).toBe(2);
    expect(diff.changed.map((p) => [p.old.path, p.new.path])).toEqual([
      ["/mnt/a/models/sub/y.safetensors", "/srv/models/sub/y.safetensors"],
    ]);
    expect([diff.added, diff.removed, diff.moved]).toEqual([[], [], []]);
    // Several roots on a side, or the same root: by the whole path, as always.
    const byPath = diffRecords(oldR, newR, { old: ["/mnt/a/models", "/other"], new: ["/srv/models"] });
    expect(byPath.moved).toHaveLength(1);
    expect(byPath.removed.map((r) => r.path)).toEqual(["/mnt/a/models/sub/y.safetensors"]);
  });

  test("no change at all: every file unchanged, the Markdown says so", () => {
    const same = [rec("/m/a", h("a")), rec("/m/b", null, { status: "skipped" })];
    const markdown = renderDiffMarkdown(doc(same, same));
    expect(markdown).toContain("0 added, 0 removed, 0 moved, 0 changed, 0 status changes (0 gone, 0 found), 0 new updates**; 2 unchanged.");
    expect(markdown).toContain("No change.");
  });
});

describe("diff output", () => {
  const before = [rec("/m/old.safetensors", h("b")), rec("/m/gone.safetensors", h("e"))];
  const after = [
    rec("/m/new.safetensors", h("b")),
    rec("/m/gone.safetensors", h("e"), { status: "gone" }),
    rec("/m/add.safetensors", h("1"), { modelName: "=HYPERLINK(1)" }),
  ];

  test("JSON: counts and every change, deterministic", () => {
    const json = renderDiffJson(doc(before, after), { name: "civitai-meta", version: "0.1.0" });
    expect(json).toBe(renderDiffJson(doc(before, after), { name: "civitai-meta", version: "0.1.0" }));
    const parsed = JSON.parse(json);
    expect(Object.keys(parsed)).toEqual([
      "diffVersion",
      "tool",
      "old",
      "new",
      "summary",
      "added",
      "removed",
      "moved",
      "changed",
      "statusChanged",
      "updates",
    ]);
    expect(parsed.summary).toMatchObject({ added: 1, moved: 1, statusChanged: 1, gone: 1 });
    expect(parsed.moved[0].old.path).toBe("/m/old.safetensors");
    expect(parsed.moved[0].new.path).toBe("/m/new.safetensors");
  });

  test("CSV: one row per change, formula cells made inert", () => {
    const rows = Papa.parse<string[]>(renderDiffCsv(doc(before, after)), { skipEmptyLines: true }).data;
    expect(rows[0]![0]).toBe("change");
    expect(rows.slice(1).map((r) => [r[0], r[1], r[2]])).toEqual([
      ["added", "/m/add.safetensors", ""],
      ["moved", "/m/new.safetensors", "/m/old.safetensors"],
      ["status", "/m/gone.safetensors", ""],
    ]);
    expect(rows[1]![10]).toBe("'=HYPERLINK(1)");
  });

  test("CSV: a file replaced by another version says which version it was", () => {
    const was = [rec("/m/lora.safetensors", h("c"), { versionId: 2, versionName: "v1" })];
    const now = [rec("/m/lora.safetensors", h("d"), { versionId: 3, versionName: "v2", modelName: "M" })];
    const [header, row] = Papa.parse<string[]>(renderDiffCsv(doc(was, now)), { skipEmptyLines: true, header: false }).data;
    const cell = (name: string) => row![header!.indexOf(name)];
    expect([cell("change"), cell("version_id"), cell("version_name")]).toEqual(["changed", "3", "v2"]);
    expect([cell("old_model_id"), cell("old_model_name"), cell("old_version_id"), cell("old_version_name")]).toEqual(["", "", "2", "v1"]);
  });

  test("Markdown for a pull-request comment: tables per kind, hostile names inert, never over the comment limit", () => {
    const many: DiffRecord[] = [];
    for (let i = 0; i < 3000; i++)
      many.push(
        rec(`/m/${Object.values(HOSTILE_STRINGS)[i % 31]}/${"x".repeat(300)}-${i}`, h("1"), {
          modelName: Object.values(HOSTILE_STRINGS)[i % 31]!,
        }),
      );
    const markdown = renderDiffMarkdown(doc([], many));
    expect(markdown.length).toBeLessThanOrEqual(DIFF_MD_MAX_CHARS);
    expect(markdown).toContain("#### Added (3000)");
    expect(markdown).toContain("(the JSON output lists them all)");
    const html = new MarkdownIt({ html: true, linkify: true }).render(markdown);
    expect(html).not.toMatch(/<(img|script|a)\b/i);
    const small = renderDiffMarkdown(doc(before, after));
    expect(small).toContain("#### Moved (1)\n\n| From | To | Size |");
    expect(small).toContain("| old.safetensors | new.safetensors | 10 B |");
    expect(small).toContain("| gone.safetensors | found | gone | M · v1 |");
  });
});
