import { describe, expect, jest, test } from "bun:test";
import { createCountProgress, renderCountLine, renderProgressLine } from "../../../src/ui/progress.ts";

/** A stand-in for stderr: a TTY (or not) that keeps what was written. */
function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  const stream = { isTTY, columns: 200, write: (s: string) => writes.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, writes };
}

describe("T19: the lookup bar", () => {
  test("T19: counts files, never bytes", () => {
    const line = renderCountLine("looking up", 420, 1000, 12_000);
    expect(line).toBe("looking up ████████░░░░░░░░░░░░  42% 420/1000 files 35.0 files/s ETA 16.6 s");
    expect(line).not.toMatch(/\dB|B\//);
    expect(renderCountLine("looking up", 0, 0, 0)).toContain("100% 0/0 files");
  });

  test("T19: a pause comes first, with who asked and the time left", () => {
    expect(renderCountLine("looking up", 3, 8, 5000, { leftMs: 41_200, by: "Civitai" })).toBe(
      "looking up · paused: rate limited by Civitai, resuming in 42 s · 3/8 files (37%)",
    );
    expect(renderCountLine("looking up", 3, 8, 5000, { leftMs: 2_200_000_000, by: "127.0.0.1:8080" })).toContain("resuming in 25d11h");
    // An elapsed pause is no pause.
    expect(renderCountLine("looking up", 3, 8, 5000, { leftMs: 0, by: "Civitai" })).not.toContain("paused");
  });

  test("T19: while paused it redraws by itself, so the countdown moves; done() stops it", () => {
    // Bun's fake timers drive setInterval and Date.now: the 700 ms pass at once.
    jest.useFakeTimers();
    try {
      const { stream, writes } = fakeStream(true);
      const bar = createCountProgress("looking up", { enabled: true, stream, tickMs: 50 });
      bar.update(1, 4);
      bar.pause(Date.now() + 1500, "Civitai");
      jest.advanceTimersByTime(700);
      const paused = writes.filter((w) => w.includes("paused"));
      expect(paused.length).toBeGreaterThanOrEqual(2);
      expect(paused[0]).toContain("resuming in 2 s");
      expect(paused.at(-1)).toContain("resuming in 1 s");
      bar.done();
      const after = writes.length;
      jest.advanceTimersByTime(200);
      expect(writes.length).toBe(after);
      expect(writes.at(-1)).toBe("\r\x1b[K");
    } finally {
      jest.useRealTimers();
    }
  });

  test("T19: nothing at all when the stream is not a terminal, or when quiet", () => {
    for (const [tty, enabled] of [
      [false, true],
      [true, false],
    ] as const) {
      const { stream, writes } = fakeStream(tty);
      const bar = createCountProgress("looking up", { enabled, stream });
      bar.update(1, 2);
      bar.pause(Date.now() + 1000, "Civitai");
      bar.done();
      expect(writes).toEqual([]);
    }
  });
});

describe("the hashing bar", () => {
  test("bytes, rate, ETA and files; while the walk still finds files the totals are marked + and no ETA is claimed", () => {
    const state = { bytesDone: 1024 ** 3, bytesTotal: 4 * 1024 ** 3, filesDone: 3, filesTotal: 8 };
    expect(renderProgressLine("hashing", state, 2000)).toBe(
      "hashing █████░░░░░░░░░░░░░░░  25% 1.0 GiB/4.0 GiB 512.0 MiB/s ETA 6.0 s 3/8 files",
    );
    const growing = renderProgressLine("hashing", { ...state, growing: true }, 2000);
    expect(growing).toBe("hashing █████░░░░░░░░░░░░░░░  25%+ 1.0 GiB/4.0 GiB+ 512.0 MiB/s still finding files 3/8+ files");
    expect(growing).not.toContain("ETA");
  });
});
