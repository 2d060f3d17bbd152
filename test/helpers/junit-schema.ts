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
