/** `bun run bench [name…]`: runs the benchmarks (all by default) and exits 1 if a target is missed. */
const SUITES: Record<string, () => Promise<boolean>> = {
  hash: async () => (await import("./hash.ts")).benchHash(),
  lookup: async () => (await import("./lookup.ts")).benchLookup(),
  download: async () => (await import("./download.ts")).benchDownload(),
  headers: async () => (await import("./headers.ts")).benchHeaders(),
  gallery: async () => (await import("./gallery.ts")).benchGallery(),
  "scale-hash": async () => (await import("./scale-hash.ts")).benchScaleHash(),
  "scale-lookup": async () => (await import("./scale-lookup.ts")).benchScaleLookup(),
  "scale-report": async () => (await import("./scale-report.ts")).benchScaleReport(),
  "scale-folders": async () => (await import("./scale-folders.ts")).benchScaleFolders(),
  scale: async () => (await import("./scale.ts")).benchScale(),
  teams: async () => (await import("./teams.ts")).benchTeams(),
  "hostile-scale": async () => (await import("./hostile-scale.ts")).benchHostileScale(),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
// The scale suites write up to 100,000 files and take minutes: run when named.
const names = wanted.length > 0 ? wanted.filter((w) => !/^\d[\d,]*$/.test(w)) : Object.keys(SUITES).filter((n) => !n.startsWith("scale"));
let ok = true;
for (const name of names) {
  const suite = SUITES[name];
  if (!suite) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(SUITES).join(", ")}`);
    process.exit(2);
  }
  ok = (await suite()) && ok;
}
process.exitCode = ok ? 0 : 1;
