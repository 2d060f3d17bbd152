/**
 * What makes an API key unusable before it is ever sent: fetch refuses a header value with a line
 * break or a character above U+00FF, and that failure looked like "network error (TypeError)"
 * after five retries. Pure; the message never quotes the key, only where in it the problem is.
 */

/** Why `key` cannot be sent as `Authorization: Bearer <key>`, or null when it can. */
export function apiKeyProblem(key: string): string | null {
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    const where = `(character ${i + 1} of ${key.length})`;
    if (code === 0x0a || code === 0x0d) return `contains a line break ${where}`;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return `contains a control character ${where}`;
    if (code > 0xff) return `contains a character that cannot be sent in an HTTP header ${where}`;
  }
  return null;
}

/** The one message for an unusable key from `source` ("CIVITAI_API_KEY", "--api-key", …). */
export function apiKeyError(source: string, problem: string): string {
  return `The API key from ${source} ${problem}, so it cannot be sent in an HTTP header. Copy the key again from your Civitai account settings (it is letters and digits only).`;
}
