import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
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
});
