/** How a transfer step fails: the class says whether the transfer loop tries again. */

/** Ends the transfer: the message is the advice. */
export class DownloadFailure extends Error {
  override name = "DownloadFailure";
}

/** Worth another attempt (dropped connection, stall, 5xx); `expired` asks Civitai for a fresh link. */
export class RetryableFailure extends Error {
  override name = "RetryableFailure";
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
  }
}

/** The stall timer's abort reason: no byte (or header) within the stall timeout. */
export class StallError extends Error {
  override name = "StallError";
}
