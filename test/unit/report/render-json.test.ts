import { describe, expect, test } from "bun:test";
import { leanModel, leanVersion } from "../../../src/civitai/lean.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildRecords, type LookupOutcome } from "../../../src/scan/build-records.ts";
import type { ApiModel, ApiModelVersion } from "../../../src/civitai/civitai-types.ts";
import type { FoundFile } from "../../../src/scan/types.ts";
import { renderJson } from "../../../src/report/render-json.ts";
import { SCHEMA_VERSION, type Inventory } from "../../../src/report/inventory-types.ts";
import { HASH_ALGOS } from "../../../src/scan/types.ts";
import { hostileInventory, makeInventory, makeRecord, sampleInventory } from "../../helpers/sample-inventory.ts";
import { SCHEMA_PATH, loadSchema, validateInventory } from "../../helpers/schema.ts";

const reparse = (inv: Inventory) => JSON.parse(renderJson(inv)) as Inventory;

/** The documented layout of an inventory's text: the head indented by two spaces, a record a line. */
function layout(inv: Inventory): string {
  const { records, ...head } = inv;
  const headText = JSON.stringify({ ...head, records: 0 }, null, 2);
  const open = headText.slice(0, headText.length - "0\n}".length);
  if (records.length === 0) return `${open}[]\n}\n`;
  return `${open}[\n${records.map((r) => `    ${JSON.stringify(r)}`).join(",\n")}\n  ]\n}\n`;
}

/** The same object with every key inserted in reverse order, recursively. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).reverse()) out[key] = reverseKeys((value as Record<string, unknown>)[key]);
  return out;
}

describe("renderJson", () => {
  test("the head indented by 2 spaces, a record a line, trailing newline, the inventory unchanged in content but for the library-wide fields", () => {
    const inv = sampleInventory();
    const json = renderJson(inv);
    expect(json.endsWith("}\n")).toBe(true);
    expect(json.split("\n")[1]).toBe(`  "schemaVersion": ${SCHEMA_VERSION},`);
    // Written in pieces, the text is exactly the documented layout of what it parses to.
    expect(layout(JSON.parse(json) as Inventory)).toBe(json);
    const lines = json.split("\n");
    const first = lines.indexOf('  "records": [');
    expect(lines.slice(first + 1, first + 1 + inv.records.length).every((l) => /^    \{"path":.*\},?$/.test(l))).toBe(true);
    expect(lines.slice(first + 1 + inv.records.length)).toEqual(["  ]", "}", ""]);
    const back = JSON.parse(json) as Inventory;
    // Computed from the records (library-facts.ts): the counts of every status, copies, other versions held.
    expect(back.summary.byStatus.gone).toBe(0);
    expect(back.summary.duplicates).toEqual({ sets: 0, files: 0, reclaimableBytes: 0, modelsWithSeveralVersions: 1 });
    expect(back.records.filter((r) => r.otherVersions).map((r) => r.otherVersions!.map((v) => v.versionId))).toEqual([[200], [201]]);
    delete (back.summary as Partial<typeof back.summary>).duplicates;
    for (const r of back.records) delete r.otherVersions;
    // Same content apart from record order.
    const sortedCopy = { ...inv, records: [...inv.records].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))) };
    expect(back).toEqual(JSON.parse(JSON.stringify(sortedCopy)));
  });

  test("records sorted by path in byte order, not locale or UTF-16 order", () => {
    const paths = ["/m/b", "/m/B", "/m/a", "/m/\u{1F98A}", "/m/\uFF41", "/m/é", "/m/Z"];
    const inv = makeInventory(paths.map((path) => makeRecord({ path, status: "not_found" })));
    const out = reparse(inv).records.map((r) => r.path);
    const byBytes = [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(out).toEqual(byBytes);
    // U+FF41 (3 UTF-8 bytes EF BD 81) sorts before the fox (F0 …), unlike UTF-16 code units.
    expect(out.indexOf("/m/\uFF41")).toBeLessThan(out.indexOf("/m/\u{1F98A}"));
  });

  test("keys in a stable documented order, whatever the insertion order", () => {
    const inv = sampleInventory();
    const shuffled = reverseKeys(inv) as Inventory;
    shuffled.records.reverse();
    expect(renderJson(shuffled)).toBe(renderJson(inv));
    const back = reparse(shuffled);
    expect(Object.keys(back)).toEqual(["schemaVersion", "generatedAt", "tool", "roots", "options", "summary", "records"]);
    const found = back.records.find((r) => r.status === "found")!;
    expect(Object.keys(found).slice(0, 6)).toEqual(["path", "aliases", "size", "mtime", "hashes", "status"]);
    expect(Object.keys(found.hashes)).toEqual(HASH_ALGOS.filter((a) => a in found.hashes));
    expect(Object.keys(found.civitai!).slice(0, 3)).toEqual(["modelId", "modelName", "modelType"]);
  });

  test("unknown keys (a newer pipeline's additions) are kept, after the known ones, sorted", () => {
    const inv = sampleInventory();
    const record = inv.records[0] as unknown as Record<string, unknown>;
    record.zeta = { b: 1, a: 2 };
    record.alpha = true;
    const json = renderJson(inv);
    const back = JSON.parse(json) as { records: Record<string, unknown>[] };
    const keys = Object.keys(back.records.find((r) => "zeta" in r)!);
    expect(keys.slice(-2)).toEqual(["alpha", "zeta"]);
    expect(json).toContain('"zeta":{"a":2,"b":1}');
  });

  test("unknown keys: array-index keys first as JSON.stringify lists them, the rest in byte order, nested maps sorted too", () => {
    const inv = sampleInventory();
    const record = inv.records[0] as unknown as Record<string, unknown>;
    record.extra = JSON.parse('{"b":[{"z":1,"y":[]}],"10":{},"é":null,"2":[1,"x"],"A":{"d":1,"c":{"f":2,"e":3}},"01":true}');
    const json = renderJson(inv);
    const expected = {
      "2": [1, "x"],
      "10": {},
      "01": true,
      A: { c: { e: 3, f: 2 }, d: 1 },
      b: [{ y: [], z: 1 }],
      é: null,
    };
    expect(json).toContain(`"extra":${JSON.stringify(expected)}`);
    // Known keys out of order (as Civitai sends hashes) and in order give the same text.
    const found = inv.records.find((r) => r.civitai?.matchedFile?.hashes)!;
    const hashes = found.civitai!.matchedFile!.hashes as Record<string, string>;
    const before = renderJson(inv);
    found.civitai!.matchedFile!.hashes = Object.fromEntries(Object.entries(hashes).reverse());
    expect(renderJson(inv)).toBe(before);
  });

  test("a __proto__ key stays data (no prototype change)", () => {
    const inv = JSON.parse(renderJson(sampleInventory())) as Inventory;
    const withProto = JSON.parse(
      JSON.stringify(inv).replace(`"schemaVersion":${SCHEMA_VERSION}`, `"schemaVersion":${SCHEMA_VERSION},"__proto__":{"polluted":1}`),
    );
    const json = renderJson(withProto);
    expect(json).toContain('"__proto__"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("deterministic and pure", () => {
    const inv = hostileInventory();
    const before = JSON.stringify(inv);
    expect(renderJson(inv)).toBe(renderJson(hostileInventory()));
    expect(JSON.stringify(inv)).toBe(before);
  });

  test("D6: control characters are escaped in the JSON text", () => {
    const json = renderJson(hostileInventory());
    expect(json).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(json).toContain("\\u001b]52;c;");
  });

  test("a record stays one line whatever its strings hold (LF, CR, NEL, U+2028, U+2029), and parses back to them", () => {
    const inv = hostileInventory();
    const breaks = "a\nb\rc\u0085d\u2028e\u2029f";
    inv.records[0]!.path = `/models/${breaks}.safetensors`;
    const json = renderJson(inv);
    expect(json).not.toMatch(/[\r\u0085\u2028\u2029]/);
    const lines = json.split("\n");
    const first = lines.indexOf('  "records": [');
    expect(lines.length).toBe(first + 1 + inv.records.length + 3);
    expect((JSON.parse(json) as Inventory).records.some((r) => r.path === `/models/${breaks}.safetensors`)).toBe(true);
  });

  test("an inventory without records closes its array on the same line", () => {
    const json = renderJson(makeInventory([]));
    expect(json.endsWith('  "records": []\n}\n')).toBe(true);
    expect(layout(JSON.parse(json) as Inventory)).toBe(json);
  });
});

describe("docs/report.schema.json", () => {
  test("is valid JSON Schema 2020-12 that ajv compiles in strict mode", () => {
    const schema = JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as Record<string, unknown>;
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(loadSchema()).toEqual(schema);
    expect(validateInventory(reparse(sampleInventory()))).toEqual([]);
  });

  test("the sample and the hostile inventories validate (strict and published)", () => {
    for (const inv of [sampleInventory(), hostileInventory(), makeInventory([])]) {
      expect(validateInventory(reparse(inv))).toEqual([]);
      expect(validateInventory(reparse(inv), { strict: false })).toEqual([]);
    }
  });

  test("records built by the real pipeline from recorded Civitai payloads validate", () => {
    const fixture = <T>(name: string) => JSON.parse(readFileSync(join(import.meta.dir, "../../fixtures/civitai", name), "utf8")) as T;
    const models = [
      fixture<ApiModel>("model-detail-lora-2026-example.json"),
      fixture<ApiModel>("model-detail-1102-wiki-2023-example.json"),
    ];
    const lookups = new Map<string, LookupOutcome>();
    const hashes = [];
    let n = 0;
    for (const model of models) {
      for (const version of model.modelVersions ?? []) {
        for (const file of version.files ?? []) {
          const sha = file.hashes?.SHA256?.toLowerCase();
          if (!sha) continue;
          const v: ApiModelVersion = { ...version, modelId: model.id };
          lookups.set(sha, {
            status: "found",
            host: "https://civitai.com",
            versions: [leanVersion(v)],
            models: new Map([[model.id, leanModel(model)]]),
          });
          const path = `/models/f${n++}.safetensors`;
          const found: FoundFile = {
            path,
            paths: [path],
            realPath: path,
            identity: { dev: 1, ino: n, size: 1000 + n, mtimeNs: "0", ctimeNs: "0" },
            mtimeMs: 1_700_000_000_000,
          };
          hashes.push({ file: found, hashes: { sha256: sha, autov2: sha.slice(0, 10) }, cached: false });
        }
      }
    }
    const missPath = "/models/miss.safetensors";
    const miss: FoundFile = {
      path: missPath,
      paths: [missPath],
      realPath: missPath,
      identity: { dev: 1, ino: 999, size: 5, mtimeNs: "0", ctimeNs: "0" },
      mtimeMs: 0,
    };
    hashes.push({ file: miss, hashes: { sha256: "0".repeat(64) }, cached: false });
    lookups.set("0".repeat(64), { status: "not_found", versions: [], models: new Map() });
    const records = buildRecords({
      hashes,
      skipped: [{ path: "/models/fifo", reason: "not a regular file" }],
      lookups,
      now: Date.parse("2026-09-01T00:00:00Z"),
    });
    expect(records.filter((r) => r.status === "found").length).toBeGreaterThanOrEqual(4);
    const inv = makeInventory(records);
    expect(validateInventory(reparse(inv))).toEqual([]);
  });

  test("a missing required field fails", () => {
    const inv = reparse(sampleInventory()) as unknown as { records: Record<string, unknown>[] };
    delete inv.records[0]!.hashes;
    expect(validateInventory(inv).join("\n")).toContain("/records/0 must have required property 'hashes'");
  });

  test("a wrong status fails", () => {
    const inv = reparse(sampleInventory()) as unknown as { records: Record<string, unknown>[] };
    inv.records[1]!.status = "notfound";
    expect(validateInventory(inv).join("\n")).toContain("/records/1/status must be equal to one of the allowed values");
  });

  test("status-specific fields: found needs civitai, error needs error, skipped needs reason", () => {
    const inv = reparse(sampleInventory());
    const found = inv.records.findIndex((r) => r.status === "found");
    const error = inv.records.findIndex((r) => r.status === "error");
    const skipped = inv.records.findIndex((r) => r.status === "skipped");
    delete inv.records[found]!.civitai;
    delete inv.records[error]!.error;
    delete inv.records[skipped]!.reason;
    const errors = validateInventory(inv).join("\n");
    expect(errors).toContain(`/records/${found} must have required property 'civitai'`);
    expect(errors).toContain(`/records/${error} must have required property 'error'`);
    expect(errors).toContain(`/records/${skipped} must have required property 'reason'`);
  });

  test("wrong types and malformed hashes fail", () => {
    const inv = reparse(sampleInventory());
    (inv.records[0] as unknown as Record<string, unknown>).size = "big";
    inv.records[0]!.hashes.sha256 = "ABC";
    inv.records[0]!.civitai!.pageUrl = "javascript:alert(1)";
    (inv.summary as unknown as Record<string, unknown>).files = -1;
    inv.generatedAt = "yesterday";
    const errors = validateInventory(inv).join("\n");
    expect(errors).toContain("/records/0/size must be integer,null");
    expect(errors).toContain("/records/0/hashes/sha256 must match pattern");
    expect(errors).toContain("/records/0/civitai/pageUrl must match pattern");
    expect(errors).toContain("/summary/files must be >= 0");
    expect(errors).toContain('/generatedAt must match format "date-time"');
  });

  test("additions: rejected by the strict test mode, accepted by the published schema", () => {
    const inv = reparse(sampleInventory()) as unknown as { records: Record<string, unknown>[] };
    inv.records[0]!.lastCheckedAt = "2025-01-01T00:00:00Z";
    expect(validateInventory(inv).join("\n")).toContain("must NOT have additional properties (lastCheckedAt)");
    expect(validateInventory(inv, { strict: false })).toEqual([]);
  });

  test("local layer: a sidecar identity never sits on a found record, and knownFrom says where names come from", () => {
    const inv = reparse(sampleInventory());
    const found = inv.records.findIndex((r) => r.status === "found");
    const side = inv.records.findIndex((r) => r.sidecar !== undefined);
    expect(side).toBeGreaterThanOrEqual(0);
    inv.records[found]!.sidecar = inv.records[side]!.sidecar;
    inv.records[found]!.knownFrom = "sidecar:civitai-helper";
    inv.records[side]!.knownFrom = "civitai";
    const errors = validateInventory(inv).join("\n");
    expect(errors).toContain(`/records/${found} must NOT be valid`);
    expect(errors).toContain(`/records/${found}/knownFrom must be equal to constant`);
    expect(errors).toContain(`/records/${side}/knownFrom must NOT be valid`);
    const missing = reparse(sampleInventory());
    delete missing.records[side]!.knownFrom;
    expect(validateInventory(missing).join("\n")).toContain(`/records/${side} must have required property 'knownFrom'`);
  });

  test("local layer: keys in the documented order (record, local, sidecar)", () => {
    const inv = sampleInventory();
    const text = renderJson(reverseKeys(inv) as Inventory);
    const record = (JSON.parse(text) as Inventory).records.find((r) => r.sidecar)!;
    expect(Object.keys(record)).toEqual(["path", "aliases", "size", "mtime", "hashes", "status", "host", "knownFrom", "sidecar", "local"]);
    expect(Object.keys(record.local!)).toEqual([
      "format",
      "bytesRead",
      "header",
      "tensors",
      "guess",
      "training",
      "modelspec",
      "sidecars",
      "errors",
      "warnings",
    ]);
    expect(Object.keys(record.sidecar!)[0]).toBe("source");
    expect(text).toBe(renderJson(inv));
  });

  test("another tool's JSON is not an inventory", () => {
    expect(validateInventory({ name: "x", version: "1.0.0" }).length).toBeGreaterThan(0);
    expect(validateInventory([]).length).toBeGreaterThan(0);
  });
});
