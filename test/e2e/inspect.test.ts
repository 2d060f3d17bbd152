import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/run-cli.ts";
import { buildGguf } from "../helpers/gguf.ts";
import {
  kohyaMetadata,
  maliciousPickle,
  modelspecMetadata,
  rawSafetensors,
  sdxlLoraTensors,
  writeSafetensors,
  zipLocalHeader,
} from "../helpers/safetensors.ts";

let dir: string;
let lora: string;
let sha: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "civitai-meta-inspect-"));
  lora = join(dir, "my_lora.safetensors");
  writeSafetensors(lora, sdxlLoraTensors(8), { ...kohyaMetadata(), ...modelspecMetadata(), "note\x1b]52;c;evil\x07": "red\x1b[31m" });
  sha = createHash("sha256").update(readFileSync(lora)).digest("hex");
  writeFileSync(
    join(dir, "my_lora.civitai.info"),
    JSON.stringify({
      id: 135867,
      modelId: 122359,
      name: "v1.0",
      baseModel: "SDXL 1.0",
      trainedWords: ["mytrigger"],
      model: { name: "My LoRA", type: "LORA" },
      files: [{ name: "my_lora.safetensors", primary: true, hashes: { SHA256: sha.toUpperCase() } }],
    }),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const inspect = (...args: string[]) => runCli(["inspect", "--no-cache", ...args]);

describe("inspect command", () => {
  test("--json: format, header summary, guess, training, hashes and sidecars", async () => {
    const r = await inspect("--json", lora);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.path).toBe(lora);
    expect(out.hashes.sha256).toBe(sha);
    expect(out.hashes.autov2).toBe(sha.slice(0, 10));
    expect(out.hashes.autov3).toMatch(/^[0-9a-f]{12}$/);
    expect(out.local.format).toBe("safetensors");
    expect(out.local.guess).toMatchObject({ guessed: true, kind: "lora", family: "SDXL" });
    expect(out.local.training).toMatchObject({ outputName: "my_style", networkDim: 32, classTokens: ["mystyle woman"] });
    expect(out.local.modelspec.triggerPhrase).toBe("mystyle");
    expect(out.local.sidecars).toHaveLength(1);
    expect(out.local.sidecars[0]).toMatchObject({ source: "civitai-helper", versionId: 135867, status: "ok" });
    expect(out.local.sidecars[0].files[0].sha256).toBe(sha);
  });

  test("human output: labelled sections, control characters escaped, sidecar hash checked against ours", async () => {
    const r = await inspect(lora);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("format      safetensors (header");
    expect(r.stdout).toContain("LoRA, SDXL — a guess, high confidence");
    expect(r.stdout).toContain(`sha256  ${sha}`);
    expect(r.stdout).toContain("class tokens  mystyle woman");
    expect(r.stdout).toContain("my_lora.civitai.info (Civitai Helper)");
    expect(r.stdout).toContain("(matches our sha256)");
    expect(r.stdout).toContain("note\\x1b]52;c;evil\\x07: red\\x1b[31m");
    expect(r.stdout).not.toContain("\x1b");
  });

  test("--no-hash skips hashing", async () => {
    const r = await inspect("--no-hash", "--json", lora);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).hashes).toBeNull();
  });

  test("a pickle named .safetensors: format pickle, mismatch warning, never executed", async () => {
    const marker = join(dir, "PWNED");
    const evil = join(dir, "evil.safetensors");
    writeFileSync(evil, maliciousPickle(marker));
    const r = await inspect(evil);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("a Python pickle: never loaded");
    expect(r.stdout).toContain("content is a Python pickle but the name ends in .safetensors");
    expect(existsSync(marker)).toBe(false);
  });

  test("a zip is called PyTorch only when its first entry is one PyTorch writes", async () => {
    const torch = join(dir, "model.pt");
    writeFileSync(torch, zipLocalHeader("archive/data.pkl"));
    const other = join(dir, "images.ckpt");
    writeFileSync(other, zipLocalHeader("images/a.png"));
    const t = await inspect("--no-hash", torch);
    expect(t.stdout).toContain("format      a zip archive (PyTorch) holding a pickle: never loaded\n");
    const o = await inspect("--no-hash", other);
    expect(o.stdout).toContain("format      a zip archive\n");
    expect(o.stdout).toContain("first zip entry: images/a.png");
    expect(o.stdout).not.toContain("PyTorch");
  });

  test("a hostile header is reported for the file with exit 1 (docs/cases.md E1)", async () => {
    const bad = join(dir, "e1.safetensors");
    writeFileSync(bad, rawSafetensors('{"a":1}', new Uint8Array(10), 0xffff_ffff_ffff_ffffn).bytes);
    const r = await inspect("--no-hash", bad);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("error       invalid safetensors: header too large");
  });

  test("E3: a 1 MB tensor name that repeats a layout clue is guessed in bounded time (no regex backtracking)", async () => {
    // `transformer_blocks.0.` again and again: the SD3 clue was one regex with `.*` between
    // `transformer_blocks.N.` and `context_block`, which backtracked from each repeat. A 1 MB name
    // took minutes (the run is killed here after 20 s); now milliseconds. The real clue still counts.
    const p = join(dir, "long-name.safetensors");
    // Sorted first in the header, so it is looked at before the real clues.
    const name = `a.${"transformer_blocks.0.".repeat(50_000)}`;
    writeSafetensors(p, [
      { name, shape: [1] },
      { name: "pos_embed.proj.weight", shape: [1] },
      { name: "transformer_blocks.0.attn.context_block.weight", shape: [1] },
    ]);
    const r = await runCli(["inspect", "--no-cache", "--no-hash", "--json", p], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).local.guess).toMatchObject({ kind: "unet", subtype: "diffusers", family: "SD3", confidence: "medium" });
  });

  test("a GGUF file", async () => {
    const p = join(dir, "flux.gguf");
    writeFileSync(
      p,
      buildGguf({
        kv: [{ key: "general.architecture", type: "string", value: "flux" }],
        tensors: [
          { name: "double_blocks.0.img_attn.qkv.weight", dims: [4, 4] },
          { name: "single_blocks.0.linear1.weight", dims: [4, 4] },
        ],
      }),
    );
    const r = await inspect("--no-hash", "--json", p);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.local.gguf.architecture).toBe("flux");
    expect(out.local.guess).toMatchObject({ kind: "unet", family: "Flux" });
  });

  test("usage and missing files", async () => {
    expect((await inspect()).code).toBe(2);
    expect((await inspect(lora, lora)).code).toBe(2);
    const missing = await inspect(join(dir, "nope.safetensors"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no such file");
    const folder = await inspect(dir);
    expect(folder.code).toBe(1);
    expect(folder.stderr).toContain("not a regular file");
  });
});
