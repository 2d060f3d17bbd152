import { describe, expect, test } from "bun:test";
import { imageUrlRefusal, isKeepableImageUrl, sizedImageUrl, thumbnailVariant } from "../../../src/preview/image-url.ts";

const ACCOUNT = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA";

describe("sizedImageUrl: the CDN's variant segment asks for a small still", () => {
  test("original=true, width=N and multi-transform segments are replaced", () => {
    expect(sizedImageUrl(`${ACCOUNT}/15f6397f/original=true/139221483.jpeg`, 224)).toBe(
      `${ACCOUNT}/15f6397f/anim=false,width=224,optimized=true/139221483.jpeg`,
    );
    expect(sizedImageUrl(`${ACCOUNT}/735615f8/width=832/85892214.jpeg`, 450)).toBe(
      `${ACCOUNT}/735615f8/${thumbnailVariant(450)}/85892214.jpeg`,
    );
    expect(sizedImageUrl(`${ACCOUNT}/k/anim=false,width=450,optimized=true/x.jpeg`, 224)).toBe(
      `${ACCOUNT}/k/${thumbnailVariant(224)}/x.jpeg`,
    );
    // The 2023 host, same shape.
    expect(sizedImageUrl("https://imagecache.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/c6ed4a9d/width=450/10852.jpeg", 224)).toBe(
      `https://imagecache.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/c6ed4a9d/${thumbnailVariant(224)}/10852.jpeg`,
    );
  });

  test("a URL without a variant gets one before the name; other shapes are left alone", () => {
    expect(sizedImageUrl(`${ACCOUNT}/key/name.png`, 224)).toBe(`${ACCOUNT}/key/${thumbnailVariant(224)}/name.png`);
    for (const url of ["https://image.civitai.com/x.jpeg", `${ACCOUNT}/a/b/c/d/e.jpeg`, "not a url", `${ACCOUNT}/a/notavariant/x.jpeg`]) {
      expect(sizedImageUrl(url, 224)).toBe(url);
    }
  });

  test("the query string survives", () => {
    expect(sizedImageUrl(`${ACCOUNT}/k/original=true/x.jpeg?token=public`, 224)).toBe(
      `${ACCOUNT}/k/${thumbnailVariant(224)}/x.jpeg?token=public`,
    );
  });
});

describe("imageUrlRefusal: only Civitai's image hosts, or the configured API origin", () => {
  test("Civitai's image hosts over https are allowed", () => {
    expect(imageUrlRefusal(`${ACCOUNT}/k/original=true/x.jpeg`)).toBeNull();
    expect(imageUrlRefusal("https://imagecache.civitai.com/a/b/width=450/c.jpeg")).toBeNull();
  });

  test("other hosts, http, odd ports, credentials and look-alikes are refused with a reason naming the host", () => {
    expect(imageUrlRefusal("https://evil.example/x.jpeg")).toContain("another host (evil.example)");
    expect(imageUrlRefusal("https://image.civitai.com.evil.example/x.jpeg")).toContain("another host");
    expect(imageUrlRefusal("https://civitai.com/x.jpeg")).toContain("another host");
    expect(imageUrlRefusal("http://image.civitai.com/x.jpeg")).toContain("not https");
    expect(imageUrlRefusal("https://image.civitai.com:8443/x.jpeg")).toContain("another host");
    expect(imageUrlRefusal("https://user:pw@image.civitai.com/x.jpeg")).toContain("credentials");
    expect(imageUrlRefusal("javascript:alert(1)")).not.toBeNull();
    expect(imageUrlRefusal("data:image/png;base64,AAAA")).not.toBeNull();
    expect(imageUrlRefusal(`https://image.civitai.com/${"a".repeat(3000)}`)).toContain("too long");
  });

  test("the API origin's own host is allowed when configured (a mirror or a test server), exactly", () => {
    const policy = { extraOrigin: "http://127.0.0.1:4567" };
    expect(imageUrlRefusal("http://127.0.0.1:4567/xG1nkqKTMzGDvpLrqFT7WA/k/original=true/k.jpeg", policy)).toBeNull();
    expect(imageUrlRefusal("http://127.0.0.1:4568/x.jpeg", policy)).toContain("not https");
    expect(imageUrlRefusal("https://127.0.0.1:4567/x.jpeg", policy)).toContain("another host");
    expect(imageUrlRefusal(`${ACCOUNT}/k/original=true/x.jpeg`, policy)).toBeNull(); // Civitai's still are
  });
});

test("isKeepableImageUrl: absolute http(s) without spaces or controls", () => {
  expect(isKeepableImageUrl(`${ACCOUNT}/k/original=true/x.jpeg`)).toBe(true);
  for (const bad of ["javascript:alert(1)", "data:image/png;base64,AA", "https://a b", "https://x/\u0000", "/relative.jpeg", 5, null]) {
    expect(isKeepableImageUrl(bad)).toBe(false);
  }
});
