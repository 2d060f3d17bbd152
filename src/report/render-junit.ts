/**
 * The inventory as a JUnit XML report (`--format junit`, or `-o FILE.xml`), for the CI systems
 * that read JUnit (GitHub Actions reporters, GitLab, Jenkins, Azure): one test case per file, in
 * path order. A file Civitai does not know (`not_found`) or no longer serves (`gone`) is a
 * failure, one that could not be hashed or looked up (`error`) an error, a skipped path is
 * skipped, a found file passes.
 *
 * The shape is the one both common schemas accept (Jenkins' junit-10 and Ant's JUnit.xsd; our
 * test validates against a schema of that intersection, test/fixtures/junit/junit.xsd): a
 * `testsuites` root with one `testsuite` carrying name, tests, failures, errors, skipped, time,
 * timestamp (no zone), hostname, id, package, then `properties`, the test cases, `system-out` and
 * `system-err`. Every text from outside is escaped for XML, and what XML 1.0 cannot carry at all
 * (controls, lone surrogates, raw bytes of a name) is shown as visible `\xNN` / `\uNNNN` text.
 * Written a test case at a time.
 */
import type { Inventory } from "./inventory-types.ts";
import { memorySource, type InventorySource } from "./inventory-read.ts";
import type { FileRecord } from "./record-types.ts";
import { escapeControl } from "../shared/format.ts";
import { shownPath } from "./md-cells.ts";
import { dateOnly } from "./access-text.ts";

// Lone surrogates and the two non-characters XML 1.0 forbids outright.
const NOT_XML_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|[\ufffe\uffff]/g;
const XML_SPECIAL: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Untrusted text for XML element content and attribute values: one line, every character legal. */
export function xmlText(text: string): string {
  return escapeControl(text)
    .replace(NOT_XML_RE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/[&<>"']/g, (ch) => XML_SPECIAL[ch]!);
}

function attrs(values: Record<string, string | number>): string {
  return Object.entries(values)
    .map(([k, v]) => ` ${k}="${typeof v === "number" ? String(v) : xmlText(v)}"`)
    .join("");
}

/** The folder of a path as the test case's class name (relative to a single root). */
function classNameOf(path: string, roots: readonly string[]): string {
  const shown = shownPath(path, roots);
  const cut = Math.max(shown.lastIndexOf("/"), shown.lastIndexOf("\\"));
  return cut <= 0 ? "." : shown.slice(0, cut);
}

function fileNameOf(path: string): string {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return path.slice(cut + 1) || path;
}

/**
 * The other names of a linked file (docs/cases.md T17), as text after what a test case says: the
 * test case is named after one of them, and a CI reader acting on a failure needs them all.
 */
function otherNames(record: FileRecord, roots: readonly string[]): string {
  const aliases = Array.isArray(record.aliases) ? record.aliases : [];
  return aliases.length === 0 ? "" : `; also at ${aliases.map((p) => shownPath(p, roots)).join(", ")}`;
}

/** The child element that makes a test case fail or be skipped; empty when it passes. */
function outcome(record: FileRecord, roots: readonly string[]): string {
  const sha = record.hashes?.sha256;
  const also = otherNames(record, roots);
  // An error or a skip says all in its message; its text is only the other names, when there are any.
  const body = (tag: string, values: Record<string, string>) =>
    also === "" ? `<${tag}${attrs(values)}/>` : `<${tag}${attrs(values)}>${xmlText(also.slice(2))}</${tag}>`;
  switch (record.status) {
    case "not_found":
      return `<failure${attrs({ type: "not_found", message: "Civitai does not know this file" })}>${xmlText(`${sha ? `SHA-256 ${sha}` : "no SHA-256"}${also}`)}</failure>`;
    case "gone": {
      const c = record.civitai;
      const seen = record.gone?.lastSeenAt ? `, last seen ${dateOnly(record.gone.lastSeenAt)}` : "";
      const was = c ? `${c.modelName ?? `model ${c.modelId}`} · ${c.versionName ?? `version ${c.versionId}`}` : "a model";
      const why = record.gone?.reason === "archived" ? "archived on Civitai, no file to download" : "no longer found on Civitai";
      return `<failure${attrs({ type: "gone", message: `Gone from Civitai: ${why}${seen}` })}>${xmlText(`Was ${was}${also}`)}</failure>`;
    }
    case "error":
      return body("error", { type: "error", message: record.error ?? "unknown error" });
    case "skipped":
      return body("skipped", { message: record.reason ?? "skipped" });
    default:
      return "";
  }
}

/** The JUnit XML in pieces: the suite's header, one test case per record, the footer. */
export function* junitChunks(src: InventorySource): Generator<string> {
  const head = src.head;
  const facts = src.facts.facts;
  const counts = {
    tests: facts.files,
    failures: facts.byStatus.not_found + facts.byStatus.gone,
    errors: facts.byStatus.error,
  };
  const ms = head.summary.durationMs;
  const time = (typeof ms === "number" && Number.isFinite(ms) && ms >= 0 ? ms / 1000 : 0).toFixed(3);
  const stamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/.exec(head.generatedAt)?.[0] ?? "1970-01-01T00:00:00";
  const tool = `${head.tool?.name ?? "civitai-meta"} ${head.tool?.version ?? ""}`.trim();
  yield `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites${attrs({ name: "civitai-meta", ...counts, time })}>\n`;
  yield `  <testsuite${attrs({ name: `civitai-meta scan of ${head.roots.join(", ") || "nothing"}`, ...counts, skipped: facts.byStatus.skipped, time, timestamp: stamp, hostname: "localhost", id: 0, package: "civitai-meta" })}>\n`;
  yield `    <properties>\n`;
  for (const [name, value] of [
    ["tool", tool],
    ["generatedAt", head.generatedAt],
    ["roots", head.roots.join(", ")],
  ] as const) {
    yield `      <property${attrs({ name, value })}/>\n`;
  }
  yield `    </properties>\n`;
  for (const record of src.records("path")) {
    const open = `    <testcase${attrs({ name: fileNameOf(record.path), classname: classNameOf(record.path, head.roots), time: "0" })}`;
    const child = outcome(record, head.roots);
    yield child === "" ? `${open}/>\n` : `${open}>\n      ${child}\n    </testcase>\n`;
  }
  const s = facts.byStatus;
  const out = `${s.found} found, ${s.gone} gone, ${s.not_found} not found, ${s.error} errors, ${s.skipped} skipped`;
  yield `    <system-out>${xmlText(out)}</system-out>\n    <system-err/>\n  </testsuite>\n</testsuites>\n`;
}

/** The JUnit XML of an inventory in memory. */
export function renderJunit(inventory: Inventory): string {
  return [...junitChunks(memorySource(inventory))].join("");
}
