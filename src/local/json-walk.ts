/**
 * A validating JSON walk over bytes that keeps nothing itself (issue 9, docs/cases.md T13). A safetensors header
 * may be 100 MB of JSON with millions of `__metadata__` keys: JSON.parse of it, the copies made to
 * guard prototypes and the duplicate-key sets cost 2.9 GB in `inspect`. Here the bytes are read
 * once, iteratively (no recursion, depth capped), and the caller is told where each member of
 * the top-level object and of the objects it asks for lies, as byte spans; it decodes only what
 * it keeps. Grammar: RFC 8259. UTF-8 validity is checked separately (the caller decodes with a
 * fatal decoder).
 */

/** What a member's value is, from its first byte. */
export type JsonValueKind = "object" | "array" | "string" | "number" | "literal";

/**
 * Spans are byte offsets: `start` is the first byte (for a string its opening quote), `end` one
 * past the last (past the closing quote). Passed as plain numbers: millions of members must not
 * cost millions of objects.
 */
export interface JsonWalkVisitor {
  /** A member of the top-level object, in document order. */
  topMember(keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, kind: JsonValueKind): void;
  /** Whether the members of this top-level member's value (an object) are wanted one by one. */
  wantMembers(keyStart: number, keyEnd: number): boolean;
  /** A member of an object `wantMembers` asked for. */
  innerMember(keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, kind: JsonValueKind): void;
}

export type JsonWalkResult = { ok: true } | { ok: false; reason: string };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

// Parser states per open container.
const OBJ_KEY_OR_END = 0; // after `{`
const OBJ_KEY = 1; // after `,`
const OBJ_COLON = 2;
const OBJ_VALUE = 3;
const OBJ_COMMA_OR_END = 4;
const ARR_VALUE_OR_END = 5; // after `[`
const ARR_VALUE = 6; // after `,`
const ARR_COMMA_OR_END = 7;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

const ESCAPABLE = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]); // " \ / b f n r t

/** End (past the closing quote) of the string starting at `i` (its quote), or -1 when malformed. */
function stringEnd(b: Uint8Array, i: number): number {
  const n = b.length;
  let j = i + 1;
  while (j < n) {
    const c = b[j]!;
    if (c === QUOTE) return j + 1;
    if (c === BACKSLASH) {
      const e = b[j + 1];
      if (e === undefined) return -1;
      if (e === 0x75) {
        // \uXXXX
        if (j + 5 >= n || !isHex(b[j + 2]!) || !isHex(b[j + 3]!) || !isHex(b[j + 4]!) || !isHex(b[j + 5]!)) return -1;
        j += 6;
      } else if (ESCAPABLE.has(e)) j += 2;
      else return -1;
    } else if (c < 0x20) return -1;
    else j++;
  }
  return -1;
}

/** End of the number starting at `i`, or -1 (RFC 8259: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?). */
function numberEnd(b: Uint8Array, i: number): number {
  let j = i;
  if (b[j] === 0x2d) j++;
  if (b[j] === 0x30) j++;
  else if (b[j] !== undefined && b[j]! >= 0x31 && b[j]! <= 0x39) while (isDigit(b[j] ?? 0)) j++;
  else return -1;
  if (b[j] === 0x2e) {
    j++;
    if (!isDigit(b[j] ?? 0)) return -1;
    while (isDigit(b[j] ?? 0)) j++;
  }
  if (b[j] === 0x65 || b[j] === 0x45) {
    j++;
    if (b[j] === 0x2b || b[j] === 0x2d) j++;
    if (!isDigit(b[j] ?? 0)) return -1;
    while (isDigit(b[j] ?? 0)) j++;
  }
  return j;
}

const LITERALS: readonly (readonly number[])[] = [
  [0x74, 0x72, 0x75, 0x65], // true
  [0x66, 0x61, 0x6c, 0x73, 0x65], // false
  [0x6e, 0x75, 0x6c, 0x6c], // null
];

function literalEnd(b: Uint8Array, i: number): number {
  for (const lit of LITERALS) {
    if (b[i] !== lit[0]) continue;
    for (let k = 1; k < lit.length; k++) if (b[i + k] !== lit[k]) return -1;
    return i + lit.length;
  }
  return -1;
}

/** The kind codes the walk passes around inside (a string per value would be looked up each time). */
const KINDS: readonly JsonValueKind[] = ["object", "array", "string", "number", "literal"];
const K_OBJECT = 0;
const K_ARRAY = 1;
const K_STRING = 2;
const K_NUMBER = 3;
const K_LITERAL = 4;

/**
 * Walks `b`, which must hold one JSON object (surrounding whitespace allowed), and reports members
 * to `visitor` as their values end. Stops at the first problem: too deep (more than `maxDepth`
 * open containers), malformed, or not an object. The visitor may have been called before a later
 * problem is found; the caller discards what it kept then.
 */
// Long because it is one state machine over one cursor and two stacks, the hot loop for 100 MB
// headers: split into steps, each would take and give back the whole state. For the same reason
// what happens when a value ends is written in the loop, not in a closure: a closure over the
// cursor and the depth made JavaScriptCore keep both in a heap scope, and the walk ran ~2x slower.
export function walkJsonObject(b: Uint8Array, visitor: JsonWalkVisitor, maxDepth: number): JsonWalkResult {
  const n = b.length;
  const fail = (why: string, at: number): JsonWalkResult => ({ ok: false, reason: `not valid JSON (${why} at byte ${at})` });
  // Per open container: its state, and for the top object and the wanted inner ones the current
  // member's key span and value start.
  const state = new Uint8Array(maxDepth + 1);
  const report = new Uint8Array(maxDepth + 1); // 1: top object, 2: an object whose members are wanted
  const keyStart = new Float64Array(3);
  const keyEnd = new Float64Array(3);
  const containerStart = new Float64Array(maxDepth + 1);
  let depth = 0;
  let i = 0;
  while (i < n && isSpace(b[i]!)) i++;
  if (b[i] !== 0x7b) return { ok: false, reason: "not a JSON object" };

  let documentDone = false;
  while (i < n) {
    const c = b[i]!;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (documentDone) return fail("unexpected data after the object", i);
    const s = depth === 0 ? -1 : state[depth]!;
    // The value that ends here, [start, i) once `i` is past it, and its kind.
    let start: number;
    let kind: number;
    const expectingValue = depth === 0 || s === OBJ_VALUE || s === ARR_VALUE || s === ARR_VALUE_OR_END;
    if (expectingValue) {
      if (c === 0x7b || c === 0x5b) {
        if (depth >= maxDepth) return { ok: false, reason: `JSON nested deeper than ${maxDepth} levels` };
        // Which members the new object reports: the top one always; an object member of it if wanted.
        let r = 0;
        if (depth === 0) r = 1;
        else if (c === 0x7b && depth === 1 && s === OBJ_VALUE && report[1] === 1) {
          if (visitor.wantMembers(keyStart[1]!, keyEnd[1]!)) r = 2;
        }
        depth++;
        state[depth] = c === 0x7b ? OBJ_KEY_OR_END : ARR_VALUE_OR_END;
        report[depth] = r;
        containerStart[depth] = i;
        i++;
        continue;
      }
      if (c === 0x5d && s === ARR_VALUE_OR_END) {
        // `[]`: closed below.
        start = containerStart[depth]!;
        kind = K_ARRAY;
        depth--;
        i++;
      } else {
        let end: number;
        if (c === QUOTE) {
          end = stringEnd(b, i);
          kind = K_STRING;
        } else if (c === 0x2d || isDigit(c)) {
          end = numberEnd(b, i);
          kind = K_NUMBER;
        } else {
          end = literalEnd(b, i);
          kind = K_LITERAL;
        }
        if (end < 0) return fail("bad value", i);
        if (depth === 0) return { ok: false, reason: "not a JSON object" };
        start = i;
        i = end;
      }
    } else {
      switch (s) {
        case OBJ_KEY_OR_END:
        case OBJ_KEY: {
          if (c === 0x7d && s === OBJ_KEY_OR_END) break; // `{}`, closed below
          if (c !== QUOTE) return fail("expected a key", i);
          const r = report[depth]!;
          // Most members are `"key":scalar` followed by `,` or the object's end: walked here in one
          // go (the hot path of a huge `__metadata__`). Anything else goes back to the state
          // machine at the state reached, which judges it (and words any error) as it always has.
          let ks = i;
          let ke: number;
          for (;;) {
            ke = stringEnd(b, ks);
            if (ke < 0) return fail("bad key", ks);
            i = ke;
            while (i < n && isSpace(b[i]!)) i++;
            if (b[i] !== 0x3a) {
              state[depth] = OBJ_COLON;
              break;
            }
            i++;
            while (i < n && isSpace(b[i]!)) i++;
            const v = b[i] ?? 0;
            let ve: number;
            let vk: number;
            if (v === QUOTE) {
              ve = stringEnd(b, i);
              vk = K_STRING;
            } else if (v === 0x2d || isDigit(v)) {
              ve = numberEnd(b, i);
              vk = K_NUMBER;
            } else if (v === 0x74 || v === 0x66 || v === 0x6e) {
              ve = literalEnd(b, i);
              vk = K_LITERAL;
            } else {
              // A container, or no value yet.
              state[depth] = OBJ_VALUE;
              break;
            }
            if (ve < 0) return fail("bad value", i);
            if (r === 1) visitor.topMember(ks, ke, i, ve, KINDS[vk]!);
            else if (r === 2) visitor.innerMember(ks, ke, i, ve, KINDS[vk]!);
            i = ve;
            while (i < n && isSpace(b[i]!)) i++;
            if (b[i] !== 0x2c) {
              state[depth] = OBJ_COMMA_OR_END;
              break;
            }
            i++;
            while (i < n && isSpace(b[i]!)) i++;
            if (b[i] !== QUOTE) {
              state[depth] = OBJ_KEY;
              break;
            }
            ks = i;
          }
          if (r !== 0) {
            keyStart[r] = ks;
            keyEnd[r] = ke;
          }
          continue;
        }
        case OBJ_COLON:
          if (c !== 0x3a) return fail("expected ':'", i);
          state[depth] = OBJ_VALUE;
          i++;
          continue;
        case OBJ_COMMA_OR_END:
        case ARR_COMMA_OR_END:
          if (c === 0x2c) {
            state[depth] = s === OBJ_COMMA_OR_END ? OBJ_KEY : ARR_VALUE;
            i++;
            continue;
          }
          if ((c === 0x7d && s === OBJ_COMMA_OR_END) || (c === 0x5d && s === ARR_COMMA_OR_END)) break;
          return fail("expected ',' or a closing bracket", i);
        default:
          return fail("unexpected byte", i);
      }
      // Closing the container at `depth`.
      start = containerStart[depth]!;
      kind = c === 0x7d ? K_OBJECT : K_ARRAY;
      depth--;
      i++;
    }
    // A value [start, i) just ended in the container at `depth` (0: the document itself).
    if (depth === 0) {
      documentDone = true;
      continue;
    }
    if (state[depth] === OBJ_VALUE) {
      state[depth] = OBJ_COMMA_OR_END;
      const r = report[depth]!;
      if (r === 1) visitor.topMember(keyStart[1]!, keyEnd[1]!, start, i, KINDS[kind]!);
      else if (r === 2) visitor.innerMember(keyStart[2]!, keyEnd[2]!, start, i, KINDS[kind]!);
    } else state[depth] = ARR_COMMA_OR_END;
  }
  if (!documentDone) return fail("unexpected end", n);
  return { ok: true };
}
