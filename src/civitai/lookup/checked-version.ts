import { ApiError } from "../api-types.ts";
import { isVersion } from "../civitai-record.ts";
import type { ApiModelVersion } from "../civitai-types.ts";
import { serviceNameFor } from "../hosts.ts";

/** A non-null answer must look like a version; the client validates, this guards what we cache. */
export function checkedVersion(answer: unknown, host: string): ApiModelVersion | null {
  if (answer === null || answer === undefined) return null;
  if (!isVersion(answer)) throw new ApiError(`unexpected answer from ${serviceNameFor(host)} (not a model version)`, "bad_response");
  return answer;
}
