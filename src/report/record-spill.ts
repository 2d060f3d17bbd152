/**
 * Where `scan` puts each record once it is built, so that a 100,000-file scan holds no records in
 * memory (issue 11, targets 1 and 2): the record is written to a temporary file as the JSON
 * inventory writes it (render-json.ts `recordText`), its library facts are gathered
 * (library-facts.ts), and the reports read the records back by their byte ranges, in the order
 * they need, one at a time (as `report` reads a saved inventory, inventory-file.ts). The JSON
 * inventory takes most records' text as it is: only those the library's facts change (copies,
 * other versions held, updates) are parsed and written again.
 *
 * The file is made in the system's temporary folder (TMPDIR), readable by its owner only, and
 * unlinked as soon as it is open where the system allows it (Linux, macOS): nothing is left behind
 * by a crash or kill -9, and nothing is ever written beside the model files.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InventoryHead } from "./inventory-types.ts";
import type { InventorySource } from "./inventory-read.ts";
import { FactsBuilder, type Facts } from "./library-facts.ts";
import { compareKeys, sectionOf, type RecordOrder } from "./record-order.ts";
import type { FileRecord } from "./record-types.ts";
import { SCHEMA_VERSION } from "./inventory-types.ts";
import { checkPrototype, recordText } from "./render-json.ts";
import { AppError, errnoOrMessage } from "../shared/errors.ts";
import { memoryPressure } from "../shared/memory-pressure.ts";
import { escapeControl } from "../shared/format.ts";

/** Records are encoded into a buffer of this size and written when it is full: one system call per ~1 MiB, not per record. */
const WRITE_CHUNK_BYTES = 1024 * 1024;
const encoder = new TextEncoder();
/** Read at a time when the JSON inventory takes records in the order they are stored. */
const READ_WINDOW_BYTES = 1024 * 1024;
/** A record as the JSON inventory writes it, with Civitai's details and header facts: ~4.5 KB. */
const APPROX_RECORD_BYTES = 5 * 1024;

export class RecordSpill {
  private fd: number;
  private readonly dir: string;
  private readonly file: string;
  private unlinked = false;
  /** Byte range of the record with each path rank; -1: not added. */
  private readonly start: Float64Array;
  private readonly length: Uint32Array;
  /** Markdown section of each rank, as an index into `sections` (a few distinct keys for many records). */
  private readonly section: Int32Array;
  private readonly sections: string[] = [];
  private readonly sectionIds = new Map<string, number>();
  /** What decides whether the facts change a record (Facts.decorates), by rank. */
  private readonly sha: (string | undefined)[];
  private readonly modelId: Float64Array;
  private readonly hasUpdate: Uint8Array;
  private readonly builder = new FactsBuilder();
  /** Encoded records not written yet: `chunk[0, pendingBytes)`. Sized at the first record (see store). */
  private chunk = Buffer.allocUnsafe(0);
  private pendingBytes = 0;
  private written = 0;
  private added = 0;
  private readBuffer = Buffer.allocUnsafe(64 * 1024);
  /** The part of the file `bytes` read last. */
  private readonly window = { source: 0, start: 0, length: 0, buf: Buffer.allocUnsafe(0) };
  /** Files adopted (adopt), closed with the spill. */
  private readonly pinned: number[] = [];
  /** Per rank: 0 = the spill's file, n = pinned[n - 1]. */
  private readonly sourceOf: Uint16Array;

  /**
   * `count` records will be added, each with its rank in path order (0 … count − 1); `pathOf(rank)`
   * is its path (the caller has them all: reading a record back for its path would cost a parse
   * for every path the facts list).
   */
  constructor(
    readonly count: number,
    private readonly pathOf: (rank: number) => string,
  ) {
    this.start = new Float64Array(count).fill(-1);
    this.length = new Uint32Array(count);
    this.section = new Int32Array(count);
    this.sha = Array.from<string | undefined>({ length: count });
    this.modelId = new Float64Array(count).fill(-1);
    this.hasUpdate = new Uint8Array(count);
    this.sourceOf = new Uint16Array(count);
    checkPrototype();
    const tmp = tmpdir();
    try {
      this.dir = mkdtempSync(join(tmp, "civitai-meta-records-"));
      this.file = join(this.dir, "records");
      this.fd = openSync(this.file, "wx+", 0o600);
    } catch (error) {
      throw spillError(error, count);
    }
    try {
      unlinkSync(this.file);
      rmSync(this.dir, { recursive: true, force: true });
      this.unlinked = true;
    } catch {
      // Windows keeps an open file: it is removed in close().
    }
  }

  /** Whether a record was added at `rank` already. */
  taken(rank: number): boolean {
    return this.start[rank] !== -1;
  }

  /** Stores `record` (its path rank is `rank`) and adds it to the facts; returns its JSON text. */
  add(record: FileRecord, rank: number): string {
    const text = recordText(record);
    this.addText(record, text, rank);
    return text;
  }

  /**
   * Stores a record's JSON text or UTF-8 bytes as they are (scan/record-cache.ts: a record built in
   * an earlier run), with `facts`: what the facts read of it (record-cache-rules.ts skeletonOf), so
   * it is not parsed.
   */
  addText(facts: FileRecord, text: string | Uint8Array, rank: number): void {
    if (this.start[rank] !== -1) throw new Error(`record spill: rank ${rank} added twice`);
    if (typeof text === "string") this.store(text, rank);
    else this.storeBytes(text, rank);
    this.note(facts, rank);
  }

  /**
   * Takes a descriptor of a file that holds records' bytes and is never written in place (a pack of
   * the record cache, kept open: scan/record-cache.ts), to be read from and closed with the spill.
   * Returns its source number for addAt.
   */
  adopt(fd: number): number {
    if (this.pinned.length >= 0xffff) throw new Error("record spill: too many files adopted");
    return this.pinned.push(fd);
  }

  /**
   * A record whose JSON bytes are `length` bytes at `offset` of an adopted file: not copied here,
   * read from there when the report wants them (a warm scan wrote and read back ~450 MB of records
   * at 100,000 files, and the kernel took ~0.8 s more to free them at close).
   */
  addAt(facts: FileRecord, source: number, offset: number, length: number, rank: number): void {
    if (this.start[rank] !== -1) throw new Error(`record spill: rank ${rank} added twice`);
    if (!(source >= 1 && source <= this.pinned.length)) throw new Error(`record spill: no adopted file ${source}`);
    this.start[rank] = offset;
    this.length[rank] = length;
    this.sourceOf[rank] = source;
    this.note(facts, rank);
  }

  /** Adds a stored record to the facts. */
  private note(record: FileRecord, rank: number): void {
    const key = sectionOf(record);
    let id = this.sectionIds.get(key);
    if (id === undefined) this.sectionIds.set(key, (id = this.sections.push(key) - 1));
    this.section[rank] = id;
    this.sha[rank] = record.hashes?.sha256;
    const c = record.civitai;
    if ((record.status === "found" || record.status === "gone") && typeof c?.modelId === "number") this.modelId[rank] = c.modelId;
    // Fields decorate sets or replaces: a record that came with one is always re-rendered.
    if (record.update || "duplicate" in record || "otherVersions" in record) this.hasUpdate[rank] = 1;
    this.builder.add(record, rank);
    this.added++;
  }

  /**
   * Encodes `text` straight into the write buffer (encodeInto: no copy of the string, and its byte
   * length comes with it; Buffer.byteLength of each record cost more than writing them all).
   */
  private store(text: string, rank: number): void {
    // Worst case 3 bytes per UTF-16 unit: make room first, so one encodeInto always takes it whole.
    this.makeRoom(text.length * 3);
    const { written } = encoder.encodeInto(text, this.chunk.subarray(this.pendingBytes));
    this.start[rank] = this.written + this.pendingBytes;
    this.length[rank] = written;
    this.pendingBytes += written;
  }

  /** Room for `most` more bytes in the write buffer: written out first when they would not fit. */
  private makeRoom(most: number): void {
    if (this.pendingBytes + most <= this.chunk.length) return;
    this.flush();
    // A few records need a few KB, not the full chunk (its first allocation cost ~1.5 ms of a small scan).
    if (most > this.chunk.length) this.chunk = Buffer.allocUnsafe(Math.max(most, Math.min(WRITE_CHUNK_BYTES, this.count * 8192)));
  }

  /** As `store`, for a record's UTF-8 bytes. */
  private storeBytes(bytes: Uint8Array, rank: number): void {
    this.makeRoom(bytes.length);
    this.chunk.set(bytes, this.pendingBytes);
    this.start[rank] = this.written + this.pendingBytes;
    this.length[rank] = bytes.length;
    this.pendingBytes += bytes.length;
  }

  private flush(): void {
    let off = 0;
    try {
      while (off < this.pendingBytes) off += writeSync(this.fd, this.chunk, off, this.pendingBytes - off, this.written + off);
    } catch (error) {
      throw spillError(error, this.count);
    }
    this.written += this.pendingBytes;
    this.pendingBytes = 0;
  }

  /** The descriptor rank `rank` is stored in: the spill's file, or an adopted one. */
  private fdOf(rank: number): number {
    const source = this.sourceOf[rank]!;
    return source === 0 ? this.fd : this.pinned[source - 1]!;
  }

  private text(rank: number): string {
    const n = this.length[rank]!;
    if (n === 0) return "";
    if (this.readBuffer.length < n) this.readBuffer = Buffer.allocUnsafe(Math.max(n, this.readBuffer.length * 2));
    let off = 0;
    const pos = this.start[rank]!;
    const fd = this.fdOf(rank);
    while (off < n) {
      const got = readSync(fd, this.readBuffer, off, n - off, pos + off);
      if (got === 0) throw new Error("record spill: the temporary file was cut short");
      off += got;
    }
    return this.readBuffer.toString("utf8", 0, n);
  }

  /**
   * The stored bytes of rank `rank`. Read a window at a time while ranks follow each other in the
   * file (records are stored part by part, mostly in path order), else just the record. One
   * buffer for every window (a new 1 MiB buffer per window is memory outside the engine's heap that
   * it frees late: +250 MB over a 100,000-record scan), so bytes handed out are valid until the
   * next call, as InventorySource.recordTexts says.
   */
  private bytes(rank: number): Uint8Array {
    const pos = this.start[rank]!;
    const n = this.length[rank]!;
    const source = this.sourceOf[rank]!;
    const w = this.window;
    if (source !== w.source || pos < w.start || pos + n > w.start + w.length) {
      const follows = rank + 1 < this.count && this.start[rank + 1] === pos + n && this.sourceOf[rank + 1] === source;
      const size = follows ? Math.max(n, READ_WINDOW_BYTES) : n;
      const fd = this.fdOf(rank);
      if (w.buf.length < size) w.buf = Buffer.allocUnsafe(Math.max(size, READ_WINDOW_BYTES));
      const buf = w.buf;
      let got = 0;
      while (got < size) {
        const r = readSync(fd, buf, got, size - got, pos + got);
        if (r === 0) break;
        got += r;
      }
      if (got < n) throw new Error("record spill: the temporary file was cut short");
      w.source = source;
      w.start = pos;
      w.length = got;
    }
    const at = pos - this.window.start;
    return this.window.buf.subarray(at, at + n);
  }

  private read(rank: number): FileRecord {
    return JSON.parse(this.text(rank)) as FileRecord;
  }

  /**
   * The inventory of everything added, as a source (inventory-read.ts): `head` with the counts of
   * the records. Every rank must have been added. The spill must stay open while it is read.
   */
  source(head: InventoryHead): InventorySource {
    if (this.added !== this.count) throw new Error(`record spill: ${this.added} of ${this.count} records added`);
    this.flush();
    const facts: Facts = this.builder.finish(this.pathOf);
    const byPath = [...Array(this.count).keys()];
    const orders = new Map<RecordOrder, number[]>([["path", byPath]]);
    const f = facts.facts;
    return {
      head: {
        ...head,
        schemaVersion: SCHEMA_VERSION,
        summary: { ...head.summary, files: f.files, byStatus: { ...f.byStatus }, bytes: f.bytes, duplicates: f.duplicates },
      },
      facts,
      count: this.count,
      writtenAs: SCHEMA_VERSION,
      records: (order: RecordOrder = "path") => {
        let list = orders.get(order);
        if (!list) orders.set(order, (list = this.sectionOrder(byPath)));
        return this.iterate(list, facts);
      },
      recordTexts: () => this.texts(facts),
    };
  }

  /** Every record's JSON text in path order: its stored bytes, unless the facts change it. */
  private *texts(facts: Facts): Generator<string | Uint8Array> {
    checkPrototype();
    for (let i = 0; i < this.count; i++) {
      const modelId = this.modelId[i]!;
      if (facts.decorates(this.sha[i], modelId === -1 ? null : modelId, this.hasUpdate[i] === 1)) {
        yield recordText(facts.decorate(this.read(i)));
      } else yield this.bytes(i);
    }
  }

  private *iterate(list: readonly number[], facts: Facts): Generator<FileRecord> {
    const collect = memoryPressure({ full: false });
    for (const i of list) {
      yield facts.decorate(this.read(i));
      collect();
    }
  }

  /** Ranks by Markdown section in the report's order, then by path (stable sort of `byPath`). */
  private sectionOrder(byPath: readonly number[]): number[] {
    const ids = [...this.sections.keys()].sort((a, b) => compareKeys(this.sections[a]!, this.sections[b]!));
    const rank = new Int32Array(ids.length);
    ids.forEach((id, r) => (rank[id] = r));
    return [...byPath].sort((a, b) => rank[this.section[a]!]! - rank[this.section[b]!]!);
  }

  /** Closes and removes the temporary file. Safe to call twice. */
  close(): void {
    for (const fd of this.pinned.splice(0)) closeSync(fd);
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    if (!this.unlinked) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * One clear error when the records cannot be kept in the temporary folder (missing, not writable,
 * full): what, where, and how much room a scan of this size wants. Nothing was written yet.
 */
function spillError(error: unknown, count: number): AppError {
  const room = Math.max(1, Math.ceil((count * APPROX_RECORD_BYTES) / 1024 ** 2));
  return new AppError(
    `cannot keep the scan's records in the temporary folder ${escapeControl(tmpdir())} (${errnoOrMessage(error)}). ` +
      `No inventory was written. Set TMPDIR to a writable folder with about ${room} MB free.`,
    { cause: error },
  );
}
