/**
 * Validates objects against docs/report.schema.json with ajv, compiled once per mode. Every test
 * that produces an inventory (unit or end-to-end) should call {@link validateInventory} on it.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { readFileSync } from "node:fs";
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

function validator(strict: boolean): ValidateFunction {
  let fn = compiled.get(strict);
  if (!fn) {
    const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
    addFormats(ajv);
    fn = ajv.compile(strict ? (closeObjects(loadSchema()) as JsonSchema) : loadSchema());
    compiled.set(strict, fn);
  }
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
