import { closeSync, fdatasync, fsyncSync, lstatSync, openSync, readlinkSync, renameSync, statSync, unlinkSync } from "node:fs";
import { AppError, UsageError, describeErrno, errnoCode } from "../shared/errors.ts";
import { tempPathFor } from "../shared/atomic-write.ts";
import { escapeControl } from "../shared/format.ts";
import { textWriter, writeStdout } from "../shared/stdio.ts";
import { dirnamePath, fsPath, resolvePath } from "../shared/fs-path.ts";
import type { ReportFormat } from "./render.ts";

export type { ReportFormat };

/**
 * Where a finished report goes (issue 9, docs/cases.md T8):
 * - `stdout`: no -o, `-o -`, or `-o /dev/stdout` (and its /dev/fd/1, /proc/self/fd/1 spellings);
 * - `fd`: another /dev/fd/N or /proc/self/fd/N (`-o /dev/stderr`, bash's `>(…)`), written as is;
 * - `direct`: a character device or FIFO, or a link to one (or into /dev or /proc): opened and
 *   written in place. Replacing it would turn /dev/null into a file (as root) or cut off the reader;
 * - `atomic`: a regular file or a path that does not exist yet: temp file + rename in its folder, so
 *   a reader never sees half a report and an interrupted run leaves the old one whole. A link to a
 *   regular file is replaced by the report, not followed (docs/cases.md F9).
 */
export type OutputTarget =
  | { kind: "stdout" }
  | { kind: "fd"; fd: number; path: string }
  | { kind: "direct"; path: string }
  | { kind: "atomic"; path: string };

const STDOUT_NAMES = new Set(["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"]);
const FD_PATH_RE = /^(?:\/dev\/fd|\/proc\/self\/fd)\/(\d+)$/;

/** stdout or another descriptor when `name` spells one (`-`, /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N). */
function streamNamed(name: string, path: string): OutputTarget | undefined {
  if (STDOUT_NAMES.has(name)) return { kind: "stdout" };
  if (name === "/dev/stderr") return { kind: "fd", fd: 2, path };
  const fd = FD_PATH_RE.exec(name)?.[1];
  if (fd === undefined) return undefined;
  return fd === "1" ? { kind: "stdout" } : { kind: "fd", fd: Number(fd), path };
}

function cannot(path: string, why: string): AppError {
  return new AppError(`Cannot write the report to ${escapeControl(path)}: ${why}`);
}

/**
 * Decides how `-o FILE` is written and checks, before any work is done (docs/cases.md T10), that it can be:
 * the folder of a new or regular file exists and takes a new file (a temp file is created and
 * removed there). Throws one AppError naming the path and what to do.
 */
export function prepareOutput(file: string | undefined): OutputTarget {
  if (file === undefined) return { kind: "stdout" };
  const stream = streamNamed(file, file);
  if (stream) return stream;
  const path = resolvePath(file);
  let lst: ReturnType<typeof lstatSync> | undefined;
  try {
    lst = lstatSync(fsPath(path));
  } catch (error) {
    if (errnoCode(error) !== "ENOENT" && errnoCode(error) !== "ENOTDIR") throw cannot(path, describeErrno(error));
  }
  if (lst?.isSymbolicLink()) {
    // A link named like a stream (/dev/stdout, /proc/self/fd/1) is written through it.
    const link = readlinkSync(fsPath(path), "utf8");
    // Opening /proc/self/fd/1 fails (ENXIO) when it is a socket: write to the descriptor itself.
    const linked = streamNamed(link, path);
    if (linked) return linked;
    let target: ReturnType<typeof statSync> | undefined;
    try {
      target = statSync(fsPath(path));
    } catch {
      // A dangling link is replaced like a missing file, wherever it points: writing through it
      // would create a file where the link says (`/dev/../home/…` once did, by its name).
    }
    // What the link reaches decides, never its name: /dev/shm holds regular files, and a link to one
    // is replaced like any other (docs/cases.md F9), while a terminal or a pipe is written through.
    if (target?.isCharacterDevice() || target?.isFIFO() || target?.isSocket()) return { kind: "direct", path };
    if (target?.isDirectory()) throw cannot(path, "it is a link to a folder; give a file name inside it");
  } else if (lst) {
    if (lst.isDirectory()) throw cannot(path, `it is a folder; give a file name such as ${escapeControl(path)}/inventory.json`);
    if (lst.isCharacterDevice() || lst.isFIFO()) return { kind: "direct", path };
    if (!lst.isFile()) throw cannot(path, `it is a ${lst.isBlockDevice() ? "block device" : "socket"}, not a file`);
  }
  checkFolder(path);
  return { kind: "atomic", path };
}

/**
 * Where a report whose lookups stopped goes (Civitai unreachable, blocked, the key refused, a rate
 * limit past --max-wait): an inventory already at `-o` holds answers this run could not get, so it
 * is kept and the run's goes beside it, `inventory.json` → `inventory.partial.json`. Null when the
 * target is no regular file that exists (stdout, a device, a new name: nothing to keep).
 */
export function partialBeside(target: OutputTarget): { kind: "atomic"; path: string } | null {
  if (target.kind !== "atomic") return null;
  try {
    if (!lstatSync(fsPath(target.path)).isFile()) return null;
  } catch {
    return null;
  }
  const slash = target.path.lastIndexOf("/");
  const dot = target.path.lastIndexOf(".");
  const cut = dot > slash + 1 ? dot : target.path.length;
  return { kind: "atomic", path: `${target.path.slice(0, cut)}.partial${target.path.slice(cut)}` };
}

/**
 * Refuses an `-o` that is one of the inventories the command reads (the same file under any name)
 * when what is written there is not an inventory: `report inv.json --format md -o inv.json`, a
 * typo for inv.md, replaced the only inventory with its Markdown (docs/cases.md F9). A link at
 * `-o` is replaced, not followed, so it never reaches an input; stdin (`-`) is no file.
 */
export function refuseOverInput(target: OutputTarget, inputs: readonly (string | undefined)[], written: string): void {
  if (target.kind !== "atomic") return;
  let out: ReturnType<typeof lstatSync>;
  try {
    out = lstatSync(fsPath(target.path));
  } catch {
    return;
  }
  if (!out.isFile()) return;
  for (const input of inputs) {
    if (input === undefined || input === "-") continue;
    let read: ReturnType<typeof statSync>;
    try {
      read = statSync(fsPath(resolvePath(input)));
    } catch {
      continue;
    }
    if (read.dev !== out.dev || read.ino !== out.ino) continue;
    throw new UsageError(
      `-o ${escapeControl(target.path)} is the inventory ${escapeControl(input)} being read: writing the ${written} there would replace it. Give another file name`,
    );
  }
}

/** The folder of an atomic target exists, is a folder and takes a new file (probed, then removed). */
function checkFolder(path: string): void {
  const dir = dirnamePath(path);
  try {
    if (!statSync(fsPath(dir)).isDirectory()) throw cannot(path, `${escapeControl(dir)} is not a folder`);
  } catch (error) {
    if (error instanceof AppError) throw error;
    const code = errnoCode(error);
    if (code === "ENOENT") throw cannot(path, `the folder ${escapeControl(dir)} does not exist; create it first`);
    if (code === "ENOTDIR") throw cannot(path, `${escapeControl(dir)} is not a folder`);
    throw cannot(path, `cannot read the folder ${escapeControl(dir)} (${code ?? "error"})`);
  }
  const probe = tempPathFor(path);
  try {
    closeSync(openSync(fsPath(probe), "wx", 0o600));
    unlinkSync(fsPath(probe));
  } catch (error) {
    const code = errnoCode(error) ?? "error";
    const why = code === "EROFS" ? "read-only file system" : code === "EACCES" || code === "EPERM" ? "permission denied" : code;
    throw cannot(path, `the folder ${escapeControl(dir)} is not writable (${code}: ${why})`);
  }
}

/**
 * A report being written to its target, a piece at a time: stdout, another
 * descriptor, a device or FIFO written in place, or a temp file beside the target renamed over it
 * only when the report is whole (`finish`). `abort` drops a half-written temp file, so the old
 * report stays (docs/cases.md T8).
 */
interface ReportSink {
  /** Every byte is written before it returns (a full pipe is waited for), so the caller may reuse them. */
  write(data: string | Uint8Array): void;
  /** Waits for what the sink flushes in the background (atomicSink's early syncs); call before `finish`. */
  settle?(): Promise<void>;
  finish(): void;
  abort(): void;
}

/**
 * A streamed report to a file is synced to the disk this much at a time while the rest is still
 * being rendered (on a thread of the runtime's pool), so that the sync before the rename waits for
 * the last part only. Syncing all of a warm 100,000-file scan's 453 MB inventory at the end took
 * 0.3–0.7 s on this project's machine, with the CPU idle.
 */
const EARLY_SYNC_BYTES = 32 * 1024 * 1024;

function streamSink(): ReportSink {
  return {
    write: writeStdout,
    finish: () => {},
    abort: () => {},
  };
}

function fdSink(fd: number, path: string, close: boolean): ReportSink {
  const writeText = textWriter();
  let open = true;
  const done = () => {
    if (close && open) closeSync(fd);
    open = false;
  };
  return {
    write: (data) => {
      try {
        writeText(fd, data);
      } catch (error) {
        throw cannot(path, describeErrno(error));
      }
    },
    finish: done,
    abort: () => {
      try {
        done();
      } catch {
        /* already failing */
      }
    },
  };
}

/** Why an atomic report could not be written, and what to do; the old report is kept either way. */
function writeFailure(code: string | undefined): string {
  if (code === "ENOSPC" || code === "EDQUOT") {
    return `${code}: no space left on the device (or over quota); any old report there is left as it was. Free some space and run again.`;
  }
  return `${code ?? "error"}. Check that the folder exists and is writable.`;
}

function atomicSink(path: string, mode: number, syncEarly = false): ReportSink {
  const tmp = tempPathFor(path);
  const fail = (error: unknown) => cannot(path, writeFailure(errnoCode(error)));
  const writeText = textWriter();
  let fd: number | undefined;
  let unsynced = 0;
  let syncing: Promise<void> | null = null;
  let syncError: unknown = null;
  /** Starts a sync of what is written so far when enough waits and none runs (`syncEarly` only). */
  const startSync = () => {
    if (!syncEarly || syncing !== null || unsynced < EARLY_SYNC_BYTES || fd === undefined) return;
    unsynced = 0;
    syncing = new Promise<void>((resolve) =>
      fdatasync(fd!, (error) => {
        if (error) syncError ??= error;
        syncing = null;
        resolve();
      }),
    );
  };
  try {
    // "wx": never follow or clobber something already sitting at the temp name.
    fd = openSync(fsPath(tmp), "wx", mode);
  } catch (error) {
    throw fail(error);
  }
  const abort = () => {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
      fd = undefined;
    }
    try {
      unlinkSync(fsPath(tmp));
    } catch {
      /* gone already */
    }
  };
  return {
    write: (data) => {
      try {
        writeText(fd!, data);
      } catch (error) {
        abort();
        throw fail(error);
      }
      unsynced += typeof data === "string" ? data.length : data.byteLength;
      startSync();
    },
    settle: async () => {
      await syncing;
      if (syncError !== null) {
        abort();
        throw fail(syncError);
      }
    },
    finish: () => {
      try {
        fsyncSync(fd!);
        closeSync(fd!);
        fd = undefined;
        renameSync(fsPath(tmp), fsPath(path));
      } catch (error) {
        abort();
        throw fail(error);
      }
    },
    abort,
  };
}

/**
 * Opens the target `prepareOutput` chose. `mode` applies to a new or replaced regular file (default
 * 0644); `syncEarly`: a file written in many pieces is synced as it goes (EARLY_SYNC_BYTES).
 */
function openReportSink(target: OutputTarget, options: { mode?: number; syncEarly?: boolean } = {}): ReportSink {
  switch (target.kind) {
    case "stdout":
      return streamSink();
    case "fd":
      return fdSink(target.fd, target.path, false);
    case "direct": {
      let fd: number;
      try {
        fd = openSync(fsPath(target.path), "w");
      } catch (error) {
        throw cannot(target.path, describeErrno(error));
      }
      return fdSink(fd, target.path, true);
    }
    case "atomic":
      return atomicSink(target.path, options.mode ?? 0o644, options.syncEarly === true);
  }
}

/**
 * Writes a finished report (or any finished text: `download --emit` lists too) to the target
 * `prepareOutput` chose. `mode` applies to a new or replaced regular file (default 0644).
 */
export function writeReport(text: string, target: OutputTarget, options: { mode?: number } = {}): void {
  const sink = openReportSink(target, options);
  try {
    sink.write(text);
    sink.finish();
  } catch (error) {
    sink.abort();
    throw error;
  }
}

/** Bytes gathered before one write: big enough to be cheap, small enough to keep memory flat. */
const FLUSH_BYTES = 256 * 1024;
const encoder = new TextEncoder();

/**
 * Writes a report given in pieces (report/render.ts) to its target: text and bytes (records a
 * scan keeps already rendered, record-spill.ts) are gathered into one buffer, reused, and written
 * ~256 KiB at a time, and letting Ctrl-C through between writes
 * (`signal`): on any failure or interruption nothing is left under the target's name but what was
 * there before.
 */
export async function writeReportChunks(
  chunks: Iterable<string | Uint8Array>,
  target: OutputTarget,
  options: { mode?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const sink = openReportSink(target, { ...options, syncEarly: true });
  let buf = Buffer.allocUnsafe(FLUSH_BYTES);
  let used = 0;
  const flush = async () => {
    sink.write(buf.subarray(0, used));
    used = 0;
    // A turn of the event loop, so a signal handler can run between writes.
    await new Promise((resolve) => setImmediate(resolve));
    options.signal?.throwIfAborted();
  };
  try {
    for (const chunk of chunks) {
      if (typeof chunk === "string") {
        // encodeInto stops before a character that does not fit, never inside a surrogate pair.
        let rest = chunk;
        for (;;) {
          const { read, written } = encoder.encodeInto(rest, buf.subarray(used));
          used += written;
          if (read === rest.length) break;
          rest = rest.slice(read);
          await flush();
        }
      } else {
        if (used + chunk.length > buf.length) await flush();
        if (chunk.length > buf.length) buf = Buffer.allocUnsafe(chunk.length);
        buf.set(chunk, used);
        used += chunk.length;
      }
      if (used >= FLUSH_BYTES) await flush();
    }
    if (used > 0) await flush();
    await sink.settle?.();
    sink.finish();
  } catch (error) {
    sink.abort();
    throw error;
  }
}

/** `--format` names; `markdown` is accepted for md. */
const FORMATS: Readonly<Record<string, ReportFormat>> = {
  json: "json",
  csv: "csv",
  md: "md",
  markdown: "md",
  html: "html",
  htm: "html",
  junit: "junit",
};
/** File extensions that name a format (`.xml` is JUnit's: the only XML we write). */
const EXTENSIONS: Readonly<Record<string, ReportFormat>> = { ...FORMATS, xml: "junit" };
const formatNamed = (name: string): ReportFormat | undefined => (Object.hasOwn(FORMATS, name) ? FORMATS[name] : undefined);
/** An extension starts with a letter, so `inventory-2026.01.05` has none (and gets the default). */
const EXT_RE = /\.([A-Za-z][A-Za-z0-9]{0,9})$/;

/** Every format a report can be written in, in the order messages name them. */
const ALL_FORMATS: readonly ReportFormat[] = ["json", "csv", "md", "html", "junit"];
/** The file name ending that says each format. */
const ENDING: Readonly<Record<ReportFormat, string>> = { json: ".json", csv: ".csv", md: ".md", html: ".html", junit: ".xml (JUnit)" };
/** `a, b or c`. */
const orList = (items: readonly string[]): string =>
  items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;

/**
 * `--format` wins; else the extension of `-o FILE` (.json, .csv, .md, .html: the gallery, .xml: JUnit); else the configured format,
 * else JSON. An extension we do not write (`-o inv.txt`) is refused rather than filled with JSON
 * (docs/cases.md T21): `--format` says what to write into such a file. `writes`: the formats the
 * command writes (diff: json, md, csv), which are all the messages offer.
 */
export function chooseFormat(
  format: string | undefined,
  file: string | undefined,
  configured?: ReportFormat,
  writes: readonly ReportFormat[] = ALL_FORMATS,
): ReportFormat {
  if (format !== undefined) {
    const f = formatNamed(format.toLowerCase());
    if (f) return f;
    throw new UsageError(`--format must be ${orList(writes)} (got "${escapeControl(format)}")`);
  }
  const name = file?.slice(file.lastIndexOf("/") + 1) ?? "";
  const ext = EXT_RE.exec(name)?.[1]?.toLowerCase();
  if (ext === undefined || file === undefined || FD_PATH_RE.test(file)) return configured ?? "json";
  const f = Object.hasOwn(EXTENSIONS, ext) && ext !== "junit" ? EXTENSIONS[ext] : undefined;
  if (f) return f;
  throw new UsageError(
    `Cannot tell the report format from "${escapeControl(name)}": use a ${orList(writes.map((w) => ENDING[w]))} file name, or say which with --format ${writes.join("|")}`,
  );
}
