import { describe, expect, test } from "bun:test";
import { BodyTooLargeError, readCapped, readCappedText } from "../../../src/shared/read-capped.ts";
import { MAX_TIMER_MS, sleep } from "../../../src/shared/sleep.ts";

describe("sleep", () => {
  test("waits about the time asked", async () => {
    const t0 = performance.now();
    await sleep(30);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  });

  test("a wait past setTimeout's limit neither fires early nor warns; abort ends it", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    const controller = new AbortController();
    let settled = false;
    const waiting = sleep(MAX_TIMER_MS * 3, controller.signal).then(
      () => (settled = true),
      (reason) => reason,
    );
    await sleep(50);
    expect(settled).toBe(false);
    controller.abort(new Error("stop"));
    expect(((await waiting) as Error).message).toBe("stop");
    process.off("warning", onWarning);
    expect(warnings).not.toContain("TimeoutOverflowWarning");
  });

  test("an aborted signal rejects at once", async () => {
    const controller = new AbortController();
    controller.abort(new Error("already"));
    await expect(sleep(10_000, controller.signal)).rejects.toThrow("already");
  });
});

describe("readCapped", () => {
  test("reads a body under the limit", async () => {
    expect(await readCappedText(new Response("hello"), 10)).toBe("hello");
  });

  test("a declared Content-Length over the limit fails before reading", async () => {
    let pulled = 0;
    const body = new ReadableStream({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(10));
      },
    });
    const res = new Response(body, { headers: { "content-length": "5000000000" } });
    const err = await readCapped(res, 1000).catch((e) => e);
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect((err as Error).message).toContain("5000000000");
    expect(pulled).toBeLessThanOrEqual(1);
  });

  test("an endless body stops at the limit", async () => {
    let sent = 0;
    const body = new ReadableStream({
      pull(c) {
        sent += 4096;
        c.enqueue(new Uint8Array(4096));
      },
    });
    const err = await readCapped(new Response(body), 64 * 1024).catch((e) => e);
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect(sent).toBeLessThan(64 * 1024 + 3 * 4096);
  });
});
