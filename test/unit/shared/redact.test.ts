import { describe, expect, test } from "bun:test";
import { createRedactor, REDACTED, redact, scrubSecrets } from "../../../src/shared/redact.ts";

const KEY = "0123456789abcdef0123456789abcdef";

describe("redact", () => {
  test("removes every occurrence of the literal key", () => {
    const out = redact(`key ${KEY} and again ${KEY}!`, [KEY]);
    expect(out).not.toContain(KEY);
    expect(out).toBe(`key ${REDACTED} and again ${REDACTED}!`);
  });

  test("removes the percent-encoded and JSON-escaped forms of the key", () => {
    const odd = 'a/b+c "d"';
    const out = redact(`url=?x=${encodeURIComponent(odd)} json=${JSON.stringify({ k: odd })}`, [odd]);
    expect(out).not.toContain(encodeURIComponent(odd));
    expect(out).not.toContain('a/b+c \\"d\\"');
  });

  test("token= and api key parameters, other parameters kept", () => {
    const out = redact("https://civitai.com/api/download/models/1?type=Model&token=abc123&format=SafeTensor");
    expect(out).toBe(`https://civitai.com/api/download/models/1?type=Model&token=${REDACTED}&format=SafeTensor`);
    expect(redact("GET /x?api_key=zzz&apikey=yyy")).toBe(`GET /x?api_key=${REDACTED}&apikey=${REDACTED}`);
  });

  test("Authorization headers in dumps and JSON, and bare Bearer tokens", () => {
    expect(redact("Authorization: Bearer sekrit\nAccept: application/json")).toBe(`Authorization: ${REDACTED}\nAccept: application/json`);
    expect(redact('{"authorization":"Bearer sekrit","accept":"x"}')).toBe(`{"authorization":"${REDACTED}","accept":"x"}`);
    expect(redact("sent Bearer sekrit.token-1 to host")).toBe(`sent Bearer ${REDACTED} to host`);
  });

  test("pre-signed URL credentials, the rest of the URL kept", () => {
    const url =
      "https://r2.example.com/m.safetensors?X-Amz-Expires=86400&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260820%2Fauto&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok&x-id=GetObject";
    const out = redact(url);
    for (const secret of ["AKIA", "deadbeef", "=tok"]) expect(out).not.toContain(secret);
    expect(out).toContain("X-Amz-Expires=86400");
    expect(out).toContain(`X-Amz-Signature=${REDACTED}`);
    expect(out).toContain("x-id=GetObject");
  });

  test("leaves ordinary text alone", () => {
    const text = "the key point: 429 Too Many Requests at https://civitai.com/api/v1/models?ids=1&nsfw=true";
    expect(redact(text, [undefined, null, ""])).toBe(text);
  });

  test("a redactor is reusable and covers several secrets, the longer first", () => {
    const r = createRedactor(["abc", "abcdef"]);
    expect(r("x abcdef y abc")).toBe(`x ${REDACTED} y ${REDACTED}`);
  });

  test("the user part of Redis URLs and of URLs with a password (issue 14), up to the last @", () => {
    expect(redact("redis://:s3cret@cache.lan:6379/0 down")).toBe("redis://***@cache.lan:6379/0 down");
    expect(redact("rediss://team:p@ss@cache.lan/1")).toBe("rediss://***@cache.lan/1");
    expect(redact("redis://word@cache.lan")).toBe("redis://***@cache.lan");
    expect(redact("see https://user:pw@mirror.example/x")).toBe("see https://***@mirror.example/x");
    // No password: left as written.
    expect(redact("redis://cache.lan:6379/0 ssh://git@github.com/a mail a@b.c")).toBe(
      "redis://cache.lan:6379/0 ssh://git@github.com/a mail a@b.c",
    );
  });
});

describe("scrubSecrets: the key inside a parsed answer's data", () => {
  test("replaces it in strings at any depth, in keys, and percent-encoded; leaves everything else as it was", () => {
    const data = JSON.parse(
      JSON.stringify({
        name: `model ${KEY}`,
        list: ["a", `x${KEY}y`, 3, null, { deeper: [`${encodeURIComponent(KEY)}`] }],
        [`k-${KEY}`]: 1,
        note: "token=abc and Bearer xyz stay: data is not a message",
      }),
    );
    const out = scrubSecrets(data, [KEY]);
    expect(out).toEqual({
      name: `model ${REDACTED}`,
      list: ["a", `x${REDACTED}y`, 3, null, { deeper: [REDACTED] }],
      [`k-${REDACTED}`]: 1,
      note: "token=abc and Bearer xyz stay: data is not a message",
    });
    expect(JSON.stringify(out)).not.toContain(KEY);
  });

  test("a nesting far deeper than the call stack is walked without overflow", () => {
    const depth = 200_000;
    const text = `${"[".repeat(depth)}"${KEY}"${"]".repeat(depth)}`;
    const value: unknown = JSON.parse(text);
    scrubSecrets(value, [KEY]);
    let node = value as unknown[];
    for (let i = 1; i < depth; i++) node = node[0] as unknown[];
    expect(node[0]).toBe(REDACTED);
  });

  test("an own __proto__ key (as JSON.parse makes it) is scrubbed as a key like any other, the prototype untouched", () => {
    const data = JSON.parse(`{"__proto__": "x ${KEY}", "a": {"__proto__": {"n": "${KEY}"}}}`) as Record<string, unknown>;
    scrubSecrets(data, [KEY]);
    expect(Object.getOwnPropertyDescriptor(data, "__proto__")?.value).toBe(`x ${REDACTED}`);
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
    expect(JSON.stringify(data)).not.toContain(KEY);
    expect(JSON.stringify(data)).toContain(REDACTED);
  });

  test("no secret: the value is returned untouched", () => {
    const data = { a: KEY };
    expect(scrubSecrets(data, [undefined, ""])).toEqual({ a: KEY });
  });
});
