/**
 * What a report says about the library as a whole, gathered in one pass over the records (in path
 * order) and kept small (a few strings per file), so 100,000 records fit in memory while the
 * records themselves stream (issue 11, target 2):
 * - counts by status, by type and by base model, and bytes;
 * - copies: files with the same SHA-256 (records are one per inode: links are `aliases`), and the
 *   bytes deleting all but one would free;
 * - several versions of one Civitai model held in the library;
 * - the short lists a reader acts on: updates, files gone from Civitai, header warnings.
 * `decorate` then gives each record its `duplicate`, `otherVersions` and `update.inLibrary`, so a
 * record reads the same whether it was just scanned or re-rendered from an older inventory. Pure.
 */
import type { DuplicateSummary } from "./inventory-types.ts";
import { RECORD_STATUSES, type FileRecord, type HeldVersion, type RecordStatus } from "./record-types.ts";
import type { NewerVersion, UpdateInfo } from "./updates.ts";
import { compareByteOrder } from "../scan/path-filter.ts";

/** Paths listed per group of copies, per held version, per `inLibrary`: enough to act on, bounded. */
const LISTED_PATHS = 20;

export interface Count {
  files: number;
  bytes: number;
}

/** Files with the same bytes. */
interface DuplicateSet {
  sha256: string;
  size: number | null;
  copies: number;
  /** The first LISTED_PATHS + 1 paths, byte order. */
  paths: string[];
  /** The other names (hard and soft links) of each of `paths`: deleting one name of several frees nothing. */
  aliases: string[][];
  /** `(copies - 1) × size`. */
  reclaimableBytes: number;
}

interface HeldModel {
  modelId: number;
  modelName: string | null;
  modelType: string | null;
  versions: (HeldVersion & { files: number })[];
}

/** A record in short, for the lists at the end of a report (updates, gone, warnings). */
export interface NoteRow {
  path: string;
  aliases: string[];
  size: number | null;
  modelId: number | null;
  modelName: string | null;
  modelType: string | null;
  versionId: number | null;
  versionName: string | null;
  baseModel: string | null;
  pageUrl: string | null;
  update?: UpdateInfo;
  gone?: FileRecord["gone"];
  warnings: string[];
}

export interface LibraryFacts {
  files: number;
  bytes: number;
  byStatus: Record<RecordStatus, number>;
  /** Found and gone files by Civitai's model type, and by type then base model. */
  byType: Map<string, Count>;
  byBase: Map<string, Count>;
  byTypeAndBase: Map<string, Map<string, Count>>;
  duplicateSets: DuplicateSet[];
  severalVersions: HeldModel[];
  duplicates: DuplicateSummary;
  /** Files with a newer version (of any base model), path order. */
  updates: NoteRow[];
  /** How many of them have a same-base-model update the library does not hold (`--fail-on update`). */
  updatesToFetch: number;
  gone: NoteRow[];
  /** Files whose header or format gave a warning or an error, path order. */
  warnings: NoteRow[];
  /** Paths listed twice (an inventory edited or merged by hand), at most LISTED_PATHS. */
  repeatedPaths: string[];
}

/** The section label of a record's model type; files Civitai does not type get one of their own. */
export const UNKNOWN_TYPE = "Unknown type";
export const UNKNOWN_BASE = "Unknown base model";

/** Type and base model of a found or gone record (the key of its Markdown section). */
export function typeAndBase(record: FileRecord): { type: string; base: string } | null {
  if ((record.status !== "found" && record.status !== "gone") || !record.civitai) return null;
  const c = record.civitai;
  const type = typeof c.modelType === "string" && c.modelType.trim() !== "" ? c.modelType : UNKNOWN_TYPE;
  const base = typeof c.baseModel === "string" && c.baseModel.trim() !== "" ? c.baseModel : UNKNOWN_BASE;
  return { type, base };
}

function bump(map: Map<string, Count>, key: string, size: number | null): void {
  const c = map.get(key) ?? { files: 0, bytes: 0 };
  c.files++;
  if (size !== null) c.bytes += size;
  map.set(key, c);
}

function sizeOf(record: FileRecord): number | null {
  return typeof record.size === "number" && Number.isFinite(record.size) ? record.size : null;
}

/** Header problems worth a reader's attention: a format that contradicts the name, unreadable headers. */
function warningsOf(record: FileRecord): string[] {
  const local = record.local;
  if (!local) return [];
  const out: string[] = [];
  if (local.formatMismatch) out.push(local.formatMismatch);
  for (const e of local.errors ?? []) out.push(e);
  return out;
}

function noteRow(record: FileRecord, warnings: string[]): NoteRow {
  const c = record.civitai;
  const row: NoteRow = {
    path: record.path,
    aliases: record.aliases ?? [],
    size: sizeOf(record),
    modelId: c?.modelId ?? null,
    modelName: c?.modelName ?? null,
    modelType: c?.modelType ?? null,
    versionId: c?.versionId ?? null,
    versionName: c?.versionName ?? null,
    baseModel: c?.baseModel ?? null,
    pageUrl: c?.pageUrl ?? null,
    warnings,
  };
  if (record.update) row.update = record.update;
  if (record.gone) row.gone = record.gone;
  return row;
}

/** One record index, or several: the files of a group of copies or of a held version. */
type Indices = number | number[];

const count = (list: Indices) => (typeof list === "number" ? 1 : list.length);
const first = (list: Indices) => (typeof list === "number" ? list : list[0]!);
const all = (list: Indices) => (typeof list === "number" ? [list] : list);

/** A row of the short lists, with the index that puts it in path order. */
interface Noted {
  index: number;
  row: NoteRow;
}

interface ShaGroup {
  size: number | null;
  files: Indices;
}

interface ModelHeld {
  name: string | null;
  type: string | null;
  /** Its versions held, ascending. */
  versions: number[];
}

/** A growable column of numbers, one slot per record index (NaN: none). */
class NumberColumn {
  values = new Float64Array(1024).fill(Number.NaN);

  set(index: number, value: number): void {
    if (index >= this.values.length) {
      const grown = new Float64Array(Math.max(index + 1, this.values.length * 2)).fill(Number.NaN);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[index] = value;
  }

  get(index: number): number {
    return index < this.values.length ? this.values[index]! : Number.NaN;
  }
}

/**
 * Builds the facts from records given one at a time, each with its index in path order. They may
 * come in any order (scan adds them as their lookups finish): lists are put in path order by
 * index in `finish`. Files are kept as indices, not records or paths: `finish` is given the path of
 * an index. A path given twice is noticed only when the two come one after the other (a file
 * source read in path order; a scan never lists a path twice).
 *
 * Per record it keeps a few numbers and references to strings the record already had (SHA-256,
 * model and version names), in columns; copies and held versions are found in `finish` by
 * sorting. A map entry and an object per SHA-256, version and model (three of each per file in a
 * library of distinct models) were ~35 MB of a warm 100,000-file scan's peak.
 */
export class FactsBuilder {
  private files = 0;
  private bytes = 0;
  private byStatus = Object.fromEntries(RECORD_STATUSES.map((s) => [s, 0])) as Record<RecordStatus, number>;
  private byType = new Map<string, Count>();
  private byBase = new Map<string, Count>();
  private byTypeAndBase = new Map<string, Map<string, Count>>();
  /** Per index: SHA-256 (records with one), size, and the version held (found or gone records). */
  private readonly sha: (string | undefined)[] = [];
  /** Per index with a SHA-256 and other names: its record's `aliases` (few files have links). */
  private readonly aliasesOf = new Map<number, string[]>();
  private readonly size = new NumberColumn();
  private readonly modelId = new NumberColumn();
  private readonly versionId = new NumberColumn();
  /** Per index with a version held: the names its record gives (three columns, no object per file). */
  private readonly modelName: (string | null)[] = [];
  private readonly modelType: (string | null)[] = [];
  private readonly versionName: (string | null)[] = [];
  /** Indices added with a SHA-256 / with a version held. */
  private readonly withSha: number[] = [];
  private readonly withVersion: number[] = [];
  private updates: Noted[] = [];
  private gone: Noted[] = [];
  private warnings: Noted[] = [];
  /** Some index came after a higher one: the lists need sorting in `finish`. */
  private unordered = false;
  private lastIndex = -1;
  private lastPath: string | null = null;
  private repeated: string[] = [];

  add(record: FileRecord, index: number): void {
    this.files++;
    if (index < this.lastIndex) this.unordered = true;
    this.lastIndex = index;
    const size = sizeOf(record);
    if (size !== null) this.bytes += size;
    if (Object.hasOwn(this.byStatus, record.status)) this.byStatus[record.status]++;
    if (this.lastPath === record.path && this.repeated.length < LISTED_PATHS) this.repeated.push(record.path);
    this.lastPath = record.path;
    const tb = typeAndBase(record);
    if (tb) {
      bump(this.byType, tb.type, size);
      bump(this.byBase, tb.base, size);
      let bases = this.byTypeAndBase.get(tb.type);
      if (!bases) this.byTypeAndBase.set(tb.type, (bases = new Map()));
      bump(bases, tb.base, size);
    }
    this.addCopy(record, size, index);
    this.addVersion(record, index);
    const warnings = warningsOf(record);
    if (record.update) this.updates.push({ index, row: noteRow(record, warnings) });
    if (record.status === "gone") this.gone.push({ index, row: noteRow(record, warnings) });
    if (warnings.length > 0) this.warnings.push({ index, row: noteRow(record, warnings) });
  }

  private addCopy(record: FileRecord, size: number | null, index: number): void {
    // Any record with a SHA-256 counts, whatever Civitai said: the same bytes twice are a copy even
    // offline or when nobody knows the model (a skipped record without a hash is left out).
    const sha = record.hashes?.sha256;
    if (typeof sha !== "string" || sha === "") return;
    this.sha[index] = sha;
    if (Array.isArray(record.aliases) && record.aliases.length > 0) this.aliasesOf.set(index, record.aliases);
    if (size !== null) this.size.set(index, size);
    this.withSha.push(index);
  }

  private addVersion(record: FileRecord, index: number): void {
    const c = record.civitai;
    if ((record.status !== "found" && record.status !== "gone") || !c || typeof c.modelId !== "number") return;
    // A version is a number in every record we write; one without (an inventory edited by hand) holds none.
    if (typeof c.versionId !== "number") return;
    this.modelId.set(index, c.modelId);
    this.versionId.set(index, c.versionId);
    this.modelName[index] = c.modelName ?? null;
    this.modelType[index] = c.modelType ?? null;
    this.versionName[index] = c.versionName ?? null;
    this.withVersion.push(index);
  }

  /** The facts; `pathOf(i)` is the path of the record given with index `i`. */
  finish(pathOf: (index: number) => string): Facts {
    if (this.unordered) for (const list of [this.updates, this.gone, this.warnings]) list.sort((a, b) => a.index - b.index);
    const rows = (list: Noted[]) => list.map((n) => n.row);
    const bySha = this.copies();
    const duplicateSets: DuplicateSet[] = [];
    let files = 0;
    let reclaimable = 0;
    for (const [sha256, g] of bySha) {
      const copies = count(g.files);
      const reclaimableBytes = g.size === null ? 0 : (copies - 1) * g.size;
      const listed = all(g.files).slice(0, LISTED_PATHS + 1);
      duplicateSets.push({
        sha256,
        size: g.size,
        copies,
        paths: listed.map(pathOf),
        aliases: listed.map((i) => this.aliasesOf.get(i) ?? []),
        reclaimableBytes,
      });
      files += copies;
      reclaimable += reclaimableBytes;
    }
    duplicateSets.sort((a, b) => b.reclaimableBytes - a.reclaimableBytes || compareByteOrder(a.paths[0]!, b.paths[0]!));
    const versions = new HeldVersions(this.withVersion, this.versionId, (i) => this.versionName[i] ?? null);
    const models = this.modelsWithSeveralVersions();
    const severalVersions: HeldModel[] = [];
    for (const [modelId, m] of models) {
      const held = m.versions.map((versionId) => {
        const holding = versions.files(versionId)!;
        return { versionId, versionName: versions.name(versionId), path: pathOf(first(holding)), files: count(holding) };
      });
      severalVersions.push({ modelId, modelName: m.name, modelType: m.type, versions: held });
    }
    severalVersions.sort((a, b) => compareByteOrder(a.modelName ?? "", b.modelName ?? "") || a.modelId - b.modelId);
    const facts: LibraryFacts = {
      files: this.files,
      bytes: this.bytes,
      byStatus: this.byStatus,
      byType: this.byType,
      byBase: this.byBase,
      byTypeAndBase: this.byTypeAndBase,
      duplicateSets,
      severalVersions,
      duplicates: { sets: duplicateSets.length, files, reclaimableBytes: reclaimable, modelsWithSeveralVersions: severalVersions.length },
      updates: rows(this.updates),
      updatesToFetch: 0,
      gone: rows(this.gone),
      warnings: rows(this.warnings),
      repeatedPaths: this.repeated,
    };
    const out = new Facts(facts, bySha, versions, models, pathOf);
    // The rows keep the records' update objects: give them `inLibrary` too, then count what is left to fetch.
    for (const row of facts.updates) if (row.update) row.update = out.withHeld(row.update);
    facts.updatesToFetch = facts.updates.filter((r) => r.update?.sameBaseModel && r.update.sameBaseModel.inLibrary.length === 0).length;
    return out;
  }

  /**
   * The SHA-256s held by two files or more, each with its files in path order and the size of the
   * first: the SHA-256s sorted (the engine's own string order, no comparator called), equal
   * neighbours kept.
   */
  private copies(): Map<string, ShaGroup> {
    const sorted = this.withSha.map((i) => this.sha[i]!).sort();
    const twice = new Set<string>();
    for (let k = 1; k < sorted.length; k++) if (sorted[k] === sorted[k - 1]) twice.add(sorted[k]!);
    const groups = new Map<string, ShaGroup>();
    if (twice.size === 0) return groups;
    for (const i of this.withSha.filter((k) => twice.has(this.sha[k]!)).sort((a, b) => a - b)) {
      const sha = this.sha[i]!;
      const group = groups.get(sha);
      const size = this.size.get(i);
      if (!group) groups.set(sha, { size: Number.isNaN(size) ? null : size, files: i });
      // Pushed, not concatenated: a copy per file made 100,000 copies of one file quadratic.
      else if (typeof group.files === "number") group.files = [group.files, i];
      else group.files.push(i);
    }
    // In the order of their first file, as the report lists them before sorting.
    return new Map([...groups].sort((a, b) => first(a[1].files) - first(b[1].files)));
  }

  /**
   * Models held in two versions or more: the model ids sorted, repeated ones kept, then their
   * versions gathered in path order (name and type from the model's first file).
   */
  private modelsWithSeveralVersions(): Map<number, ModelHeld> {
    const ids = Float64Array.from(this.withVersion, (i) => this.modelId.get(i)).sort();
    const repeated = new Set<number>();
    for (let k = 1; k < ids.length; k++) if (ids[k] === ids[k - 1]) repeated.add(ids[k]!);
    const models = new Map<number, ModelHeld>();
    if (repeated.size === 0) return models;
    // Versions gathered in a set: a model held in 40,000 versions (a hostile inventory or server)
    // made a search of the list per file quadratic.
    const held = new Map<number, Set<number>>();
    for (const i of this.withVersion.filter((k) => repeated.has(this.modelId.get(k))).sort((a, b) => a - b)) {
      const modelId = this.modelId.get(i);
      const versionId = this.versionId.get(i);
      const set = held.get(modelId);
      if (!set) {
        held.set(modelId, new Set([versionId]));
        models.set(modelId, { name: this.modelName[i] ?? null, type: this.modelType[i] ?? null, versions: [] });
      } else set.add(versionId);
    }
    for (const [modelId, model] of models) {
      const versions = held.get(modelId)!;
      if (versions.size < 2) models.delete(modelId);
      else model.versions = [...versions].sort((a, b) => a - b);
    }
    return models;
  }
}

/**
 * Every version held, and its files in path order: the indices sorted by version (then index) once,
 * and a version found by binary search. What `inLibrary` and `otherVersions` read.
 */
class HeldVersions {
  private readonly order: Int32Array;
  private readonly ids: Float64Array;

  constructor(
    indices: readonly number[],
    versionId: NumberColumn,
    private readonly nameOf: (index: number) => string | null,
  ) {
    this.order = Int32Array.from(indices).sort((a, b) => versionId.get(a) - versionId.get(b) || a - b);
    this.ids = Float64Array.from(this.order, (i) => versionId.get(i));
  }

  /** The first position of `versionId` in the order, or -1. */
  private find(versionId: number): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ids[mid]! < versionId) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.ids.length && this.ids[lo] === versionId ? lo : -1;
  }

  /**
   * The files holding `versionId` (the first `max` of them), in path order; undefined when none
   * does. Records ask for a few (`max`): every record of a version held in 40,000 files copying
   * all of them made decorating quadratic.
   */
  files(versionId: number, max = Number.POSITIVE_INFINITY): Indices | undefined {
    const at = this.find(versionId);
    if (at === -1) return undefined;
    let end = at + 1;
    while (end < this.ids.length && end - at < max && this.ids[end] === versionId) end++;
    return end === at + 1 ? this.order[at]! : Array.from(this.order.subarray(at, end));
  }

  /** The version's name as its first file's record gives it. */
  name(versionId: number): string | null {
    const at = this.find(versionId);
    return at === -1 ? null : this.nameOf(this.order[at]!);
  }
}

/** The facts, and what `decorate` needs to give each record its library-wide fields. */
export class Facts {
  constructor(
    readonly facts: LibraryFacts,
    /** Only SHA-256s held by two files or more. */
    private readonly bySha: ReadonlyMap<string, ShaGroup>,
    private readonly versions: HeldVersions,
    /** Only models held in two versions or more. */
    private readonly models: ReadonlyMap<number, ModelHeld>,
    private readonly pathOf: (index: number) => string,
  ) {}

  private held(v: NewerVersion): NewerVersion {
    const files = this.versions.files(v.versionId, LISTED_PATHS);
    return { ...v, inLibrary: files === undefined ? [] : all(files).map(this.pathOf) };
  }

  /** `update` with each version's `inLibrary` from this library. */
  withHeld(update: UpdateInfo): UpdateInfo {
    return { sameBaseModel: update.sameBaseModel ? this.held(update.sameBaseModel) : null, newest: this.held(update.newest) };
  }

  /**
   * Whether `decorate` would change a record with this SHA-256, model (its `civitai.modelId` when
   * found or gone, else null) and `update`, and none of the fields it sets: without reading the
   * record (record-spill.ts). Must agree with `decorate`.
   */
  decorates(sha: string | undefined, modelId: number | null, hasUpdate: boolean): boolean {
    return hasUpdate || (sha !== undefined && this.bySha.has(sha)) || (modelId !== null && this.models.has(modelId));
  }

  /**
   * `record` with `duplicate`, `otherVersions` and `update.inLibrary` as this library says (any
   * such fields it came with are replaced). The input is not modified: it is returned as it is
   * when there is nothing to change, else a copy.
   */
  decorate(record: FileRecord): FileRecord {
    const sha = record.hashes?.sha256;
    const group = typeof sha === "string" ? this.bySha.get(sha) : undefined;
    const c = record.civitai;
    const model =
      c && typeof c.modelId === "number" && (record.status === "found" || record.status === "gone")
        ? this.models.get(c.modelId)
        : undefined;
    // Nothing to add, replace or drop (most records of a library): the record as it is, not a copy.
    if (!group && !model && !record.update && !("duplicate" in record) && !("otherVersions" in record)) return record;
    const { duplicate: _d, otherVersions: _o, ...rest } = record;
    const out: FileRecord = rest;
    if (group) {
      // A path is no longer than the others: the first LISTED_PATHS + 1 hold LISTED_PATHS others.
      const others = all(group.files)
        .slice(0, LISTED_PATHS + 1)
        .map(this.pathOf)
        .filter((p) => p !== record.path);
      out.duplicate = { copies: count(group.files), others: others.slice(0, LISTED_PATHS) };
    }
    if (c && model) {
      // The versions are sorted once (modelsWithSeveralVersions): the first LISTED_PATHS others, not a sort per record.
      const others: number[] = [];
      for (const v of model.versions) {
        if (others.length === LISTED_PATHS) break;
        if (v !== c.versionId) others.push(v);
      }
      out.otherVersions = others.map((versionId) => ({
        versionId,
        versionName: this.versions.name(versionId),
        path: this.pathOf(first(this.versions.files(versionId, 1)!)),
      }));
    }
    if (record.update) out.update = this.withHeld(record.update);
    return out;
  }
}

/** The facts of records already in memory (scan, tests): sorted by path first, as a file source is. */
export function factsOf(records: readonly FileRecord[]): Facts {
  const builder = new FactsBuilder();
  const sorted = [...records].sort((a, b) => compareByteOrder(a.path, b.path));
  sorted.forEach((r, i) => builder.add(r, i));
  return builder.finish((i) => sorted[i]!.path);
}
