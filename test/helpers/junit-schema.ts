/**
 * Validates JUnit XML against test/fixtures/junit/junit.xsd with libxml2's own validator
 * (xmllint, built to WebAssembly: xmllint-wasm, a devDependency), the tool CI pipelines use to
 * check JUnit files. Returns libxml2's messages; empty when the schema accepts the file.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validateXML } from "xmllint-wasm";

const XSD = readFileSync(join(import.meta.dir, "..", "fixtures", "junit", "junit.xsd"), "utf8");

export async function junitSchemaErrors(xml: string): Promise<string[]> {
  const result = await validateXML({
    xml: [{ fileName: "report.xml", contents: xml }],
    schema: [{ fileName: "junit.xsd", contents: XSD }],
  });
  return result.valid ? [] : result.errors.map((e) => (typeof e === "string" ? e : e.message));
}

/**
 * junitSchemaErrors of several documents in one run of the validator: each run starts a worker
 * and compiles libxml2's WebAssembly (~0.1 s of CPU). libxml2 names the file in each message; a
 * message that names none (about the schema itself) is given to every document, so none is hidden.
 */
export async function junitSchemaErrorsEach(xmls: readonly string[]): Promise<string[][]> {
  const names = xmls.map((_, i) => `report-${i}.xml`);
  const result = await validateXML({
    xml: xmls.map((contents, i) => ({ fileName: names[i]!, contents })),
    schema: [{ fileName: "junit.xsd", contents: XSD }],
  });
  if (result.valid) return xmls.map(() => []);
  const lines = result.errors.map((e) => (typeof e === "string" ? { raw: e, message: e } : { raw: e.rawMessage, message: e.message }));
  const owner = (raw: string) => names.findIndex((name) => raw.startsWith(`${name}:`) || raw.startsWith(`${name} `));
  return names.map((_, i) => lines.filter((l) => [i, -1].includes(owner(l.raw))).map((l) => l.message));
}
