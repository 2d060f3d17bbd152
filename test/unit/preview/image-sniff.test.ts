import { describe, expect, test } from "bun:test";
import { describeNotImage, looksComplete, sniffImage } from "../../../src/preview/image-sniff.ts";
import { AVIF_HEAD, makeJpeg, makePng, TINY_GIF, TINY_WEBP } from "../../helpers/images.ts";

const png = makePng(4, 4, () => [10, 20, 30]);
const jpeg = makeJpeg(2, 2, () => [200, 100, 50]);

describe("sniffImage: by magic number, whatever the name or header says", () => {
  test("JPEG, PNG, WebP, GIF and AVIF are recognised, with their MIME type and extension", () => {
    expect(sniffImage(jpeg)).toEqual({ kind: "jpeg", mime: "image/jpeg", ext: "jpg" });
    expect(sniffImage(png)).toEqual({ kind: "png", mime: "image/png", ext: "png" });
    expect(sniffImage(TINY_WEBP)).toEqual({ kind: "webp", mime: "image/webp", ext: "webp" });
    expect(sniffImage(TINY_GIF)).toEqual({ kind: "gif", mime: "image/gif", ext: "gif" });
    expect(sniffImage(AVIF_HEAD)).toEqual({ kind: "avif", mime: "image/avif", ext: "avif" });
  });

  test("HTML, JSON, SVG, MP4, text and empty bodies are not images", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    for (const body of [
      enc("<!DOCTYPE html><title>Just a moment...</title>"),
      enc('{"error":"not found"}'),
      enc('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
      enc("RIFF\u0000\u0000\u0000\u0000WAVEfmt "),
      new Uint8Array([
        0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73, 0x6f, 0x6d, 0, 0, 0, 0, 0x69, 0x73, 0x6f, 0x6d, 0x6d, 0x70, 0x34, 0x31,
      ]),
      new Uint8Array(0),
      new Uint8Array([0xff, 0xd8]),
    ]) {
      expect(sniffImage(body)).toBeNull();
    }
  });
});

describe("looksComplete: a body cut short is caught", () => {
  test("whole images pass; halves fail", () => {
    expect(looksComplete(jpeg, "jpeg")).toBe(true);
    expect(looksComplete(png, "png")).toBe(true);
    expect(looksComplete(TINY_WEBP, "webp")).toBe(true);
    expect(looksComplete(TINY_GIF, "gif")).toBe(true);
    expect(looksComplete(jpeg.subarray(0, jpeg.length - 10), "jpeg")).toBe(false);
    expect(looksComplete(png.subarray(0, png.length - 4), "png")).toBe(false);
    expect(looksComplete(TINY_WEBP.subarray(0, 40), "webp")).toBe(false);
    expect(looksComplete(TINY_GIF.subarray(0, 40), "gif")).toBe(false);
  });
});

test("describeNotImage says what came instead", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  expect(describeNotImage(enc("<!DOCTYPE html><html>"), "text/html")).toBe("an HTML page, not an image");
  expect(describeNotImage(enc('{"a":1}'), "application/json")).toBe("JSON, not an image");
  expect(describeNotImage(enc("<svg/>"), "image/svg+xml")).toContain("SVG");
  expect(describeNotImage(new Uint8Array(0), null)).toBe("an empty body");
  expect(describeNotImage(new Uint8Array([1, 2, 3]), "application/octet-stream")).toBe("not an image (application/octet-stream)");
  expect(describeNotImage(new Uint8Array([1, 2, 3]), "bad\u001b[31m")).toBe("not an image");
});
