import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brokenLinks, githubAnchors, projectMarkdown, relativeLinks } from "../helpers/doc-links.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "../..");
const tmp = tmpDirs("civitai-meta-links-");
afterAll(() => tmp.cleanup());

describe("links between the project's documents", () => {
  test("every relative link in README.md and docs/ names a file that exists, and a heading in it", () => {
    const files = projectMarkdown(ROOT);
    expect(files).toContain("docs/architecture.md");
    expect(files).toContain("docs/decisions.md");
    // The check must see links, or an empty result would prove nothing.
    const count = files.reduce((n, f) => n + relativeLinks(readFileSync(join(ROOT, f), "utf8")).length, 0);
    expect(count).toBeGreaterThan(40);
    expect(brokenLinks(ROOT, files)).toEqual([]);
  });

  test("anchors are made as GitHub makes them", () => {
    const md =
      "# Exit codes\n## The path of a scan, a lookup and a download\n### `scan [paths...]`\n## Exit codes\n```\n# not a heading\n```\n";
    expect([...githubAnchors(md)]).toEqual(["exit-codes", "the-path-of-a-scan-a-lookup-and-a-download", "scan-paths", "exit-codes-1"]);
  });

  test("links in code spans, fences and to other sites are not checked; a missing file or heading is named", () => {
    const root = tmp.make();
    mkdirSync(join(root, "docs"));
    writeFileSync(join(root, "docs/a.md"), "# A page\n\n## Part two\n");
    writeFileSync(
      join(root, "README.md"),
      [
        "[ok](docs/a.md) [ok too](docs/a.md#part-two) [web](https://example.com/x.md)",
        "`[not a link](nowhere.md)`",
        "```",
        "[fenced](nowhere.md)",
        "```",
        "[gone](docs/b.md) [no part](docs/a.md#part-three) [self](#nothing)",
      ].join("\n"),
    );
    expect(brokenLinks(root, ["README.md"])).toEqual([
      "README.md:6: docs/b.md (no file docs/b.md)",
      "README.md:6: docs/a.md#part-three (no heading #part-three in docs/a.md)",
      "README.md:6: #nothing (no heading #nothing in README.md)",
    ]);
  });
});
