import type { BigIntStats } from "node:fs";
import type { FileIdentity } from "./types.ts";

/**
 * The identity a hash is valid for, from a bigint stat: ns timestamps kept as decimal strings
 * because a Number would round them. The walker and the hash worker must build it the same way,
 * or every cache lookup would miss.
 */
export function identityFromStats(st: BigIntStats): FileIdentity {
  return {
    dev: Number(st.dev),
    ino: Number(st.ino),
    size: Number(st.size),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
  };
}
