import { HASH_ALGOS } from "../scan/types.ts";
import type { Inventory, InventoryHead } from "./inventory-types.ts";
import { memorySource, type InventorySource } from "./inventory-read.ts";
import { compareByteOrder } from "../scan/path-filter.ts";
import { escapeJsonControls } from "../shared/format.ts";
import { CIVITAI_HASH_ORDER } from "../civitai/lean.ts";
import { isMarkedInOrder } from "./in-order.ts";

/**
 * The JSON inventory (docs/report-format.md, docs/report.schema.json): the Inventory as is, with
 * keys in a fixed order and records sorted by path in byte order, so the same inventory always
 * gives the same bytes (diffable between scans, stable in tests).
 */

/** How to order one object: known keys first in this order, then any other key in byte order. */
interface KeyOrder {
  keys: readonly string[];
  /** Order for the value of a key (an object, or each element of an array of objects). */
  children?: Readonly<Record<string, KeyOrder>>;
}

/** Free-form maps (hash name → hex): no known key beyond what `keys` lists, the rest sorted. */
const HASHES: KeyOrder = { keys: HASH_ALGOS };
const CIVITAI_HASHES: KeyOrder = { keys: CIVITAI_HASH_ORDER };

const ACCESS: KeyOrder = { keys: ["kind", "endsAt", "permanent"] };

const NEWER_VERSION: KeyOrder = {
  keys: ["versionId", "name", "baseModel", "publishedAt", "access", "inLibrary", "pageUrl"],
  children: { access: ACCESS },
};

const MATCHED_FILE: KeyOrder = {
  keys: ["id", "name", "sizeKB", "type", "primary", "format", "fp", "size", "hashes"],
  children: { hashes: CIVITAI_HASHES },
};

const CIVITAI_INFO: KeyOrder = {
  keys: [
    "modelId",
    "modelName",
    "modelType",
    "versionId",
    "versionName",
    "baseModel",
    "baseModelType",
    "trainedWords",
    "nsfw",
    "nsfwLevel",
    "availability",
    "createdAt",
    "updatedAt",
    "publishedAt",
    "description",
    "creator",
    "tags",
    "license",
    "pageUrl",
    "air",
    "matchedFile",
    "downloadUrl",
    "primaryDownloadUrl",
    "previewImageUrl",
    "images",
    "access",
  ],
  children: {
    images: { keys: ["url", "nsfwLevel", "width", "height", "type"] },
    access: ACCESS,
    availability: { keys: ["archived", "takenDown", "earlyAccess", "paidAccess"] },
    license: { keys: ["allowNoCredit", "allowCommercialUse", "allowDerivatives", "allowDifferentLicense"] },
    matchedFile: MATCHED_FILE,
  },
};

const SIDECAR_IDENTITY: KeyOrder = {
  keys: [
    "source",
    "file",
    "checkedBy",
    "modelId",
    "modelName",
    "modelType",
    "versionId",
    "versionName",
    "baseModel",
    "trainedWords",
    "creator",
    "nsfw",
    "deleted",
    "pageUrl",
  ],
};

const SIDECAR_INFO: KeyOrder = {
  keys: [
    "source",
    "file",
    "status",
    "error",
    "modelId",
    "versionId",
    "modelName",
    "versionName",
    "modelType",
    "baseModel",
    "trainedWords",
    "tags",
    "creator",
    "nsfw",
    "description",
    "size",
    "files",
    "deleted",
    "activationText",
    "preferredWeight",
    "negativeText",
    "notes",
    "sdVersion",
  ],
  children: { files: { keys: ["name", "sizeKB", "primary", "sha256", "autov2", "autov3", "blake3", "crc32"] } },
};

const LOCAL: KeyOrder = {
  keys: [
    "format",
    "formatMismatch",
    "bytesRead",
    "header",
    "tensors",
    "guess",
    "training",
    "modelspec",
    "embeddedHashes",
    "gguf",
    "zip",
    "sidecars",
    "errors",
    "warnings",
  ],
  children: {
    header: { keys: ["length", "dataOffset", "metadataCount", "metadata"] },
    tensors: { keys: ["count", "dtypes", "parameters"] },
    guess: { keys: ["guessed", "kind", "subtype", "family", "confidence", "evidence"] },
    training: {
      keys: [
        "outputName",
        "baseModelVersion",
        "sourceModelName",
        "sourceModelHash",
        "networkModule",
        "networkDim",
        "networkAlpha",
        "networkArgs",
        "resolution",
        "epoch",
        "numEpochs",
        "steps",
        "maxTrainSteps",
        "clipSkip",
        "numTrainImages",
        "learningRate",
        "optimizer",
        "mixedPrecision",
        "trainingStartedAt",
        "trainingFinishedAt",
        "comment",
        "topTags",
        "classTokens",
      ],
      children: { topTags: { keys: ["tag", "count"] } },
    },
    modelspec: {
      keys: [
        "specVersion",
        "architecture",
        "implementation",
        "title",
        "author",
        "description",
        "triggerPhrase",
        "license",
        "date",
        "resolution",
        "usageHint",
        "tags",
        "predictionType",
      ],
    },
    embeddedHashes: { keys: ["key", "value", "autov3"] },
    gguf: { keys: ["version", "tensorCount", "kvCount", "architecture", "name", "fileType", "metadata", "truncated"] },
    zip: { keys: ["firstEntry", "torch"] },
    sidecars: SIDECAR_INFO,
  },
};

const RECORD: KeyOrder = {
  keys: [
    "path",
    "aliases",
    "size",
    "mtime",
    "hashes",
    "hashSource",
    "status",
    "error",
    "reason",
    "matchedBy",
    "host",
    "knownFrom",
    "civitai",
    "ambiguous",
    "sidecar",
    "local",
    "gone",
    "update",
    "duplicate",
    "otherVersions",
  ],
  children: {
    hashes: HASHES,
    civitai: CIVITAI_INFO,
    ambiguous: CIVITAI_INFO,
    sidecar: SIDECAR_IDENTITY,
    local: LOCAL,
    gone: { keys: ["reason", "lastSeenAt"] },
    update: { keys: ["sameBaseModel", "newest"], children: { sameBaseModel: NEWER_VERSION, newest: NEWER_VERSION } },
    duplicate: { keys: ["copies", "others"] },
    otherVersions: { keys: ["versionId", "versionName", "path"] },
  },
};

const INVENTORY: KeyOrder = {
  keys: ["schemaVersion", "generatedAt", "tool", "roots", "options", "summary", "records"],
  children: {
    tool: { keys: ["name", "version"] },
    options: {
      keys: [
        "apiUrl",
        "fallbackUrl",
        "offline",
        "details",
        "refresh",
        "extensions",
        "exclude",
        "algos",
        "trustSidecars",
        "localMetadata",
        "nsfwLevel",
        // Added after the rest, and so written last (where byte order put them before they were listed).
        "sharedCache",
        "useIndex",
      ],
    },
    summary: {
      keys: ["files", "byStatus", "bytes", "durationMs", "requests", "cacheHits", "duplicates", "changes"],
      children: {
        byStatus: { keys: ["found", "gone", "not_found", "error", "skipped"] },
        cacheHits: { keys: ["hashes", "metadata", "records"] },
        duplicates: { keys: ["sets", "files", "reclaimableBytes", "modelsWithSeveralVersions"] },
        changes: {
          keys: ["previous", "added", "removed", "moved", "changed", "statusChanged", "gone", "found", "updates", "unchanged"],
          children: { previous: { keys: ["generatedAt", "files"] } },
        },
      },
    },
    records: RECORD,
  },
};

/** A KeyOrder ready to use: where each known key goes, and the order for its value. */
interface Plan {
  keys: readonly string[];
  rank: ReadonlyMap<string, number>;
  /** The order for the value of `keys[i]`. */
  children: readonly Plan[];
}

const plans = new WeakMap<KeyOrder, Plan>();
const NO_ORDER: KeyOrder = { keys: [] };

function planOf(order: KeyOrder): Plan {
  let plan = plans.get(order);
  if (plan) return plan;
  const rank = new Map(order.keys.map((key, i) => [key, i]));
  const children: Plan[] = [];
  plan = { keys: order.keys, rank, children };
  plans.set(order, plan);
  for (const key of order.keys) children.push(planOf(order.children?.[key] ?? NO_ORDER));
  return plan;
}

const NO_PLAN = planOf(NO_ORDER);

const isObject = (value: unknown): value is object => value !== null && typeof value === "object";

/** Set while a test asks whether a builder's marked object really is in order (civitaiOutOfOrder). */
let checkingMarks = false;

/** Set per render: something made a key of Object.prototype enumerable, so for…in would list it. */
let prototypeHasKeys = false;

/**
 * `value` with its keys (and its children's) in `plan`: known keys in that order, then any other
 * key in byte order (keys a newer pipeline adds, kept for forward compatibility); arrays keep their
 * order. Copy on write: an object or array already in order (as most parts of a record are built)
 * is returned as it is, and only the objects above a part that had to be reordered are copied, into
 * ordinary objects (which the engine's JSON.stringify writes several times faster than objects
 * without a prototype). Either way JSON.stringify of the result is the same text. An object a
 * builder marked as already in order (in-order.ts) is taken as it is, without a look inside.
 */
function ordered(value: unknown, plan: Plan): unknown {
  if (!isObject(value)) return value;
  if (isMarkedInOrder(value) && !checkingMarks) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const done = ordered(item, plan);
      if (done !== item && !out) out = value.slice(0, i);
      if (out) out[i] = done;
    }
    return out ?? value;
  }
  const source = value as Record<string, unknown>;
  // Another prototype (a Date, …) may have its own toJSON: copied, as plain data, like before.
  const proto: unknown = Object.getPrototypeOf(source);
  if ((proto !== Object.prototype && proto !== null) || prototypeHasKeys) return reordered(source, Object.keys(source), plan);
  const { rank, children } = plan;
  // for…in: the own keys in Object.keys order (a plain object inherits none), without an array per object.
  // Checked before copying anything: a child copied and then dropped would be copied twice.
  let last = -1;
  for (const key in source) {
    const at = rank.get(key);
    if (at === undefined || at < last) return reordered(source, Object.keys(source), plan);
    last = at;
  }
  let out: Record<string, unknown> | undefined;
  for (const key in source) {
    const child = source[key];
    const done = ordered(child, children[rank.get(key)!]!);
    if (done !== child && !out) {
      out = {};
      for (const before in source) {
        if (before === key) break;
        out[before] = source[before];
      }
    }
    if (out) out[key] = done;
  }
  return out ?? source;
}

/** `ordered` of an object whose keys are not in order, or not all known. */
function reordered(source: Record<string, unknown>, names: readonly string[], plan: Plan): Record<string, unknown> {
  const { keys, rank, children } = plan;
  const known: number[] = [];
  const rest: string[] = [];
  for (const key of names) {
    const at = rank.get(key);
    if (at === undefined) rest.push(key);
    else known.push(at);
  }
  known.sort((a, b) => a - b);
  rest.sort(compareByteOrder);
  const out: Record<string, unknown> = {};
  for (const at of known) out[keys[at]!] = ordered(source[keys[at]!], children[at]!);
  for (const key of rest) {
    const child = ordered(source[key], NO_PLAN);
    // A `__proto__` key from a hand-edited file stays a plain key, not a prototype.
    if (key === "__proto__") Object.defineProperty(out, key, { value: child, enumerable: true, writable: true, configurable: true });
    else out[key] = child;
  }
  return out;
}

const CIVITAI_PLAN = planOf(CIVITAI_INFO);
const LOCAL_PLAN = planOf(LOCAL);

/**
 * A record's `local` part in the report's key order (a copy where it was not): the hash cache keeps
 * header facts in this order, so a record read back from it renders without being walked.
 */
export function localInReportOrder<T extends object>(local: T): T {
  return ordered(local, LOCAL_PLAN) as T;
}

/** Whether a record's `civitai` part is not in the report's key order, marks ignored: for the builder's test. */
export function civitaiOutOfOrder(value: object): boolean {
  checkingMarks = true;
  try {
    return ordered(value, CIVITAI_PLAN) !== value;
  } finally {
    checkingMarks = false;
  }
}

const HEAD = planOf({ keys: INVENTORY.keys.filter((k) => k !== "records"), children: INVENTORY.children });
const RECORD_PLAN = planOf(RECORD);

/**
 * A record's JSON on one line, as the records array holds it: exactly what jsonChunks writes for it
 * (record-spill.ts and the record packs keep records in this form).
 */
export function recordText(record: unknown): string {
  return escapeJsonControls(JSON.stringify(ordered(record, RECORD_PLAN)));
}

/**
 * The inventory as JSON with a trailing newline, in pieces (the head, then one record at a time), so
 * a 100,000-record inventory is never one string (issue 11, target 2). The head is indented by two
 * spaces; each record is one line of compact JSON in the records array. A record a line is a third
 * smaller than indenting it (whitespace was 35 % of a 100,000-record inventory), faster to write and
 * to parse, and a line-based `diff` or `grep` of two inventories shows whole files. Keys are in a
 * fixed order and records by path: the same inventory always gives the same bytes (diffable between
 * scans, stable in tests). JSON escapes C0 controls itself; DEL, C1, U+2028/U+2029 and bidi
 * controls are written as `\u` escapes too (escapeJsonControls), so `cat` of the file runs nothing
 * and no record spans two lines, and a name's raw bytes appear as `\udcXX` (docs/report-format.md).
 */
export function* jsonChunks(src: InventorySource): Generator<string | Uint8Array> {
  checkPrototype();
  const head: InventoryHead = src.head;
  const text = escapeJsonControls(JSON.stringify(ordered(head, HEAD), null, 2));
  // The head without its closing brace; "records" is the last key of the fixed order.
  yield `${text.slice(0, text.length - 2)},\n  "records": [`;
  let first = true;
  // A source that holds its records already rendered (a scan's spill) hands out their text.
  for (const record of src.recordTexts?.() ?? recordTexts(src)) {
    yield first ? "\n    " : ",\n    ";
    yield record;
    first = false;
  }
  yield first ? "]\n}\n" : "\n  ]\n}\n";
}

function* recordTexts(src: InventorySource): Generator<string> {
  for (const record of src.records("path")) yield recordText(record);
}

/** Notes whether something made a key of Object.prototype enumerable (see `ordered`); once per render. */
export function checkPrototype(): void {
  prototypeHasKeys = false;
  for (const _ in {}) prototypeHasKeys = true;
}

/** The whole JSON text of an inventory in memory (tests, small inventories). */
export function renderJson(inventory: Inventory): string {
  return [...jsonChunks(memorySource(inventory))].join("");
}
