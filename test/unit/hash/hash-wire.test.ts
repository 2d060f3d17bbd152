import { describe, expect, test } from "bun:test";
import { decodeBatch, encodeBatch, storeItems, type HashJob } from "../../../src/hash/hash-wire.ts";

const STORE = { file: "/cache/hashes/v2.sqlite", clockOffset: 0 };

function job(index: number, path: string, extra: Partial<HashJob> = {}): HashJob {
  return {
    index,
    path,
    identity: { dev: 1, ino: 100 + index, size: 4096, mtimeNs: "1700000000000000000", ctimeNs: "1700000000000000001" },
    algos: ["sha256", "autov2"],
    secondLook: true,
    ...extra,
  };
}

describe("a batch on the wire", () => {
  test("a cold batch (no real path but the path, nothing to merge) sends its store lists as empty text, read back as one empty item per file", () => {
    const jobs = [
      job(0, "/lib/a.safetensors"),
      job(1, "/lib/b.safetensors", { realPath: "/lib/b.safetensors" }),
      job(2, "/lib/c.safetensors"),
    ];
    const msg = encodeBatch(7, jobs, 1 << 20, STORE);
    expect(msg.store).toMatchObject({ ...STORE, keys: "", previous: "" });
    expect(storeItems(msg.store!, jobs.length)).toEqual({ keys: ["", "", ""], previous: ["", "", ""] });
    expect(decodeBatch(msg).map((j) => [j.index, j.path, j.identity.mtimeNs, j.identity.ctimeNs])).toEqual(
      jobs.map((j) => [j.index, j.path, j.identity.mtimeNs, j.identity.ctimeNs]),
    );
  });

  test("a real path through a link, or one part to merge, sends every item in place", () => {
    const jobs = [
      job(0, "/lib/a.safetensors"),
      job(1, "/link/b.safetensors", { realPath: "/real/b.safetensors" }),
      job(2, "/lib/c.safetensors", { previous: "1|102|4096|1700000000000000000|1700000000000000001|5|||||x|" }),
      job(3, "/lib/d.safetensors"),
    ];
    const msg = encodeBatch(8, jobs, 1 << 20, STORE);
    expect(storeItems(msg.store!, jobs.length)).toEqual({
      keys: ["", "/real/b.safetensors", "", ""],
      previous: ["", "", jobs[2]!.previous!, ""],
    });
  });

  test("one file alone: its key or its part, or none", () => {
    const alone = encodeBatch(9, [job(0, "/link/a.safetensors", { realPath: "/real/a.safetensors" })], 1 << 20, STORE);
    expect(storeItems(alone.store!, 1)).toEqual({ keys: ["/real/a.safetensors"], previous: [""] });
    const cold = encodeBatch(10, [job(0, "/lib/a.safetensors")], 1 << 20, STORE);
    expect(storeItems(cold.store!, 1)).toEqual({ keys: [""], previous: [""] });
  });

  test("without a store no store lists are sent", () => {
    expect(encodeBatch(11, [job(0, "/lib/a.safetensors")], 1 << 20).store).toBeUndefined();
  });
});
