/**
 * The one redaction function every sink uses (docs/reliability.md §4.1): logger, error messages,
 * reports, cache. It removes the literal key wherever it appears, credential query parameters,
 * Authorization values and the parts of pre-signed S3/R2 URLs that act as credentials.
 */

export const REDACTED = "***";

/** Query/form parameters whose value is a credential. `token` is Civitai's own (docs/civitai-api.md §4.3). */
const SECRET_PARAM_RE = /([?&;]|\b)(token|api[_-]?key|access_token|key)=([^&\s"'#<>]*)/gi;
const AMZ_PARAM_RE = /\b(X-Amz-(?:Signature|Credential|Security-Token))(=|:\s*)([^&\s"'#<>]*)/gi;
/** `Authorization: …` in a header dump, or `"authorization":"…"` in JSON, up to the end of the value. */
const AUTH_HEADER_RE = /\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)([^"'\r\n]+)/gi;
const BEARER_RE = /\bBearer\s+[A-Za-z0-9._~+/=-]+/g;

export type Redactor = (text: string) => string;

/**
 * Builds a redactor for the given secrets. Empty and missing entries are ignored; every other
 * secret is removed however short (a short key is a user mistake we must not amplify by leaking it).
 */
export function createRedactor(secrets: readonly (string | null | undefined)[] = []): Redactor {
  const literals = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    literals.add(secret);
    // The key may also travel percent-encoded (a URL) or JSON-escaped (a dumped body).
    literals.add(encodeURIComponent(secret));
    literals.add(JSON.stringify(secret).slice(1, -1));
  }
  // Longest first so a secret that contains another is replaced whole.
  const ordered = [...literals].sort((a, b) => b.length - a.length);
  return (text: string) => {
    let out = String(text);
    for (const literal of ordered) out = out.split(literal).join(REDACTED);
    out = out.replace(AUTH_HEADER_RE, (_m, prefix: string) => `${prefix}${REDACTED}`);
    out = out.replace(BEARER_RE, `Bearer ${REDACTED}`);
    out = out.replace(SECRET_PARAM_RE, (_m, sep: string, name: string, value: string) =>
      value ? `${sep}${name}=${REDACTED}` : `${sep}${name}=`,
    );
    out = out.replace(AMZ_PARAM_RE, (_m, name: string, eq: string) => `${name}${eq}${REDACTED}`);
    return out;
  };
}

/** One-shot form of {@link createRedactor}. */
export function redact(text: string, secrets: readonly (string | null | undefined)[] = []): string {
  return createRedactor(secrets)(text);
}
