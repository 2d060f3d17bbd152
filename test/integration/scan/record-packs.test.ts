/**
 * The record packs on disk (scan/record-packs.ts): a pack larger than the cap is neither written
 * (every run would write it again for nothing) nor read (a folder of ~200,000 models, or a file
 * grown by someone else), and its records are then built as if there were none. The cap is 1 GiB;
 * here it is made small, the one thing the test changes.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { skeletonOf, type RecordMeta } from "../../../src/scan/record-cache-rules.ts";
import type { NewEntry } from "../../../src/scan/record-pack-format.ts";
import { RecordPacks } from "../../../src/scan/record-packs.ts";
import { makeRecord } from "../../helpers/sample-inventory.ts";
import { tmpDirs } from "../../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());

const meta = (ident: string): RecordMeta => ({
  ident,
  expiresAt: Date.now() + 86_400_000,
  deps: [["version:sha256:ab", "1:2"]],
  facts: skeletonOf(makeRecord()),
});
/** `n` entries with bodies of `bodyBytes` each. */
const entries = (n: number, bodyBytes: number): NewEntry[] =>
  Array.from({ length: n }, (_, i) => ({
    name: `m${i}.safetensors`,
    meta: meta(String(i)),
    body: `{"path": "${"x".repeat(bodyBytes - 14)}"}`,
  }));

/** Every file under the packs folder. */
const filesUnder = (root: string): string[] =>
  existsSync(root)
    ? readdirSync(root, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name))
    : [];

describe("record packs: the size cap", () => {
  const CAP = 64 * 1024;

  test("a pack within the cap is written and read back whole", () => {
    const root = tmp.make();
    const packs = new RecordPacks(root, CAP);
    packs.write("/lib/small", "fp", entries(4, 1000));
    expect(packs.writeFailures).toBe(0);
    const [file] = filesUnder(root);
    expect(statSync(file!).size).toBeLessThanOrEqual(CAP);
    const pack = packs.read("/lib/small")!;
    expect([...pack.entries.keys()]).toEqual(["m0.safetensors", "m1.safetensors", "m2.safetensors", "m3.safetensors"]);
  });

  test("a pack over the cap is not written: nothing is left on disk, the failure is counted, the old pack stays", () => {
    const root = tmp.make();
    const packs = new RecordPacks(root, CAP);
    packs.write("/lib/big", "fp", entries(2, 1000));
    const before = filesUnder(root);
    expect(before).toHaveLength(1);
    packs.write("/lib/big", "fp", entries(100, 1000));
    expect(packs.writeFailures).toBe(1);
    expect(filesUnder(root)).toEqual(before);
    expect(packs.read("/lib/big")!.entries.size).toBe(2);
  });

  test("a pack file over the cap is not read, however it got there (open, fetch, read: none)", async () => {
    const root = tmp.make();
    // Written by a run with a larger cap; read by one whose cap it exceeds.
    new RecordPacks(root, 4 * CAP).write("/lib/grown", "fp", entries(100, 1000));
    const [file] = filesUnder(root);
    expect(statSync(file!).size).toBeGreaterThan(CAP);
    expect(new RecordPacks(root, 4 * CAP).read("/lib/grown")!.entries.size).toBe(100);
    const capped = new RecordPacks(root, CAP);
    expect(capped.open("/lib/grown")).toBeNull();
    expect(capped.read("/lib/grown")).toBeNull();
    expect(await capped.fetch("/lib/grown", Buffer.alloc(0))).toBeNull();
    // The default cap reads it.
    const opened = new RecordPacks(root).open("/lib/grown");
    expect(opened!.pack.entries.size).toBe(100);
    closeSync(opened!.fd);
  });
});
