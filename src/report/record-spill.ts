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
import { memoryPressure } from "../shared/memory-pressure.ts";

/** Lines are gathered up to this size and written at once: one system call per ~1 MiB, not per record. */
const WRITE_CHUNK_BYTES = 1024 * 1024;

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
  private pending: string[] = [];
  private pendingBytes = 0;
  private written = 0;
  private added = 0;
  private readBuffer = Buffer.allocUnsafe(64 * 1024);

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
    this.sha = new Array<string | undefined>(count);
    this.modelId = new Float64Array(count).fill(-1);
    this.hasUpdate = new Uint8Array(count);
    checkPrototype();
    this.dir = mkdtempSync(join(tmpdir(), "civitai-meta-records-"));
    this.file = join(this.dir, "records.jsonl");
    this.fd = openSync(this.file, "wx+", 0o600);
    try {
      unlinkSync(this.file);
      rmSync(this.dir, { recursive: true, force: true });
      this.unlinked = true;
    } catch {
      // Windows keeps an open file: it is removed in close().
    }
  }

  /** Stores `record` (its path rank is `rank`) and adds it to the facts. */
  add(record: FileRecord, rank: number): void {
    if (this.start[rank] !== -1) throw new Error(`record spill: rank ${rank} added twice`);
    const text = `${recordText(record)}\n`;
    const bytes = Buffer.byteLength(text);
    this.start[rank] = this.written + this.pendingBytes;
    this.length[rank] = bytes - 1;
    this.pending.push(text);
    this.pendingBytes += bytes;
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
    if (this.pendingBytes >= WRITE_CHUNK_BYTES) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const chunk = Buffer.from(this.pending.join(""));
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off, this.written + off);
    this.written += chunk.length;
    this.pending = [];
    this.pendingBytes = 0;
  }

  private text(rank: number): string {
    const n = this.length[rank]!;
    if (this.readBuffer.length < n) this.readBuffer = Buffer.allocUnsafe(Math.max(n, this.readBuffer.length * 2));
    let off = 0;
    const pos = this.start[rank]!;
    while (off < n) {
      const got = readSync(this.fd, this.readBuffer, off, n - off, pos + off);
      if (got === 0) throw new Error("record spill: the temporary file was cut short");
      off += got;
    }
    return this.readBuffer.toString("utf8", 0, n);
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

  /** Every record's JSON text in path order: as stored, unless the facts change it. */
  private *texts(facts: Facts): Generator<string> {
    checkPrototype();
    for (let i = 0; i < this.count; i++) {
      const modelId = this.modelId[i]!;
      if (facts.decorates(this.sha[i], modelId === -1 ? null : modelId, this.hasUpdate[i] === 1)) {
        yield recordText(facts.decorate(this.read(i)));
      } else yield this.text(i);
    }
  }

  private *iterate(list: readonly number[], facts: Facts): Generator<FileRecord> {
    const collect = memoryPressure();
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
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    if (!this.unlinked) rmSync(this.dir, { recursive: true, force: true });
  }
}
