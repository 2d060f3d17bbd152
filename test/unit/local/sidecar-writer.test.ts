import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { leanModel, leanVersion } from "../../../src/civitai/lean.ts";
import { writeCivitaiInfo } from "../../../src/local/sidecar-writer.ts";
import { parseSidecar } from "../../../src/local/sidecars.ts";
import { makeModel, makeVersion } from "../../helpers/fake-civitai.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

const SHA = "ab".repeat(32);

describe("writeCivitaiInfo", () => {
  test("writes ASCII only, as CH's json.dumps does: CH and CHz read the file in the locale's encoding (cp1252 on most Windows)", async () => {
    const dir = tmp.make();
    const version = makeVersion({ versionId: 11, modelId: 1, sha256: SHA, name: "v1 – ünïcødé", modelName: "キャラ 😀" });
    const model = makeModel({ modelId: 1, name: "キャラ 😀", creator: { username: "ユーザー" }, versions: [version] });
    const r = await writeCivitaiInfo(join(dir, "m.safetensors"), leanVersion(version), leanModel(model));
    expect(r.status).toBe("written");
    const bytes = readFileSync(join(dir, "m.civitai.info"));
    expect([...bytes].filter((b) => b > 0x7f)).toEqual([]);
    const text = bytes.toString("latin1");
    // Python's ensure_ascii form: lower-case \uXXXX, astral characters as a surrogate pair.
    expect(text).toContain('"name": "\\u30ad\\u30e3\\u30e9 \\ud83d\\ude00"');
    const info = parseSidecar("civitai-info", "m.civitai.info", bytes.toString("utf8"));
    expect(info).toMatchObject({ status: "ok", modelName: "キャラ 😀", versionName: "v1 – ünïcødé", creator: "ユーザー" });
    // Written again: the same bytes, so "unchanged".
    expect((await writeCivitaiInfo(join(dir, "m.safetensors"), leanVersion(version), leanModel(model))).status).toBe("unchanged");
  });

  test("refreshing a file for the same version keeps what we do not write: CHz's extensions block, stats, image meta and local_file", async () => {
    const dir = tmp.make();
    const version = makeVersion({ versionId: 11, modelId: 1, sha256: SHA });
    const lean = leanVersion(version);
    const url = lean.images[0]!.url;
    const chz = {
      id: 11,
      modelId: 1,
      name: "old name",
      earlyAccessEndsAt: "2020-01-01T00:00:00.000Z",
      stats: { downloadCount: 5, rating: 4.5 },
      model: { name: "Old", type: "LORA", allowNoCredit: true, mode: "Archived" },
      files: [{ name: "m.safetensors", type: "Model", primary: true, hashes: { SHA256: SHA.toUpperCase() } }],
      images: [
        { url: "https://image.civitai.com/x/other/width=450/9.jpeg", nsfwLevel: 1, local_file: "/m/m.example.1.jpeg" },
        { url, nsfwLevel: 1, meta: { prompt: "a cat" }, local_file: "/m/m.example.0.jpeg" },
      ],
      extensions: { sd_civitai_helper: { version: "1.8.13", last_update: 1755000000, skeleton_file: false } },
    };
    writeFileSync(join(dir, "m.civitai.info"), JSON.stringify(chz, null, 4));
    expect((await writeCivitaiInfo(join(dir, "m.safetensors"), lean, null)).status).toBe("written");
    const out = JSON.parse(readFileSync(join(dir, "m.civitai.info"), "utf8"));
    expect(out.name).toBe(lean.name); // ours where we have a value
    expect(out.earlyAccessEndsAt).toBeUndefined(); // a value we no longer have is not kept stale
    expect(out.extensions).toEqual(chz.extensions);
    expect(out.stats).toEqual(chz.stats);
    expect(out.model).toMatchObject({ name: lean.model.name, allowNoCredit: true });
    expect(out.model.mode).toBeUndefined();
    expect(out.images[0]).toEqual(chz.images[0]);
    expect(out.images[1]).toMatchObject({
      url,
      meta: { prompt: "a cat" },
      local_file: "/m/m.example.0.jpeg",
      width: lean.images[0]!.width,
    });
    expect(out.images).toHaveLength(1 + lean.images.length);
    expect((await writeCivitaiInfo(join(dir, "m.safetensors"), lean, null)).status).toBe("unchanged");
  });

  test("a not-found marker (a CHz skeleton) is replaced whole", async () => {
    const dir = tmp.make();
    const version = makeVersion({ versionId: 11, modelId: 1, sha256: SHA });
    writeFileSync(
      join(dir, "m.civitai.info"),
      JSON.stringify({
        id: "",
        modelId: "",
        name: "",
        skeleton_file: true,
        files: [],
        extensions: { sd_civitai_helper: { skeleton_file: true } },
      }),
    );
    expect((await writeCivitaiInfo(join(dir, "m.safetensors"), leanVersion(version), null)).status).toBe("written");
    const out = JSON.parse(readFileSync(join(dir, "m.civitai.info"), "utf8"));
    expect(out.skeleton_file).toBeUndefined();
    expect(out.extensions).toBeUndefined();
    expect(out.id).toBe(11);
  });
});
