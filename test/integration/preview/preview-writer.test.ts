import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writePreviewFiles } from "../../../src/preview/preview-writer.ts";
import type { PreviewOutcome } from "../../../src/preview/previews.ts";
import { makeJpeg, TINY_WEBP } from "../../helpers/images.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs("civitai-meta-preview-writer-");
afterAll(() => tmp.cleanup());

const jpeg = makeJpeg(2, 2, () => [10, 200, 30]);
const image = (bytes: Uint8Array, kind: "jpeg" | "webp"): PreviewOutcome => ({
  kind: "image",
  url: "u",
  bytes,
  image: kind === "jpeg" ? { kind, mime: "image/jpeg", ext: "jpg" } : { kind, mime: "image/webp", ext: "webp" },
  fromCache: true,
});

describe("writePreviewFiles", () => {
  test("writes <base>.preview.<ext> with the extension of the bytes, leaving no temp file", () => {
    const dir = tmp.make();
    const a = join(dir, "Pixel Art.safetensors");
    const b = join(dir, "other.ckpt");
    writeFileSync(a, "model");
    writeFileSync(b, "model");
    const results = writePreviewFiles(
      [a, b],
      new Map([
        [a, image(jpeg, "jpeg")],
        [b, image(TINY_WEBP, "webp")],
      ]),
    );
    expect(results).toEqual([
      { model: a, status: "written", path: join(dir, "Pixel Art.preview.jpg") },
      { model: b, status: "written", path: join(dir, "other.preview.webp") },
    ]);
    expect(readFileSync(join(dir, "Pixel Art.preview.jpg")).equals(Buffer.from(jpeg))).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["Pixel Art.preview.jpg", "Pixel Art.safetensors", "other.ckpt", "other.preview.webp"]);
  });

  test("never replaces a preview the user has, under any name a tool reads (symlinks included)", () => {
    const dir = tmp.make();
    const names = ["m1.png", "m2.preview.PNG", "m3.webp", "m4.preview.jpeg", "m5.mp4"];
    const models: string[] = [];
    const outcomes = new Map<string, PreviewOutcome>();
    names.forEach((name, i) => {
      const model = join(dir, `m${i + 1}.safetensors`);
      writeFileSync(model, "model");
      writeFileSync(join(dir, name), `mine ${i}`);
      models.push(model);
      outcomes.set(model, image(jpeg, "jpeg"));
    });
    const linked = join(dir, "m6.safetensors");
    writeFileSync(linked, "model");
    symlinkSync("/nonexistent/elsewhere.jpg", join(dir, "m6.preview.jpg"));
    models.push(linked);
    outcomes.set(linked, image(jpeg, "jpeg"));
    const results = writePreviewFiles(models, outcomes);
    expect(results.map((r) => r.status)).toEqual(["exists", "exists", "exists", "exists", "exists", "exists"]);
    names.forEach((name, i) => expect(readFileSync(join(dir, name), "utf8")).toBe(`mine ${i}`));
    expect(readdirSync(dir).filter((n) => n.startsWith(".civitai-meta-tmp-"))).toEqual([]);
  });

  test("no image, a failed fetch and an unwritable folder are reported, nothing written", () => {
    const dir = tmp.make();
    const a = join(dir, "a.safetensors");
    const b = join(dir, "b.safetensors");
    writeFileSync(a, "m");
    writeFileSync(b, "m");
    const gone = join(dir, "missing-folder", "c.safetensors");
    const results = writePreviewFiles(
      [a, b, gone],
      new Map<string, PreviewOutcome>([
        [a, { kind: "none", reason: "Civitai lists no rated still image for this version" }],
        [b, { kind: "failed", url: "u", reason: "HTTP 404" }],
        [gone, image(jpeg, "jpeg")],
      ]),
    );
    expect(results).toEqual([
      { model: a, status: "no-image", reason: "Civitai lists no rated still image for this version" },
      { model: b, status: "failed", reason: "HTTP 404" },
      { model: gone, status: "failed", path: join(dir, "missing-folder"), reason: "cannot list the model's folder (ENOENT)" },
    ]);
    expect(readdirSync(dir).sort()).toEqual(["a.safetensors", "b.safetensors"]);
  });

  test("two models in one folder sharing a stem get one preview (the second sees the first)", () => {
    const dir = tmp.make();
    mkdirSync(join(dir, "x"));
    const a = join(dir, "x", "same.safetensors");
    const b = join(dir, "x", "same.ckpt");
    writeFileSync(a, "m");
    writeFileSync(b, "m");
    const results = writePreviewFiles(
      [a, b],
      new Map([
        [a, image(jpeg, "jpeg")],
        [b, image(TINY_WEBP, "webp")],
      ]),
    );
    expect(results.map((r) => r.status)).toEqual(["written", "exists"]);
    expect(readdirSync(join(dir, "x")).sort()).toEqual(["same.ckpt", "same.preview.jpg", "same.safetensors"]);
  });
});
