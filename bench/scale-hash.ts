/**
 * `bun run bench scale-hash [--quick] [--sizes 1000,10000]`: the walking and hashing side of
 * 100,000 files on one machine (issue 11), on trees of 4 KiB safetensors files, 500 per folder
 * (bench/_scale-tree.ts). Each figure is a median of RUNS runs, each run of ours next to a run of
 * its reference in the same sequence, so a busy machine slows both:
 *
 *   cold hash  `hash` with an empty cache     vs `find DIR -type f -print0 | xargs -0 -P2 sha256sum`   target ≤ 1.5x (target 3)
 *   warm hash  `hash` again, nothing changed  vs `find DIR -type f -printf '%s %T@\n'` (the floor)    target ≤ 5x
 *   warm scan  `scan -o inventory.json`, all hashed and looked up before, 0 requests vs the floor    target ≤ 10x, peak RSS ≤ 300 MB (target 1)
 *
 * Targets are judged at 100,000 files; smaller trees are printed for the trend. Peak RSS is the
 * command's own (GNU time). The warm scan looks up against the fake Civitai on 127.0.0.1, seeded
 * with every file as a known model, and must make no request. `--breakdown` adds where the warm
 * scan's time and memory go, phase by phase, measured in this process.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startScaleCivitai } from "./_scale-civitai.ts";
import { scaleTree, treeDir } from "./_scale-tree.ts";
import { check, cliCommand, median, timeCommand, type Timed } from "./_util.ts";

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const BREAKDOWN = argv.includes("--breakdown");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const sizesArg = argv.indexOf("--sizes");
const SIZES: number[] =
  sizesArg !== -1 ? (argv[sizesArg + 1] ?? "").split(",").map(Number) : QUICK ? [1000, 10_000] : [1000, 10_000, 50_000, 100_000];
/** Where the targets are judged. */
const TARGET_SIZE = 100_000;
const MiB = 1024 ** 2;

interface Pair {
  ours: number[];
  ref: number[];
  rss: number[];
}

async function run(cmd: string[], env: Record<string, string>, peakRss = false): Promise<Timed> {
  const r = await timeCommand(cmd, { env, stdout: "ignore", peakRss });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return r;
}

/** `runs` interleaved pairs: before each pair `prepare` (untimed), then the reference, then ours. */
async function pairs(
  runs: number,
  ref: string[],
  ours: string[],
  env: Record<string, string>,
  prepare?: () => void,
): Promise<Pair & { last: Timed }> {
  const out: Pair = { ours: [], ref: [], rss: [] };
  let last: Timed | undefined;
  for (let i = 0; i < runs; i++) {
    prepare?.();
    out.ref.push((await run(ref, env)).ms);
    prepare?.();
    last = await run(ours, env, true);
    out.ours.push(last.ms);
    out.rss.push(last.maxRssBytes ?? 0);
  }
  return { ...out, last: last! };
}

function line(label: string, p: Pair, refLabel: string): { ratio: number; rssMb: number } {
  const ours = median(p.ours);
  const ref = median(p.ref);
  const ratio = ours / ref;
  const rssMb = median(p.rss) / MiB;
  console.log(
    `      ${label.padEnd(10)} ours ${(ours / 1000).toFixed(2).padStart(6)} s   ${refLabel} ${(ref / 1000).toFixed(2).padStart(6)} s   ${ratio.toFixed(2).padStart(6)}x   peak RSS ${rssMb.toFixed(0)} MiB`,
  );
  return { ratio, rssMb };
}

export async function benchScaleHash(): Promise<boolean> {
  const cli = cliCommand();
  const work = mkdtempSync(join(process.env.TMPDIR || tmpdir(), "civitai-meta-bench-scale-hash-"));
  // No config file or cache of the user's: every run sees only what this benchmark made.
  const env = { XDG_CONFIG_HOME: join(work, "config"), CIVITAI_API_KEY: "" };
  let ok = true;
  console.log(
    `# scale: hashing and walking (median of ${RUNS} interleaved runs; CLI: ${cli.join(" ")}; targets judged at ${TARGET_SIZE} files)`,
  );
  try {
    for (const size of SIZES) {
      const tree = scaleTree(size, (l) => console.log(`      ${l}`));
      const dir = treeDir(tree);
      const judged = size === TARGET_SIZE;
      console.log(`   ${size} files of 4 KiB, 500 per folder`);
      const cacheDir = join(work, `cache-${size}`);
      const hash = [...cli, "hash", "-q", "--cache-dir", cacheDir, dir];
      const floor = ["find", dir, "-type", "f", "-printf", "%s %T@\\n"];
      // Page cache warmed for both sides alike: every file read once before any timing.
      await run(["sh", "-c", `find "${dir}" -type f -print0 | xargs -0 cat > /dev/null`], env);

      const cold = await pairs(RUNS, ["sh", "-c", `find "${dir}" -type f -print0 | xargs -0 -P2 sha256sum > /dev/null`], hash, env, () =>
        rmSync(cacheDir, { recursive: true, force: true }),
      );
      const c = line("cold hash", cold, "xargs -P2 sha256sum");
      const storeBytes = statSync(join(cacheDir, "hashes", "v2.sqlite")).size;
      console.log(`      hash cache: one store, ${(storeBytes / MiB).toFixed(1)} MiB for ${size} entries`);
      const warm = await pairs(RUNS, floor, hash, env);
      const w = line("warm hash", warm, "find -printf (floor)");
      const check0 = await run(
        hash.filter((a) => a !== "-q"),
        env,
      );
      if (!/\b0 hashed \(0 B read\)/.test(check0.stderr)) throw new Error(`warm hash read files: ${check0.stderr}`);

      const civitai = startScaleCivitai(tree.sha256);
      try {
        const inventory = join(work, `inventory-${size}.json`);
        const scan = [...cli, "scan", "-q", "--cache-dir", cacheDir, "--api-url", civitai.url, "-o", inventory, dir];
        const seeded = await run(scan, env);
        console.log(`      first scan (hashes cached, lookups made): ${(seeded.ms / 1000).toFixed(1)} s, ${civitai.requests} requests`);
        civitai.requests = 0;
        const warmScan = await pairs(RUNS, floor, scan, env);
        const s = line("warm scan", warmScan, "find -printf (floor)");
        const requests = civitai.requests;
        console.log(`      warm scan requests: ${requests}; inventory ${(statSync(inventory).size / MiB).toFixed(0)} MiB`);
        if (judged) {
          ok =
            check(
              "cold hash, 100k small files (target 3)",
              c.ratio <= 1.5,
              `${c.ratio.toFixed(2)}x xargs -0 -P2 sha256sum (target ≤ 1.5x)`,
            ) && ok;
          ok = check("warm hash, 100k files", w.ratio <= 5, `${w.ratio.toFixed(2)}x the find -printf floor (target ≤ 5x)`) && ok;
          ok =
            check(
              "warm scan, 100k files (target 1)",
              s.ratio <= 10 && s.rssMb <= 300 && requests === 0,
              `${s.ratio.toFixed(2)}x the floor (target ≤ 10x), peak RSS ${s.rssMb.toFixed(0)} MiB (target ≤ 300 MB), ${requests} requests`,
            ) && ok;
        }
        if (BREAKDOWN) await breakdown(dir, cacheDir, civitai.url, join(work, `inventory-${size}-breakdown.json`));
      } finally {
        await civitai.stop();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return ok;
}

/**
 * Where a warm scan's time and memory go, phase by phase, in a child process running the same code
 * (bench/scale-breakdown.ts), so the figures are not mixed with this process's fake server.
 */
async function breakdown(dir: string, cacheDir: string, apiUrl: string, output: string): Promise<void> {
  const r = await timeCommand([process.execPath, join(import.meta.dir, "scale-breakdown.ts"), dir, cacheDir, apiUrl, output], {
    peakRss: true,
  });
  if (r.code !== 0) throw new Error(`breakdown failed: ${r.stderr}`);
  process.stdout.write(r.stdout.replace(/^/gm, "      "));
  console.log(`      (breakdown process peak RSS ${((r.maxRssBytes ?? 0) / MiB).toFixed(0)} MiB)`);
}

if (import.meta.main) process.exitCode = (await benchScaleHash()) ? 0 : 1;
