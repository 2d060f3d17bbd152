/**
 * Reads a JSON document whose top level is an object holding one long array (an inventory's
 * `records`) without holding the text or the object tree of the whole (issue 11, target 2): one
 * pass over the bytes, a 1 MiB window at a time, finds each top-level member and each element of
 * the long array, and hands back their byte ranges. The caller parses each range on its own
 * (`JSON.parse` of a few KB) when it needs it, and may come back to it later by its range.
 *
 * Only the structure is checked here (brackets, strings, commas, colons, depth); each range is
 * checked by `JSON.parse` when it is parsed. JSON's structural characters are ASCII and never occur
 * inside a multi-byte UTF-8 sequence, so scanning bytes is exact. Pure: the bytes come through a
 * {@link ByteSource} (a file read with pread, or a buffer).
 */

/** Random access to the bytes of a document. */
export interface ByteSource {
  readonly size: number;
  /**
   * `length` bytes from `pos` (fewer only at the end). They may be overwritten by the next `read`
   * (a file source reuses one buffer: a new one per read is memory the engine frees late).
   */
  read(pos: number, length: number): Uint8Array;
  /** The UTF-8 text of a range; never disturbs the bytes `read` last returned. */
  text(start: number, end: number): string;
}

/** A buffer in memory as a {@link ByteSource}. */
export function bufferSource(bytes: Uint8Array): ByteSource {
  const read = (pos: number, length: number) => bytes.subarray(pos, pos + length);
  return { size: bytes.length, read, text: (start, end) => decodeUtf8(read(start, end - start)) };
}

/** What the scan reports, as it finds it. */
export interface ScanHandler {
  /** Is `key`'s value the long array to hand back element by element? */
  isArrayKey(key: string): boolean;
  /** The long array under `key` starts (its elements follow, if any). */
  array(key: string): void;
  /** A top-level member (other than the long array): its key and the byte range of its value. */
  member(key: string, start: number, end: number): void;
  /** One element of the long array: its byte range, its index, and the array's key. */
  element(key: string, start: number, end: number, index: number): void;
}

/** Why the bytes are not the JSON object expected; `at` is the byte offset. */
export class JsonStreamError extends SyntaxError {
  override name = "JsonStreamError";
  constructor(
    message: string,
    readonly at: number,
    /** `notObject`: valid so far but not an object at the top; `tooDeep`: past the depth limit; `syntax`: not JSON. */
    readonly kind: "syntax" | "notObject" | "tooDeep" | "truncated",
  ) {
    super(message);
  }
}

const WINDOW = 1 << 20;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACK = 0x5b;
const RBRACK = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

const decoder = new TextDecoder();

/** UTF-8 bytes as text (invalid sequences become U+FFFD, as a text read would). */
export function decodeUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** The UTF-8 text of a byte range. */
export function textOf(src: ByteSource, start: number, end: number): string {
  return src.text(start, end);
}

/** A window over the source; `at(pos)` is -1 past the end. */
class Cursor {
  buf: Uint8Array = new Uint8Array(0);
  base = 0;
  constructor(readonly src: ByteSource) {}

  load(pos: number): void {
    this.base = pos;
    this.buf = this.src.read(pos, Math.min(WINDOW, Math.max(0, this.src.size - pos)));
  }

  at(pos: number): number {
    if (pos < this.base || pos >= this.base + this.buf.length) {
      if (pos >= this.src.size || pos < 0) return -1;
      this.load(pos);
    }
    return this.buf[pos - this.base]!;
  }
}

/** The scan of one document: a cursor and the position logic, one method per JSON construct. */
class Scanner {
  private readonly c: Cursor;

  constructor(
    private readonly src: ByteSource,
    private readonly handler: ScanHandler,
    private readonly maxDepth: number,
  ) {
    this.c = new Cursor(src);
  }

  private fail(at: number, what: string, kind: JsonStreamError["kind"] = "syntax"): never {
    if (this.c.at(at) === -1)
      throw new JsonStreamError(`Unexpected end of the file at byte ${this.src.size} (it is cut short)`, at, "truncated");
    throw new JsonStreamError(`${what} at byte ${at}`, at, kind);
  }

  private skipSpace(pos: number): number {
    while (isSpace(this.c.at(pos))) pos++;
    return pos;
  }

  /** The end (exclusive) of the string starting at `pos` (its opening quote). */
  private skipString(pos: number): number {
    const c = this.c;
    let i = pos + 1;
    for (;;) {
      if (c.at(i) === -1) this.fail(i, "Unterminated string");
      const found = c.buf.indexOf(QUOTE, i - c.base);
      if (found === -1) {
        i = c.base + c.buf.length;
        continue;
      }
      const q = c.base + found;
      let slashes = 0;
      while (c.at(q - 1 - slashes) === BACKSLASH) slashes++;
      if (slashes % 2 === 0) return q + 1;
      i = q + 1;
    }
  }

  /** The end (exclusive) of the object or array opening at `pos`, at nesting `depth` (1 = top). */
  private skipContainer(pos: number, depth: number): number {
    const c = this.c;
    const closers: number[] = [];
    let i = pos;
    for (;;) {
      if (c.at(i) === -1) this.fail(i, "");
      // Tight loop over the window already loaded; strings are skipped with indexOf.
      const buf = c.buf;
      let j = i - c.base;
      for (; j < buf.length; j++) {
        const x = buf[j]!;
        if (x === QUOTE) break;
        if (x === LBRACE || x === LBRACK) {
          if (depth + closers.length > this.maxDepth) this.fail(c.base + j, `Nested deeper than ${this.maxDepth} levels`, "tooDeep");
          closers.push(x === LBRACE ? RBRACE : RBRACK);
        } else if (x === RBRACE || x === RBRACK) {
          if (closers.pop() !== x) this.fail(c.base + j, `Unexpected "${String.fromCharCode(x)}"`);
          if (closers.length === 0) return c.base + j + 1;
        }
      }
      i = c.base + j;
      if (j < buf.length) i = this.skipString(i);
    }
  }

  /** The end (exclusive) of the value starting at `pos`. */
  private skipValue(pos: number, depth: number): number {
    const c = this.c;
    const b = c.at(pos);
    if (b === LBRACE || b === LBRACK) return this.skipContainer(pos, depth);
    if (b === QUOTE) return this.skipString(pos);
    let i = pos;
    for (let x = c.at(i); x !== -1 && x !== COMMA && x !== RBRACE && x !== RBRACK && !isSpace(x); x = c.at(i)) i++;
    if (i === pos) this.fail(pos, b === -1 ? "" : `Unexpected "${String.fromCharCode(b)}"`);
    return i;
  }

  /** The position of the top object's `{`, after a BOM and spaces; another JSON value is "not an object". */
  private start(): number {
    const c = this.c;
    let pos = 0;
    if (c.at(0) === 0xef && c.at(1) === 0xbb && c.at(2) === 0xbf) pos = 3; // a BOM (Windows editors)
    pos = this.skipSpace(pos);
    const first = c.at(pos);
    if (first === LBRACE) return pos;
    // Another JSON value (an array, a number, a string, a literal) is JSON, just not ours.
    const word = textOf(this.src, pos, Math.min(this.src.size, pos + 5));
    const literal = /^(?:true|false|null)(?![A-Za-z0-9])/.test(word);
    if (first === LBRACK || first === QUOTE || first === 0x2d || (first >= 0x30 && first <= 0x39) || literal) {
      this.fail(pos, "Not an object", "notObject");
    }
    return this.fail(pos, first === -1 ? "" : `Unexpected "${String.fromCharCode(first)}"`);
  }

  /** The whole document: each member of the top object, then nothing but spaces. */
  scan(): void {
    const c = this.c;
    let pos = this.skipSpace(this.start() + 1);
    if (c.at(pos) === RBRACE) pos++;
    else {
      for (;;) {
        if (c.at(pos) !== QUOTE) this.fail(pos, "Expected a key");
        const keyEnd = this.skipString(pos);
        const key = JSON.parse(textOf(this.src, pos, keyEnd)) as string;
        pos = this.skipSpace(keyEnd);
        if (c.at(pos) !== COLON) this.fail(pos, 'Expected ":"');
        pos = this.skipSpace(pos + 1);
        if (this.handler.isArrayKey(key) && c.at(pos) === LBRACK) pos = this.scanArray(key, pos);
        else {
          const end = this.skipValue(pos, 2);
          this.handler.member(key, pos, end);
          pos = end;
        }
        pos = this.skipSpace(pos);
        const sep = c.at(pos);
        if (sep === COMMA) pos = this.skipSpace(pos + 1);
        else if (sep === RBRACE) {
          pos++;
          break;
        } else this.fail(pos, 'Expected "," or "}"');
      }
    }
    pos = this.skipSpace(pos);
    if (pos < this.src.size) this.fail(pos, "Unexpected data after the end of the JSON object");
  }

  private scanArray(key: string, open: number): number {
    this.handler.array(key);
    let p = this.skipSpace(open + 1);
    if (this.c.at(p) === RBRACK) return p + 1;
    for (let index = 0; ; index++) {
      const end = this.skipValue(p, 3);
      this.handler.element(key, p, end, index);
      p = this.skipSpace(end);
      const sep = this.c.at(p);
      if (sep === COMMA) p = this.skipSpace(p + 1);
      else if (sep === RBRACK) return p + 1;
      else this.fail(p, 'Expected "," or "]"');
    }
  }
}

/**
 * Scans `src` as a JSON object, calling `handler` for each member; throws {@link JsonStreamError}
 * when it is not one (or nests deeper than `maxDepth`, counting the top object as 1).
 */
export function scanJsonObject(src: ByteSource, handler: ScanHandler, maxDepth: number): void {
  new Scanner(src, handler, maxDepth).scan();
}
