import { describe, expect, test } from "bun:test";
import Papa from "papaparse";
import { CSV_COLUMNS, fileNameOf, neutralizeFormula, renderCsv } from "../../../src/report/render-csv.ts";
import type { FileRecord } from "../../../src/report/record-types.ts";
import {
  HOSTILE_STRINGS,
  hostileInventory,
  makeCivitai,
  makeInventory,
  makeLocal,
  makeModelSpec,
  makeRecord,
  makeSidecarIdentity,
  makeTraining,
  sampleInventory,
} from "../../helpers/sample-inventory.ts";

// The OWASP rule, restated here independently of the implementation (docs/reliability.md §4.3).
const FORMULA_START = /^[=+\-@\t\r\n\0]/;
// T14: controls (but TAB and LF, data in a quoted cell), DEL, C1, bidi controls and raw bytes shown as escapes.
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]/gu;
const shownCell = (text: string) =>
  text.replace(CONTROLS, (ch) => {
    const code = ch.charCodeAt(0);
    if (code >= 0xdc80) return `\\x${(code - 0xdc00).toString(16)}`;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
const guarded = (raw: string) => {
  const text = shownCell(raw);
  return FORMULA_START.test(text) ? `'${text}` : text;
};
const NUMERIC = new Set(["size", "model_id", "version_id", "sidecar_model_id", "sidecar_version_id"]);

/** The columns before issue #5, in their order: later columns only ever go after them. */
const V1_COLUMNS = [
  "path",
  "file_name",
  "size",
  "sha256",
  "autov2",
  "status",
  "model_id",
  "model_name",
  "model_type",
  "version_id",
  "version_name",
  "base_model",
  "trained_words",
  "nsfw",
  "creator",
  "tags",
  "page_url",
  "download_url",
  "matched_by",
  "error_or_reason",
];

function parse(csv: string): string[][] {
  const result = Papa.parse<string[]>(csv, { header: false, skipEmptyLines: true, dynamicTyping: false });
  expect(result.errors).toEqual([]);
  return result.data;
}

/** What each column should read, computed from the record without the renderer's helpers. */
function expectedRow(r: FileRecord): Record<string, string> {
  const c = r.civitai;
  const t = (v: string | null | undefined) => (v ? guarded(v) : "");
  const n = (v: number | null | undefined) => (typeof v === "number" ? String(v) : "");
  const l = (v: string[] | undefined) => (v && v.length > 0 ? guarded(v.join("; ")) : "");
  return {
    path: t(r.path),
    file_name: t(r.path.slice(r.path.lastIndexOf("/") + 1)),
    size: n(r.size),
    sha256: t(r.hashes.sha256),
    autov2: t(r.hashes.autov2),
    status: r.status,
    model_id: n(c?.modelId),
    model_name: t(c?.modelName),
    model_type: t(c?.modelType),
    version_id: n(c?.versionId),
    version_name: t(c?.versionName),
    base_model: t(c?.baseModel),
    trained_words: l(c?.trainedWords),
    nsfw: c?.nsfw === null || c?.nsfw === undefined ? "" : String(c.nsfw),
    creator: t(c?.creator),
    tags: l(c?.tags),
    page_url: t(c?.pageUrl),
    download_url: t(c?.downloadUrl),
    matched_by: t(r.matchedBy),
    error_or_reason: t(r.error ?? r.reason),
    format: t(r.local?.format),
    architecture_guess: t(guessCell(r)),
    local_trigger_words: l(
      r.local?.modelspec?.triggerPhrase
        ? [r.local.modelspec.triggerPhrase]
        : r.local?.training?.classTokens.length
          ? r.local.training.classTokens
          : r.local?.training?.topTags.slice(0, 5).map((x) => x.tag),
    ),
    training_base_model: t(r.local?.training?.baseModelVersion ?? r.local?.training?.sourceModelName ?? r.local?.modelspec?.architecture),
    known_from: t(r.knownFrom ?? (r.status === "found" ? "civitai" : null)),
    sidecar_model_id: n(r.sidecar?.modelId),
    sidecar_model_name: t(r.sidecar?.modelName),
    sidecar_version_id: n(r.sidecar?.versionId),
    sidecar_version_name: t(r.sidecar?.versionName),
    aliases: l(r.aliases),
    // Issue 12: what these records say of copies, updates, gone and access (nothing here: one file per hash, one version per model).
    copies: n(r.duplicate?.copies),
    duplicate_of: l(r.duplicate?.others),
    other_versions_in_library: "",
    update_version_id: n(r.update?.sameBaseModel?.versionId),
    update_version_name: t(r.update?.sameBaseModel?.name),
    update_published_at: t(r.update?.sameBaseModel?.publishedAt),
    update_access: "",
    update_in_library: "",
    newest_version_id: n(r.update?.newest.versionId),
    newest_version_name: t(r.update?.newest.name),
    newest_base_model: t(r.update?.newest.baseModel),
    gone_reason: t(r.gone?.reason),
    last_seen_at: t(r.gone?.lastSeenAt),
    access: t(c?.access?.kind),
    access_ends_at: t(c?.access?.endsAt),
    access_days_left: "",
    // The licence as declared: the commercial uses "; "-joined ("none" for none), the flags as true/false.
    declared_commercial_use: c?.license ? (c.license.allowCommercialUse.length > 0 ? l(c.license.allowCommercialUse) : "none") : "",
    declared_no_credit_needed: c?.license?.allowNoCredit == null ? "" : String(c.license.allowNoCredit),
    declared_derivatives_allowed: c?.license?.allowDerivatives == null ? "" : String(c.license.allowDerivatives),
    declared_different_license_allowed: c?.license?.allowDifferentLicense == null ? "" : String(c.license.allowDifferentLicense),
  };
}

function guessCell(r: FileRecord): string | null {
  const g = r.local?.guess;
  if (!g || (g.kind === "unknown" && g.family === "unknown")) return null;
  const kinds: Record<string, string> = { lora: "LoRA", checkpoint: "Checkpoint", lycoris: "LyCORIS" };
  return `${kinds[g.kind] ?? g.kind}${g.subtype ? ` (${g.subtype})` : ""}${g.family !== "unknown" ? `, ${g.family}` : ""} (guess)`;
}

describe("renderCsv", () => {
  test("header row, one row per file, CRLF line ends, every text cell quoted", () => {
    const inv = sampleInventory();
    const csv = renderCsv(inv);
    expect(csv.startsWith(`${CSV_COLUMNS.map((c) => `"${c}"`).join(",")}\r\n`)).toBe(true);
    expect(csv.endsWith("\r\n")).toBe(true);
    // No bare LF as a record delimiter when no cell holds a newline.
    expect(csv.replace(/\r\n/g, "")).not.toContain("\n");
    const rows = parse(csv);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows.length).toBe(inv.records.length + 1);
    // Sorted by path.
    const paths = rows.slice(1).map((r) => r[0]);
    expect(paths).toEqual([...paths].sort());
  });

  test("F1: every hostile string in every text field and in the file path round-trips with the ' prefix exactly when required", () => {
    const inv = hostileInventory();
    // A path that itself starts with a formula character (a relative path or a hand-made inventory).
    inv.records.push(makeRecord({ path: "=cmd|' /C calc'!A0", status: "not_found" }));
    inv.records.push(makeRecord({ path: "-rel/@x.safetensors", status: "not_found" }));
    const csv = renderCsv(inv);
    const rows = parse(csv);
    expect(rows.length).toBe(inv.records.length + 1);
    for (const row of rows) expect(row.length).toBe(CSV_COLUMNS.length);

    const byPath = new Map(inv.records.map((r) => [guarded(r.path), r]));
    let checkedPrefixed = 0;
    for (const row of rows.slice(1)) {
      const record = byPath.get(row[0] ?? "");
      expect(record).toBeDefined();
      const want = expectedRow(record!);
      CSV_COLUMNS.forEach((column, i) => {
        expect({ column, value: row[i] }).toEqual({ column, value: want[column] });
        if (row[i]?.startsWith("'")) checkedPrefixed++;
      });
    }
    // The hostile set really exercised the prefix (model name, creator, tags, words, …).
    expect(checkedPrefixed).toBeGreaterThan(50);
  });

  test("F1: exact cells for the named attacks", () => {
    const cases: [string, string][] = [
      [HOSTILE_STRINGS.hyperlink, `'${HOSTILE_STRINGS.hyperlink}`],
      ["-2+3", "'-2+3"],
      ["+1", "'+1"],
      ["@SUM(1)", "'@SUM(1)"],
      ["\tTabbed", "'\tTabbed"],
      ["\rCarriage", "\\x0dCarriage"],
      ["\nLinefeed", "'\nLinefeed"],
      ['a,b;c"d', 'a,b;c"d'],
      ["in=side", "in=side"],
      ["模型 🦊", "模型 🦊"],
      // T14: a terminal escape is shown, never run by `cat inv.csv`.
      ["esc\u001b]52;c;x\u0007", "esc\\x1b]52;c;x\\x07"],
      ["abc\u202egpj.exe", "abc\\u202egpj.exe"],
      ["=\u0007bell", "'=\\x07bell"],
    ];
    for (const [input, want] of cases) {
      const inv = makeInventory([
        makeRecord({ civitai: makeCivitai({ modelName: input, creator: input, tags: [input], trainedWords: [input] }) }),
      ]);
      const row = parse(renderCsv(inv))[1]!;
      const at = (name: string) => row[CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number])];
      expect(at("model_name")).toBe(want);
      expect(at("creator")).toBe(want);
      expect(at("tags")).toBe(want);
      expect(at("trained_words")).toBe(want);
    }
  });

  test("the pre-existing columns keep their order; the local-layer columns come after them", () => {
    expect(CSV_COLUMNS.slice(0, V1_COLUMNS.length)).toEqual(V1_COLUMNS as never);
    expect(CSV_COLUMNS.slice(V1_COLUMNS.length)).toEqual([
      "format",
      "architecture_guess",
      "local_trigger_words",
      "training_base_model",
      "known_from",
      "sidecar_model_id",
      "sidecar_model_name",
      "sidecar_version_id",
      "sidecar_version_name",
      "aliases",
      "copies",
      "duplicate_of",
      "other_versions_in_library",
      "update_version_id",
      "update_version_name",
      "update_published_at",
      "update_access",
      "update_in_library",
      "newest_version_id",
      "newest_version_name",
      "newest_base_model",
      "gone_reason",
      "last_seen_at",
      "access",
      "access_ends_at",
      "access_days_left",
      "declared_commercial_use",
      "declared_no_credit_needed",
      "declared_derivatives_allowed",
      "declared_different_license_allowed",
    ] as never);
  });

  test("local-layer cells: format, labelled guess, the file's trigger words, training base model, known_from and the sidecar identity", () => {
    const inv = sampleInventory();
    const rows = parse(renderCsv(inv));
    const row = (suffix: string) => {
      const r = rows.find((x) => x[0]!.endsWith(suffix))!;
      return (name: string) => r[CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number])];
    };
    const deleted = row("loras/Ünïcode 模型 🦊.safetensors");
    expect(deleted("status")).toBe("not_found");
    expect(deleted("model_name")).toBe("");
    expect(deleted("format")).toBe("safetensors");
    expect(deleted("architecture_guess")).toBe("LoRA, SDXL (guess)");
    expect(deleted("local_trigger_words")).toBe("mystyle");
    expect(deleted("training_base_model")).toBe("sdxl_base_v1-0");
    expect(deleted("known_from")).toBe("sidecar:civitai-helper");
    expect(deleted("sidecar_model_id")).toBe("700");
    expect(deleted("sidecar_model_name")).toBe("Deleted Model");
    expect(deleted("sidecar_version_id")).toBe("701");
    expect(deleted("sidecar_version_name")).toBe("v3");
    const found = row("loras/detail-tweaker.safetensors");
    expect(found("known_from")).toBe("civitai");
    expect(found("format")).toBe("");
    const miss = row("embeddings/mine.pt");
    expect(miss("known_from")).toBe("");
    // Without a trigger phrase: kohya class tokens, else the top tags.
    const noPhrase = makeInventory([
      makeRecord({ path: "/m/a.safetensors", local: makeLocal({ modelspec: undefined }) }),
      makeRecord({
        path: "/m/b.safetensors",
        local: makeLocal({ modelspec: undefined, training: makeTraining({ classTokens: [], baseModelVersion: null }) }),
      }),
    ]);
    const [, a, b] = parse(renderCsv(noPhrase));
    const at = (r: string[], name: string) => r[CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number])];
    expect(at(a!, "local_trigger_words")).toBe("mystyle woman");
    expect(at(b!, "local_trigger_words")).toBe("my style; 1girl");
    expect(at(b!, "training_base_model")).toBe("sd_xl_base_1.0.safetensors");
  });

  test("F1: hostile strings from a file's header and from sidecars get the ' prefix like Civitai's", () => {
    const local = makeLocal({
      modelspec: makeModelSpec({ triggerPhrase: "=cmd|' /C calc'!A0" }),
      training: makeTraining({ baseModelVersion: "@SUM(1)" }),
    });
    const sidecar = makeSidecarIdentity({ modelName: "-2+3", versionName: "+1" });
    const inv = makeInventory([makeRecord({ status: "not_found", local, sidecar, knownFrom: "sidecar:civitai-helper" })]);
    const row = parse(renderCsv(inv))[1]!;
    const at = (name: string) => row[CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number])];
    expect(at("local_trigger_words")).toBe("'=cmd|' /C calc'!A0");
    expect(at("training_base_model")).toBe("'@SUM(1)");
    expect(at("sidecar_model_name")).toBe("'-2+3");
    expect(at("sidecar_version_name")).toBe("'+1");
  });

  test("OWASP example is written exactly as OWASP recommends", () => {
    const inv = makeInventory([makeRecord({ civitai: makeCivitai({ modelName: '=1+2";=1+2' }) })]);
    expect(renderCsv(inv)).toContain(`,"'=1+2"";=1+2",`);
  });

  test("lists are joined with '; ' and the joined cell is guarded by its first character", () => {
    const inv = makeInventory([makeRecord({ civitai: makeCivitai({ tags: ["-neg", "ok"], trainedWords: ["ok", "=later"] }) })]);
    const row = parse(renderCsv(inv))[1]!;
    expect(row[CSV_COLUMNS.indexOf("tags")]).toBe("'-neg; ok");
    expect(row[CSV_COLUMNS.indexOf("trained_words")]).toBe("ok; =later");
  });

  test("numeric columns are bare numbers, never quoted or prefixed, even negative ones", () => {
    const inv = makeInventory([
      makeRecord({ path: "/m/a.safetensors", size: 2_132_625_432, civitai: makeCivitai({ modelId: 4201, versionId: 130072 }) }),
      makeRecord({ path: "/m/b.safetensors", size: 0, civitai: makeCivitai({ modelId: -5, versionId: 7 }) }),
      makeRecord({ path: "/m/c", status: "skipped" }),
    ]);
    const csv = renderCsv(inv);
    const lines = csv.split("\r\n");
    expect(lines[1]).toContain(`,2132625432,`);
    expect(lines[1]).toContain(`,4201,`);
    expect(lines[1]).toContain(`,130072,`);
    expect(lines[2]).toContain(`,-5,`);
    expect(lines[2]).toContain(`,0,`);
    const rows = parse(csv);
    for (const row of rows.slice(1)) {
      CSV_COLUMNS.forEach((column, i) => {
        if (NUMERIC.has(column)) expect(row[i]).toMatch(/^(-?\d+)?$/);
      });
    }
    // A skipped file has empty numeric cells, not "null" or 0.
    expect(rows[3]![CSV_COLUMNS.indexOf("size")]).toBe("");
  });

  test("excel: true prepends a UTF-8 BOM and changes nothing else", () => {
    const inv = sampleInventory();
    const plain = renderCsv(inv);
    const excel = renderCsv(inv, { excel: true });
    expect(plain.charCodeAt(0)).not.toBe(0xfeff);
    expect(excel.charCodeAt(0)).toBe(0xfeff);
    expect(excel.slice(1)).toBe(plain);
    expect([...Buffer.from(excel, "utf8").subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(renderCsv(inv, { excel: false })).toBe(plain);
  });

  test("deterministic: same inventory, same bytes, whatever the record order", () => {
    const a = hostileInventory();
    const b = hostileInventory();
    b.records.reverse();
    expect(renderCsv(a)).toBe(renderCsv(a));
    expect(renderCsv(b)).toBe(renderCsv(a));
  });

  test("does not modify the inventory", () => {
    const inv = sampleInventory();
    const before = JSON.stringify(inv);
    inv.records.reverse();
    const reversed = JSON.stringify(inv);
    renderCsv(inv, { excel: true });
    expect(JSON.stringify(inv)).toBe(reversed);
    expect(reversed).not.toBe(before);
  });

  test("neutralizeFormula and fileNameOf", () => {
    expect(neutralizeFormula("=A1")).toBe("'=A1");
    expect(neutralizeFormula("\0x")).toBe("'\0x");
    expect(neutralizeFormula("A=1")).toBe("A=1");
    expect(neutralizeFormula("")).toBe("");
    expect(fileNameOf("/models/loras/a b.safetensors")).toBe("a b.safetensors");
    expect(fileNameOf("/models/we\\ird.safetensors")).toBe("we\\ird.safetensors");
    expect(fileNameOf("C:\\Models\\x.ckpt")).toBe("x.ckpt");
    expect(fileNameOf("\\\\nas\\share\\y.pt")).toBe("y.pt");
    expect(fileNameOf("/models/dir/")).toBe("dir");
  });
});
