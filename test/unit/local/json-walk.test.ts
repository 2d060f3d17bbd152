import { describe, expect, test } from "bun:test";
import { walkJsonObject, type JsonValueKind } from "../../../src/local/json-walk.ts";
import { parseSafetensorsHeader, METADATA_KEEP_KEYS } from "../../../src/local/safetensors-header.ts";
import { ByteBudget } from "../../../src/shared/byte-budget.ts";
import { seededRandom } from "../../helpers/seeded-random.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const noop = { topMember() {}, wantMembers: () => true, innerMember() {} };

/** What JSON.parse says: an object, or anything else / an error. */
function parsesAsObject(text: string): boolean {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

describe("T13: walkJsonObject validates like JSON.parse", () => {
  const cases = [
    "{}",
    " \t\r\n{ } \n",
    '{"a":1}',
    '{"a":-0.5e+10,"b":[1,2,[3,{}]],"c":{"d":null,"e":true,"f":false}}',
    '{"a":"\\u00e9\\n\\"\\\\\\/\\b\\f\\r\\t"}',
    '{"a":[]}',
    '{"a":{}}',
    '{"é":"ü"}',
    // invalid
    "",
    "{",
    "}",
    "[]",
    '"x"',
    "{} {}",
    "{}x",
    '{"a":1,}',
    '{"a":[1,]}',
    '{"a" 1}',
    "{a:1}",
    "{'a':1}",
    '{"a":01}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":-}',
    '{"a":1e}',
    '{"a":+1}',
    '{"a":tru}',
    '{"a":nul}',
    '{"a":"\\x"}',
    '{"a":"\\u12"}',
    '{"a":"tab\there"}',
    '{"a":"line\nbreak"}',
    '{"a":"unterminated}',
    '{"a":[1 2]}',
    '{"a":1 "b":2}',
    '{"a":{"b":1}',
    '{"a":1}}',
    '{,"a":1}',
  ];
  test.each(cases)("%p", (text) => {
    expect(walkJsonObject(enc(text), noop, 128).ok).toBe(parsesAsObject(text));
  });

  test("members are reported as byte spans: top-level ones, and those of the objects asked for", () => {
    const text = '{"t":{"x":[1,{"y":2}]},"__metadata__":{"k":"v","n":{"deep":1},"é":"\\u0041"},"z":3}';
    const bytes = enc(text);
    const seen: string[] = [];
    const slice = (s: number, e: number) => new TextDecoder().decode(bytes.subarray(s, e));
    const result = walkJsonObject(
      bytes,
      {
        topMember: (ks, ke, vs, ve, kind: JsonValueKind) => seen.push(`top ${slice(ks, ke)}=${slice(vs, ve)} ${kind}`),
        wantMembers: (ks, ke) => slice(ks, ke) === '"__metadata__"',
        innerMember: (ks, ke, vs, ve, kind: JsonValueKind) => seen.push(`in ${slice(ks, ke)}=${slice(vs, ve)} ${kind}`),
      },
      128,
    );
    expect(result.ok).toBe(true);
    expect(seen).toEqual([
      'top "t"={"x":[1,{"y":2}]} object',
      'in "k"="v" string',
      'in "n"={"deep":1} object',
      'in "é"="\\u0041" string',
      'top "__metadata__"={"k":"v","n":{"deep":1},"é":"\\u0041"} object',
      'top "z"=3 number',
    ]);
  });

  test("generated documents, their cuts and one-byte edits: the walk says what JSON.parse says and its spans rebuild the object", () => {
    // The walk has a fast path for `"key":scalar,` runs (with any whitespace) beside its state
    // machine; documents mixing both, and broken at random places, check that they agree.
    const random = seededRandom(13);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const ws = () => (random() < 0.7 ? "" : pick([" ", "\n", "\t", "\r", "  "]));
    const key = () => pick(['"a"', '"k0"', '"__metadata__"', '"\\u00e9"', '"x\\ny"', '"é"', '""', '"\\""']);
    const value = (depth: number): string => {
      const r = random();
      if (depth > 3 || r < 0.5) return pick(["1", "-0.5e+3", "0", "true", "false", "null", key(), key()]);
      if (r < 0.75) return object(depth + 1);
      const items = Array.from({ length: Math.floor(random() * 4) }, () => ws() + value(depth + 1) + ws());
      return `[${items.join(",")}]`;
    };
    const object = (depth: number): string => {
      const items = Array.from({ length: Math.floor(random() * 5) }, () => `${ws()}${key()}${ws()}:${ws()}${value(depth)}${ws()}`);
      return `{${items.join(",")}}`;
    };
    const edits = ['"', ":", ",", "{", "}", "[", "]", " ", "x", "1", "-", "\\", "\n", "t", "\u0001"];
    const kindOf = (v: unknown): JsonValueKind =>
      Array.isArray(v) ? "array" : v === null || typeof v === "boolean" ? "literal" : (typeof v as JsonValueKind);
    let valid = 0;
    let innerChecked = 0;
    for (let n = 0; n < 1000; n++) {
      const base = ws() + object(0) + ws();
      const at = Math.floor(random() * (base.length + 1));
      const texts = [base, base.slice(0, at), base.slice(0, at) + pick(edits) + base.slice(at), base.slice(0, at) + base.slice(at + 1)];
      for (const text of texts) {
        const bytes = enc(text);
        const slice = (s: number, e: number) => JSON.parse(new TextDecoder().decode(bytes.subarray(s, e)));
        const top: Record<string, unknown> = {};
        let inner: Record<string, unknown> = {};
        const result = walkJsonObject(
          bytes,
          {
            topMember(ks, ke, vs, ve, kind) {
              expect(kindOf(slice(vs, ve))).toBe(kind);
              top[slice(ks, ke)] = slice(vs, ve);
              // The members of an object asked for are reported before the object itself.
              if (slice(ks, ke) === "__metadata__" && kind === "object") {
                expect(inner).toEqual(slice(vs, ve));
                innerChecked++;
              }
              inner = {};
            },
            wantMembers: (ks, ke) => slice(ks, ke) === "__metadata__",
            innerMember(ks, ke, vs, ve, kind) {
              expect(kindOf(slice(vs, ve))).toBe(kind);
              inner[slice(ks, ke)] = slice(vs, ve);
            },
          },
          128,
        );
        expect({ text, ok: result.ok }).toEqual({ text, ok: parsesAsObject(text) });
        if (!result.ok) continue;
        valid++;
        expect(top).toEqual(JSON.parse(text));
      }
    }
    expect(valid).toBeGreaterThan(1000);
    expect(innerChecked).toBeGreaterThan(70);
  });

  test("depth is capped without recursion", () => {
    const deep = `{"a":${"[".repeat(200_000)}${"]".repeat(200_000)}}`;
    expect(walkJsonObject(enc(deep), noop, 128)).toEqual({ ok: false, reason: "JSON nested deeper than 128 levels" });
    const ok = `{"a":${"[".repeat(127)}${"]".repeat(127)}}`;
    expect(walkJsonObject(enc(ok), noop, 128).ok).toBe(true);
  });
});

describe("T13: huge __metadata__ is counted whole and kept bounded", () => {
  test("the first keys and the ones extractors read are kept, every string entry is counted", () => {
    const entries: string[] = [];
    for (let i = 0; i < 50_000; i++) entries.push(`"k${i}":"v"`);
    entries.push('"ss_output_name":"late but read"', '"sshs_model_hash":"abc"', '"obj":{"a":1}', '"__proto__":"x"');
    const r = parseSafetensorsHeader(enc(`{"__metadata__":{${entries.join(",")}}}`), 0);
    expect(r.errors).toEqual([]);
    expect(r.metadataCount).toBe(50_002);
    const kept = Object.keys(r.metadata!);
    expect(kept.length).toBe(METADATA_KEEP_KEYS + 2);
    expect(r.metadata!.ss_output_name).toBe("late but read");
    expect(r.warnings.join("\n")).toContain('not strings ignored: "obj"');
    expect(r.warnings.join("\n")).toContain("prototype names");
  });

  test("a long value is cut with the exact count of what was dropped, escapes and all", () => {
    const long = `${"é".repeat(3000)}\\n${"x".repeat(10_000)}`;
    const r = parseSafetensorsHeader(enc(`{"__metadata__":{"note":"${long}"}}`), 0);
    const full = JSON.parse(`"${long}"`) as string;
    expect(r.metadata!.note).toBe(`${full.slice(0, 1000)}…[truncated ${full.length - 1000} chars]`);
  });
});

describe("T13: ByteBudget", () => {
  test("tasks wait while the bytes in flight would pass the limit; one bigger than the limit runs alone", async () => {
    const budget = new ByteBudget(100);
    const a = await budget.acquire(60);
    let bGot = false;
    const b = budget.acquire(60).then((r) => {
      bGot = true;
      return r;
    });
    await Bun.sleep(5);
    expect(bGot).toBe(false);
    a();
    const releaseB = await b;
    expect(budget.used).toBe(60);
    releaseB();
    releaseB(); // twice is harmless
    expect(budget.used).toBe(0);
    const huge = await budget.acquire(10_000);
    expect(budget.used).toBe(100);
    huge();
  });
});
