/**
 * One error class whose message is the advice (nuxi's ActionableError): the top-level boundary
 * prints `message` alone, the stack only with --verbose, and exits with `exitCode`.
 */
export class AppError extends Error {
  override name = "AppError";
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Bad flags or arguments: exit 2. */
export class UsageError extends AppError {
  override name = "UsageError";
  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  failOn: 3,
  /** 128 + the signal's number, as shells report a run a signal ended: SIGINT (Ctrl-C). */
  interrupted: 130,
  /** SIGTERM (a supervisor, `kill`, a CI job cancelled). */
  terminated: 143,
} as const;

/** Whether an exit code is that of a run a signal stopped (Ctrl-C or SIGTERM). */
export function isInterruption(exitCode: number): boolean {
  return exitCode === EXIT.interrupted || exitCode === EXIT.terminated;
}

/**
 * Bun's fetch ends its network errors with advice for the programmer ("For more information, pass
 * `verbose: true` in the second argument to fetch()"): no flag of ours does that, so it is dropped.
 */
const BUN_FETCH_HINT = /\s*For more information, pass `verbose: true` in the second argument to fetch\(\)\.?/g;

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message.replace(BUN_FETCH_HINT, "");
  return String(err);
}

/** The errno code of a Node/Bun fs or net error (`ENOENT`, `EROFS`, …), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** What the common errno codes mean, for messages a person reads (the code stays, for searching). */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOENT: "no such file or folder",
  EISDIR: "it is a folder",
  ENOTDIR: "a part of the path is not a folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "name too long",
  EMFILE: "too many open files",
  ENXIO: "a FIFO that no one reads, or a device that is not there",
  EEXIST: "a file is in the way",
  EDQUOT: "disk quota exceeded",
  EIO: "input/output error",
};

/** `no such file or folder (ENOENT)`: the errno code in words when it is a common one, else the code or the message. */
export function describeErrno(err: unknown): string {
  const code = errnoCode(err);
  if (code === undefined) return errorMessage(err);
  const words = ERRNO_WORDS[code];
  return words ? `${words} (${code})` : code;
}

/**
 * `PATH: read-only file system (EROFS)`: describeErrno with the path the error names (node:fs
 * errors carry it), else `fallback`; for warnings about a place we could not write.
 */
export function describePathError(err: unknown, fallback: string): string {
  const path = (err as { path?: unknown } | null)?.path;
  return `${typeof path === "string" ? path : fallback}: ${describeErrno(err)}`;
}

/** The errno code when there is one, else the message: the short reason a warning quotes. */
export function errnoOrMessage(err: unknown): string {
  return errnoCode(err) ?? errorMessage(err);
}
