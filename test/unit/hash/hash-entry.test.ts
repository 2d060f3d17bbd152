import { describe, expect, test } from "bun:test";
import { checksum, hashPartText, isRacyState, mergeHashes, parseHashPart } from "../../../src/hash/hash-entry.ts";
import type { FileIdentity } from "../../../src/scan/types.ts";

const SHA = "ab".repeat(32);
const HOUR_AGO_NS = (BigInt(Date.now() - 3600_000) * 1_000_000n).toString();

/** A file whose mtime was put back an hour, with this ctime. */
function identity(ctimeNs: string): FileIdentity {
  return { dev: 1, ino: 2, size: 4096, mtimeNs: HOUR_AGO_NS, ctimeNs };
}

describe("the racy rule and the ctime", () => {
  const at = Date.now();
  const wholeSecond = (BigInt(Math.floor(at / 1000) * 1000) * 1_000_000n).toString();
  const fine = (BigInt(at - 300) * 1_000_000n + 123_456n).toString();

  test("a ctime in whole seconds (coarse timestamps) within 2 s of the hashing: not trusted by a later run", () => {
    // ext2/3, ext4 with 128-byte inodes, FAT: a change in the same second, its mtime put back with
    // `touch -r`, leaves size, mtime and ctime as they were, so the old hash would be served.
    expect(isRacyState(identity(wholeSecond), at)).toBe(true);
    const part = mergeHashes(identity(wholeSecond), null, { hashes: { sha256: SHA } }, at);
    expect(part.confirmed).toBe(false);
    const text = hashPartText(part);
    expect(parseHashPart(text, checksum(text), at + 60_000)?.confirmed).toBe(false);
  });

  test("a fine-grained ctime moves with any change, so it alone does not make the entry racy", () => {
    expect(isRacyState(identity(fine), at)).toBe(false);
    const part = mergeHashes(identity(fine), null, { hashes: { sha256: SHA } }, at);
    const text = hashPartText(part);
    expect(parseHashPart(text, checksum(text), at + 60_000)?.confirmed).toBe(true);
  });

  test("a whole-second ctime well before the hashing is trusted", () => {
    const old = (BigInt(Math.floor(at / 1000) * 1000 - 10_000) * 1_000_000n).toString();
    expect(isRacyState(identity(old), at)).toBe(false);
  });
});
