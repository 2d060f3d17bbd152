/**
 * One metadata-cache entry as stored: its shape, and the check that turns stored JSON back into an
 * entry (or nothing). Pure: the cache (meta-cache.ts), the pruner (meta-cache-prune.ts) and, later,
 * a store shared between machines all judge entries with `parseMetaEntry`, so they agree on what
 * is usable. It trusts nothing it reads: every field is type-checked, and an entry that contradicts
 * its own key (a version whose files do not hold the hash it is keyed by, a model of another id)
 * is rejected whole.
 */
import { parseKey, type ParsedKey } from "./cache-keys.ts";
import { leanFileHash, usableAutov3 } from "./civitai-record.ts";
import { isObject, parseLeanModel, parseLeanVersion, type LeanModel, type LeanVersion } from "./lean.ts";
import type { MatchedBy } from "../report/record-types.ts";

/**
 * 3: lean answers (lean.ts), sharded keys, not-found repeat counts and `lastFound` (issue 11).
 * Entries live under `v3:<scope>:`. Format 2 (`v2:<scope>:`, raw API objects) and format 1
 * (`version:sha256:<hex>` at the top) are never read again; `cache prune` removes them.
 */
export const ENTRY_VERSION = 3;
/** Entry files end so; anything else in the folder is not ours to read. */
export const ENTRY_EXT = ".json";
/**
 * A file larger than this is not an entry of ours and is not read: ours are a few KB (a model with
 * 1,000 versions ~300 KB; every text and list in them is bounded, docs/cases.md B13).
 */
export const MAX_ENTRY_BYTES = 16 * 1024 * 1024;
export const HOST_RE = /^https?:\/\/[A-Za-z0-9.-]+(?::\d+)?$/;
/** Far more than Civitai ever returns for one hash; a longer list is not ours. */
const MAX_CANDIDATES = 50;
/** The longest TTL a config may set is 365 d; an entry claiming more was not written by us. */
const MAX_LIFETIME_MS = 400 * 24 * 60 * 60 * 1000;

/** What Civitai answered for one hash: its candidates (first = the match) and how they matched. */
export interface VersionAnswer {
  versions: LeanVersion[];
  matchedBy: MatchedBy;
  /** Origin that answered. */
  host?: string;
  /** For a SHA-256 key matched by AutoV3: the AutoV3 that matched (the versions' files hold it). */
  autov3?: string;
  /**
   * Civitai tied the hash to this version, but the version's `files` do not list the file: an
   * archived model lists no file, a non-public file is left out (docs/civitai-api.md §3.1).
   */
  unlisted?: true;
}

/** The last found answer kept in a not-found entry, `at` = when it was last seen (epoch ms). */
export interface LastFound extends VersionAnswer {
  at: number;
}

interface Envelope {
  v: typeof ENTRY_VERSION;
  /** The API bases the answer came from (cache-keys.ts cacheScope). */
  scope: string;
  /** The key the entry was written under: an entry copied to another key is not its answer. */
  key: string;
  storedAt: number;
  expiresAt: number;
}

type VersionFoundEntry = Envelope & { kind: "found" } & VersionAnswer;
interface VersionNotFoundEntry extends Envelope {
  kind: "not_found";
  /** How many not-found answers in a row (the TTL grows with it). */
  misses: number;
  /** For a SHA-256 key: the AutoV3 asked too and not found; null = the file has none. Absent = not asked. */
  autov3?: string | null;
  lastFound?: LastFound;
}
interface ModelFoundEntry extends Envelope {
  kind: "found";
  model: LeanModel;
}
interface ModelNotFoundEntry extends Envelope {
  kind: "not_found";
  misses: number;
}
export type VersionEntry = VersionFoundEntry | VersionNotFoundEntry;
export type ModelEntry = ModelFoundEntry | ModelNotFoundEntry;
export type MetaEntry = VersionEntry | ModelEntry;

export interface ParseExpectations {
  /** The key it was read under (must equal the entry's own). */
  key?: string;
  /** The scope of the reader (must equal the entry's own). */
  scope?: string;
  /**
   * The API bases of that scope: an answer (or last found answer) naming any other origin is
   * rejected. For entries another machine wrote (the shared store), whose `host` ends up in records.
   */
  hosts?: readonly string[];
}

/**
 * A stored entry if `raw` is one (JSON text, bytes, or already-parsed JSON) and consistent in
 * every part; else null. Freshness is not judged here (`isFresh`): an expired entry still carries
 * history (repeat count, last found answer).
 */
export function parseMetaEntry(raw: unknown, expect: ParseExpectations = {}): MetaEntry | null {
  const value = asJson(raw);
  if (!isObject(value) || value.v !== ENTRY_VERSION) return null;
  const e = value;
  if (typeof e.scope !== "string" || e.scope === "" || e.scope.length > 300) return null;
  if (expect.scope !== undefined && e.scope !== expect.scope) return null;
  if (expect.key !== undefined && e.key !== expect.key) return null;
  const key = parseKey(e.key);
  if (key === null) return null;
  if (!isTime(e.storedAt) || !isTime(e.expiresAt) || e.expiresAt < e.storedAt || e.expiresAt - e.storedAt > MAX_LIFETIME_MS) return null;
  const envelope: Envelope = { v: ENTRY_VERSION, scope: e.scope, key: e.key as string, storedAt: e.storedAt, expiresAt: e.expiresAt };
  if (expect.hosts !== undefined && !hostsAllowed(e, expect.hosts)) return null;
  if (e.kind === "not_found") return parseNotFound(e, envelope, key);
  if (e.kind !== "found") return null;
  if (key.kind === "model") {
    const model = parseLeanModel(e.model);
    return model !== null && model.id === key.id ? { ...envelope, kind: "found", model } : null;
  }
  const answer = parseAnswer(e, key);
  return answer === null ? null : { ...envelope, kind: "found", ...answer };
}

/** The entry's `host` and its last found answer's, where present, are among `hosts`. */
function hostsAllowed(e: Record<string, any>, hosts: readonly string[]): boolean {
  const last = isObject(e.lastFound) ? e.lastFound : {};
  return [e.host, last.host].every((host) => host === undefined || hosts.includes(host));
}

/**
 * How far ahead of our clock an entry may say it was stored (another machine's clock, on a shared
 * cache or Redis) and still be served.
 */
const FUTURE_SLACK_MS = 60_000;

/**
 * True while the entry may be served: before `expiresAt`, and not stored ahead of our clock. An
 * entry from a clock a year ahead (or written before the clock was set back) would otherwise be
 * served for a year, not for its 7 (or 3, 7, 30) days.
 */
export function isFresh(entry: MetaEntry, now: number): boolean {
  return now < entry.expiresAt && !storedInFuture(entry, now);
}

/** Stored by a clock ahead of ours: never served, and `cache prune` removes it. */
export function storedInFuture(entry: MetaEntry, now: number): boolean {
  return entry.storedAt > now + FUTURE_SLACK_MS;
}

function parseNotFound(e: Record<string, any>, envelope: Envelope, key: ParsedKey): MetaEntry | null {
  if (!Number.isInteger(e.misses) || e.misses < 1 || e.misses > 1_000_000) return null;
  // An answer in a not-found entry is a contradiction (a half-rewritten or forged entry).
  if (["versions", "model", "matchedBy", "host", "unlisted"].some((k) => e[k] !== undefined)) return null;
  if (key.kind === "model")
    return e.autov3 === undefined && e.lastFound === undefined ? { ...envelope, kind: "not_found", misses: e.misses } : null;
  const entry: VersionNotFoundEntry = { ...envelope, kind: "not_found", misses: e.misses };
  if (e.autov3 !== undefined) {
    if (key.kind !== "sha256" || (e.autov3 !== null && usableAutov3(e.autov3) !== e.autov3)) return null;
    entry.autov3 = e.autov3;
  }
  if (e.lastFound !== undefined) {
    const last = isObject(e.lastFound) ? e.lastFound : null;
    const answer = last && parseAnswer(last, key);
    if (!last || !answer || !isTime(last.at) || last.at > envelope.storedAt) return null;
    entry.lastFound = { at: last.at, ...answer };
  }
  return entry;
}

/**
 * The answer part of a found entry (or of `lastFound`), checked against the key: each candidate
 * must hold the hash the entry is keyed by (or, matched by AutoV3, the AutoV3 it names).
 */
function parseAnswer(e: Record<string, any>, key: ParsedKey): VersionAnswer | null {
  if (key.kind === "model") return null;
  if (!Array.isArray(e.versions) || e.versions.length === 0 || e.versions.length > MAX_CANDIDATES) return null;
  const versions: LeanVersion[] = [];
  const ids = new Set<number>();
  for (const item of e.versions) {
    const version = parseLeanVersion(item);
    if (version === null || ids.has(version.id)) return null;
    ids.add(version.id);
    versions.push(version);
  }
  if (e.matchedBy !== "sha256" && e.matchedBy !== "autov3") return null;
  if (e.host !== undefined && (typeof e.host !== "string" || !HOST_RE.test(e.host))) return null;
  if (e.unlisted !== undefined && e.unlisted !== true) return null;
  const answer: VersionAnswer = { versions, matchedBy: e.matchedBy };
  if (e.host !== undefined) answer.host = e.host;
  const holds = (name: string, hex: string) => versions.every((v) => v.files.some((f) => leanFileHash(f, name) === hex));
  if (key.kind === "autov3") {
    // Keyed by an AutoV3: found by it, and every candidate lists a file with it.
    if (e.matchedBy !== "autov3" || e.unlisted !== undefined || (e.autov3 !== undefined && e.autov3 !== key.hex)) return null;
    return holds("AutoV3", key.hex) ? answer : null;
  }
  if (e.matchedBy === "autov3") {
    const autov3 = usableAutov3(e.autov3);
    if (autov3 === null || autov3 !== e.autov3 || e.unlisted !== undefined || !holds("AutoV3", autov3)) return null;
    return { ...answer, autov3 };
  }
  if (e.autov3 !== undefined) return null;
  if (e.unlisted === true) {
    // One version Civitai named for this hash whose list really lacks it (else `unlisted` is a lie).
    const listed = versions.some((v) => v.files.some((f) => leanFileHash(f, "SHA256") === key.hex));
    return versions.length === 1 && !listed ? { ...answer, unlisted: true } : null;
  }
  return holds("SHA256", key.hex) ? answer : null;
}

function asJson(raw: unknown): unknown {
  let text: string;
  if (typeof raw === "string") text = raw;
  else if (raw instanceof Uint8Array) text = new TextDecoder().decode(raw);
  else return raw;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}
