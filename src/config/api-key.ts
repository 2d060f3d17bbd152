/**
 * What makes an API key unusable before it is ever sent:
 * - fetch refuses a header value with a line break or a character above U+00FF, and that failure
 *   looked like "network error (TypeError)" after five retries;
 * - a key of a few characters is a mistake (Civitai's have 32), and the key is hidden wherever it
 *   appears, in messages and in answer data: a key "k" turned every "k" of a report into `***`.
 * Pure; the message never quotes the key, only where in it the problem is.
 */

/** Shorter than this is not a key: hiding it everywhere would garble messages and records. */
export const MIN_API_KEY_LENGTH = 8;

/** Why `key` cannot be used as `Authorization: Bearer <key>`, or null when it can. */
export function apiKeyProblem(key: string): string | null {
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    const where = `(character ${i + 1} of ${key.length})`;
    const header = "so it cannot be sent in an HTTP header";
    if (code === 0x0a || code === 0x0d) return `contains a line break ${where}, ${header}`;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return `contains a control character ${where}, ${header}`;
    if (code > 0xff) return `contains a character that cannot be sent in an HTTP header ${where}`;
  }
  if (key.length < MIN_API_KEY_LENGTH)
    return `is only ${key.length} character${key.length === 1 ? "" : "s"} long, too short to be a key (Civitai's have 32)`;
  return null;
}

/** The one message for an unusable key from `source` ("CIVITAI_API_KEY", "--api-key", …). */
export function apiKeyError(source: string, problem: string): string {
  return `The API key from ${source} ${problem}. Copy the key again from your Civitai account settings (it is letters and digits only).`;
}
