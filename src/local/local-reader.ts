/**
 * The local pass over one model file: format by magic bytes, then only the header — for
 * safetensors the first 8 bytes and exactly `n` header bytes, for GGUF a bounded prefix, for a zip
 * its first local header. Pickles and zips are never loaded and nothing is spawned
 * (docs/reliability.md §4.8). Per-file problems land in `LocalInfo.errors`; these functions do not
 * throw for a bad or vanished file, so a scan goes on.
 */
import { open, stat } from "node:fs/promises";
import { basenamePath, dirnamePath, fsPath } from "../shared/fs-path.ts";
import { listNames } from "../shared/fs-names.ts";
import { ByteBudget } from "../shared/byte-budget.ts";
import { errnoCode, errnoOrMessage } from "../shared/errors.ts";
import { detectFormat, FORMAT_PROBE_BYTES, parseZipFirstEntry, ZIP_PROBE_BYTES } from "./file-format.ts";
import { ggmlTypeName, parseGguf } from "./gguf.ts";
import { checkSafetensorsHeader } from "../hash/hash-algos.ts";
import { cutMetadata, extractEmbeddedHashes, extractModelSpec, extractTraining, METADATA_MAX_KEYS } from "./kohya-meta.ts";
import type { LocalInfo, SidecarInfo } from "./local-types.ts";
import type { CachedLocal } from "../hash/hash-entry.ts";
import {
  factsText,
  factsVersion,
  parseSidecarRecords,
  stampOf,
  toCachedLocal,
  usableFacts,
  withoutMetadata,
  type SidecarRecord,
} from "./local-cache.ts";
import { guessModel } from "./model-guess.ts";
import { parseSafetensorsHeader, summariseTensors } from "./safetensors-header.ts";
import { hasListedSidecar, listingHas, parseSidecar, SIDECAR_MAX_BYTES, sidecarPaths, type SidecarKind } from "./sidecars.ts";

/** GGUF metadata sits at the start; LLM vocabularies can be several MB, diffusion GGUFs far less. */
const GGUF_PREFIX_BYTES = 8 * 1024 * 1024;

/**
 * Header bytes read and parsed at once across the local pass (docs/cases.md T13): sixteen headers of a few KB
 * run together, a 100 MB one (the format's limit) runs alone. Parsing holds about the header's own
 * size (json-walk.ts), so the pass peaks near this plus one header.
 */
const HEADER_BYTES_IN_FLIGHT = 64 * 1024 * 1024;

/** The part of a FileHandle the reader uses, so tests can count or fail reads. */
export interface ReadableFile {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

export interface ReadLocalInfoOptions {
  /** Keep the (cut) `__metadata__` values in `header.metadata`; default true. */
  includeMetadata?: boolean;
  /** How much of a GGUF file to read at most; default GGUF_PREFIX_BYTES. */
  ggufPrefixBytes?: number;
  /** Opens the file; default node:fs/promises `open(path, "r")`. */
  openFile?: (path: string) => Promise<ReadableFile>;
  /** Shared by concurrent readers: header bytes are taken from it before they are read. */
  budget?: ByteBudget;
}

const defaultOpen = (path: string): Promise<ReadableFile> => open(fsPath(path), "r");

/** Reads up to `length` bytes at `position`, looping over short reads; a shorter result means EOF. */
async function readAt(file: ReadableFile, position: number, length: number, counter: { bytes: number }): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  const got = await readInto(file, buffer, 0, position, counter);
  return got === length ? buffer : buffer.subarray(0, got);
}

/** Fills `buffer` from `offset` on with the file's bytes at `position`; returns how many came (fewer at EOF). */
async function readInto(
  file: ReadableFile,
  buffer: Uint8Array,
  offset: number,
  position: number,
  counter: { bytes: number },
): Promise<number> {
  const length = buffer.length - offset;
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(buffer, offset + got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  counter.bytes += got;
  return got;
}

/** The first `length` bytes of the file, reusing the probe already read (no byte is read twice). */
async function extendProbe(file: ReadableFile, probe: Uint8Array, length: number, counter: { bytes: number }): Promise<Uint8Array> {
  if (length <= probe.length) return probe.subarray(0, length);
  const rest = await readAt(file, probe.length, length - probe.length, counter);
  const out = new Uint8Array(probe.length + rest.length);
  out.set(probe);
  out.set(rest, probe.length);
  return out;
}

/**
 * Everything the file says about itself. `size` is the size the caller saw (the walker's stat);
 * a file that is shorter when read gives an "incomplete header" error, not a throw.
 */
export async function readLocalInfo(path: string, size: number, options: ReadLocalInfoOptions = {}): Promise<LocalInfo> {
  const info: LocalInfo = { format: "unknown", bytesRead: 0, errors: [], warnings: [] };
  const counter = { bytes: 0 };
  let file: ReadableFile;
  try {
    file = await (options.openFile ?? defaultOpen)(path);
  } catch (err) {
    info.errors.push(`cannot open the file (${errnoOrMessage(err)})`);
    return info;
  }
  try {
    const probe = await readAt(file, 0, Math.min(size, FORMAT_PROBE_BYTES), counter);
    const detection = detectFormat(probe, path, size);
    info.format = detection.format;
    if (detection.mismatch) {
      info.formatMismatch = detection.mismatch;
      info.warnings.push(detection.mismatch);
    }
    switch (detection.format) {
      case "safetensors":
        await readSafetensors(file, probe, size, info, counter, options.includeMetadata ?? true, options.budget);
        break;
      case "gguf": {
        const length = Math.min(size, options.ggufPrefixBytes ?? GGUF_PREFIX_BYTES);
        const release = await options.budget?.acquire(length);
        try {
          readGguf(await extendProbe(file, probe, length, counter), size, info);
        } finally {
          release?.();
        }
        break;
      }
      case "zip":
        info.zip = parseZipFirstEntry(await extendProbe(file, probe, Math.min(size, ZIP_PROBE_BYTES), counter));
        break;
      case "pickle":
        break;
      case "unknown":
        // A safetensors name on content we do not recognise: say what is wrong with it as one.
        if (detection.expected?.includes("safetensors")) {
          const check = checkSafetensorsHeader(probe, size);
          info.errors.push(`invalid safetensors: ${check.ok ? "not a JSON object" : check.reason}`);
        } else if (detection.expected?.includes("gguf")) info.errors.push("invalid GGUF: bad magic");
        break;
    }
  } catch (err) {
    info.errors.push(`read failed (${errnoOrMessage(err)})`);
  } finally {
    info.bytesRead = counter.bytes;
    await file.close().catch(() => undefined);
  }
  return info;
}

async function readSafetensors(
  file: ReadableFile,
  probe: Uint8Array,
  size: number,
  info: LocalInfo,
  counter: { bytes: number },
  includeMetadata: boolean,
  budget: ByteBudget | undefined,
): Promise<void> {
  // Length rules first (docs/cases.md E1–E4): BigInt compares against 100 MB and the file size, before allocating.
  const check = checkSafetensorsHeader(probe, size);
  if (!check.ok) {
    info.errors.push(`invalid safetensors: ${check.reason}`);
    return;
  }
  const release = await budget?.acquire(check.headerLength);
  try {
    await readSafetensorsHeader(file, probe, size, info, counter, includeMetadata, check);
  } finally {
    release?.();
  }
}

async function readSafetensorsHeader(
  file: ReadableFile,
  probe: Uint8Array,
  size: number,
  info: LocalInfo,
  counter: { bytes: number },
  includeMetadata: boolean,
  check: { headerLength: number; dataOffset: number },
): Promise<void> {
  const n = check.headerLength;
  const header = new Uint8Array(n);
  const fromProbe = Math.min(probe.length - 8, n);
  header.set(probe.subarray(8, 8 + fromProbe));
  // Read straight into the header buffer: a 100 MB header must not be held twice.
  if (n > fromProbe && (await readInto(file, header, fromProbe, 8 + fromProbe, counter)) !== n - fromProbe) {
    info.errors.push("invalid safetensors: incomplete header (the file ends inside it)");
    return;
  }
  const parsed = parseSafetensorsHeader(header, BigInt(size) - BigInt(check.dataOffset));
  info.errors.push(...parsed.errors);
  info.warnings.push(...parsed.warnings);
  const meta = parsed.metadata ?? Object.create(null);
  info.header = { length: n, dataOffset: check.dataOffset, metadataCount: parsed.metadataCount };
  if (includeMetadata && parsed.metadata) {
    info.header.metadata = cutMetadata(meta);
    if (info.header.metadataCount > METADATA_MAX_KEYS)
      info.warnings.push(`__metadata__ has ${info.header.metadataCount} entries; the first ${METADATA_MAX_KEYS} are kept`);
  }
  if (parsed.tensors.length > 0) info.tensors = summariseTensors(parsed.tensors);

  const training = extractTraining(meta);
  if (training) info.training = training;
  const modelspec = extractModelSpec(meta);
  if (modelspec) info.modelspec = modelspec;
  const embedded = extractEmbeddedHashes(meta);
  if (embedded.hashes.length > 0) info.embeddedHashes = embedded.hashes;
  info.warnings.push(...embedded.warnings);
  if (parsed.tensors.length > 0 || modelspec || training) {
    info.guess = guessModel(parsed.tensors, {
      baseModelVersion: training?.baseModelVersion ?? null,
      architecture: modelspec?.architecture ?? null,
      networkModule: training?.networkModule ?? null,
    });
  }
}

function readGguf(prefix: Uint8Array, size: number, info: LocalInfo): void {
  const parsed = parseGguf(prefix);
  info.errors.push(...parsed.errors);
  info.warnings.push(...parsed.warnings);
  if (!parsed.summary) return;
  info.gguf = parsed.summary;
  if (parsed.summary.truncated) {
    if (prefix.length < size) info.warnings.push(`GGUF header longer than the ${prefix.length}-byte read limit: partly read`);
    else info.errors.push("invalid GGUF: the file ends inside its header");
  }
  const complete = parsed.tensors.length === parsed.summary.tensorCount;
  // ggml lists dimensions innermost first; PyTorch order is what the guess expects.
  const tensors = parsed.tensors.map((t) => ({ name: t.name, shape: [...t.shape].reverse(), dtype: ggmlTypeName(t.type) }));
  if (complete && tensors.length > 0) info.tensors = summariseTensors(tensors);
  if (tensors.length > 0 || parsed.summary.architecture) {
    info.guess = guessModel(tensors, { architecture: parsed.summary.architecture });
  }
}

export interface ReadSidecarsOptions {
  /** Largest sidecar read; default SIDECAR_MAX_BYTES. */
  maxBytes?: number;
  openFile?: (path: string) => Promise<ReadableFile>;
  /** Names in the model's folder, when the caller listed it: absent names are not stat'ed. */
  dirEntries?: ReadonlySet<string>;
}

export interface ReadSidecarsResult {
  sidecars: SidecarInfo[];
  /** Sidecars present but not read (too large, not a regular file, unreadable). */
  warnings: string[];
  bytesRead: number;
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads `<base>.civitai.info`, `<base>.metadata.json`, `<base>.cm-info.json` and `<base>.json`
 * beside `modelPath`, each at most `maxBytes`. Missing files are simply absent from the result.
 */
export async function readSidecars(modelPath: string, options: ReadSidecarsOptions = {}): Promise<ReadSidecarsResult> {
  const maxBytes = options.maxBytes ?? SIDECAR_MAX_BYTES;
  const result: ReadSidecarsResult = { sidecars: [], warnings: [], bytesRead: 0 };
  const counter = { bytes: 0 };
  for (const { path, kind } of sidecarPaths(modelPath)) {
    if (path === modelPath) continue;
    const name = basenamePath(path);
    if (options.dirEntries && !options.dirEntries.has(name)) continue;
    let st;
    try {
      st = await stat(fsPath(path));
    } catch (err) {
      const code = errnoCode(err);
      if (code !== "ENOENT" && code !== "ENOTDIR") {
        result.warnings.push(`${path}: cannot read sidecar (${errnoOrMessage(err)})`);
      }
      continue;
    }
    const read = await readOneSidecar(path, kind, st, maxBytes, options.openFile, counter);
    if ("warning" in read) result.warnings.push(read.warning);
    else result.sidecars.push(read.info);
  }
  result.bytesRead = counter.bytes;
  return result;
}

/** One sidecar whose stat the caller has: its parsed info, or why it was not read. */
async function readOneSidecar(
  path: string,
  kind: SidecarKind,
  st: { isFile(): boolean; size: number | bigint },
  maxBytes: number,
  openFile: ((path: string) => Promise<ReadableFile>) | undefined,
  counter: { bytes: number },
): Promise<{ info: SidecarInfo } | { warning: string }> {
  const name = basenamePath(path);
  // A FIFO or device named like a sidecar must not block or stream forever.
  if (!st.isFile()) return { warning: `${path}: sidecar is not a regular file; ignored` };
  const size = Number(st.size);
  if (size > maxBytes) return { warning: `${path}: sidecar larger than ${maxBytes} bytes; ignored` };
  let file: ReadableFile | null = null;
  try {
    file = await (openFile ?? defaultOpen)(path);
    // One byte more than expected tells a file that grew since stat (another tool writing it).
    const bytes = await readAt(file, 0, size + 1, counter);
    if (bytes.length > size) return { warning: `${path}: sidecar changed while read; ignored` };
    let text: string;
    try {
      text = STRICT_UTF8.decode(bytes);
    } catch {
      return { info: { ...parseSidecar(kind, name, ""), status: "invalid", error: "not valid UTF-8" } };
    }
    return { info: parseSidecar(kind, name, text) };
  } catch (err) {
    return { warning: `${path}: cannot read sidecar (${errnoOrMessage(err)})` };
  } finally {
    await file?.close().catch(() => undefined);
  }
}

/** Files read at once by the local pass: enough to keep the disk queue busy, few open descriptors. */
const LOCAL_PASS_CONCURRENCY = 16;

export interface LocalPassItem {
  path: string;
  /** Size the walker saw. */
  size: number;
}

export interface LocalPassOptions {
  concurrency?: number;
  /** Header bytes read and parsed at once; default HEADER_BYTES_IN_FLIGHT. */
  headerBytesInFlight?: number;
  /** Keep the cut `__metadata__` values (`header.metadata`); default false: reports stay compact. */
  includeMetadata?: boolean;
  /** Also read the sidecars beside each file; default true. */
  sidecars?: boolean;
  signal?: AbortSignal;
}

export interface LocalPassResult {
  /** One per item, same order; `sidecars` set when any was found. */
  infos: LocalInfo[];
  /** Sidecars present but not read (too large, not a regular file, unreadable). */
  warnings: string[];
  /** Header bytes read from the model files (what the benchmark checks: Σ 8 + n for safetensors). */
  bytesRead: number;
  sidecarBytesRead: number;
}

/**
 * The local pass of a scan: header and sidecars of many files with bounded concurrency. Each
 * folder is listed once, so a library of 10,000 files costs no 40,000 stat calls for sidecars that
 * are not there.
 */
export async function readLocalPass(items: readonly LocalPassItem[], options: LocalPassOptions = {}): Promise<LocalPassResult> {
  const concurrency = Math.max(1, options.concurrency ?? LOCAL_PASS_CONCURRENCY);
  const withSidecars = options.sidecars ?? true;
  const result: LocalPassResult = { infos: Array.from({ length: items.length }), warnings: [], bytesRead: 0, sidecarBytesRead: 0 };
  const listings = new Map<string, Promise<ReadonlySet<string> | undefined>>();
  const budget = new ByteBudget(options.headerBytesInFlight ?? HEADER_BYTES_IN_FLIGHT);
  const listing = (dir: string) => {
    let p = listings.get(dir);
    if (!p) {
      // Unlistable folder: fall back to a stat per sidecar name (undefined = no listing).
      p = listNames(dir).then(
        (names) => new Set(names) as ReadonlySet<string>,
        () => undefined,
      );
      listings.set(dir, p);
    }
    return p;
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      options.signal?.throwIfAborted();
      const index = next++;
      const item = items[index]!;
      const info = await readLocalInfo(item.path, item.size, { includeMetadata: options.includeMetadata ?? false, budget });
      result.bytesRead += info.bytesRead;
      if (withSidecars) {
        const side = await readSidecars(item.path, { dirEntries: await listing(dirnamePath(item.path)) });
        if (side.sidecars.length > 0) info.sidecars = side.sidecars;
        result.warnings.push(...side.warnings);
        result.sidecarBytesRead += side.bytesRead;
      }
      result.infos[index] = info;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return result;
}

export interface LocalFactsItem {
  path: string;
  /** Size the walker saw. */
  size: number;
  /**
   * What the hash cache holds for this exact file state, or null: its facts version and whether it
   * recorded sidecars. The text is loaded (options.loadCached) only when it must be looked at.
   */
  cached: { version: number; sidecars: boolean } | null;
}

export interface LocalFactsOptions {
  /** Keep the cut `__metadata__` values (`header.metadata`). */
  includeMetadata: boolean;
  /**
   * Names the walk kept from each folder listing (at least every sidecar name), by folder path: a
   * folder listed there needs no stat per sidecar name. Absent folders are asked name by name.
   */
  names?: ReadonlyMap<string, readonly string[]>;
  /** Applied to each sidecar read, before it is used and cached (scan cuts descriptions). */
  prepareSidecar?: (info: SidecarInfo) => SidecarInfo;
  /** The cached local section of item `index` (whose `cached` is set). */
  loadCached?: (index: number) => CachedLocal | null;
  concurrency?: number;
  headerBytesInFlight?: number;
  signal?: AbortSignal;
}

export interface LocalFactsResult {
  /**
   * Per item: the facts (its local section without sidecars) as JSON, or null when the cached ones
   * hold unchanged (still in the cache, not loaded here).
   */
  facts: (string | null)[];
  /** Per item: the sidecars beside it, when there are any. */
  sidecars: (SidecarInfo[] | undefined)[];
  /** Per item: what to store in the hash cache, or null when the cached form still holds. */
  store: (CachedLocal | null)[];
  warnings: string[];
  /** Header bytes read from model files (0 for a run where every header was cached). */
  bytesRead: number;
  /** Model files whose header was read (the others came from the cache). */
  headersRead: number;
}

/**
 * The local pass of a scan with the hash cache: a file whose facts are cached for its exact state
 * is not opened; its sidecars are read again only when one appeared, vanished or changed (size,
 * mtime, ctime or inode), which costs one stat per sidecar present and nothing when there is none.
 */
export async function readLocalFacts(items: readonly LocalFactsItem[], options: LocalFactsOptions): Promise<LocalFactsResult> {
  const n = items.length;
  const result: LocalFactsResult = {
    facts: Array.from({ length: n }, () => null),
    sidecars: Array.from({ length: n }, () => undefined),
    store: Array.from({ length: n }, () => null),
    warnings: [],
    bytesRead: 0,
    headersRead: 0,
  };
  const budget = new ByteBudget(options.headerBytesInFlight ?? HEADER_BYTES_IN_FLIGHT);
  const one = async (index: number): Promise<void> => {
    const item = items[index]!;
    const loaded = item.cached && usableFacts(item.cached, options.includeMetadata) ? (options.loadCached?.(index) ?? null) : null;
    const cached = loaded && usableFacts(loaded, options.includeMetadata) ? loaded : null;
    let facts: string;
    let changed = false;
    if (cached) {
      facts = options.includeMetadata || cached.version === factsVersion(false) ? cached.facts : withoutMetadata(cached.facts);
    } else {
      const info = await readLocalInfo(item.path, item.size, { includeMetadata: options.includeMetadata, budget });
      result.bytesRead += info.bytesRead;
      result.headersRead++;
      facts = factsText(info);
      changed = true;
    }
    const previous = cached ? parseSidecarRecords(cached.sidecars) : null;
    const side = await refreshSidecars(item.path, previous, options, result.warnings);
    if (side.records.length > 0) result.sidecars[index] = side.records.map((r) => r.info);
    result.facts[index] = facts;
    if (changed || side.changed) result.store[index] = toCachedLocal(facts, options.includeMetadata, side.records);
  };
  // A cached file with no sidecar before and none listed now is settled here, without a promise:
  // that is nearly every file of a warm run (a promise each cost ~9 µs, 0.9 s at 100,000 files).
  const slow: number[] = [];
  for (let i = 0; i < n; i++) {
    const item = items[i]!;
    const cached = item.cached;
    if (cached && !cached.sidecars && options.includeMetadata === false && cached.version === factsVersion(false)) {
      const listed = options.names?.get(dirnamePath(item.path));
      // Unchanged: result.facts[i] stays null.
      if (listed && !hasListedSidecar(listed, item.path)) continue;
    }
    slow.push(i);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < slow.length) {
      options.signal?.throwIfAborted();
      await one(slow[next++]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, options.concurrency ?? LOCAL_PASS_CONCURRENCY), slow.length) }, worker));
  return result;
}

/**
 * The sidecars beside `modelPath` now: a cached record is kept when its file is still there with the
 * same stamp; any other sidecar is read. `changed` says whether the records differ from `previous`.
 */
async function refreshSidecars(
  modelPath: string,
  previous: readonly SidecarRecord[] | null,
  options: LocalFactsOptions,
  warnings: string[],
): Promise<{ records: SidecarRecord[]; changed: boolean }> {
  const listed = options.names?.get(dirnamePath(modelPath));
  const records: SidecarRecord[] = [];
  let changed = previous === null;
  const counter = { bytes: 0 };
  for (const { path, kind } of sidecarPaths(modelPath)) {
    if (path === modelPath) continue;
    const name = basenamePath(path);
    // By a set: a folder of 30,000 models with a sidecar each lists 60,000 names, searched ~6 times per model.
    if (listed && !listingHas(listed, name)) continue;
    let st;
    try {
      st = await stat(fsPath(path), { bigint: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code !== "ENOENT" && code !== "ENOTDIR") warnings.push(`${path}: cannot read sidecar (${errnoOrMessage(err)})`);
      continue;
    }
    const stamp = stampOf(st);
    const kept = previous?.find((r) => r.file === name && r.stamp === stamp);
    if (kept) {
      records.push(kept);
      continue;
    }
    changed = true;
    const read = await readOneSidecar(path, kind, st, SIDECAR_MAX_BYTES, undefined, counter);
    if ("warning" in read) warnings.push(read.warning);
    else records.push({ file: name, stamp, info: options.prepareSidecar ? options.prepareSidecar(read.info) : read.info });
  }
  // One that vanished (or is no longer read) changes the set too.
  if (!changed && previous && previous.length !== records.length) changed = true;
  return { records, changed };
}
