/**
 * `bun run bench hostile-scale [--only=names,walk,sidecars,diff,report]`: the five shapes of hostile
 * input that once cost quadratic time (docs/hostile-input.md), each run through the CLI as a user
 * runs it at n and at 4n, and judged by how its time grows: time(4n) / time(n) ≤ 8 (linear ≈ 4;
 * the code before each fix gave 8.3–12.8 at these sizes, short of 16 as its linear part weighs too,
 * so n is as large as a run of ≤ ~2.5 s at 4n allows). A ratio of two sizes in one script is what a shared, noisy machine can judge,
 * where a wall-clock limit in a test cannot be. Medians of RUNS runs, the two sizes and a reference
 * tool (`cat` of the inventory, `find` of the folder) interleaved; the reference's growth is printed
 * beside ours, and the peak RSS of the larger run.
 *   names:    `download INV --dry-run`, one file given n other names (each twice) in the inventory
 *   walk:     `scan DIR --offline --no-cache`, one file with n names (hard links)
 *   sidecars: `scan DIR --offline --no-cache`, n models in one folder, each with a `.json` sidecar
 *   diff:     `diff OLD NEW`, n copies of one file all moved, and as many more removed
 *   report:   `report INV`, one model held in n versions and one file in n copies
 * Files live in a temp dir removed afterwards; the whole run takes 70–85 s on the 2-core machine.
 */
import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FileRecord } from "../src/report/record-types.ts";
import { makeCivitai, makeInventory, makeRecord } from "../test/helpers/sample-inventory.ts";
import { check, cliCommand, median, timeCommand } from "./_util.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const GROWTH = 4;
const LIMIT = 8;
const MiB = 1024 * 1024;

interface Case {
  /** The CLI's arguments at this size. */
  ours: string[];
  /** The reference tool's command at this size. */
  ref: string[];
  /** Throws unless the run's output accounts for every name, model, copy or version. */
  verify(stdout: string, stderr: string): void;
}

interface Shape {
  name: string;
  label: string;
  n: number;
  /** Writes this shape's input of `size` under `dir`. */
  make(dir: string, size: number): Case;
}

function expectCount(what: string, text: string, pattern: RegExp, want: number): void {
  const got = text.match(pattern)?.length ?? 0;
  if (got !== want) throw new Error(`${what}: ${got} instead of ${want}`);
}

function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value));
  return path;
}

/** A light record (not found, no Civitai answer) at `path` holding the bytes of SHA-256 `sha`. */
function copyOf(path: string, sha: string): FileRecord {
  return makeRecord({ path, status: "not_found", hashes: { sha256: sha } });
}

const SHAPES: Shape[] = [
  {
    name: "names",
    label: "download --dry-run, one file with n other names",
    n: 40_000,
    make(dir, size) {
      const names = Array.from({ length: size }, (_, i) => `/models/names/n${i}.safetensors`);
      const record = makeRecord({ path: "/models/many.safetensors", aliases: [...names, ...names] });
      const inv = writeJson(join(dir, "inventory.json"), makeInventory([record]));
      // Nothing is fetched in a dry run: the API origin only names the download route.
      const ours = ["download", inv, "--dest", join(dir, "dest"), "--dry-run", "--api-url", "http://127.0.0.1:9", "--no-fallback"];
      return {
        ours,
        ref: ["cat", inv],
        verify: (stdout) => expectCount("other names planned", stdout, /\(another name of many\.safetensors\)/g, size),
      };
    },
  },
  {
    name: "walk",
    label: "scan, one file with n names (hard links)",
    n: 16_000,
    make(dir, size) {
      const tree = join(dir, "tree");
      mkdirSync(tree);
      writeFileSync(join(tree, "a.safetensors"), "one file, many names");
      // Hard links only (ext4 allows 65,000 to a file): a symlink costs the walk far more than the
      // search of the names did, which would hide the growth being judged.
      for (let i = 1; i < size; i++) linkSync(join(tree, "a.safetensors"), join(tree, `h${i}.safetensors`));
      return {
        ours: ["scan", tree, "--offline", "--no-cache", "-o", join(dir, "inventory.json")],
        ref: ["find", tree],
        verify: (_stdout, stderr) => expectCount("files found", stderr, /\b1 file \(/g, 1),
      };
    },
  },
  {
    name: "sidecars",
    label: "scan, n models with a .json sidecar each",
    n: 7_500,
    make(dir, size) {
      const tree = join(dir, "tree");
      mkdirSync(tree);
      for (let i = 0; i < size; i++) {
        writeFileSync(join(tree, `m${i}.safetensors`), `model ${i}`);
        writeFileSync(join(tree, `m${i}.json`), JSON.stringify({ "activation text": `word${i}` }));
      }
      return {
        // The inventory on stdout: every model's sidecar must have been read.
        ours: ["scan", tree, "--offline", "--no-cache"],
        ref: ["find", tree],
        verify: (stdout) => expectCount("sidecars read", stdout, /"activationText":"word\d+"/g, size),
      };
    },
  },
  {
    name: "diff",
    label: "diff, n copies of one file moved",
    n: 10_000,
    make(dir, size) {
      const sha = "c".repeat(64);
      const old = Array.from({ length: 2 * size }, (_, i) => copyOf(`/models/a/${String(i).padStart(7, "0")}.safetensors`, sha));
      const now = Array.from({ length: size }, (_, i) => copyOf(`/models/b/${String(i).padStart(7, "0")}.safetensors`, sha));
      const oldPath = writeJson(join(dir, "old.json"), makeInventory(old));
      const newPath = writeJson(join(dir, "new.json"), makeInventory(now));
      return {
        ours: ["diff", oldPath, newPath, "--format", "csv"],
        ref: ["cat", oldPath, newPath],
        verify(stdout) {
          expectCount("moved", stdout, /^"moved",/gm, size);
          expectCount("removed", stdout, /^"removed",/gm, size);
        },
      };
    },
  },
  {
    name: "report",
    label: "report, one model in n versions, one file in n copies",
    n: 6_000,
    make(dir, size) {
      const versions = Array.from({ length: size }, (_, i) =>
        makeRecord({ path: `/models/v${String(i).padStart(7, "0")}.safetensors`, civitai: makeCivitai({ versionId: 100_000 + size - i }) }),
      );
      const copies = Array.from({ length: size }, (_, i) =>
        makeRecord({ path: `/models/c/${i}.safetensors`, hashes: { sha256: "c".repeat(64) } }),
      );
      const inv = writeJson(join(dir, "inventory.json"), makeInventory([...versions, ...copies]));
      return {
        ours: ["report", inv, "--format", "csv"],
        ref: ["cat", inv],
        verify: (stdout) => expectCount("records", stdout, /^"\/models\//gm, 2 * size),
      };
    },
  },
];

async function run(cmd: string[], peakRss = false) {
  const r = await timeCommand(cmd, { peakRss });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr.slice(0, 2000)}`);
  return r;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function benchShape(shape: Shape, work: string): Promise<boolean> {
  const cli = cliCommand();
  const sizes = [shape.n, GROWTH * shape.n].map((size) => {
    const dir = join(work, `${shape.name}-${size}`);
    mkdirSync(dir);
    const c = shape.make(dir, size);
    return { size, ...c, ours: [...cli, ...c.ours], oursMs: [] as number[], refMs: [] as number[], rss: 0 };
  });
  for (let i = 0; i < RUNS; i++) {
    for (const s of sizes) {
      s.refMs.push((await run(s.ref)).ms);
      const r = await run(s.ours, true);
      // The first run of each size is checked: every name, model, copy and version is accounted for.
      if (i === 0) s.verify(r.stdout, r.stderr);
      s.oursMs.push(r.ms);
      s.rss = Math.max(s.rss, r.maxRssBytes ?? 0);
    }
  }
  const [small, large] = sizes.map((s) => ({ size: s.size, tool: s.ref[0]!, ours: median(s.oursMs), ref: median(s.refMs), rss: s.rss }));
  if (!small || !large) throw new Error("two sizes");
  const growth = large.ours / small.ours;
  const at = (n: number) => n.toLocaleString("en-US");
  return check(
    `${shape.name.padEnd(8)} ${shape.label}`,
    growth <= LIMIT,
    `${at(small.size)}: ${seconds(small.ours)}, ${at(large.size)}: ${seconds(large.ours)}: ×${growth.toFixed(1)} ` +
      `(${large.tool} ×${(large.ref / small.ref).toFixed(1)}); peak RSS at ${at(large.size)}: ${(large.rss / MiB).toFixed(0)} MiB ` +
      `(target ≤ ×${LIMIT}; linear ≈ ×${GROWTH}, quadratic ≈ ×${GROWTH * GROWTH})`,
  );
}

export async function benchHostileScale(): Promise<boolean> {
  const only = process.argv
    .find((a) => a.startsWith("--only="))
    ?.slice("--only=".length)
    .split(",");
  const shapes = only ? SHAPES.filter((s) => only.includes(s.name)) : SHAPES;
  console.log(`# hostile-scale: each shape at n and ${GROWTH}n through the CLI (medians of ${RUNS} interleaved runs)`);
  const work = mkdtempSync(join(tmpdir(), "civitai-meta-bench-hostile-"));
  let ok = true;
  try {
    for (const shape of shapes) ok = (await benchShape(shape, work)) && ok;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return ok;
}
