/**
 * Where each record goes in the inventory, pure: every path a scan reports (its files and the
 * paths it skipped) in byte order, and each one's rank in that order (record-spill.ts keeps
 * records by rank).
 */
import { compareByteOrder, isInByteOrder } from "./path-filter.ts";

/**
 * Every record's path (files and skipped paths) in byte order; the rank in it of each file of
 * `hashPaths` (the scan's files, by index), and of a path (its first). Both lists come in byte order (the walk
 * sorts them, and the collect keeps the walk's order): they are merged, not sorted again (a sort
 * with compareByteOrder was ~0.1 s of a warm 100,000-file scan). The ranks by path are a map made
 * only when a record is built, not given by the record cache: a warm scan gives them all by index
 * (the map was another ~0.1 s of it).
 */
export function pathRanks(
  hashPaths: string[],
  skipped: string[],
): { paths: string[]; hashRank: Int32Array; rankOf: (path: string) => number } {
  const hashRank = new Int32Array(hashPaths.length);
  const paths = mergeSorted(hashPaths, skipped, hashRank);
  let rank: Map<string, number> | undefined;
  const rankOf = (path: string) => {
    if (rank === undefined) {
      rank = new Map();
      for (let i = 0; i < paths.length; i++) if (!rank.has(paths[i]!)) rank.set(paths[i]!, i);
    }
    return rank.get(path)!;
  };
  return { paths, hashRank, rankOf };
}

/**
 * `a` and `b` merged in byte order, and where each item of `a` went (`placeOfA`); a list not in
 * order is sorted first (a caller's promise checked, not trusted: `a` then moves with its places).
 */
function mergeSorted(a: string[], b: string[], placeOfA: Int32Array): string[] {
  let order: number[] | null = null;
  if (!isInByteOrder(a)) {
    order = [...a.keys()].sort((x, y) => compareByteOrder(a[x]!, a[y]!));
    a = order.map((k) => a[k]!);
  }
  if (!isInByteOrder(b)) b.sort(compareByteOrder);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  const takeA = () => {
    placeOfA[order === null ? i : order[i]!] = out.length;
    out.push(a[i++]!);
  };
  while (i < a.length && j < b.length) {
    if (compareByteOrder(a[i]!, b[j]!) <= 0) takeA();
    else out.push(b[j++]!);
  }
  while (i < a.length) takeA();
  while (j < b.length) out.push(b[j++]!);
  return out;
}
