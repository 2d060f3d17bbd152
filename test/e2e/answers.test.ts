/**
 * Issue 12 through the CLI against the fake Civitai: updates (several versions per model, other
 * base models, early access), copies next to hard links, several versions held, an archived
 * version and a hash found in one run and gone in the next (from the cache, and from a previous
 * inventory), licences; in JSON, CSV, Markdown; `--fail-on update|gone`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import MarkdownIt from "markdown-it";
import Papa from "papaparse";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { validateInventory } from "../helpers/schema.ts";
import { tmpDirs } from "../helpers/tmp.ts";
import type { FileRecord } from "../../src/report/record-types.ts";
import type { Inventory } from "../../src/report/inventory-types.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const DAY = 86_400_000;
const EARLY_END = new Date(Date.now() + 3.5 * DAY).toISOString();

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

const CONTENT = {
  styleV1: "style lora v1 bytes",
  poseV1: "pose lora v1 bytes",
  poseV2: "pose lora v2 bytes",
  archived: "archived checkpoint bytes",
  vanishing: "vanishing lora bytes",
  unordered: "unordered lora bytes",
  mine: "my own lora",
};

/** The catalog: several versions per model, other base models, early access, an archived model, an unordered list. */
function catalog(withVanishing: boolean): void {
  civitai.clearData();
  const v = (
    versionId: number,
    modelId: number,
    content: string | null,
    extra: Parameters<typeof makeVersion>[0]["extra"] = {},
    baseModel = "SDXL 1.0",
  ) => makeVersion({ versionId, modelId, sha256: sha256(content ?? `elsewhere ${versionId}`), name: `v${versionId}`, baseModel, extra });
  civitai.addModel(
    makeModel({
      modelId: 10,
      name: "Style",
      allowCommercialUse: ["Image"],
      versions: [
        // Civitai's order: the latest first (index 0). The newest is for another base model.
        v(103, 10, null, { publishedAt: "2026-07-01T00:00:00.000Z" }, "Flux.1 D"),
        v(102, 10, null, { availability: "EarlyAccess", earlyAccessDeadline: EARLY_END, publishedAt: "2026-06-01T00:00:00.000Z" }),
        v(101, 10, CONTENT.styleV1, { publishedAt: "2026-01-01T00:00:00.000Z" }),
      ],
    }),
    makeModel({ modelId: 20, name: "Pose", versions: [v(202, 20, CONTENT.poseV2), v(201, 20, CONTENT.poseV1)] }),
    makeModel({ modelId: 30, name: "Old Checkpoint", type: "Checkpoint", mode: "Archived", versions: [v(301, 30, CONTENT.archived)] }),
  );
  // No index, no dates: the list says nothing about which is newer.
  const unordered = makeModel({ modelId: 50, name: "Unordered", versions: [v(502, 50, null), v(501, 50, CONTENT.unordered)] });
  for (const mv of unordered.modelVersions!) {
    delete (mv as { index?: number }).index;
    delete (mv as { publishedAt?: string }).publishedAt;
    delete (mv as { createdAt?: string }).createdAt;
  }
  civitai.addModel(unordered);
  if (withVanishing) civitai.addModel(makeModel({ modelId: 40, name: "Vanishing", versions: [v(401, 40, CONTENT.vanishing)] }));
}

/** The library: a copy next to a hard link, two versions of one model, the others. */
function library(): string {
  const dir = tmp.make();
  const put = (name: string, content: string) => {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
    utimesSync(join(dir, name), PAST, PAST);
  };
  put("loras/style.safetensors", CONTENT.styleV1);
  put("backup/style-copy.safetensors", CONTENT.styleV1); // a copy: another inode
  linkSync(join(dir, "loras/style.safetensors"), join(dir, "loras/zz-style-link.safetensors")); // a link: the same inode
  put("loras/pose-v1.safetensors", CONTENT.poseV1);
  put("loras/pose-v2.safetensors", CONTENT.poseV2);
  put("checkpoints/archived.safetensors", CONTENT.archived);
  put("loras/vanishing.safetensors", CONTENT.vanishing);
  put("loras/unordered.safetensors", CONTENT.unordered);
  put("loras/mine.safetensors", CONTENT.mine);
  return dir;
}

const byName = (inv: Inventory, name: string): FileRecord => inv.records.find((r) => r.path.endsWith(`/${name}`))!;

function inventoryOf(text: string): Inventory {
  const inv = JSON.parse(text) as Inventory;
  expect(validateInventory(inv)).toEqual([]);
  return inv;
}

describe("answers, not listings", () => {
  let dir: string;
  let cacheDir: string;
  let first: Inventory;

  beforeAll(async () => {
    catalog(true);
    dir = library();
    cacheDir = tmp.make();
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "-o", join(dir, "..", "first.json")]);
    expect(r.code).toBe(0);
    first = inventoryOf(readFileSync(join(dir, "..", "first.json"), "utf8"));
  });

  test("updates: the newest for the file's base model (early access, days left), the newest overall apart", () => {
    const style = byName(first, "style.safetensors");
    expect(style.update!.sameBaseModel).toMatchObject({
      versionId: 102,
      name: "v102",
      baseModel: "SDXL 1.0",
      access: { kind: "early_access", endsAt: EARLY_END, permanent: false },
      inLibrary: [],
      pageUrl: "https://civitai.com/models/10?modelVersionId=102",
    });
    expect(style.update!.newest).toMatchObject({ versionId: 103, baseModel: "Flux.1 D" });
    // The licence as Civitai gives it (the uploader's declaration).
    expect(style.civitai!.license).toEqual({
      allowNoCredit: true,
      allowCommercialUse: ["Image"],
      allowDerivatives: true,
      allowDifferentLicense: false,
    });
    expect(style.civitai!.access).toBeNull();
  });

  test("an update the library already holds is not one to fetch; several versions of one model are listed", () => {
    const v1 = byName(first, "pose-v1.safetensors");
    expect(v1.update!.sameBaseModel!.versionId).toBe(202);
    expect(v1.update!.sameBaseModel!.inLibrary).toEqual([join(dir, "loras/pose-v2.safetensors")]);
    expect(v1.otherVersions).toEqual([{ versionId: 202, versionName: "v202", path: join(dir, "loras/pose-v2.safetensors") }]);
    expect(byName(first, "pose-v2.safetensors").update).toBeUndefined();
    expect(first.summary.duplicates!.modelsWithSeveralVersions).toBe(1);
  });

  test("no false alarm from a versions list without index or dates", () => {
    const u = byName(first, "unordered.safetensors");
    expect(u.status).toBe("found");
    expect(u.update).toBeUndefined();
  });

  test("copies (another inode) are duplicates with bytes to free; a hard link is an alias, not a copy", () => {
    const style = byName(first, "style.safetensors");
    expect(style.aliases).toEqual([join(dir, "loras/zz-style-link.safetensors")]);
    expect(style.duplicate).toEqual({ copies: 2, others: [join(dir, "backup/style-copy.safetensors")] });
    expect(first.summary.duplicates).toEqual({ sets: 1, files: 2, reclaimableBytes: CONTENT.styleV1.length, modelsWithSeveralVersions: 1 });
  });

  test("an archived version (no file to download) is gone, keeping what Civitai says", () => {
    const a = byName(first, "archived.safetensors");
    expect(a.status).toBe("gone");
    expect(a.gone).toEqual({ reason: "archived", lastSeenAt: null });
    expect(a.civitai).toMatchObject({ modelId: 30, versionId: 301, modelName: "Old Checkpoint", availability: { archived: true } });
    expect(first.summary.byStatus).toEqual({ found: 6, gone: 1, not_found: 1, error: 0, skipped: 0 });
  });

  test("--fail-on update exits 3 for the files with an update to fetch (the copy too; not pose-v1, whose update the library holds)", async () => {
    const r = await runCli([
      "scan",
      dir,
      "--api-url",
      civitai.url,
      "--cache-dir",
      cacheDir,
      "--fail-on",
      "update",
      "-o",
      join(tmp.make(), "x.json"),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("--fail-on: 2 updates");
  });

  test("CSV and Markdown carry the same answers: update, access, copies, licence as declared, gone", async () => {
    const out = tmp.make();
    expect((await runCli(["report", join(dir, "..", "first.json"), "-o", join(out, "inv.csv")])).code).toBe(0);
    const rows = Papa.parse<string[]>(readFileSync(join(out, "inv.csv"), "utf8"), { skipEmptyLines: true }).data;
    const header = rows[0]!;
    const cell = (row: string[], name: string) => row[header.indexOf(name)];
    const style = rows.find((r) => r[0]!.endsWith("/loras/style.safetensors"))!;
    expect(cell(style, "update_version_id")).toBe("102");
    expect(cell(style, "update_access")).toMatch(/^early access until \d{4}-\d{2}-\d{2} \(4 days left\)$/);
    expect(cell(style, "newest_version_id")).toBe("103");
    expect(cell(style, "newest_base_model")).toBe("Flux.1 D");
    expect(cell(style, "copies")).toBe("2");
    expect(cell(style, "duplicate_of")).toBe(join(dir, "backup/style-copy.safetensors"));
    expect(cell(style, "declared_commercial_use")).toBe("Image");
    expect(cell(style, "declared_different_license_allowed")).toBe("false");
    const archived = rows.find((r) => r[0]!.endsWith("/archived.safetensors"))!;
    expect([cell(archived, "status"), cell(archived, "gone_reason")]).toEqual(["gone", "archived"]);

    expect((await runCli(["report", join(dir, "..", "first.json"), "-o", join(out, "inv.md")])).code).toBe(0);
    const md = readFileSync(join(out, "inv.md"), "utf8");
    expect(md).toContain(
      "- **Updates:** 2 files with a newer version for the same base model; 1 more whose newer version the library already holds.",
    );
    expect(md).toContain(
      `- **Duplicates:** 1 set of identical files (2 files); ${CONTENT.styleV1.length} B could be freed; 1 model with several versions in the library.`,
    );
    expect(md).toContain("Licences are as declared by the uploader on Civitai");
    expect(md).toMatch(
      /update: \[v102\]\(https:\/\/civitai\.com\/models\/10\?modelVersionId=102\), 2026-06-01, early access until \d{4}-\d{2}-\d{2} \(4 days left\)/,
    );
    const html = new MarkdownIt({ html: true }).render(md);
    expect(html).not.toMatch(/<(img|script)\b/);
  });

  test("a hash found in one run and not found in the next is gone: since when, keeping what was known; --fail-on gone", async () => {
    catalog(false);
    const second = await runCli(["scan", dir, "--api-url", civitai.url, "--cache-dir", cacheDir, "--refresh", "--fail-on", "gone"]);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain("--fail-on: 2 gone from Civitai");
    const inv = inventoryOf(second.stdout);
    const gone = byName(inv, "vanishing.safetensors");
    expect(gone.status).toBe("gone");
    expect(gone.gone!.reason).toBe("not_found");
    expect(Date.parse(gone.gone!.lastSeenAt!)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(gone.gone!.lastSeenAt!)).toBeGreaterThan(Date.now() - 10 * 60_000);
    expect(gone.civitai).toMatchObject({ modelId: 40, versionId: 401, modelName: "Vanishing", versionName: "v401" });
    // Never known stays not found.
    expect(byName(inv, "mine.safetensors").status).toBe("not_found");
  });

  test("with a previous inventory and no cache: gone since that inventory, and the changes in the summary", async () => {
    catalog(false);
    const r = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "--previous", join(dir, "..", "first.json")]);
    expect(r.code).toBe(0);
    const inv = inventoryOf(r.stdout);
    const gone = byName(inv, "vanishing.safetensors");
    expect(gone.status).toBe("gone");
    expect(gone.gone).toEqual({ reason: "not_found", lastSeenAt: first.generatedAt });
    expect(gone.civitai!.modelName).toBe("Vanishing");
    expect(inv.summary.changes).toEqual({
      previous: { generatedAt: first.generatedAt, files: first.records.length },
      added: 0,
      removed: 0,
      moved: 0,
      changed: 0,
      statusChanged: 1,
      gone: 1,
      found: 0,
      updates: 0,
      unchanged: first.records.length - 1,
    });
    expect(r.stderr).toContain("Since the inventory of");
  });
});
