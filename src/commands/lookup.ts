import { redact } from "../shared/redact.ts";
import { ApiError, type CivitaiApi } from "../civitai/api-types.ts";
import type { ApiModelVersion } from "../civitai/civitai-types.ts";
import { defineCommand } from "citty";
import { listsShortHash, toCivitaiFields } from "../civitai/civitai-record.ts";
import { leanModel, leanVersion, type LeanModel } from "../civitai/lean.ts";
import { AppError, EXIT, UsageError } from "../shared/errors.ts";
import type { CivitaiInfo, MatchedBy, RecordStatus } from "../report/record-types.ts";
import { lookupFiles } from "../civitai/lookup.ts";
import { checkedVersion } from "../civitai/lookup/checked-version.ts";
import { escapeControl, plural } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { apiArgs, createApiContext } from "./_api.ts";
import { withInterrupt } from "./_interrupt.ts";
import { configuredCacheDirArg, globalArgs, hashingArgs } from "./_shared.ts";
import { writeStdout } from "../shared/stdio.ts";
import { describeSource, parseDownloadSource, type DownloadSource } from "../download/download-sources.ts";
import { NAME } from "../version.ts";

const HEX_RE = /^[0-9a-fA-F]+$/;

interface HashLookupRecord {
  hash: string;
  status: RecordStatus;
  matchedBy?: MatchedBy | "hash";
  host?: string;
  error?: string;
  reason?: string;
  civitai?: CivitaiInfo;
  ambiguous?: CivitaiInfo[];
}

/** For a model or version URL, AIR or version id given to lookup: which command takes it. */
function sourceHint(arg: string): string {
  let source: DownloadSource;
  try {
    source = parseDownloadSource(arg);
  } catch {
    return "";
  }
  if (source.kind !== "version" && source.kind !== "model") return "";
  return `. It names Civitai's ${describeSource(source)}, which lookup does not take: ${NAME} download "${escapeControl(arg)}" --dry-run --dest DIR shows its file`;
}

export default defineCommand({
  meta: {
    name: "lookup",
    description:
      "Look up hashes on Civitai without files and print their records as JSON (SHA-256 in bulk and cached; AutoV1/V2/V3, CRC32 one by one)",
  },
  args: {
    ...globalArgs,
    hashes: { type: "positional", required: false, description: "Hashes (hex)", valueHint: "hash..." },
    ...apiArgs,
    "cache-dir": configuredCacheDirArg,
    cache: hashingArgs.cache,
  },
  async run({ args }) {
    const hashes = args._.map((h) => h.trim());
    if (hashes.length === 0) throw new UsageError("lookup needs at least one hash, e.g. civitai-meta lookup 5b4cd3d7db");
    for (const h of hashes) {
      if (!HEX_RE.test(h) || ![8, 10, 12, 64].includes(h.length)) {
        throw new UsageError(
          `"${escapeControl(h)}" is not a hash Civitai knows: expected hex of 64 (SHA-256), 12 (AutoV3), 10 (AutoV2) or 8 (AutoV1, CRC32) digits${sourceHint(h)}`,
        );
      }
    }
    await withInterrupt(async (signal) => {
      const ctx = createApiContext(args, signal);
      try {
        const hosts = { primary: ctx.settings.primary, ...(ctx.settings.fallback ? { fallback: ctx.settings.fallback } : {}) };
        const sha256s = hashes.filter((h) => h.length === 64).map((h) => h.toLowerCase());
        const result = await lookupFiles(
          sha256s.map((sha256) => ({ sha256 })),
          { api: ctx.client, cache: ctx.metaCache, hosts },
          {
            details: args.details !== false,
            offline: args.offline === true,
            refresh: args.refresh === true,
            concurrency: ctx.concurrency,
            signal,
          },
        );
        const records: HashLookupRecord[] = [];
        /** Why model details could not be fetched, per short hash found without them. */
        const shortDetailsErrors: string[] = [];
        // A fallback the SHA-256 lookup found failing is not asked again for the short hashes.
        const fallbackState: FallbackState = result.fallbackFailure === undefined ? {} : { failure: result.fallbackFailure };
        for (const raw of hashes) {
          const hash = raw.toLowerCase();
          if (hash.length === 64) {
            const e = result.entries.get(hash);
            if (!e) continue;
            records.push(toRecord(hash, e.status, e.versions, e.models, e.host, e.error, e.matchedBy));
            continue;
          }
          // Short hashes cannot go in the bulk POST and are not cached: 8 hex digits collide across types.
          if (args.offline) {
            records.push({ hash, status: "skipped", reason: "offline: short hashes are not cached" });
            continue;
          }
          records.push(await shortHashRecord(ctx.client, hosts, hash, fallbackState, args.details !== false, shortDetailsErrors));
        }
        writeStdout(`${JSON.stringify(records, null, 2)}\n`);
        const errors = records.filter((r) => r.status === "error");
        for (const r of errors) logger.error(`${r.hash}: ${r.error}`);
        if (result.stopped && result.stopped.kind !== "aborted") throw new AppError(result.stopped.message, { exitCode: EXIT.failure });
        const lacking = reportLackingDetails([
          ...[...result.entries.values()].flatMap((e) => (e.status === "found" && e.detailsError !== undefined ? [e.detailsError] : [])),
          ...shortDetailsErrors,
        ]);
        process.exitCode = errors.length > 0 || lacking > 0 ? EXIT.failure : EXIT.ok;
      } finally {
        await ctx.close();
      }
    });
  },
});

/**
 * The record of one short hash (AutoV1/V2/V3, CRC32), asked by GET, with its model's details unless
 * `withDetails` is false. As for SHA-256s (docs/cases.md B12), a version found whose details cannot
 * be fetched stays found, and why goes into `detailsErrors` for the run to say once.
 */
async function shortHashRecord(
  client: Pick<CivitaiApi, "versionByHash" | "modelsByIds">,
  hosts: { primary: string; fallback?: string },
  hash: string,
  fallbackState: FallbackState,
  withDetails: boolean,
  detailsErrors: string[],
): Promise<HashLookupRecord> {
  try {
    const hit = await askShortHash(client, hosts, hash, fallbackState);
    const version = hit?.version ?? null;
    const host = hit?.host ?? hosts.primary;
    const models = new Map<number, LeanModel>();
    if (version && withDetails && typeof version.modelId === "number") {
      try {
        for (const m of await client.modelsByIds(host, [version.modelId])) models.set(m.id, leanModel(m));
      } catch (error) {
        detailsErrors.push((error as Error).message);
      }
    }
    const found = version !== null;
    return toRecord(
      hash,
      found ? "found" : "not_found",
      found ? [leanVersion(version)] : [],
      models,
      found ? host : undefined,
      undefined,
      "hash",
    );
  } catch (error) {
    return { hash, status: "error", error: (error as Error).message };
  }
}

interface FallbackState {
  /** Why the fallback host was dropped for the rest of the run, once a request to it failed. */
  failure?: string;
}

/**
 * One short hash on the primary, then on the fallback. An answer that lists no file with the hash
 * is no match (docs/cases.md B7), so the fallback is asked as for a miss. A fallback that fails
 * (down, blocked) is dropped for the rest of the run, as the SHA-256 lookup drops it: each later
 * miss is an error saying it was not checked, not another round of retries against it.
 */
async function askShortHash(
  client: Pick<CivitaiApi, "versionByHash">,
  hosts: { primary: string; fallback?: string },
  hash: string,
  state: FallbackState,
): Promise<{ version: ApiModelVersion; host: string } | null> {
  const ask = async (at: string) => {
    // Checked as the scan checks it: an id that is no Civitai id would make up page and download URLs.
    const answer = checkedVersion(await client.versionByHash(at, hash), at);
    return answer && listsShortHash(leanVersion(answer), hash) ? answer : null;
  };
  const first = await ask(hosts.primary);
  if (first) return { version: first, host: hosts.primary };
  const { fallback } = hosts;
  if (fallback === undefined || fallback === hosts.primary) return null;
  if (state.failure === undefined) {
    try {
      const second = await ask(fallback);
      return second ? { version: second, host: fallback } : null;
    } catch (err) {
      // Ctrl-C and a rate limit stop as usual; anything else drops the fallback.
      if (!(err instanceof ApiError) || err.kind === "aborted" || err.kind === "rate_limited") throw err;
      state.failure = `${fallback} could not be asked: ${err.message}`;
    }
  }
  throw new Error(redact(`not found on ${hosts.primary}; ${state.failure}`));
}

/**
 * docs/cases.md B12: a found record whose model details could not be fetched must not pass for a
 * complete one. Says so once on stderr, given why for each such hash; returns how many there were.
 */
function reportLackingDetails(detailsErrors: readonly string[]): number {
  if (detailsErrors.length > 0) {
    logger.error(
      `model details could not be fetched for ${plural(detailsErrors.length, "hash", "hashes")} (${detailsErrors[0]}): their licence, tags, creator and model description are missing. Run again later, or pass --no-details to go without them`,
    );
  }
  return detailsErrors.length;
}

function toRecord(
  hash: string,
  status: string,
  versions: Parameters<typeof toCivitaiFields>[0],
  models: Parameters<typeof toCivitaiFields>[1],
  host: string | undefined,
  error: string | undefined,
  matchedBy: MatchedBy | "hash" | undefined,
): HashLookupRecord {
  // A password in the host's URL (a proxy's) is shown as `***`, as in scan's records and in messages.
  host = host === undefined ? undefined : redact(host);
  if (status === "offline") return { hash, status: "skipped", reason: "offline: not in the metadata cache" };
  if (status === "error") return { hash, status: "error", error: error ?? "lookup failed" };
  if (status !== "found") return { hash, status: "not_found", ...(host ? { host } : {}) };
  const sha = hash.length === 64 ? hash : null;
  const fields = toCivitaiFields(versions, models, sha, sha === null ? { shortHash: hash } : {});
  if (!fields) return { hash, status: "not_found" };
  return { hash, status: "found", ...(matchedBy ? { matchedBy } : {}), ...(host ? { host } : {}), ...fields };
}
