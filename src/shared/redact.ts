/**
 * The one redaction function every sink uses (docs/reliability.md §4.1): logger, error messages,
 * reports, cache. It removes the literal key (and the shared cache's password) wherever it appears,
 * credential query parameters, Authorization values, the user part of URLs with a password and
 * the parts of pre-signed S3/R2 URLs that act as credentials.
 */

export const REDACTED = "***";

/** Query/form parameters whose value is a credential. `token` is Civitai's own (docs/civitai-api.md §4.3). */
const SECRET_PARAM_RE = /([?&;]|\b)(token|api[_-]?key|access_token|key)=([^&\s"'#<>]*)/gi;
const AMZ_PARAM_RE = /\b(X-Amz-(?:Signature|Credential|Security-Token))(=|:\s*)([^&\s"'#<>]*)/gi;
/** `Authorization: …` in a header dump, or `"authorization":"…"` in JSON, up to the end of the value. */
const AUTH_HEADER_RE = /\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)([^"'\r\n]+)/gi;
const BEARER_RE = /\bBearer\s+[A-Za-z0-9._~+/=-]+/g;
/**
 * The user part of a URL that carries a password (`scheme://user:pass@host`), and of any Redis URL
 * (the shared metadata cache's, issue 14: `redis://secret@host` may be a password too), up to the
 * last `@` of the authority: a password may hold a raw `@`.
 */
const URL_USERINFO_RE = /\b(?:rediss?:\/\/[^\s/?#"'<>]+@|[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>]*:[^\s/?#"'<>]*@)/gi;

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
    out = out.replace(URL_USERINFO_RE, (match: string) => `${match.slice(0, match.indexOf("//") + 2)}${REDACTED}@`);
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
