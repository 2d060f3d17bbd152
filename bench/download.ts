/**
 * Download benchmark (issue #6): a 2 GiB file from a loopback fake (API 307 → storage), our
 * `download` (SHA-256 verified, fsync'd, renamed) against `curl -o` from the same storage URL in
 * the same run. Targets: at least 0.8× curl's rate; peak RSS under 150 MB. Medians of RUNS (7) interleaved pairs.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, cliCommand, median, timeCommand } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const SIZE = 2 * 1024 ** 3;
const VERSION_ID = 424242;
const FILE_ID = 999;

function writeSource(path: string): string {
  const hash = createHash("sha256");
  const chunk = Buffer.allocUnsafe(16 * 1024 * 1024);
  const fd = openSync(path, "w");
  try {
    for (let done = 0; done < SIZE; done += chunk.length) {
      crypto.getRandomValues(chunk.subarray(0, 65536));
      const n = Math.min(chunk.length, SIZE - done);
      writeSync(fd, chunk, 0, n);
      hash.update(chunk.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

export async function benchDownload(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-bench-dl-"));
  try {
    const source = join(dir, "source.bin");
    const sha256 = writeSource(source);
    const file = Bun.file(source);
    // Storage is its own origin, as R2 is for civitai.com: the key must never follow the redirect.
    const storage = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const url = new URL(req.url);
        if (url.pathname === "/storage/bench.safetensors") {
          const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
          const start = range ? Number(range[1]) : 0;
          return new Response(start ? file.slice(start) : file, {
            status: start ? 206 : 200,
            headers: {
              "content-type": "application/octet-stream",
              etag: '"bench"',
              ...(start ? { "content-range": `bytes ${start}-${SIZE - 1}/${SIZE}` } : {}),
            },
          });
        }
        return new Response("not found", { status: 404 });
      },
    });
    const storageOrigin = `http://127.0.0.1:${storage.port}`;
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const url = new URL(req.url);
        if (url.pathname === `/api/v1/model-versions/${VERSION_ID}`) {
          return Response.json({
            id: VERSION_ID,
            modelId: 1,
            name: "bench",
            model: { name: "Bench", type: "Checkpoint" },
            files: [
              { id: FILE_ID, name: "bench.safetensors", sizeKB: SIZE / 1024, primary: true, hashes: { SHA256: sha256.toUpperCase() } },
            ],
          });
        }
        if (url.pathname === `/api/download/models/${VERSION_ID}`) {
          return new Response(null, {
            status: 307,
            headers: { location: `${storageOrigin}/storage/bench.safetensors?X-Amz-Signature=abc` },
          });
        }
        return new Response("not found", { status: 404 });
      },
    });
    const origin = `http://127.0.0.1:${server.port}`;
    try {
      const curlOut = join(dir, "curl.bin");
      const dest = join(dir, "dest");
      // Interleaved, each after a `sync`, so neither tool pays for the other's dirty pages and a
      // slow patch of the shared disk hits both alike.
      const curlRuns: number[] = [];
      const ourRuns: number[] = [];
      let rss = 0;
      for (let i = 0; i < RUNS; i++) {
        await timeCommand(["sync"]);
        const c = await timeCommand(["curl", "-s", "-f", "-o", curlOut, `${storageOrigin}/storage/bench.safetensors`]);
        if (c.code !== 0) throw new Error(`curl failed: ${c.stderr}`);
        curlRuns.push(c.ms);
        rmSync(curlOut, { force: true });
        await timeCommand(["sync"]);
        const r = await timeCommand([
          ...cliCommand(),
          "download",
          String(VERSION_ID),
          "--dest",
          dest,
          "--api-url",
          origin,
          "--no-fallback",
        ]);
        if (r.code !== 0) throw new Error(`download failed (${r.code}): ${r.stderr}`);
        ourRuns.push(r.ms);
        rss = Math.max(rss, r.maxRssBytes ?? 0);
        rmSync(dest, { recursive: true, force: true });
      }
      const curlMs = median(curlRuns);
      const oursMs = median(ourRuns);
      // Each pair ran back to back, so its ratio is less exposed to the shared disk's slow patches.
      const pairRatios = curlRuns.map((c, i) => c / ourRuns[i]!);
      const ratio = median(pairRatios);
      const mib = SIZE / 1024 ** 2;
      console.log(`# download: 2 GiB over loopback, median of ${RUNS} interleaved runs`);
      console.log(
        `      curl -o: ${(mib / (curlMs / 1000)).toFixed(0)} MiB/s; ours (hash + fsync + rename): ${(mib / (oursMs / 1000)).toFixed(0)} MiB/s (medians)`,
      );
      console.log(`      per pair (curl ms / ours ms): ${curlRuns.map((c, i) => `${c.toFixed(0)}/${ourRuns[i]!.toFixed(0)}`).join(", ")}`);
      const a = check("2 GiB download vs curl -o", ratio >= 0.8, `${ratio.toFixed(2)}x, median of the pairs' ratios (target ≥ 0.8x)`);
      const b = check(
        "peak RSS while downloading",
        rss > 0 && rss < 150 * 1024 ** 2,
        `${(rss / 1024 ** 2).toFixed(0)} MiB (target < 150 MiB)`,
      );
      return a && b;
    } finally {
      server.stop(true);
      storage.stop(true);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) process.exitCode = (await benchDownload()) ? 0 : 1;
