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
  interrupted: 130,
} as const;

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The errno code of a Node/Bun fs or net error (`ENOENT`, `EROFS`, …), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The errno code when there is one, else the message: the short reason a warning quotes. */
export function errnoOrMessage(err: unknown): string {
  return errnoCode(err) ?? errorMessage(err);
}
