/**
 * The file that keeps one folder's finished records (record-packs.ts), pure: encode and decode.
 *
 *   "CMRP1\n"            magic, 6 bytes
 *   u32 LE               byte length of the index
 *   u32 LE               CRC-32 of the index
 *   index                JSON: { fp, dir, deps: [[folder, stamp]…], entries: [[n, ident, expiresAt, [dep…], facts, o, l, c]…] }
 *   bodies               each record's JSON as the inventory writes it (one line), one after another
 *
 * An entry is a file's name in the folder, its RecordMeta (ident, expiry, its dependencies as
 * indices into `deps`, which the folder's records share, and its facts), and its body's offset from
 * the end of the index, length and CRC-32. Entries are arrays, not objects: the index of a warm
 * 100,000-file scan is parsed in full, and keys were most of its bytes. The bodies stay bytes from
 * disk to the report: a warm scan never decodes them to strings.
 *
 * Anything that does not decode (another magic, lengths past the end, a checksum that fails, an
 * index of another shape) is an empty pack; an entry that does not is left out. Either way its
 * records are misses, rebuilt and written again.
 */
import { isDep, isFacts, type Dep, type RecordMeta } from "./record-cache-rules.ts";

const MAGIC = Buffer.from("CMRP1\n");
const HEAD_BYTES = MAGIC.length + 8;

interface PackEntry {
  name: string;
  meta: RecordMeta;
  body: Uint8Array;
  /** Where the body starts in the pack's bytes (decodePack; 0 for an entry about to be encoded). */
  offset: number;
}

/** An entry to encode: its body as bytes (kept from the old pack) or as the JSON text just built. */
export interface NewEntry {
  name: string;
  meta: RecordMeta;
  body: Uint8Array | string;
}

export interface Pack {
  /** The options fingerprint every record in it was made under (record-cache-rules.ts recordFingerprint). */
  fp: string;
  /** The folder (as walked) whose files these are: a pack found under another folder's name is not used. */
  dir: string;
  /** Every dependency of its entries (each entry's `deps` are among these very objects). */
  deps: readonly Dep[];
  entries: Map<string, PackEntry>;
}

function crc32(bytes: Uint8Array): number {
  return Bun.hash.crc32(bytes) >>> 0;
}

/** Bodies are encoded here before the pack is assembled: one buffer for every pack a run writes. */
let scratch = Buffer.allocUnsafe(0);
const encoder = new TextEncoder();

/**
 * The pack's bytes, in two pieces to write one after the other: the head and index, then the
 * bodies (valid until the next call). A body given as a string (a record just built) is encoded straight into the
 * pack: a Buffer per record was ~450 MB of short-lived memory outside the engine's heap at 100,000
 * files, which it freed late (1.3 GB resident).
 */
export function encodePack(fp: string, dir: string, entries: readonly NewEntry[]): [Buffer, Buffer] {
  const depIds = new Map<string, number>();
  const deps: Dep[] = [];
  const depId = (d: Dep) => {
    const key = `${d[0]}\u0000${d[1]}`;
    let id = depIds.get(key);
    if (id === undefined) depIds.set(key, (id = deps.push(d) - 1));
    return id;
  };
  let offset = 0;
  const items = entries.map((e) => {
    // Worst case 3 bytes per UTF-16 unit for a string.
    const most = typeof e.body === "string" ? e.body.length * 3 : e.body.length;
    if (offset + most > scratch.length) {
      const grown = Buffer.allocUnsafe(Math.max(offset + most, scratch.length * 2, 1024 * 1024));
      scratch.copy(grown, 0, 0, offset);
      scratch = grown;
    }
    const length =
      typeof e.body === "string"
        ? encoder.encodeInto(e.body, scratch.subarray(offset)).written
        : (scratch.set(e.body, offset), e.body.length);
    const item = [
      e.name,
      e.meta.ident,
      e.meta.expiresAt,
      e.meta.deps.map(depId),
      e.meta.facts,
      offset,
      length,
      crc32(scratch.subarray(offset, offset + length)),
    ];
    offset += length;
    return item;
  });
  const indexBytes = Buffer.from(JSON.stringify({ fp, dir, deps, entries: items }));
  const head = Buffer.allocUnsafe(HEAD_BYTES + indexBytes.length);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(indexBytes.length, MAGIC.length);
  head.writeUInt32LE(crc32(indexBytes), MAGIC.length + 4);
  indexBytes.copy(head, HEAD_BYTES);
  // The bodies stay where they were encoded: a pack of 2.6 MB copied whole for each folder was
  // ~500 MB of short-lived memory over a 100,000-file run.
  return [head, scratch.subarray(0, offset)];
}

/**
 * The pack in `bytes`, or null when they are not one. Bodies are views into `bytes`, each checked
 * against its CRC-32 here (a damaged body is left out, the others stand).
 */
export function decodePack(bytes: Uint8Array): Pack | null {
  if (bytes.length < HEAD_BYTES || !MAGIC.equals(bytes.subarray(0, MAGIC.length))) return null;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const indexLength = view.readUInt32LE(MAGIC.length);
  if (HEAD_BYTES + indexLength > bytes.length) return null;
  const indexBytes = bytes.subarray(HEAD_BYTES, HEAD_BYTES + indexLength);
  if (crc32(indexBytes) !== view.readUInt32LE(MAGIC.length + 4)) return null;
  let index: unknown;
  try {
    index = JSON.parse(view.toString("utf8", HEAD_BYTES, HEAD_BYTES + indexLength));
  } catch {
    return null;
  }
  if (typeof index !== "object" || index === null) return null;
  const { fp, dir, deps, entries } = index as Record<string, unknown>;
  if (typeof fp !== "string" || typeof dir !== "string" || !Array.isArray(deps) || !Array.isArray(entries)) return null;
  if (!deps.every(isDep)) return null;
  const bodiesAt = HEAD_BYTES + indexLength;
  const out = new Map<string, PackEntry>();
  for (const item of entries as unknown[]) {
    const entry = decodeEntry(item, deps as Dep[], bytes, bodiesAt);
    if (entry) out.set(entry.name, entry);
  }
  return { fp, dir, deps: deps as Dep[], entries: out };
}

function decodeEntry(item: unknown, deps: readonly Dep[], bytes: Uint8Array, bodiesAt: number): PackEntry | null {
  if (!Array.isArray(item) || item.length !== 8) return null;
  const [name, ident, expiresAt, depIds, facts, o, l, c] = item as unknown[];
  if (typeof name !== "string" || typeof ident !== "string" || typeof expiresAt !== "number" || !isFacts(facts)) return null;
  if (!Array.isArray(depIds) || depIds.length === 0 || !isUint(o) || !isUint(l) || !isUint(c)) return null;
  const own: Dep[] = [];
  for (const id of depIds) {
    const dep = isUint(id) ? deps[id] : undefined;
    if (dep === undefined) return null;
    own.push(dep);
  }
  const offset = bodiesAt + o;
  if (offset + l > bytes.length) return null;
  const body = bytes.subarray(offset, offset + l);
  if (crc32(body) !== c) return null;
  return { name, meta: { ident, expiresAt, deps: own, facts }, body, offset };
}

function isUint(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}
