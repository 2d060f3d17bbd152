/**
 * Hashing benchmarks, each measured in the same run against `openssl dgst -sha256` (issue #2):
 *   1. one 2 GiB file: throughput ratio vs openssl (target ≥ 0.95×)
 *   2. 8 files × 256 MiB: ratio vs openssl run file by file (target ≥ 1.7× on 2 cores)
 *   3. warm-cache re-run over 10,000 unchanged small files (target < 1.5 s, no content read)
 *   4. peak RSS while hashing a 20 GiB sparse file (target < 150 MB)
 * Medians of RUNS runs. Files live in a temp dir that is removed afterwards.
 */
import { mkdirSync, mkdtempSync, rmSync, truncateSync, utimesSync, writeFileSync, writeSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, cliCommand, medianOf, timeCommand } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function writeRandom(path: string, bytes: number): void {
  const chunk = Buffer.allocUnsafe(16 * MiB);
  const fd = openSync(path, "w");
  try {
    for (let done = 0; done < bytes; done += chunk.length) {
      // Vary each chunk cheaply: a random head, the rest repeats; SHA-256 cost does not depend on content.
      crypto.getRandomValues(chunk.subarray(0, 65536));
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
    }
  } finally {
    closeSync(fd);
  }
}

async function run(cmd: string[], env?: Record<string, string>) {
  const r = await timeCommand(cmd, { env });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r;
}

export async function benchHash(): Promise<boolean> {
  const cli = cliCommand();
  const dir = mkdtempSync(join(tmpdir(), "civitai-meta-bench-hash-"));
  let ok = true;
  try {
    console.log(`# hashing (median of ${RUNS} runs; CLI: ${cli.join(" ")})`);
    // 1. one 2 GiB file
    const big = join(dir, "big.safetensors");
    writeRandom(big, 2 * GiB);
    await run(["sh", "-c", `cat "${big}" > /dev/null`]); // warm the page cache for both tools alike
    const opensslBig = await medianOf(RUNS, async () => (await run(["openssl", "dgst", "-sha256", big])).ms);
    const oursBig = await medianOf(RUNS, async () => (await run([...cli, "hash", "--no-cache", "--algo", "sha256", big])).ms);
    const r1 = opensslBig / oursBig;
    ok =
      check(
        "2 GiB file vs openssl",
        r1 >= 0.95,
        `${r1.toFixed(2)}x (ours ${(2048 / (oursBig / 1000)).toFixed(0)} MiB/s, openssl ${(2048 / (opensslBig / 1000)).toFixed(0)} MiB/s; target ≥ 0.95x)`,
      ) && ok;
    rmSync(big);

    // 2. 8 × 256 MiB
    const many = join(dir, "many");
    mkdirSync(many);
    const files: string[] = [];
    for (let i = 0; i < 8; i++) {
      const f = join(many, `part${i}.safetensors`);
      writeRandom(f, 256 * MiB);
      files.push(f);
    }
    const opensslMany = await medianOf(RUNS, async () => {
      let total = 0;
      for (const f of files) total += (await run(["openssl", "dgst", "-sha256", f])).ms;
      return total;
    });
    const oursMany = await medianOf(RUNS, async () => (await run([...cli, "hash", "--no-cache", "--algo", "sha256", many])).ms);
    const r2 = opensslMany / oursMany;
    ok =
      check(
        "8 × 256 MiB vs openssl file by file",
        r2 >= 1.7,
        `${r2.toFixed(2)}x (ours ${oursMany.toFixed(0)} ms, openssl ${opensslMany.toFixed(0)} ms; target ≥ 1.7x)`,
      ) && ok;
    rmSync(many, { recursive: true });

    // 3. warm cache over 10,000 small files
    const small = join(dir, "small");
    mkdirSync(small);
    const past = new Date(Date.now() - 3600_000);
    for (let i = 0; i < 10_000; i++) {
      const sub = join(small, `d${Math.floor(i / 500)}`);
      if (i % 500 === 0) mkdirSync(sub);
      const f = join(sub, `m${i}.safetensors`);
      writeFileSync(f, `model ${i}`);
      // Fresh files are cached as unconfirmed (racy-git rule); a real library is older than 2 s.
      utimesSync(f, past, past);
    }
    const cacheDir = join(dir, "cache");
    const env = { CIVITAI_META_CACHE_DIR: cacheDir };
    await run([...cli, "hash", small], env);
    let lastStderr = "";
    const warm = await medianOf(RUNS, async () => {
      const r = await run([...cli, "hash", small], env);
      lastStderr = r.stderr;
      return r.ms;
    });
    const noRead = /\b0 B read\b/.test(lastStderr) || /0 hashed/.test(lastStderr);
    ok =
      check(
        "warm cache, 10,000 files",
        warm < 1500 && noRead,
        `${warm.toFixed(0)} ms, ${noRead ? "no content read" : `content was read: ${lastStderr.trim()}`} (target < 1500 ms)`,
      ) && ok;
    rmSync(small, { recursive: true });

    // 4. peak memory on a 20 GiB sparse file
    const sparse = join(dir, "sparse.ckpt");
    closeSync(openSync(sparse, "w"));
    truncateSync(sparse, 20 * GiB);
    const mem = await run([...cli, "hash", "--no-cache", "--algo", "sha256", sparse]);
    const rssMb = (mem.maxRssBytes ?? 0) / MiB;
    ok =
      check(
        "peak RSS, 20 GiB sparse file",
        rssMb > 0 && rssMb < 150,
        `${rssMb.toFixed(0)} MiB in ${(mem.ms / 1000).toFixed(1)} s (target < 150 MiB)`,
      ) && ok;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return ok;
}

if (import.meta.main) process.exitCode = (await benchHash()) ? 0 : 1;
