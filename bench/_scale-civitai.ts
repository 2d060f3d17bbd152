/**
 * A Civitai for the scale benchmarks on 127.0.0.1: every file of a tree is a known model (one
 * version, one file), answered in the shapes of test/helpers/fake-civitai.ts (makeVersion,
 * makeModel) but from an index and built on demand, so 100,000 models cost neither the minutes a
 * linear search per request would nor a gigabyte held in this process. Counts its requests.
 */
import { makeModel, makeVersion } from "../test/helpers/fake-civitai.ts";

export interface ScaleCivitai {
  url: string;
  requests: number;
  stop(): Promise<void>;
}

const MODEL_BASE = 100_000;
const VERSION_BASE = 1_000_000;

export function startScaleCivitai(sha256: readonly string[]): ScaleCivitai {
  const index = new Map<string, number>();
  sha256.forEach((sha, i) => index.set(sha.toUpperCase(), i));
  const version = (i: number) => makeVersion({ versionId: VERSION_BASE + i, modelId: MODEL_BASE + i, sha256: sha256[i]! });
  const state = { requests: 0 };
  const json = (body: unknown, status = 200) => Response.json(body, { status });
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      state.requests++;
      const url = new URL(req.url);
      if (req.method === "POST" && url.pathname === "/api/v1/model-versions/by-hash") {
        const hashes = (await req.json()) as string[];
        if (!Array.isArray(hashes) || hashes.length > 100) return json({ error: "bad request" }, 400);
        const out = [];
        for (const h of hashes) {
          const i = index.get(String(h).toUpperCase());
          if (i !== undefined) out.push(version(i));
        }
        return json(out);
      }
      if (req.method === "GET" && url.pathname === "/api/v1/models" && url.searchParams.has("ids")) {
        const ids = url.searchParams
          .getAll("ids")
          .flatMap((s) => s.split(","))
          .map(Number);
        const items = ids
          .map((id) => id - MODEL_BASE)
          .filter((i) => i >= 0 && i < sha256.length)
          .map((i) => makeModel({ modelId: MODEL_BASE + i, versions: [version(i)] }));
        return json({ items, metadata: {} });
      }
      const byHash = /^\/api\/v1\/model-versions\/by-hash\/([^/]+)$/.exec(url.pathname);
      if (req.method === "GET" && byHash) {
        const i = index.get(decodeURIComponent(byHash[1]!).toUpperCase());
        return i === undefined ? json({ error: "Model not found" }, 404) : json(version(i));
      }
      return json({ error: "Not found" }, 404);
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    get requests() {
      return state.requests;
    },
    set requests(n: number) {
      state.requests = n;
    },
    stop: () => server.stop(true),
  };
}
