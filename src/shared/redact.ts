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

/**
 * Removes the given secrets from every string of a value parsed from JSON (an API answer), keys
 * included, in place. A server we send the key to could echo it inside answer data (a model name,
 * a file name), and from there it would reach records, reports, caches and sidecars; messages
 * pass the redactor, data does not. Only the literal secret (and its percent-encoded form) is
 * replaced: answer data is not rewritten by the URL and header rules meant for messages.
 * Iterative: a hostile answer may nest far deeper than the call stack allows.
 */
export function scrubSecrets<T>(value: T, secrets: readonly (string | null | undefined)[]): T {
  const literals = [...new Set(secrets.flatMap((s) => (s ? [s, encodeURIComponent(s)] : [])))].sort((a, b) => b.length - a.length);
  if (literals.length === 0) return value;
  const clean = (text: string) => {
    let out = text;
    for (const literal of literals) if (out.includes(literal)) out = out.split(literal).join(REDACTED);
    return out;
  };
  if (typeof value === "string") return clean(value) as T;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const item: unknown = node[i];
        if (typeof item === "string") node[i] = clean(item);
        else if (item !== null && typeof item === "object") stack.push(item);
      }
    } else if (node !== null && typeof node === "object") {
      const record = node as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        // JSON.parse makes `__proto__` an own key: read and written as such, never through the setter.
        const item: unknown = key === "__proto__" ? Object.getOwnPropertyDescriptor(record, key)?.value : record[key];
        const cleanItem = typeof item === "string" ? clean(item) : item;
        if (item !== null && typeof item === "object") stack.push(item);
        const cleanKey = clean(key);
        if (cleanKey !== key) delete record[key];
        if (cleanKey !== key || cleanItem !== item)
          Object.defineProperty(record, cleanKey, { value: cleanItem, enumerable: true, writable: true, configurable: true });
      }
    }
  }
  return value;
}
