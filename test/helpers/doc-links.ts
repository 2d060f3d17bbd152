/**
 * Relative links in the project's Markdown (README.md, docs/*.md) and whether each resolves: the
 * file exists, and a `#fragment` names a heading of it as GitHub makes its anchors.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2. */
export function githubAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? undefined : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** Inline links `[text](target)` outside code, with their line numbers; absolute URLs left out. */
export function relativeLinks(markdown: string): { target: string; line: number }[] {
  const links: { target: string; line: number }[] = [];
  let fenced = false;
  markdown.split("\n").forEach((line, i) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) return;
    const prose = line.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      links.push({ target, line: i + 1 });
    }
  });
  return links;
}

/** Every relative link in `files` (paths from `root`) that does not resolve, as `file:line: target (why)`. */
export function brokenLinks(root: string, files: readonly string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const path = join(root, file);
    const text = readFileSync(path, "utf8");
    for (const { target, line } of relativeLinks(text)) {
      const [pathPart = "", fragment] = target.split("#", 2);
      const dest = pathPart === "" ? path : join(dirname(path), decodeURIComponent(pathPart));
      if (!existsSync(dest)) {
        problems.push(`${file}:${line}: ${target} (no file ${relative(root, dest)})`);
        continue;
      }
      if (fragment === undefined || !dest.endsWith(".md") || statSync(dest).isDirectory()) continue;
      if (!githubAnchors(readFileSync(dest, "utf8")).has(decodeURIComponent(fragment))) {
        problems.push(`${file}:${line}: ${target} (no heading #${fragment} in ${relative(root, dest)})`);
      }
    }
  }
  return problems;
}

/** README.md and the Markdown files in docs/ and its sub-folders, as paths from `root`. */
export function projectMarkdown(root: string): string[] {
  const found = ["README.md"];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith(".md")) found.push(rel);
    }
  };
  walk("docs");
  return found.sort();
}
