/**
 * `bun run bench teams` (issue 14): a team of 10 machines scanning the same 1,000-file library
 * against the fake Civitai (its own process, +100 ms before every answer, 127.0.0.1 only), each
 * machine with its own cache folder as separate computers have, with and without one shared Redis
 * (a real `redis-server` on a loopback port, with a password).
 *
 * - One after another (a team through the day, CI runners in turn): the total requests Civitai
 *   gets and the total time of the 10 scans. Medians of 3 runs; each run gets fresh cache folders
 *   and an empty Redis database, and the runs with and without Redis are interleaved.
 * - All at once (a render farm starting): the same 10 scans started together, once each way. A
 *   machine that looks in Redis before another has written there asks Civitai itself, so what
 *   sharing saves here depends on who gets there first; it has no target.
 *
 * Every machine reads the library's index (--use-index, the README's team setup: the index on the
 * NAS), so none hashes the library itself: what is timed is the walk and the lookup, the part Redis
 * changes. (Without an index each fresh machine also hashes every file, the same with or without
 * Redis.) The CLI is the compiled binary when built (what users run), else `bun src/cli.ts`.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redisAvailable, startRedis, type RedisServer } from "../test/helpers/redis-server.ts";
import { startFakeProcess, type FakeProcess } from "./fake-civitai-process.ts";
import { check, cliCommand, median, timeCommand } from "./_util.ts";

const MACHINES = 10;
const FILES = 1000;
const DELAY_MS = 100;
const RUNS = 3;
const LABEL = "team";

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface TeamRun {
  /** Requests Civitai got from each machine, in order. */
  requests: number[];
  /** Each machine's scan, ms from spawn to exit. */
  ms: number[];
  /** Wall time of the whole team. */
  wallMs: number;
}

interface Library {
  dir: string;
  /** Its index (scan --index), as the team keeps it on the NAS beside the models. */
  index: string;
}

/**
 * The library: FILES files Civitai knows (fake-civitai-process publishes `team <i>`), an hour old,
 * and its index, written once by an offline scan.
 */
async function makeLibrary(root: string): Promise<Library> {
  const dir = join(root, "library");
  mkdirSync(dir);
  const past = new Date(Date.now() - 3600_000);
  for (let i = 0; i < FILES; i++) {
    const file = join(dir, `model-${String(i).padStart(4, "0")}.ckpt`);
    writeFileSync(file, `${LABEL} ${i}`);
    utimesSync(file, past, past);
  }
  const index = join(root, "library.index.json");
  const r = await timeCommand([...cliCommand(), "scan", dir, "--offline", "--no-cache", "--index", index]);
  if (r.code !== 0) throw new Error(`the index scan failed (exit ${r.code}): ${r.stderr.slice(-500)}`);
  return { dir, index };
}

/** One machine's scan: its own cache folder, the library's index, the shared cache or none. */
async function scan(library: Library, civitai: FakeProcess, cacheDir: string, cacheUrl: string | null) {
  const args = ["scan", library.dir, "--use-index", library.index, "--api-url", civitai.url, "--no-fallback"];
  const r = await timeCommand([...cliCommand(), ...args], {
    env: { CIVITAI_META_CACHE_DIR: cacheDir, CIVITAI_META_CACHE_URL: cacheUrl ?? "none", NO_COLOR: "1" },
  });
  if (r.code !== 0) throw new Error(`scan failed (exit ${r.code}): ${r.stderr.slice(-500)}`);
  if (/shared metadata cache/.test(r.stderr) && /warn|unavailable/i.test(r.stderr)) {
    throw new Error(`the shared cache warned: ${r.stderr.slice(-500)}`);
  }
  return r.ms;
}

/** The team one machine after another; Civitai's request counts read between machines. */
async function inTurn(library: Library, civitai: FakeProcess, root: string, cacheUrl: string | null): Promise<TeamRun> {
  await civitai.reset(DELAY_MS);
  const requests: number[] = [];
  const ms: number[] = [];
  let before = 0;
  const started = performance.now();
  for (let m = 0; m < MACHINES; m++) {
    ms.push(await scan(library, civitai, mkdtempSync(join(root, "machine-")), cacheUrl));
    const total = (await civitai.counts()).total!;
    requests.push(total - before);
    before = total;
  }
  return { requests, ms, wallMs: performance.now() - started };
}

/** The team all at once: only the total requests and the wall time mean anything. */
async function atOnce(library: Library, civitai: FakeProcess, root: string, cacheUrl: string | null) {
  await civitai.reset(DELAY_MS);
  const started = performance.now();
  await Promise.all(Array.from({ length: MACHINES }, () => scan(library, civitai, mkdtempSync(join(root, "machine-")), cacheUrl)));
  return { requests: (await civitai.counts()).total!, wallMs: performance.now() - started };
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

export async function benchTeams(): Promise<boolean> {
  if (!redisAvailable()) {
    return check("teams: redis-server installed", false, "not found (apt-get install redis-server; .ci/run installs it)");
  }
  const root = mkdtempSync(join(tmpdir(), "civitai-meta-bench-teams-"));
  let civitai: FakeProcess | undefined;
  let redis: RedisServer | undefined;
  try {
    const setup = performance.now();
    [civitai, redis] = await Promise.all([startFakeProcess({ publish: [{ label: LABEL, n: FILES }] }), startRedis()]);
    const library = await makeLibrary(root);
    console.error(`teams: set up in ${s(performance.now() - setup)}`);
    const without: TeamRun[] = [];
    const withRedis: TeamRun[] = [];
    for (let run = 0; run < RUNS; run++) {
      without.push(await inTurn(library, civitai, root, null));
      // An empty database per run: the first machine of each run starts from nothing.
      withRedis.push(await inTurn(library, civitai, root, redis.url(run + 1)));
      console.error(`teams: run ${run + 1}/${RUNS}: ${s(without.at(-1)!.wallMs)} without Redis, ${s(withRedis.at(-1)!.wallMs)} with`);
    }
    const farmWithout = await atOnce(library, civitai, root, null);
    const farmWith = await atOnce(library, civitai, root, redis.url(RUNS + 1));

    const total = (runs: TeamRun[]) => median(runs.map((r) => sum(r.requests)));
    const time = (runs: TeamRun[]) => median(runs.map((r) => sum(r.ms)));
    const first = (runs: TeamRun[]) => median(runs.map((r) => r.ms[0]!));
    const rest = (runs: TeamRun[]) => median(runs.map((r) => median(r.ms.slice(1))));
    const reqWithout = total(without);
    const reqWith = total(withRedis);
    const msWithout = time(without);
    const msWith = time(withRedis);
    const binary = cliCommand().length === 1 ? "the binary" : "bun src/cli.ts";
    console.log(
      `# teams: ${MACHINES} machines, each its own cache folder, scanning the same ${FILES.toLocaleString("en")}-file library; +${DELAY_MS} ms per Civitai answer (${binary}, medians of ${RUNS})`,
    );
    console.log(
      `      one after another, without Redis: ${reqWithout} requests, ${s(msWithout)} in all (each machine ${s(rest(without))})`,
    );
    console.log(
      `      one after another, one Redis:     ${reqWith} requests, ${s(msWith)} in all (first machine ${s(first(withRedis))}, then ${s(rest(withRedis))} each)`,
    );
    console.log(`      requests per machine with Redis: ${withRedis.map((r) => r.requests.join(" ")).join(" | ")}`);
    console.log(`      all ${MACHINES} at once, without Redis: ${farmWithout.requests} requests, ${s(farmWithout.wallMs)} wall`);
    console.log(
      `      all ${MACHINES} at once, one Redis:     ${farmWith.requests} requests, ${s(farmWith.wallMs)} wall (a machine that finds nothing there yet asks Civitai itself)`,
    );
    let ok = check(
      "teams: with Redis, machines 2-10 send 0 requests",
      withRedis.every((r) => sum(r.requests.slice(1)) === 0),
      withRedis.map((r) => sum(r.requests.slice(1))).join(", "),
    );
    ok = check("teams: with Redis, ≤ 1/10 of the requests", reqWith * MACHINES <= reqWithout, `${reqWith} vs ${reqWithout}`) && ok;
    ok = check("teams: with Redis, ≤ 0.7x the time", msWith <= 0.7 * msWithout, `${(msWith / msWithout).toFixed(2)}x`) && ok;
    return ok;
  } finally {
    await Promise.all([civitai?.stop(), redis?.stop()]);
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.main) process.exitCode = (await benchTeams()) ? 0 : 1;
