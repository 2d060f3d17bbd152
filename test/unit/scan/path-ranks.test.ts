import { describe, expect, test } from "bun:test";
import { compareByteOrder } from "../../../src/scan/path-filter.ts";
import { pathRanks } from "../../../src/scan/path-ranks.ts";

/** What pathRanks must give, worked out the slow way: one sort of everything, then a search per path. */
function expected(files: string[], skipped: string[]) {
  const paths = [...files, ...skipped].sort(compareByteOrder);
  const used = new Set<number>();
  // Each file gets a place of its own, the first free one with its path (a path named twice takes two).
  const hashRank = files.map((f) => {
    let r = paths.indexOf(f);
    while (used.has(r) || paths[r] !== f) r++;
    used.add(r);
    return r;
  });
  return { paths, hashRank };
}

describe("pathRanks", () => {
  const cases: Record<string, [string[], string[]]> = {
    "both in order": [
      ["/m/a.safetensors", "/m/c.safetensors", "/m/e.safetensors"],
      ["/m/b.part", "/m/d.part"],
    ],
    "no skipped paths": [["/m/a", "/m/b"], []],
    "only skipped paths": [[], ["/m/x.part"]],
    // The walk sorts what it finds; the order is checked, not trusted.
    "files out of order": [["/m/z", "/m/a", "/m/\u{1F600}", "/m/\uE000", "/m/m"], ["/m/b.part"]],
    "skipped out of order": [
      ["/m/a", "/m/c"],
      ["/m/d.part", "/m/b.part"],
    ],
    "a path named twice": [["/m/a", "/m/b", "/m/b"], ["/m/c.part"]],
  };
  for (const [name, [files, skipped]] of Object.entries(cases)) {
    test(name, () => {
      const want = expected(files, skipped);
      const got = pathRanks([...files], [...skipped]);
      expect(got.paths).toEqual(want.paths);
      expect([...got.hashRank]).toEqual(want.hashRank);
      for (const f of files) expect(got.paths[got.hashRank[files.indexOf(f)]!]).toBe(f);
      // By path: its first place.
      for (const p of new Set([...files, ...skipped])) expect(got.rankOf(p)).toBe(want.paths.indexOf(p));
    });
  }
});
