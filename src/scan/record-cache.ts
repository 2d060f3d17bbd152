/**
 * Finished records kept between runs (the rules and why: record-cache-rules.ts), one pack per
 * scanned folder (record-packs.ts). `serve` gives, before any lookup, the records that still hold;
 * `store` keeps those a part of the lookups built when every metadata entry they came from was
 * served from the cache and no cache folder holding one changed while the part ran.
 */
import { keyFolder, modelKey, normalizeAutov3, versionKeyByAutov3, versionKeyBySha256 } from "../civitai/cache-keys.ts";
import type { LookupEntry } from "../civitai/lookup.ts";
import type { MetaCache } from "../civitai/meta-cache.ts";
import type { FolderStamp } from "../civitai/meta-cache-driver.ts";
import { RACY_WINDOW_MS } from "../hash/hash-entry.ts";
import type { FileRecord } from "../report/record-types.ts";
import { basenamePath, dirnamePath, fsPath, joinPath } from "../shared/fs-path.ts";
import { closeSync, statSync } from "node:fs";
import { isRacyState } from "../hash/hash-entry.ts";
import { stampOf } from "../local/local-cache.ts";
import { listedSidecars } from "../local/sidecars.ts";
import {
  fileIdent,
  rowHolds,
  sidecarMark,
  sidecarStampsMark,
  skeletonOf,
  staysTrue,
  storableStatus,
  withFile,
  type Dep,
  type SidecarStamp,
} from "./record-cache-rules.ts";
import type { NewEntry, Pack } from "./record-pack-format.ts";
import type { RecordPacks } from "./record-packs.ts";
import type { FoundFile, HashResult } from "./types.ts";

/**
 * Packs a warm scan keeps open so the report reads their records from them (record-spill.ts
 * addAt): 100,000 files in folders of 500 are 200 packs. Past this, records are copied.
 */
const MAX_KEPT_PACKS = 256;

/** Where `serve` puts the records it gives (the scan's record spill). */
export interface ServeSink {
  /** Takes a pack's descriptor (to read from and close later); returns its source number. */
  adopt(fd: number): number;
  /** The record of `hashes[i]`, at `offset` (`length` bytes) of an adopted pack. */
  at(facts: FileRecord, source: number, offset: number, length: number, i: number): void;
  /** The record of `hashes[i]` as bytes, copied before `serve` goes on. */
  bytes(facts: FileRecord, body: Uint8Array, i: number): void;
}

/** Records waiting for their folder's pack (~4.5 KB each): beyond this, the pack is written now and again later. */
const PENDING_PACK_CHARS = 64 * 1024 * 1024;

/**
 * A collection asked for (Bun.gc(false), not waited for) every PACKS_PER_COLLECTION packs read
 * (~2,000 records at 500 per folder). A synchronous eden collection after every pack instead was
 * slower and held more (351 against 281 MB at 100,000 files).
 */
const PACKS_PER_COLLECTION = 4;

function packPressure(): () => void {
  let packs = 0;
  return () => {
    if (++packs % PACKS_PER_COLLECTION === 0) Bun.gc(false);
  };
}

export class RecordCache {
  /** Records given by `serve`, and stored by `store`. */
  served = 0;
  stored = 0;
  /** Of the records given, those known only from a sidecar (the scan's summary line counts them). */
  knownFromSidecars = 0;
  /** Stamps of the metadata-cache folders as `serve` found them. */
  private readonly stamps = new Map<string, string | null>();
  /** When the lookups started reading the metadata cache (`begin`); null before. */
  private began: number | null = null;
  /** Packs kept open for the report (serve). */
  private kept = 0;
  /** Per folder, its files not built yet (begin, store). */
  private readonly remaining = new Map<string, number>();
  /** Per folder, the records built and kept for its pack, not written yet. */
  private readonly pending = new Map<string, { entries: NewEntry[]; chars: number }>();
  /** Per scanned folder, the names whose packed record holds in this run (given, or stored now). */
  private readonly valid = new Map<string, Set<string>>();
  /** The walk's folder listings (sidecar names), by folder: what sidecarMark reads. */
  private names: ReadonlyMap<string, readonly string[]> | undefined;
  /** Files whose record `claim` took, each with its place in a claimed pack: `serve` gives them. */
  private readonly claims = new Map<FoundFile, number>();
  /** Per claim (the number `claims` holds): its pack (index in claimedPacks), its body's place, its facts. */
  private taken = { pack: [] as number[], offset: [] as number[], length: [] as number[], facts: [] as FileRecord[] };
  /** Descriptors of the packs claims are in (index = Claim.pack), not adopted yet. */
  private readonly claimedPacks: number[] = [];

  constructor(
    private readonly packs: RecordPacks,
    private readonly metaCache: MetaCache,
    private readonly fp: string,
    private readonly clock: () => number,
    private readonly details: boolean,
    /** When the run began (epoch ms): files and sidecars changed within 2 s of it are not kept. */
    private readonly started: number,
  ) {}

  /** The walk's listings of sidecar names by folder (collect.ts keepName): sidecarMark's input. */
  useListing(names: ReadonlyMap<string, readonly string[]> | undefined): void {
    this.names = names;
  }

  /**
   * The file's sidecar mark (record-cache-rules.ts): its sidecars' stamps when the walk listed some
   * beside it, a stat each. Null when one cannot be read, or (`racySince`, for a record about to be
   * kept) one changed within the racy window of that time: it may have changed after it was read.
   */
  private markOf(file: FoundFile, racySince?: number): string | null {
    const folder = dirnamePath(file.path);
    const listed = this.names?.get(folder);
    const mark = sidecarMark(listed, file.path);
    if (mark !== ":s") return mark;
    const stamps: SidecarStamp[] = [];
    for (const name of listedSidecars(listed!, file.path)) {
      try {
        const st = statSync(fsPath(joinPath(folder, name)), { bigint: true });
        if (racySince !== undefined && isRacyState({ mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString() }, racySince))
          return null;
        stamps.push({ name, stamp: stampOf(st) });
      } catch {
        return null;
      }
    }
    return sidecarStampsMark(stamps);
  }

  /**
   * Takes, before the hash cache is read, the packed record of each file of `files` (the walk's, in
   * its order) that still holds for it as the walk found it: its identity, its sidecars' stamps
   * (see record-cache-rules.ts) and the record's SHA-256. A record taken is given by `serve`, and
   * the caller must neither read the file's header nor build its record (`claimedSha`). Folder by
   * folder, the next folder's pack read on the runtime's pool while this one's files are checked;
   * in up to MAX_KEPT_PACKS packs (they stay open for the report), the files of other folders
   * taking the usual way. A folder not listed (a file named as an argument) is left to it too.
   */
  async claimAll(files: readonly FoundFile[]): Promise<void> {
    const runs = folderRuns(files);
    const now = this.clock();
    const pressure = packPressure();
    // Two buffers in turn: the next pack is read into one while this one's is decoded from the other.
    const buffers: Buffer[] = [Buffer.allocUnsafe(0), Buffer.allocUnsafe(0)];
    let next = runs.length > 0 ? this.packs.fetch(runs[0]!.dir, buffers[0]!) : null;
    for (let i = 0; i < runs.length; i++) {
      const fetched = await next;
      next =
        i + 1 < runs.length && this.claimedPacks.length < MAX_KEPT_PACKS ? this.packs.fetch(runs[i + 1]!.dir, buffers[(i + 1) % 2]!) : null;
      if (fetched === null) continue;
      buffers[i % 2] = fetched.buffer;
      // Each pack's index is garbage once its folder is done (as in `serve`).
      pressure();
      const run = runs[i]!;
      const opened = this.packs.decodeFor(run.dir, fetched.fd, fetched.bytes);
      if (opened !== null) this.claimFolder(run.dir, files.slice(run.from, run.to), opened, now);
    }
  }

  /** `claimAll` for the files of one folder, its pack opened (its descriptor kept when a claim is made in it, else closed). */
  private claimFolder(dir: string, files: readonly FoundFile[], opened: { fd: number; pack: Pack }, now: number): void {
    const listed = this.names?.get(dir);
    const { fd, pack } = opened;
    if (pack.fp !== this.fp || listed === undefined || this.claimedPacks.length >= MAX_KEPT_PACKS) {
      closeSync(fd);
      return;
    }
    // A pack's entries share its `deps` objects: judged once per pack, and not per entry at all
    // when every one holds (an unchanged metadata cache).
    const held = new Map<Dep, boolean>();
    for (const dep of pack.deps) held.set(dep, this.depHolds(dep));
    const depHolds = [...held.values()].every(Boolean) ? () => true : (dep: Dep) => held.get(dep) === true;
    let index = -1;
    for (const file of files) {
      const name = basenamePath(file.path);
      const entry = pack.entries.get(name);
      const sha = entry?.meta.facts.hashes?.sha256;
      if (!entry || typeof sha !== "string") continue;
      // Most files have no sidecar: their mark is "" without a look at the listing for each.
      const mark = listed.length === 0 ? "" : this.markOf(file);
      if (mark === null || !rowHolds(entry.meta, { ident: fileIdent(file, mark), sha256: sha, now, depHolds })) continue;
      if (index === -1) index = this.claimedPacks.push(fd) - 1;
      const c = this.taken;
      this.claims.set(file, c.facts.push(entry.meta.facts) - 1);
      c.pack.push(index);
      c.offset.push(entry.offset);
      c.length.push(entry.body.length);
      this.validNames(dir).add(name);
    }
    if (index === -1) closeSync(fd);
  }

  /** The SHA-256 of a file whose record `claimAll` took (it is given by `serve`), else undefined. */
  claimedSha(file: FoundFile): string | undefined {
    const claim = this.claims.get(file);
    return claim === undefined ? undefined : this.taken.facts[claim]!.hashes.sha256;
  }

  /** Closes the packs claims are in that `serve` did not take (a scan that failed before it). */
  close(): void {
    for (const fd of this.claimedPacks.splice(0)) if (fd >= 0) closeSync(fd);
  }

  /** Whether a metadata-cache folder still has the stamp `dep` holds (memoised per run). */
  private depHolds(dep: Dep): boolean {
    return this.stampOf(dep[0]) === dep[1];
  }

  /**
   * Gives each file of `hashes` that `eligible` admits its packed record when it still holds;
   * returns the files left to look up, in order. A record given goes to `sink`, by its index in `hashes`, with what the facts
   * read of it: as a place in its pack (the pack is kept open, `sink.adopt`) for the first
   * MAX_KEPT_PACKS packs, then as bytes (copied now: descriptors are a limited resource).
   */
  serve(hashes: readonly HashResult[], eligible: (h: HashResult) => boolean, sink: ServeSink): HashResult[] {
    const rest: HashResult[] = [];
    const now = this.clock();
    const pressure = packPressure();
    const held = new Map<Dep, boolean>();
    const depHolds = (dep: Dep) => {
      let ok = held.get(dep);
      if (ok === undefined) held.set(dep, (ok = this.depHolds(dep)));
      return ok;
    };
    // Files come folder by folder (walk order): one pack read per folder.
    let dir: string | null = null;
    let opened: { fd: number; pack: Pack } | null = null;
    let source = 0;
    let valid: Set<string> | undefined;
    const release = () => {
      if (opened !== null && source === 0) closeSync(opened.fd);
      opened = null;
    };
    // Claimed packs, adopted as their first record is given.
    const claimSources = new Map<number, number>();
    try {
      for (let i = 0; i < hashes.length; i++) {
        const h = hashes[i]!;
        const claim = this.claims.get(h.file);
        if (claim !== undefined) {
          this.giveClaimed(claim, h, i, sink, claimSources);
          continue;
        }
        if (!eligible(h)) {
          rest.push(h);
          continue;
        }
        const fileDir = dirnamePath(h.file.path);
        if (fileDir !== dir) {
          release();
          // Each pack's index is garbage once its folder is done: collect young objects now and then,
          // or they pile up by the hundred MB beside the walk's state (memory-pressure.ts).
          pressure();
          dir = fileDir;
          const read = this.packs.open(dir);
          if (read !== null && read.pack.fp !== this.fp) closeSync(read.fd);
          else opened = read;
          source = 0;
          valid = undefined;
          held.clear();
        }
        const name = basenamePath(h.file.path);
        const entry = opened?.pack.entries.get(name);
        const mark = entry ? this.markOf(h.file) : null;
        if (!entry || mark === null || !rowHolds(entry.meta, { ident: fileIdent(h.file, mark), sha256: h.hashes.sha256, now, depHolds })) {
          rest.push(h);
          continue;
        }
        const facts = withFile(entry.meta.facts, h.file);
        if (source === 0 && this.kept < MAX_KEPT_PACKS) {
          source = sink.adopt(opened!.fd);
          this.kept++;
        }
        this.count(facts);
        if (source !== 0) sink.at(facts, source, entry.offset, entry.body.length, i);
        else sink.bytes(facts, entry.body, i);
        valid ??= this.validNames(dir);
        valid.add(name);
      }
    } finally {
      release();
      this.close();
      // The claims' facts (~0.5 KB a file) are the library facts' now: garbage once given.
      this.claims.clear();
      this.taken = { pack: [], offset: [], length: [], facts: [] };
    }
    return rest;
  }

  /** Gives a claimed record from its pack, adopted by `sink` with the first of its records (`sources`: pack → source number). */
  private giveClaimed(claim: number, h: HashResult, i: number, sink: ServeSink, sources: Map<number, number>): void {
    const c = this.taken;
    const pack = c.pack[claim]!;
    let from = sources.get(pack);
    if (from === undefined) {
      from = sink.adopt(this.claimedPacks[pack]!);
      this.claimedPacks[pack] = -1;
      this.kept++;
      sources.set(pack, from);
    }
    const facts = withFile(c.facts[claim]!, h.file);
    this.count(facts);
    sink.at(facts, from, c.offset[claim]!, c.length[claim]!, i);
  }

  /** Counts a record given. */
  private count(facts: FileRecord): void {
    if (facts.knownFrom?.startsWith("sidecar:")) this.knownFromSidecars++;
    this.served++;
  }

  /** A metadata-cache folder's stamp as this run first found it. */
  private stampOf(folder: string): string | null {
    let stamp = this.stamps.get(folder);
    if (stamp === undefined) {
      stamp = this.metaCache.folderStamps([folder])?.get(folder)?.stamp ?? null;
      this.stamps.set(folder, stamp);
    }
    return stamp;
  }

  private validNames(dir: string): Set<string> {
    let names = this.valid.get(dir);
    if (!names) this.valid.set(dir, (names = new Set()));
    return names;
  }

  /**
   * Notes when the lookups start reading the metadata cache (what `store` judges the folders by),
   * and how many of `toLookUp` each folder has: its pack is written once they are all built.
   */
  begin(toLookUp: readonly HashResult[]): void {
    this.metaCache.takeServed();
    this.began = this.clock();
    for (const h of toLookUp) {
      if (h.error || h.hashes.sha256 === undefined) continue;
      const dir = dirnamePath(h.file.path);
      this.remaining.set(dir, (this.remaining.get(dir) ?? 0) + 1);
    }
  }

  /**
   * Stores the records a part built (`built`: each with its JSON text) for the files `storable`
   * admits, from the part's lookup `entries`, when each may be given again later. Each folder's pack
   * is written again with the records that held in this run and these.
   */
  store(
    built: readonly { record: FileRecord; text: string; h: HashResult }[],
    entries: ReadonlyMap<string, LookupEntry>,
    storable: (h: HashResult) => boolean,
  ): void {
    const served = this.metaCache.takeServed();
    if (this.began === null) return;
    const touched = new Set<string>();
    const current = new Map<string, FolderStamp | null>();
    for (const { record, text, h } of built) {
      const dir = dirnamePath(h.file.path);
      touched.add(dir);
      this.remaining.set(dir, (this.remaining.get(dir) ?? 1) - 1);
      if (!storable(h) || !storableStatus(record) || !staysTrue(record)) continue;
      const sha = h.hashes.sha256;
      const entry = sha === undefined ? undefined : entries.get(sha);
      if (sha === undefined || entry === undefined || entry.detailsError !== undefined) continue;
      const keys = this.dependencies(record, entry, sha, served);
      if (keys === null) continue;
      const deps = this.unchangedFolders(keys, this.began, current);
      if (deps === null) continue;
      let expiresAt = Number.POSITIVE_INFINITY;
      for (const key of keys) expiresAt = Math.min(expiresAt, served.get(key)!);
      const mark = this.markOf(h.file, this.started);
      if (mark === null) continue;
      let pending = this.pending.get(dir);
      if (!pending) this.pending.set(dir, (pending = { entries: [], chars: 0 }));
      pending.entries.push({
        name: basenamePath(h.file.path),
        meta: { ident: fileIdent(h.file, mark), expiresAt, deps, facts: skeletonOf(record) },
        body: text,
      });
      pending.chars += text.length;
    }
    // A folder's pack is written when its last file is built, or when what waits for it grows
    // large (a flat folder of many thousands): once per folder, not once per part it spans.
    for (const dir of touched) {
      const pending = this.pending.get(dir);
      if (pending && ((this.remaining.get(dir) ?? 0) <= 0 || pending.chars >= PENDING_PACK_CHARS)) this.flushFolder(dir);
    }
  }

  /** Writes what still waits (folders whose last files had no SHA-256, or a stop): after the last part. */
  finish(): void {
    // Deleting the entry being visited is safe while iterating a Map.
    for (const dir of this.pending.keys()) this.flushFolder(dir);
  }

  private flushFolder(dir: string): void {
    const pending = this.pending.get(dir);
    this.pending.delete(dir);
    if (pending && pending.entries.length > 0) this.rewrite(dir, pending.entries);
  }

  /** The folder's pack with the records that held in this run, then `added` (which replace any of the same name). */
  private rewrite(dir: string, added: readonly NewEntry[]): void {
    const valid = this.validNames(dir);
    const addedNames = new Set(added.map((e) => e.name));
    const kept: NewEntry[] = [];
    if (valid.size > 0) {
      const old = this.packs.read(dir);
      if (old !== null && old.fp === this.fp) {
        for (const name of valid) {
          const e = old.entries.get(name);
          if (e && !addedNames.has(name)) kept.push(e);
        }
      }
    }
    this.packs.write(dir, this.fp, [...kept, ...added]);
    for (const name of addedNames) valid.add(name);
    this.stored += added.length;
  }

  /**
   * The metadata-cache keys the record was built from, every one served from the cache in this
   * part; null when one was not (fetched now, or never read).
   */
  private dependencies(record: FileRecord, entry: LookupEntry, sha: string, served: ReadonlyMap<string, number>): string[] | null {
    const keys = [versionKeyBySha256(sha)];
    // Read when the SHA-256 was not found (or matched by AutoV3): then its answer shaped the record.
    const autov3 = normalizeAutov3(record.hashes.autov3);
    if (autov3 !== null && served.has(versionKeyByAutov3(autov3))) keys.push(versionKeyByAutov3(autov3));
    const modelIds = new Set(entry.models.keys());
    const own = record.civitai?.modelId;
    if (this.details && typeof own === "number") modelIds.add(own);
    for (const id of modelIds) keys.push(modelKey(id));
    return keys.every((k) => served.has(k)) ? keys : null;
  }

  /**
   * The folders of `keys` with their stamps now (`current` keeps them for the part), when none was
   * written since RACY_WINDOW_MS before `began`: a write moves a folder's mtime to the time of the
   * write, so an mtime that old means nothing changed in it since the entries were read, with
   * room for a coarse clock's tick. No snapshot of every folder is taken up front (768 stats per
   * scan, however small).
   */
  private unchangedFolders(keys: readonly string[], began: number, current: Map<string, FolderStamp | null>): Dep[] | null {
    const missing = [...new Set(keys.map(keyFolder))].filter((f) => !current.has(f));
    if (missing.length > 0) for (const [f, stamp] of this.metaCache.folderStamps(missing) ?? []) current.set(f, stamp);
    const out: Dep[] = [];
    for (const folder of new Set(keys.map(keyFolder))) {
      const now = current.get(folder);
      if (!now || now.mtimeMs > began - RACY_WINDOW_MS) return null;
      out.push([folder, now.stamp]);
    }
    return out;
  }
}

/** The runs of files in one folder, in order (a folder's files are together unless a subfolder's come between). */
function folderRuns(files: readonly FoundFile[]): { dir: string; from: number; to: number }[] {
  const runs: { dir: string; from: number; to: number }[] = [];
  for (let i = 0; i < files.length; i++) {
    const dir = dirnamePath(files[i]!.path);
    const last = runs[runs.length - 1];
    if (last !== undefined && last.dir === dir) last.to = i + 1;
    else runs.push({ dir, from: i, to: i + 1 });
  }
  return runs;
}
