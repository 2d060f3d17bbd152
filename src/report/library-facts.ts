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

/** One record index, or several once a second one comes: most hashes and versions have one file. */
type Indices = number | number[];

function push(list: Indices, i: number): Indices {
  if (typeof list === "number") return [list, i];
  list.push(i);
  return list;
}

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

interface VersionHeld {
  versionName: string | null;
  files: Indices;
}

interface ModelHeld {
  name: string | null;
  type: string | null;
  versions: Indices;
}

/**
 * Builds the facts from records given one at a time, each with its index in path order. They may
 * come in any order (scan adds them as their lookups finish): lists are put in path order by
 * index in `finish`. Files are kept as indices, not records or paths: `finish` is given the path of
 * an index. A path given twice is noticed only when the two come one after the other (a file
 * source read in path order; a scan never lists a path twice).
 */
export class FactsBuilder {
  private files = 0;
  private bytes = 0;
  private byStatus = Object.fromEntries(RECORD_STATUSES.map((s) => [s, 0])) as Record<RecordStatus, number>;
  private byType = new Map<string, Count>();
  private byBase = new Map<string, Count>();
  private byTypeAndBase = new Map<string, Map<string, Count>>();
  private bySha = new Map<string, ShaGroup>();
  private versions = new Map<number, VersionHeld>();
  private models = new Map<number, ModelHeld>();
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

  /** Indices and rows in path order (they already are unless records came out of order). */
  private sortAll(): void {
    if (!this.unordered) return;
    const sortList = (list: Indices) => (typeof list === "number" ? list : list.sort((a, b) => a - b));
    for (const g of this.bySha.values()) g.files = sortList(g.files);
    for (const v of this.versions.values()) v.files = sortList(v.files);
    for (const list of [this.updates, this.gone, this.warnings]) list.sort((a, b) => a.index - b.index);
  }

  private addCopy(record: FileRecord, size: number | null, index: number): void {
    // Any record with a SHA-256 counts, whatever Civitai said: the same bytes twice are a copy even
    // offline or when nobody knows the model (a skipped record without a hash is left out).
    const sha = record.hashes?.sha256;
    if (typeof sha !== "string" || sha === "") return;
    const group = this.bySha.get(sha);
    if (!group) this.bySha.set(sha, { size, files: index });
    else group.files = push(group.files, index);
  }

  private addVersion(record: FileRecord, index: number): void {
    const c = record.civitai;
    if ((record.status !== "found" && record.status !== "gone") || !c || typeof c.modelId !== "number") return;
    const held = this.versions.get(c.versionId);
    if (!held) this.versions.set(c.versionId, { versionName: c.versionName ?? null, files: index });
    else held.files = push(held.files, index);
    const model = this.models.get(c.modelId);
    if (!model) this.models.set(c.modelId, { name: c.modelName ?? null, type: c.modelType ?? null, versions: c.versionId });
    else if (!all(model.versions).includes(c.versionId)) model.versions = push(model.versions, c.versionId);
  }

  /** The facts; `pathOf(i)` is the path of the record given with index `i`. */
  finish(pathOf: (index: number) => string): Facts {
    this.sortAll();
    const rows = (list: Noted[]) => list.map((n) => n.row);
    const paths = (list: Indices, max: number) => all(list).slice(0, max).map(pathOf);
    const duplicateSets: DuplicateSet[] = [];
    let files = 0;
    let reclaimable = 0;
    for (const [sha256, g] of this.bySha) {
      const copies = count(g.files);
      if (copies < 2) continue;
      const reclaimableBytes = g.size === null ? 0 : (copies - 1) * g.size;
      duplicateSets.push({ sha256, size: g.size, copies, paths: paths(g.files, LISTED_PATHS + 1), reclaimableBytes });
      files += copies;
      reclaimable += reclaimableBytes;
    }
    duplicateSets.sort((a, b) => b.reclaimableBytes - a.reclaimableBytes || compareByteOrder(a.paths[0]!, b.paths[0]!));
    const severalVersions: HeldModel[] = [];
    for (const [modelId, m] of this.models) {
      if (count(m.versions) < 2) continue;
      const versions = [...all(m.versions)]
        .sort((a, b) => a - b)
        .map((versionId) => {
          const v = this.versions.get(versionId)!;
          return { versionId, versionName: v.versionName, path: pathOf(first(v.files)), files: count(v.files) };
        });
      severalVersions.push({ modelId, modelName: m.name, modelType: m.type, versions });
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
    const out = new Facts(facts, this.bySha, this.versions, this.models, pathOf);
    // The rows keep the records' update objects: give them `inLibrary` too, then count what is left to fetch.
    for (const row of facts.updates) if (row.update) row.update = out.withHeld(row.update);
    facts.updatesToFetch = facts.updates.filter((r) => r.update?.sameBaseModel && r.update.sameBaseModel.inLibrary.length === 0).length;
    return out;
  }
}

/** The facts, and what `decorate` needs to give each record its library-wide fields. */
export class Facts {
  constructor(
    readonly facts: LibraryFacts,
    private readonly bySha: ReadonlyMap<string, ShaGroup>,
    private readonly versions: ReadonlyMap<number, VersionHeld>,
    private readonly models: ReadonlyMap<number, ModelHeld>,
    private readonly pathOf: (index: number) => string,
  ) {}

  private held(v: NewerVersion): NewerVersion {
    const files = this.versions.get(v.versionId)?.files;
    return { ...v, inLibrary: files === undefined ? [] : all(files).slice(0, LISTED_PATHS).map(this.pathOf) };
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
    const group = sha !== undefined ? this.bySha.get(sha) : undefined;
    const model = modelId !== null ? this.models.get(modelId) : undefined;
    return hasUpdate || (group !== undefined && count(group.files) > 1) || (model !== undefined && count(model.versions) > 1);
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
    const copies = group !== undefined && count(group.files) > 1;
    const versions = c && model && count(model.versions) > 1;
    // Nothing to add, replace or drop (most records of a library): the record as it is, not a copy.
    if (!copies && !versions && !record.update && !("duplicate" in record) && !("otherVersions" in record)) return record;
    const { duplicate: _d, otherVersions: _o, ...rest } = record;
    const out: FileRecord = rest;
    if (group && copies) {
      // A path is no longer than the others: the first LISTED_PATHS + 1 hold LISTED_PATHS others.
      const others = all(group.files)
        .slice(0, LISTED_PATHS + 1)
        .map(this.pathOf)
        .filter((p) => p !== record.path);
      out.duplicate = { copies: count(group.files), others: others.slice(0, LISTED_PATHS) };
    }
    if (c && model && versions) {
      out.otherVersions = [...all(model.versions)]
        .filter((v) => v !== c.versionId)
        .sort((a, b) => a - b)
        .slice(0, LISTED_PATHS)
        .map((versionId) => {
          const v = this.versions.get(versionId)!;
          return { versionId, versionName: v.versionName, path: this.pathOf(first(v.files)) };
        });
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
