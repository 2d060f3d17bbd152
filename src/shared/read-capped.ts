/** Thrown when a body is larger than the caller allows; the message names the limit, never the URL. */
export class BodyTooLargeError extends Error {
  override name = "BodyTooLargeError";
  constructor(
    readonly limit: number,
    readonly declared: number | null,
  ) {
    super(
      declared !== null && declared > limit
        ? `the answer declares ${declared} bytes, more than the ${limit}-byte limit`
        : `the answer is larger than the ${limit}-byte limit`,
    );
  }
}

/**
 * Reads a whole body, counting bytes as they stream and stopping at `limit`: a hostile or broken
 * server can send an endless body or claim a huge Content-Length, and `response.text()` would buffer
 * all of it. A declared length over the limit fails before any byte is read.
 */
export async function readCapped(response: Response, limit: number): Promise<Uint8Array> {
  const header = response.headers.get("content-length");
  const declared = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null;
  if (declared !== null && declared > limit) {
    await response.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(limit, declared);
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new BodyTooLargeError(limit, declared);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** readCapped, decoded as UTF-8 (invalid bytes become U+FFFD: the text is only parsed or shown). */
export async function readCappedText(response: Response, limit: number): Promise<string> {
  return new TextDecoder().decode(await readCapped(response, limit));
}
