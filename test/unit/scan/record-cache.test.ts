/**
 * The rules of the finished-record cache and its pack format (scan/record-cache-rules.ts,
 * scan/record-pack-format.ts), pure: what a kept record must still match to be given, what the
 * library facts read of it, and a pack that does not decode being a miss, never a wrong record.
 */
import { describe, expect, test } from "bun:test";
import { factsOf } from "../../../src/report/library-facts.ts";
import { sectionOf } from "../../../src/report/record-order.ts";
import type { FileRecord } from "../../../src/report/record-types.ts";
import {
  fileIdent,
  rowHolds,
  sidecarMark,
  skeletonOf,
  staysTrue,
  withFile,
  type Dep,
  type RecordMeta,
} from "../../../src/scan/record-cache-rules.ts";
import { decodePack, encodePack } from "../../../src/scan/record-pack-format.ts";
import type { FoundFile } from "../../../src/scan/types.ts";
import { makeCivitai, makeLocal, makeRecord, sampleInventory } from "../../helpers/sample-inventory.ts";

function file(overrides: Partial<FoundFile> = {}): FoundFile {
  const path = overrides.path ?? "/m/a.safetensors";
  return {
    path,
    paths: [path],
    realPath: path,
    identity: { dev: 1, ino: 2, size: 3, mtimeNs: "1700000000000000000", ctimeNs: "1700000000000000001" },
    mtimeMs: 1_700_000_000_000,
    ...overrides,
  };
}

const meta = (overrides: Partial<RecordMeta> = {}): RecordMeta => ({
  ident: "i",
  expiresAt: 2_000,
  deps: [["version:sha256:ab", "1:2"]],
  facts: skeletonOf(makeRecord()),
  ...overrides,
});

describe("record cache rules", () => {
  test("sidecarMark: none listed, one of the file's sidecars listed, or its folder not listed", () => {
    expect(sidecarMark([], "/m/a.safetensors")).toBe("");
    expect(sidecarMark(["b.civitai.info", "a.preview.png.json.bak"], "/m/a.safetensors")).toBe("");
    for (const name of ["a.civitai.info", "a.json", "a.metadata.json", "a.cm-info.json"])
      expect(sidecarMark([name], "/m/a.safetensors")).toBe(":s");
    expect(sidecarMark(undefined, "/m/a.safetensors")).toBe(":?");
    // A long listing (a folder where every model has its sidecars) is looked up as a set: the same answers.
    const others = Array.from({ length: 40 }, (_, i) => `m${i}.civitai.info`);
    expect(sidecarMark(others, "/m/a.safetensors")).toBe("");
    expect(sidecarMark([...others, "a.metadata.json"], "/m/a.safetensors")).toBe(":s");
    expect(sidecarMark(others, "/m/m7.safetensors")).toBe(":s");
    // A file with a sidecar never has the identity of one without: its record is never claimed.
    const f = file();
    expect(new Set(["", ":s", ":?"].map((m) => fileIdent(f, m as "" | ":s" | ":?"))).size).toBe(3);
  });

  test("fileIdent changes with every identity field and the paths to the file", () => {
    const base = fileIdent(file(), "");
    const id = file().identity;
    const variants = [
      fileIdent(file({ identity: { ...id, dev: 9 } }), ""),
      fileIdent(file({ identity: { ...id, ino: 9 } }), ""),
      fileIdent(file({ identity: { ...id, size: 9 } }), ""),
      fileIdent(file({ identity: { ...id, mtimeNs: "1700000000000000009" } }), ""),
      fileIdent(file({ identity: { ...id, ctimeNs: "1700000000000000009" } }), ""),
      fileIdent(file({ paths: ["/m/a.safetensors", "/m/z-link.safetensors"] }), ""),
      fileIdent(file({ realPath: "/elsewhere/a.safetensors" }), ""),
    ];
    for (const v of variants) expect(v).not.toBe(base);
    expect(new Set(variants).size).toBe(variants.length);
  });

  test("rowHolds: the same file, before its expiry, every folder unchanged; anything else is a miss", () => {
    const sha = meta().facts.hashes.sha256;
    const holds = (m: RecordMeta, now = 1_000, depHolds: (d: Dep) => boolean = () => true, sha256 = sha) =>
      rowHolds(m, { ident: "i", sha256, now, depHolds });
    expect(typeof sha).toBe("string");
    expect(holds(meta())).toBe(true);
    expect(holds(meta({ ident: "other" }))).toBe(false);
    // The SHA-256 names the bytes (the other hashes are of the same bytes); none is no match.
    expect(holds(meta(), 1_000, () => true, "0".repeat(64))).toBe(false);
    expect(rowHolds(meta(), { ident: "i", sha256: undefined, now: 1_000, depHolds: () => true })).toBe(false);
    expect(holds(meta(), 2_000)).toBe(false); // expired at its expiry
    expect(holds(meta(), 1_999)).toBe(true);
    expect(holds(meta(), 1_000, () => false)).toBe(false);
    const seen: unknown[] = [];
    holds(
      meta({
        deps: [
          ["model:01", "a"],
          ["model:02", "b"],
        ],
      }),
      1_000,
      (d) => seen.push(d) > 0,
    );
    expect(seen).toEqual([
      ["model:01", "a"],
      ["model:02", "b"],
    ]);
  });

  test("staysTrue: a record showing access that still runs (early, paid; its own or its update's) is never kept", () => {
    expect(staysTrue(makeRecord())).toBe(true);
    expect(staysTrue(makeRecord({ status: "not_found" }))).toBe(true);
    const early = { kind: "early_access" as const, endsAt: "2099-01-01T00:00:00.000Z", permanent: false };
    expect(staysTrue(makeRecord({ civitai: makeCivitai({ access: early }) }))).toBe(false);
    const flagged = makeCivitai();
    flagged.availability = { ...flagged.availability, earlyAccess: true };
    expect(staysTrue(makeRecord({ civitai: flagged }))).toBe(false);
    const newer = {
      versionId: 2,
      name: "v2",
      baseModel: "SDXL 1.0",
      publishedAt: null,
      inLibrary: [],
      pageUrl: "https://civitai.com/models/1?modelVersionId=2",
    };
    expect(staysTrue(makeRecord({ update: { sameBaseModel: null, newest: { ...newer, access: null } } }))).toBe(true);
    expect(staysTrue(makeRecord({ update: { sameBaseModel: null, newest: { ...newer, access: early } } }))).toBe(false);
    expect(staysTrue(makeRecord({ update: { sameBaseModel: { ...newer, access: early }, newest: { ...newer, access: null } } }))).toBe(
      false,
    );
    expect(staysTrue(makeRecord({ ambiguous: [makeCivitai({ access: early })] }))).toBe(false);
  });

  test("the facts of skeletons are the facts of the records (sample inventory, plus warnings, updates, gone, copies)", () => {
    const records: FileRecord[] = [
      ...sampleInventory().records,
      makeRecord({
        path: "/lib/warn.safetensors",
        local: makeLocal({ formatMismatch: "a pickle named .safetensors", errors: ["bad header"] }),
      }),
      makeRecord({ path: "/lib/copy.safetensors", hashes: { sha256: "f".repeat(64) } }),
      makeRecord({ path: "/lib/copy2.safetensors", hashes: { sha256: "f".repeat(64) }, aliases: ["/lib/zz.safetensors"] }),
      makeRecord({
        path: "/lib/gone.safetensors",
        status: "gone",
        civitai: makeCivitai({ modelId: 77, versionId: 770 }),
        gone: { reason: "not_found", lastSeenAt: null },
      }),
      makeRecord({
        path: "/lib/old.safetensors",
        civitai: makeCivitai({ modelId: 88, versionId: 880, versionName: "v880" }),
        update: {
          sameBaseModel: null,
          newest: {
            versionId: 881,
            name: "v881",
            baseModel: "SDXL 1.0",
            publishedAt: null,
            access: null,
            inLibrary: [],
            pageUrl: "https://civitai.com/models/88?modelVersionId=881",
          },
        },
      }),
    ];
    const back = records.map((r) => {
      const f = withFile(
        JSON.parse(JSON.stringify(skeletonOf(r))) as FileRecord,
        file({ path: r.path, paths: [r.path, ...r.aliases].sort() }),
      );
      expect(sectionOf(f)).toBe(sectionOf(r));
      return f;
    });
    const a = factsOf(records).facts;
    const b = factsOf(back).facts;
    expect(b).toEqual(a);
    expect([a.warnings.length, a.updates.length, a.gone.length, a.duplicateSets.length].every((n) => n > 0)).toBe(true);
  });
});

describe("record pack format", () => {
  const entries = [
    { name: "a.safetensors", meta: meta({ ident: "1" }), body: '{"path": "a"}' },
    { name: "b é.safetensors", meta: meta({ ident: "2", deps: [["model:02", "x"]] }), body: Buffer.from('{"path": "b é ✓"}') },
  ];

  test("what is encoded decodes: names, meta, dependencies, bodies as bytes at their offsets", () => {
    const bytes = Buffer.concat(encodePack("fp", "/lib", entries));
    const pack = decodePack(bytes)!;
    expect(pack.fp).toBe("fp");
    expect(pack.dir).toBe("/lib");
    expect([...pack.entries.keys()]).toEqual(["a.safetensors", "b é.safetensors"]);
    const b = pack.entries.get("b é.safetensors")!;
    expect(Buffer.from(b.body).toString()).toBe('{"path": "b é ✓"}');
    expect(Buffer.from(bytes.subarray(b.offset, b.offset + b.body.length)).toString()).toBe('{"path": "b é ✓"}');
    expect(b.meta).toEqual({ ...entries[1]!.meta, facts: JSON.parse(JSON.stringify(entries[1]!.meta.facts)) });
    expect(Buffer.from(pack.entries.get("a.safetensors")!.body).toString()).toBe('{"path": "a"}');
  });

  test("not a pack: another magic, cut short, a damaged index: null", () => {
    const bytes = Buffer.concat(encodePack("fp", "/lib", entries));
    expect(decodePack(new Uint8Array(0))).toBeNull();
    expect(decodePack(Buffer.concat([Buffer.from("XMRP1\n"), bytes.subarray(6)]))).toBeNull();
    expect(decodePack(bytes.subarray(0, 20))).toBeNull();
    const flipped = Buffer.from(bytes);
    flipped[20] = flipped[20]! ^ 1; // inside the index
    expect(decodePack(flipped)).toBeNull();
  });

  test("a damaged body leaves that entry out and keeps the others", () => {
    const bytes = Buffer.concat(encodePack("fp", "/lib", entries));
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 1; // inside the last body
    const pack = decodePack(bytes)!;
    expect([...pack.entries.keys()]).toEqual(["a.safetensors"]);
  });
});
