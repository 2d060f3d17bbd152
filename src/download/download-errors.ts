/** How a transfer step fails: the class says whether the transfer loop tries again. */

/** Ends the transfer: the message is the advice. */
export class DownloadFailure extends Error {
  override name = "DownloadFailure";
}

/**
 * Worth another attempt (dropped connection, stall, 5xx, a short 429); `expired` asks Civitai for
 * a fresh link; `waitMs` is how long the server asked us to wait (Retry-After) before it.
 */
export class RetryableFailure extends Error {
  override name = "RetryableFailure";
  constructor(
    message: string,
    readonly expired = false,
    readonly waitMs?: number,
  ) {
    super(message);
  }
}

/**
 * Civitai's download quota (a 429 with no short Retry-After): every other file of the run would get
 * the same answer, so the run stops asking (signed-link.ts).
 */
export class QuotaFailure extends DownloadFailure {
  override name = "QuotaFailure";
}

/** The stall timer's abort reason: no byte (or header) within the stall timeout. */
export class StallError extends Error {
  override name = "StallError";
}
