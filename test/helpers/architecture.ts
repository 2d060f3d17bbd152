/**
 * The checker behind test/unit/architecture.test.ts: the two layering rules of src/, read from the
 * imports of every file (parsed by test/helpers/source-tree.ts; nothing is type-checked).
 *
 * 1. Pure by default. A file in a domain folder (everything in src/ but commands/, main.ts and
 *    cli.ts) is pure unless IO_FILES lists it: it imports no module with side effects (the file
 *    system, the network, processes, workers, storage, FFI, databases: SIDE_EFFECT_MODULES), uses
 *    none of the runtime's I/O globals (Bun.file, Bun.write, Bun.spawn, Bun.serve, new Worker,
 *    fetch: BUN_IO, IO_CONSTRUCTORS, IO_FUNCTIONS), and imports no I/O file. So a new file is pure until someone lists it on
 *    purpose, and a listed file that no longer does I/O is reported so the list stays true.
 *    `import type` is erased at build time and never counts against purity.
 * 2. Imports point down. src/commands/ and src/ui/ are imported only by commands/, main.ts and cli.ts
 *    (ui/ also by ui/); no domain reaches up into them, not even for a type.
 *
 * commands/, main.ts and cli.ts are the shell that wires the domains to the outside world: they may
 * import anything.
 */
import { dirname, join, normalize } from "node:path";
import { parseSource, parseTree, walk, type AstNode, type ParsedSource } from "./source-tree.ts";

/**
 * The files allowed to do I/O, by folder under src/. Each line says what the I/O is, so that the
 * next entry is a decision, not a habit.
 */
export const IO_FILES: ReadonlyMap<string, string> = new Map([
  // shared/
  ["shared/atomic-write.ts", "writes files through a temp name and rename"],
  ["shared/fs-names.ts", "reads directories to compare names"],
  ["shared/no-follow.ts", "opens files without following links"],
  ["shared/raw-argv.ts", "reads /proc/self/cmdline (or the npm launcher's copy in the environment) for the bytes of argv"],
  ["shared/stdio.ts", "writes stdout and stderr through their descriptors"],
  ["shared/open-append.ts", "opens a file, FIFO or device to append to"],
  ["shared/read-small-file.ts", "reads a small regular file without following links or blocking on a FIFO"],
  // config/
  ["config/config-file.ts", "reads the config file"],
  // scan/
  ["scan/collect.ts", "walks and hashes (walker, hasher, hash cache)"],
  ["scan/library-index-io.ts", "reads and writes the library index file"],
  ["scan/missing-paths.ts", "stats paths given on the command line"],
  ["scan/record-cache.ts", "keeps the packs it gives records from open for the report"],
  ["scan/record-packs.ts", "reads, writes and prunes the record packs"],
  ["scan/scan.ts", "the scan pipeline: reads headers, writes sidecars"],
  ["scan/walker.ts", "walks directories"],
  // hash/
  ["hash/hash-cache-v1.ts", "reads and removes the old one-file-per-entry hash cache"],
  ["hash/hash-cache.ts", "the hash cache on disk"],
  ["hash/hash-store.ts", "the hash cache's SQLite file"],
  ["hash/hash-worker.ts", "a worker that reads files"],
  ["hash/hasher.ts", "starts the hash workers"],
  ["hash/sha256-worker.ts", "a worker that reads files"],
  ["hash/stream-hasher.ts", "reads files in the hashing worker"],
  ["hash/verified-hash.ts", "stats restored files for the hash cache"],
  // local/
  ["local/inspect.ts", "reads a model file's header"],
  ["local/local-reader.ts", "reads headers and sidecars"],
  ["local/sidecar-writer.ts", "writes .civitai.info beside a model"],
  // civitai/
  ["civitai/civitai-client.ts", "the Civitai client over the HTTP engine"],
  ["civitai/http/http.ts", "the HTTP engine (ofetch)"],
  ["civitai/meta-cache-driver.ts", "the metadata cache's storage driver (unstorage)"],
  ["civitai/meta-cache-prune.ts", "removes cache entries"],
  ["civitai/meta-cache-redis.ts", "the shared metadata cache on Redis (unstorage's redis driver, ioredis)"],
  ["civitai/meta-cache.ts", "opens the metadata cache"],
  // download/
  ["download/aliases.ts", "links and copies finished files"],
  ["download/attempt.ts", "one download attempt: disk space, the .part file, the resume state"],
  ["download/disk-space.ts", "statfs"],
  ["download/download-lock.ts", "the lock file"],
  ["download/download-resolve.ts", "stats existing files"],
  ["download/part-writer.ts", "writes the .part file"],
  ["download/resume-state.ts", "reads and writes the resume state"],
  ["download/transfer.ts", "opens and renames the .part file"],
  ["download/writeback.ts", "fdatasync through bun:ffi"],
  // preview/
  ["preview/image-cache.ts", "the image cache on disk"],
  ["preview/preview-writer.ts", "writes previews beside models"],
  // report/
  ["report/inventory-file.ts", "reads saved inventories with positioned reads"],
  ["report/report-output.ts", "writes reports"],
  ["report/record-spill.ts", "keeps a scan's records in an unlinked temporary file"],
  ["report/step-summary.ts", "appends to GITHUB_STEP_SUMMARY"],
  // ui/
  ["ui/progress.ts", "draws bars on stderr when it is a terminal"],
  ["ui/logger.ts", "writes the log file and stderr"],
]);

/** Folders (under src/) and files that form the shell: exempt from both rules. */
const SHELL = (file: string) => file.startsWith("commands/") || file === "main.ts" || file === "cli.ts";

/** Module specifiers with side effects. A `/`-suffixed entry matches the package and its subpaths. */
const SIDE_EFFECT_MODULES = [
  "fs",
  "fs/promises",
  "net",
  "http",
  "https",
  "http2",
  "tls",
  "dgram",
  "dns",
  "child_process",
  "worker_threads",
  "cluster",
  "readline",
  "bun:sqlite",
  "bun:ffi",
  "unstorage/",
  "ioredis/",
  "ofetch/",
  "undici/",
];

/** Globals that do I/O: `Bun.<name>` members, constructors and functions. */
const BUN_IO = new Set(["file", "write", "spawn", "spawnSync", "serve", "connect", "listen", "udpSocket", "$"]);
const IO_CONSTRUCTORS = new Set(["Worker", "WebSocket", "SharedWorker"]);
const IO_FUNCTIONS = new Set(["fetch"]);

export function isSideEffectModule(specifier: string): boolean {
  const name = specifier.startsWith("node:") ? specifier.slice(5) : specifier;
  return SIDE_EFFECT_MODULES.some((m) => (m.endsWith("/") ? name === m.slice(0, -1) || name.startsWith(m) : name === m));
}

interface ImportRef {
  specifier: string;
  /** Erased at build time: `import type`, `export type`, or every named binding marked `type`. */
  typeOnly: boolean;
  line: number;
}

export interface FileFacts {
  imports: ImportRef[];
  /** I/O globals the file uses, e.g. `Bun.file`, `new Worker`, `fetch()`, with their lines. */
  ioGlobals: { name: string; line: number }[];
}

const stringValue = (node: unknown): string | undefined => {
  const n = node as { type?: string; value?: unknown } | null | undefined;
  return n?.type === "Literal" && typeof n.value === "string" ? n.value : undefined;
};
const identifierName = (node: unknown): string | undefined => {
  const n = node as { type?: string; name?: unknown } | null | undefined;
  return n?.type === "Identifier" && typeof n.name === "string" ? n.name : undefined;
};

/** The imports (static, dynamic, require and `typeof import()`) and I/O globals of one source. */
export function readFacts(fileName: string, text: string): FileFacts {
  return factsOf(parseSource(fileName, text));
}

function factsOf(src: ParsedSource): FileFacts {
  const imports: ImportRef[] = [];
  const ioGlobals: FileFacts["ioGlobals"] = [];
  const line = (node: AstNode) => src.lineOf(node.start);
  walk(src.program, (node) => {
    switch (node.type) {
      case "ImportDeclaration": {
        const specifier = stringValue(node.source);
        if (specifier === undefined) break;
        const specifiers = node.specifiers as { type: string; importKind?: string }[];
        const allNamedAreTypes = specifiers.length > 0 && specifiers.every((s) => s.type === "ImportSpecifier" && s.importKind === "type");
        imports.push({ specifier, typeOnly: node.importKind === "type" || allNamedAreTypes, line: line(node) });
        break;
      }
      case "ExportNamedDeclaration":
      case "ExportAllDeclaration": {
        const specifier = stringValue(node.source);
        if (specifier !== undefined) imports.push({ specifier, typeOnly: node.exportKind === "type", line: line(node) });
        break;
      }
      case "TSImportType": {
        // `typeof import("x")` in a type position: erased.
        const specifier = stringValue(node.source) ?? stringValue((node.argument as { literal?: unknown } | undefined)?.literal);
        if (specifier !== undefined) imports.push({ specifier, typeOnly: true, line: line(node) });
        break;
      }
      case "ImportExpression": {
        const specifier = stringValue(node.source);
        if (specifier !== undefined) imports.push({ specifier, typeOnly: false, line: line(node) });
        break;
      }
      case "CallExpression": {
        const callee = identifierName(node.callee);
        const [arg] = node.arguments as unknown[];
        if (callee === "require" && stringValue(arg) !== undefined) {
          imports.push({ specifier: stringValue(arg)!, typeOnly: false, line: line(node) });
        } else if (callee !== undefined && IO_FUNCTIONS.has(callee)) {
          ioGlobals.push({ name: `${callee}()`, line: line(node) });
        }
        break;
      }
      case "NewExpression": {
        const callee = identifierName(node.callee);
        if (callee !== undefined && IO_CONSTRUCTORS.has(callee)) ioGlobals.push({ name: `new ${callee}`, line: line(node) });
        break;
      }
      case "MemberExpression": {
        const member = identifierName(node.property);
        if (identifierName(node.object) === "Bun" && !node.computed && member !== undefined && BUN_IO.has(member)) {
          ioGlobals.push({ name: `Bun.${member}`, line: line(node) });
        }
        break;
      }
    }
  });
  return { imports, ioGlobals };
}

export interface Problem {
  file: string;
  line: number;
  message: string;
}

/**
 * Checks a set of files, keyed by their path under src/ (e.g. `download/plan.ts`), against both
 * rules, with `ioFiles` as the allowlist. Pure over its inputs, so the tests can plant violations.
 */
export function checkFiles(files: ReadonlyMap<string, FileFacts>, ioFiles: ReadonlyMap<string, string> = IO_FILES): Problem[] {
  const problems: Problem[] = [];
  const resolveLocal = (from: string, specifier: string): string | undefined =>
    specifier.startsWith(".") ? normalize(join(dirname(from), specifier)).replaceAll("\\", "/") : undefined;
  for (const [file, facts] of files) {
    if (SHELL(file)) continue;
    const listed = ioFiles.has(file);
    let doesIo = false;
    for (const ref of facts.imports) {
      const target = resolveLocal(file, ref.specifier);
      if (target !== undefined && (target.startsWith("commands/") || (target.startsWith("ui/") && !file.startsWith("ui/")))) {
        const layer = target.startsWith("commands/") ? "commands/" : "ui/";
        problems.push({
          file,
          line: ref.line,
          message: `imports ${ref.specifier}: only the shell (commands/, main.ts, cli.ts) may import ${layer}`,
        });
      }
      if (ref.typeOnly) continue;
      const io = isSideEffectModule(ref.specifier) ? ref.specifier : target !== undefined && ioFiles.has(target) ? target : undefined;
      if (io === undefined) continue;
      doesIo = true;
      if (!listed) {
        const what = isSideEffectModule(ref.specifier) ? `${ref.specifier}, a module with side effects` : `${io}, an I/O file`;
        problems.push({ file, line: ref.line, message: `a pure file imports ${what}: move the I/O out, or list ${file} in IO_FILES` });
      }
    }
    for (const use of facts.ioGlobals) {
      doesIo = true;
      if (!listed)
        problems.push({ file, line: use.line, message: `a pure file uses ${use.name}: move the I/O out, or list ${file} in IO_FILES` });
    }
    if (listed && !doesIo) problems.push({ file, line: 1, message: `listed in IO_FILES but does no I/O: remove it from the list` });
  }
  for (const file of ioFiles.keys()) {
    if (!files.has(file)) problems.push({ file, line: 0, message: "listed in IO_FILES but does not exist" });
  }
  return problems;
}

/** Every .ts file under `srcDir`, keyed by its path relative to it with `/` separators. */
export function readTree(srcDir: string): Map<string, FileFacts> {
  return new Map([...parseTree(srcDir)].map(([file, src]) => [file, factsOf(src)]));
}
