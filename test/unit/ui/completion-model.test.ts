import { describe, expect, test } from "bun:test";
import { describeArgs, shortDescription } from "../../../src/ui/completion-model.ts";

describe("completion model from citty args", () => {
  test("reads flags, aliases, negations and values from the conventions the commands use", () => {
    const { flags, positionals } = describeArgs({
      output: { type: "string", alias: "o", valueHint: "file", description: "Write to FILE (atomically) instead of stdout" },
      format: { type: "string", valueHint: "json|csv|md", description: "Report format (default: from -o's extension)" },
      algo: { type: "string", valueHint: "sha256,autov2", description: "Hashes to compute, comma-separated" },
      level: { type: "enum", options: ["low", "high"], description: "An enum-typed flag" },
      dest: { type: "string", alias: ["d", "target-dir"], valueHint: "dir", description: "Destination folder" },
      jobs: { type: "string", valueHint: "n", description: "Jobs" },
      cache: { type: "boolean", default: true, negativeDescription: "Do not read or write any cache", description: "Use the caches" },
      verbose: { type: "boolean", description: "Log more" },
      action: { type: "positional", required: false, valueHint: "info|prune|clear", description: "What to do" },
      paths: { type: "positional", required: false, valueHint: "paths...", description: "Files" },
    });
    const by = Object.fromEntries(flags.map((f) => [f.long[0], f]));
    expect(by["--output"]).toMatchObject({ short: ["-o"], takesValue: true, kind: "file", description: "Write to FILE instead of stdout" });
    expect(by["--format"]).toMatchObject({ values: { words: ["json", "csv", "md"], list: false }, description: "Report format" });
    expect(by["--algo"]!.values).toEqual({ words: ["sha256", "autov2"], list: true });
    expect(by["--level"]!.values).toEqual({ words: ["low", "high"], list: false });
    expect(by["--dest"]).toMatchObject({ long: ["--dest", "--target-dir"], short: ["-d"], kind: "dir" });
    expect(by["--jobs"]).toMatchObject({ takesValue: true, kind: "none" });
    expect(by["--cache"]!.negation).toEqual({ flag: "--no-cache", description: "Do not read or write any cache" });
    expect(by["--verbose"]).toMatchObject({ takesValue: false });
    expect(by["--verbose"]!.negation).toBeUndefined();
    expect(positionals).toEqual([
      { name: "action", words: ["info", "prune", "clear"], kind: "none", variadic: false },
      { name: "paths", kind: "file", variadic: true },
    ]);
  });

  test("values a shell could misread are left out rather than written into a script", () => {
    const { flags } = describeArgs({ x: { type: "string", valueHint: "ok|$(id)|a'b|`x`|fine" } });
    expect(flags[0]!.values!.words).toEqual(["ok", "fine"]);
  });

  test("descriptions shrink to one clean clause for menus", () => {
    expect(shortDescription("Hash model files: sha256sum-style lines (hashes in a fixed order), or --json")).toBe("Hash model files");
    expect(shortDescription("Cache folder (default: $CIVITAI_META_CACHE_DIR or $XDG_CACHE_HOME/civitai-meta)")).toBe("Cache folder");
    expect(shortDescription("Download files, verified by SHA-256. A source is an inventory")).toBe("Download files, verified by SHA-256");
    expect(shortDescription("a\u001b[31m red\nline")).toBe("a [31m red line");
    expect(shortDescription("x".repeat(150))).toHaveLength(100);
  });
});
