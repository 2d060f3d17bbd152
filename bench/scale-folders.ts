/**
 * `bun run bench scale-folders [--files N]`: what a folder costs a warm scan. The same N model files
 * (2,000 by default) laid out one per folder and all in one folder, each known to a fake Civitai on
 * 127.0.0.1, scanned until hashes, answers and records are all kept; then warm scans of each layout
 * (`scan -o inventory.json`, 0 requests) interleaved with the `find -printf` floor, medians of five.
 * A library where each model has its own folder pays per folder (a stat, a listing, its pack of
 * kept records). No issue sets a target for this layout: the bench reports and does not judge.
 */
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startScaleCivitai } from "./_scale-civitai.ts";
import { cliCommand, median, timeCommand } from "./_util.ts";
import { scaleRoot } from "./_scale-tree.ts";

const RUNS = 5;
/** An hour back: a fresh file is "racy" and its hash is never trusted (docs/reliability.md §3.4). */
const PAST = new Date(Date.now() - 3600_000);

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i === -1 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a positive integer`);
  return value;
}

/** Writes the two layouts of `count` files; returns each file's SHA-256 (the same in both). */
function writeLayouts(many: string, one: string, count: number): string[] {
  rmSync(many, { recursive: true, force: true });
  rmSync(one, { recursive: true, force: true });
  mkdirSync(one, { recursive: true });
  const sha256: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `model_${String(i).padStart(6, "0")}.ckpt`;
    const body = `checkpoint ${i} `.padEnd(4096, "x");
    sha256.push(createHash("sha256").update(body).digest("hex"));
    const folder = join(many, `m${String(i).padStart(6, "0")}`);
    mkdirSync(folder, { recursive: true });
    for (const path of [join(folder, name), join(one, name)]) {
      writeFileSync(path, body);
      utimesSync(path, PAST, PAST);
    }
  }
  return sha256;
}

export async function benchScaleFolders(): Promise<boolean> {
  const count = argValue("--files", 2000);
  const work = join(scaleRoot(), `folders-${count}`);
  const many = join(work, "many");
  const one = join(work, "one");
  console.log(`# scale-folders: ${count} files one per folder, and the same files in one folder (medians of ${RUNS} interleaved runs)`);
  const fake = startScaleCivitai(writeLayouts(many, one, count));
  const cli = cliCommand();
  try {
    const layouts = [
      { label: "one per folder", dir: many, folders: count },
      { label: "all in one folder", dir: one, folders: 1 },
    ].map((l) => {
      const cache = join(work, `cache-${l.folders}`);
      rmSync(cache, { recursive: true, force: true });
      const scan = [
        ...cli,
        "scan",
        "-q",
        l.dir,
        "--api-url",
        fake.url,
        "--cache-dir",
        cache,
        "-o",
        join(work, `inventory-${l.folders}.json`),
      ];
      return { ...l, scan, floor: ["find", l.dir, "-type", "f", "-printf", "%s %T@\\n"], ours: [] as number[], ref: [] as number[] };
    });
    // The first scan hashes and asks; the second builds the records from the kept answers and keeps them.
    for (const l of layouts)
      for (let i = 0; i < 2; i++) if ((await timeCommand(l.scan)).code !== 0) throw new Error(`scan of ${l.dir} failed`);
    const before = fake.requests;
    for (let r = 0; r < RUNS; r++) {
      for (const l of layouts) {
        l.ref.push((await timeCommand(l.floor, { stdout: "ignore" })).ms);
        l.ours.push((await timeCommand(l.scan)).ms);
      }
    }
    const rows = layouts.map((l) => ({ ...l, oursMs: median(l.ours), refMs: median(l.ref) }));
    for (const r of rows) {
      console.log(
        `   warm scan, ${r.label.padEnd(17)} ours ${(r.oursMs / 1000).toFixed(2)} s   find -printf ${(r.refMs / 1000).toFixed(3)} s   ${(r.oursMs / r.refMs).toFixed(1)}x`,
      );
    }
    const [perFolder, flat] = rows as [(typeof rows)[0], (typeof rows)[0]];
    const extra = (perFolder.oursMs - flat.oursMs) / (perFolder.folders - flat.folders);
    console.log(`   each folder adds ${(extra * 1000).toFixed(0)} µs to a warm scan; warm requests: ${fake.requests - before}`);
    return true;
  } finally {
    await fake.stop();
  }
}
