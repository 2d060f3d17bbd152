/**
 * The fake Civitai (test/helpers/fake-civitai.ts) in a process of its own, for benchmarks: its
 * work (building answers for 10,000 versions) must not be timed as ours. The parent starts it with
 * what to publish, then drives it over loopback: `POST /__reset?delay=MS` forgets the request log
 * and sets the delay before each answer, `GET /__counts` returns the requests per route.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { FAKE_ROUTES, makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../test/helpers/fake-civitai.ts";

/** What to publish: `n` files labelled `label`, each its own version of its own model. */
export interface FakeSpec {
  publish: { label: string; n: number }[];
}

export const fileSha = (label: string, i: number) => createHash("sha256").update(`${label} ${i}`).digest("hex");

export interface FakeProcess {
  url: string;
  reset(delayMs: number): Promise<void>;
  /** Requests per route since the last reset (control requests not counted). */
  counts(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startFakeProcess(spec: FakeSpec): Promise<FakeProcess> {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "fake-civitai-process.ts"), JSON.stringify(spec)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the fake Civitai process ended before it started");
    out += new TextDecoder().decode(value);
  }
  const url = (JSON.parse(out.split("\n")[0]!) as { url: string }).url;
  return {
    url,
    async reset(delayMs) {
      await fetch(`${url}/__reset?delay=${delayMs}`, { method: "POST" });
    },
    async counts() {
      return (await (await fetch(`${url}/__counts`)).json()) as Record<string, number>;
    },
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

async function serve(spec: FakeSpec): Promise<void> {
  let civitai: FakeCivitai | undefined;
  civitai = await startFakeCivitai({
    fixtures: false,
    handle: (req, url) => {
      if (!civitai) return undefined;
      if (url.pathname === "/__reset" && req.method === "POST") {
        civitai.reset();
        civitai.setDelay(Number(url.searchParams.get("delay") ?? 0));
        return Response.json({ ok: true });
      }
      if (url.pathname === "/__counts") {
        const counts = civitai.counts;
        const known = FAKE_ROUTES.filter((r) => r !== "other");
        return Response.json({ ...counts, other: 0, total: known.reduce((sum, r) => sum + (counts[r] ?? 0), 0) });
      }
      return undefined;
    },
  });
  let id = 1;
  for (const { label, n } of spec.publish) {
    for (let i = 0; i < n; i++, id++) {
      civitai.addModel(
        makeModel({ modelId: id, versions: [makeVersion({ versionId: 500_000 + id, modelId: id, sha256: fileSha(label, i) })] }),
      );
    }
  }
  console.log(JSON.stringify({ url: civitai.url }));
}

if (import.meta.main) await serve(JSON.parse(process.argv[2] ?? '{"publish":[]}') as FakeSpec);
