/**
 * Lookup benchmark (issue #3): 1,000 files' SHA-256s against the fake Civitai with 100 ms added
 * to every answer. Our lookup phase (bulk POSTs + model details, default concurrency 4) is timed
 * beside what peers do, one GET per file at the same concurrency, measured in the same run.
 * Target: our lookup phase under 3 s. Never touches the network beyond 127.0.0.1.
 */
import { createHash } from "node:crypto";
import pLimit from "p-limit";
import { makeModel, makeVersion, startFakeCivitai } from "../test/helpers/fake-civitai.ts";
import { createCivitaiClient } from "../src/civitai/civitai-client.ts";
import { createMetaCache } from "../src/civitai/meta-cache.ts";
import { lookupFiles } from "../src/civitai/lookup.ts";
import { check } from "./_util.ts";

const FILES = 1000;
const DELAY_MS = 100;
const CONCURRENCY = 4;

export async function benchLookup(): Promise<boolean> {
  const civitai = await startFakeCivitai({ fixtures: false });
  try {
    const shas: string[] = [];
    for (let i = 0; i < FILES; i++) {
      const sha = createHash("sha256").update(`bench model ${i}`).digest("hex");
      shas.push(sha);
      civitai.addModel(
        makeModel({ modelId: 5000 + i, versions: [makeVersion({ versionId: 90_000 + i, modelId: 5000 + i, sha256: sha })] }),
      );
    }
    civitai.setDelay(DELAY_MS);
    const client = () => createCivitaiClient({ userAgent: "civitai-meta/bench", civitaiHosts: [civitai.url], concurrency: CONCURRENCY });

    const started = performance.now();
    const ours = await lookupFiles(
      shas.map((sha256) => ({ sha256 })),
      { api: client(), cache: createMetaCache({ dir: false, origins: [civitai.url] }), hosts: { primary: civitai.url } },
      { details: true, offline: false, refresh: false, concurrency: CONCURRENCY },
    );
    const oursMs = performance.now() - started;
    const found = [...ours.entries.values()].filter((e) => e.status === "found").length;
    const oursRequests = civitai.requests.length;

    civitai.reset();
    civitai.setDelay(DELAY_MS);
    const naiveClient = client();
    const limit = pLimit(CONCURRENCY);
    const naiveStarted = performance.now();
    await Promise.all(shas.map((sha) => limit(() => naiveClient.versionByHash(civitai.url, sha))));
    const naiveMs = performance.now() - naiveStarted;

    console.log(`# lookup: ${FILES} files, +${DELAY_MS} ms per answer, concurrency ${CONCURRENCY}`);
    console.log(`      ours: ${oursMs.toFixed(0)} ms, ${oursRequests} requests, ${found} found`);
    console.log(`      one GET per file: ${naiveMs.toFixed(0)} ms, ${FILES} requests (${(naiveMs / oursMs).toFixed(1)}x slower)`);
    return check("lookup phase, 1,000 files", oursMs < 3000 && found === FILES, `${oursMs.toFixed(0)} ms (target < 3000 ms)`);
  } finally {
    await civitai.stop();
  }
}

if (import.meta.main) process.exitCode = (await benchLookup()) ? 0 : 1;
