import { describe, expect, test } from "bun:test";
import { codePointEnd, truncateText } from "../../../src/shared/format.ts";

describe("truncateText", () => {
  test("cuts with an ellipsis only when needed", () => {
    expect(truncateText("hello", 10)).toBe("hello");
    expect(truncateText("hello world", 6)).toBe("hello…");
    expect(truncateText("hello world", 6).length).toBe(6);
  });

  test("never leaves half of a surrogate pair before the mark", () => {
    // "ab" then U+1F600 (two UTF-16 units): a cut after three units would keep a lone high surrogate.
    const text = "ab\u{1F600}cd";
    expect(truncateText(text, 4)).toBe("ab…");
    expect(truncateText(text, 5)).toBe("ab\u{1F600}…");
    for (let max = 1; max <= text.length; max++) {
      const cut = truncateText(text, max);
      expect(cut.length).toBeLessThanOrEqual(max);
      expect(Buffer.from(cut, "utf8").toString("utf8")).toBe(cut); // a lone surrogate would not survive
    }
  });

  test("drops the spaces before the mark", () => {
    expect(truncateText("hello world again", 7)).toBe("hello…");
  });
});

test("codePointEnd steps back only from the middle of a pair", () => {
  expect(codePointEnd("a\u{1F600}", 2)).toBe(1);
  expect(codePointEnd("a\u{1F600}", 3)).toBe(3);
  expect(codePointEnd("abc", 2)).toBe(2);
  expect(codePointEnd("abc", 0)).toBe(0);
});
