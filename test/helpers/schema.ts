/**
 * Validates objects against docs/report.schema.json with ajv, compiled once per mode. Every test
 * that produces an inventory (unit or end-to-end) should call {@link validateInventory} on it.
 */
import { _ } from "ajv";
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import standaloneCode from "ajv/dist/standalone/index.js";
import addFormats from "ajv-formats";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

export const SCHEMA_PATH = join(import.meta.dir, "..", "..", "docs", "report.schema.json");

export interface ValidateOptions {
  /**
   * Default true: also reject properties the schema does not list, so a field added to the
   * pipeline without being documented in the schema (and docs/report-format.md) fails the tests.
   * The published schema itself allows additions (forward compatibility); `strict: false` checks that.
   */
  strict?: boolean;
}

type JsonSchema = Record<string, unknown>;

/** The schema with `additionalProperties: false` on every object schema that lists properties and says nothing else. */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (typeof node !== "object" || node === null) return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) out[key] = closeObjects(value);
  // `if` subschemas only test a property; closing them would make the condition always false.
  if ("properties" in out && !("additionalProperties" in out) && out.type === "object") out.additionalProperties = false;
  return out;
}

let published: JsonSchema | undefined;
const compiled = new Map<boolean, ValidateFunction>();

export function loadSchema(): JsonSchema {
  published ??= JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as JsonSchema;
  return published;
}

const AJV_OPTIONS = { allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true } as const;
/**
 * Compiled validators, kept between test files and runs: ajv needs ~0.5–1 s to compile this schema,
 * which every file that validates paid again. The key is the schema as compiled, the options and
 * ajv's version; the file is ajv's own standalone code for it (the same validator, as source).
 * Beside node_modules so that its require() of ajv's runtime resolves.
 */
const CACHE_DIR = join(import.meta.dir, "..", "..", "node_modules", ".cache", "civitai-meta-tests");
const requireHere = createRequire(import.meta.url);

function validator(strict: boolean): ValidateFunction {
  let fn = compiled.get(strict);
  if (fn) return fn;
  const schema = strict ? (closeObjects(loadSchema()) as JsonSchema) : loadSchema();
  const ajvVersion = (requireHere("ajv/package.json") as { version: string }).version;
  const key = createHash("sha256")
    .update(JSON.stringify([schema, AJV_OPTIONS, ajvVersion]))
    .digest("hex")
    .slice(0, 24);
  const file = join(CACHE_DIR, `report-schema-${key}.cjs`);
  if (existsSync(file)) {
    const mod = requireHere(file) as ValidateFunction | { default: ValidateFunction };
    fn = "default" in mod ? mod.default : mod;
  } else {
    const ajv = new Ajv2020({ ...AJV_OPTIONS, code: { source: true, formats: _`require("ajv-formats/dist/formats").fullFormats` } });
    addFormats(ajv);
    fn = ajv.compile(schema);
    // Written whole under its final name (two test workers may race to write it).
    mkdirSync(CACHE_DIR, { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, standaloneCode(ajv, fn));
    renameSync(temp, file);
  }
  compiled.set(strict, fn);
  return fn;
}

function describe(error: ErrorObject): string {
  const where = error.instancePath === "" ? "(root)" : error.instancePath;
  const extra = error.keyword === "additionalProperties" ? ` (${String(error.params.additionalProperty)})` : "";
  return `${where} ${error.message ?? error.keyword}${extra}`;
}

/** Schema errors of `value` as "path message" lines; empty when it is a valid inventory. */
export function validateInventory(value: unknown, options: ValidateOptions = {}): string[] {
  const fn = validator(options.strict ?? true);
  if (fn(value)) return [];
  return (fn.errors ?? []).map(describe);
}
