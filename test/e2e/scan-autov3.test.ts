/**
 * AutoV3 on demand (issue 11): scan hashes every file with SHA-256 (and AutoV2) only; a file
 * Civitai does not know by SHA-256 is read again for its AutoV3, which is then cached, so neither
 * the file nor Civitai is asked again on the next run. Through the real CLI against a fake Civitai.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli } from "../helpers/run-cli.ts";
import { buildSafetensors, kohyaMetadata, sdxlLoraTensors } from "../helpers/safetensors.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});

function write(dir: string, name: string, meta: Record<string, string>, rank = 4): { sha: string; autov3: string } {
  // Same rank, same tensor bytes: the AutoV3 depends on the tensors only.
  const built = buildSafetensors(sdxlLoraTensors(rank), kohyaMetadata(meta));
  writeFileSync(join(dir, name), built.bytes);
  utimesSync(join(dir, name), PAST, PAST);
  return { sha: sha256(built.bytes), autov3: sha256(built.bytes.subarray(built.dataOffset)).slice(0, 12) };
}

describe("scan: AutoV3 only when the SHA-256 is unknown", () => {
  test("known by SHA-256: no AutoV3; edited metadata: found by AutoV3; unknown: AutoV3 asked once; a second run reads and asks nothing", async () => {
    const dir = tmp.make();
    const cacheDir = tmp.make();
    const known = write(dir, "known.safetensors", { ss_output_name: "known" }, 2);
    // The file Civitai has, and the same tensors with edited metadata on disk: another SHA-256, the same AutoV3.
    const original = buildSafetensors(sdxlLoraTensors(), kohyaMetadata({ ss_output_name: "edited" }));
    const edited = write(dir, "edited.safetensors", { ss_output_name: "edited", ss_comment: "my notes" });
    expect(edited.autov3).toBe(sha256(original.bytes.subarray(original.dataOffset)).slice(0, 12));
    const unknown = write(dir, "unknown.safetensors", { ss_output_name: "unknown" }, 8);
    civitai.addModel(makeModel({ modelId: 1, versions: [makeVersion({ versionId: 11, modelId: 1, sha256: known.sha })] }));
    civitai.addModel(
      makeModel({
        modelId: 2,
        versions: [makeVersion({ versionId: 21, modelId: 2, sha256: sha256(original.bytes), autov3: edited.autov3 })],
      }),
    );
    const args = ["scan", dir, "--api-url", civitai.url, "--no-fallback", "--cache-dir", cacheDir];

    const first = await runCli(args);
    expect(first.code).toBe(0);
    const recs = Object.fromEntries(JSON.parse(first.stdout).records.map((r: { path: string }) => [r.path.split("/").pop(), r]));
    expect(recs["known.safetensors"]).toMatchObject({ status: "found", matchedBy: "sha256" });
    expect(recs["known.safetensors"].hashes).toEqual({ sha256: known.sha, autov2: known.sha.slice(0, 10) });
    expect(recs["edited.safetensors"]).toMatchObject({
      status: "found",
      matchedBy: "autov3",
      hashes: { sha256: edited.sha, autov3: edited.autov3 },
    });
    expect(recs["unknown.safetensors"]).toMatchObject({ status: "not_found", hashes: { sha256: unknown.sha, autov3: unknown.autov3 } });
    // Two AutoV3 GETs (edited, unknown); the known file was never read for one.
    const autov3Gets = civitai.requests.filter((r) => /by-hash\/[0-9a-fA-F]{12}$/.test(r.path));
    expect(autov3Gets.map((r) => r.path.split("/").pop()!.toLowerCase()).sort()).toEqual([edited.autov3, unknown.autov3].sort());
    // Three files read for their SHA-256, two of them again for their AutoV3.
    expect(first.stderr).toMatch(/; 3 hashed \(\d+(\.\d)? KiB read\), /);

    civitai.reset();
    const second = await runCli(args);
    expect(second.code).toBe(0);
    expect(civitai.requests).toEqual([]);
    expect(second.stderr).toMatch(/; 0 hashed \(0 B read\), 0 requests, cache hits 3 hashes/);
    expect(JSON.parse(second.stdout).records).toEqual(JSON.parse(first.stdout).records);
  });

  test("hash: AutoV3 only with --algo, from one read with SHA-256", async () => {
    const dir = tmp.make();
    const f = write(dir, "a.safetensors", { ss_output_name: "a" });
    const plain = await runCli(["hash", "--no-cache", "--json", dir]);
    expect(JSON.parse(plain.stdout).files[0].hashes).toEqual({ sha256: f.sha, autov2: f.sha.slice(0, 10) });
    const named = await runCli(["hash", "--no-cache", "--json", "--algo", "sha256,autov3", dir]);
    expect(JSON.parse(named.stdout).files[0].hashes).toEqual({ sha256: f.sha, autov3: f.autov3 });
  });
});
