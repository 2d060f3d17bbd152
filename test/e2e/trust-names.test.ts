/**
 * Issue 9, names: file names that are not UTF-8 (docs/cases.md T12), control characters per sink (docs/cases.md T14),
 * sha256sum escaping (docs/cases.md T15) and every name of a linked file in every format (docs/cases.md T17).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { linkSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Papa from "papaparse";
import { encodeFsName } from "../../src/shared/fs-path.ts";
import { makeModel, makeVersion, startFakeCivitai, type FakeCivitai } from "../helpers/fake-civitai.ts";
import { runCli, runCliBytes, runShell } from "../helpers/run-cli.ts";
import { buildSafetensors, sdxlLoraTensors } from "../helpers/safetensors.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
let civitai: FakeCivitai;
const PAST = new Date(Date.now() - 3600_000);
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

beforeAll(async () => {
  civitai = await startFakeCivitai({ fixtures: false });
});
afterAll(async () => {
  await civitai.stop();
  tmp.cleanup();
});
beforeEach(() => {
  civitai.reset();
  civitai.clearData();
});

/**
 * Writes `content` at `path` (a string that may hold escaped raw bytes), aged past the racy window.
 * Such paths are built with template strings: Bun's node:path turns lone surrogates into U+FFFD.
 */
function put(path: string, content: string | Uint8Array): void {
  const p = encodeFsName(path);
  writeFileSync(p, content);
  utimesSync(p, PAST, PAST);
}

/** Control characters no sink may show raw: C0 (but TAB and LF), DEL, C1 and the bidi controls. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const BAD = "bad\udcff\udcfe.safetensors"; // bytes 62 61 64 ff fe …

describe("T12: names that are not valid UTF-8", () => {
  function tree(): { dir: string; content: Uint8Array } {
    const dir = tmp.make();
    for (let i = 0; i < 8; i++) put(join(dir, `m${i}.safetensors`), `model ${i}`);
    const content = buildSafetensors(sdxlLoraTensors(2)).bytes;
    put(`${dir}/${BAD}`, content);
    mkdirSync(encodeFsName(`${dir}/sub\udcff`));
    put(`${dir}/sub\udcff/inner.ckpt`, "inner bytes");
    return { dir, content };
  }

  test("T12: hash lists every file, the bad name as its own bytes, exit 0", async () => {
    const { dir, content } = tree();
    const r = await runCliBytes(["hash", "--no-cache", "--algo", "sha256", dir]);
    expect(r.stderr).not.toContain("removed while scanning");
    expect(r.code).toBe(0);
    const lines = r.stdout.toString("latin1").trim().split("\n");
    expect(lines).toHaveLength(10);
    const badLine = Buffer.concat([Buffer.from(`${sha256(content)}  `), encodeFsName(`${dir}/${BAD}`), Buffer.from("\n")]);
    expect(r.stdout.includes(badLine)).toBe(true);
    const inner = Buffer.concat([Buffer.from(`${sha256("inner bytes")}  `), encodeFsName(`${dir}/sub\udcff/inner.ckpt`)]);
    expect(r.stdout.includes(inner)).toBe(true);
  });

  test("T12: scan records the file (JSON keeps \\udcXX), reads its header; report and inspect can use it", async () => {
    const { dir, content } = tree();
    const out = join(tmp.make(), "inv.json");
    const r = await runCli(["scan", dir, "--offline", "--no-cache", "-o", out]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("removed while scanning");
    const text = readFileSync(out, "utf8");
    expect(text).toContain("bad\\udcff\\udcfe.safetensors");
    const inv = JSON.parse(text);
    expect(inv.records).toHaveLength(10);
    const rec = inv.records.find((x: { path: string }) => x.path === `${dir}/${BAD}`);
    expect(rec.hashes.sha256).toBe(sha256(content));
    expect(rec.local.format).toBe("safetensors");
    expect(rec.local.tensors.count).toBe(sdxlLoraTensors(2).length);

    // report: JSON byte for byte; CSV and Markdown show the bytes as \xNN, never U+FFFD.
    expect((await runCli(["report", out])).stdout).toBe(text);
    for (const format of ["csv", "md"]) {
      const shown = await runCli(["report", out, "--format", format]);
      expect(shown.code).toBe(0);
      // Markdown escapes the backslash itself, so the cell renders as the same visible `bad\xff\xfe`.
      expect(shown.stdout).toContain(format === "md" ? "bad\\\\xff\\\\xfe.safetensors" : "bad\\xff\\xfe.safetensors");
      expect(shown.stdout).not.toContain("\ufffd");
      expect(shown.stdout).not.toMatch(/[\udc80-\udcff]/u);
    }

    // inspect and hash take such a name as an argument (argv bytes are not UTF-8 either).
    const inspect = await runShell(`cli inspect --no-hash "$(printf '%s/bad\\xff\\xfe.safetensors' "$DIR")"`, { env: { DIR: dir } });
    expect(inspect.stderr).toBe("");
    expect(inspect.code).toBe(0);
    expect(inspect.stdout.toString()).toContain("bad\\xff\\xfe.safetensors");
    expect(inspect.stdout.toString()).toContain("safetensors");
    const sub = await runShell(`cli hash --no-cache --algo sha256 "$(printf '%s/sub\\xff' "$DIR")"`, { env: { DIR: dir } });
    expect(sub.code).toBe(0);
    expect(sub.stdout.toString("latin1")).toContain(sha256("inner bytes"));
  });

  test("T12: --config naming a file that is not UTF-8 reads that file, and names it as \\xNN when it is missing", async () => {
    const dir = tmp.make();
    put(join(dir, "m.safetensors"), "t12 config");
    put(`${dir}/conf\udcff.json`, JSON.stringify({ outputFormat: "csv", surprise: 1 }));
    const r = await runShell(`cli scan "$DIR" --offline --no-cache --config "$(printf '%s/conf\\xff.json' "$DIR")"`, { env: { DIR: dir } });
    // Before the fix: "Cannot read config …/conf\ufffd.json: no such file" (the byte became U+FFFD), exit 2.
    expect(r.stderr).toContain(`Config ${dir}/conf\\xff.json: unknown key "surprise" ignored`);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toStartWith(`"path","file_name",`);
    const missing = await runShell(`cli scan "$DIR" --offline --no-cache --config "$(printf '%s/none\\xfe.json' "$DIR")"`, {
      env: { DIR: dir },
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`Cannot read config ${dir}/none\\xfe.json: no such file or folder (ENOENT)`);
    expect(missing.stderr).not.toContain("\ufffd");
  });

  test("T12: --cache-dir that is not UTF-8 is one usage error, not caches kept under another (U+FFFD) name", async () => {
    const dir = tmp.make();
    put(join(dir, "m.safetensors"), "t12 cache dir");
    for (const command of ["hash", "scan --offline -o /dev/null", "cache info"]) {
      const target = command === "cache info" ? "" : '"$DIR"';
      const r = await runShell(`cd "$DIR" && cli ${command} ${target} --cache-dir "$(printf 'cache\\xff')"`, { env: { DIR: dir } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--cache-dir cache\\xff is not valid UTF-8");
      // Before the fix each run exited 0 with its caches in "cache\ufffd".
      expect(readdirSync(dir).filter((n) => n.startsWith("cache"))).toEqual([]);
    }
  });
});

describe("T15: hash --algo sha256 is sha256sum's format for every name", () => {
  const NAMES = [
    "plain.safetensors",
    "nl\nname.safetensors",
    "cr\rname.safetensors",
    "tab\tname.safetensors",
    "back\\slash.safetensors",
    "esc\u001b[31mname.safetensors",
    BAD,
  ];

  test("T15: sha256sum -c passes for every file when stdout is not a terminal", async () => {
    const dir = tmp.make();
    NAMES.forEach((name, i) => put(`${dir}/${name}`, `content ${i}`));
    const r = await runCliBytes(["hash", "--no-cache", "--algo", "sha256", dir]);
    expect(r.code).toBe(0);
    // GNU: a name with \, LF or CR gets a leading backslash and those three escaped.
    const nl = Buffer.from(`\\${sha256("content 1")}  ${dir}/nl\\nname.safetensors\n`);
    expect(r.stdout.includes(nl)).toBe(true);
    const back = Buffer.from(`\\${sha256("content 4")}  ${dir}/back\\\\slash.safetensors\n`);
    expect(r.stdout.includes(back)).toBe(true);
    const sums = join(tmp.make(), "SUMS");
    writeFileSync(sums, r.stdout);
    const check = Bun.spawnSync(["sha256sum", "-c", sums], { stdout: "pipe", stderr: "pipe" });
    expect(check.stderr.toString()).toBe("");
    expect(check.exitCode).toBe(0);
    expect(check.stdout.toString().match(/: OK$/gm)).toHaveLength(NAMES.length);
  });

  test("T15: on a terminal the same names are shown escaped, no raw control character", async () => {
    const dir = tmp.make();
    NAMES.forEach((name, i) => put(`${dir}/${name}`, `content ${i}`));
    // script(1) gives the CLI a pseudo-terminal as stdout; stderr is left out of the capture.
    const r = await runShell(
      `script -qec '"$CLI_EXEC" \${CLI_ENTRY:+"$CLI_ENTRY"} hash -q --no-cache --algo sha256 "$DIR" 2>/dev/null' /dev/null`,
      {
        env: { DIR: dir },
      },
    );
    const shown = r.stdout.toString("utf8").replace(/\r\n/g, "\n");
    expect(shown).toContain("esc\\x1b[31mname.safetensors");
    expect(shown).toContain("bad\\xff\\xfe.safetensors");
    expect(shown).not.toMatch(RAW_CONTROL);
    expect(shown.trim().split("\n")).toHaveLength(NAMES.length);
  });
});

describe("T14: control characters are neutralised in every sink", () => {
  const OSC52 = "Evil\u001b]52;c;ZWNobyBwd25lZA==\u0007Model";

  test("T14: API names and file paths reach no CSV, Markdown or JSON raw", async () => {
    const dir = tmp.make();
    const file = join(dir, "esc\u001b[31mred\u202egnp.safetensors");
    put(file, "hostile names");
    const version = makeVersion({ versionId: 71, modelId: 7, sha256: sha256("hostile names"), name: "v\u0007\u009b1" });
    civitai.addModel(makeModel({ modelId: 7, name: OSC52, versions: [version], creator: { username: "bell\u0007" } }));
    const out = tmp.make();
    for (const ext of ["csv", "md", "json"]) {
      const r = await runCli(["scan", dir, "--api-url", civitai.url, "--no-cache", "-o", join(out, `inv.${ext}`)]);
      expect(r.code).toBe(0);
      const text = readFileSync(join(out, `inv.${ext}`), "utf8");
      expect(text.replace(/\r\n/g, "")).not.toMatch(RAW_CONTROL);
      if (ext === "csv") {
        expect(text).toContain("\\x1b]52;c;ZWNobyBwd25lZA==\\x07");
        expect(text).toContain("\\u202e");
      } else if (ext === "md") {
        // Markdown escapes the backslash of the visible escape too: it renders as \x1b]52;…
        expect(text).toContain("\\\\x1b\\]52;c;ZWNobyBwd25lZA==\\\\x07");
        expect(text).toContain("\\\\u202e");
      } else {
        // JSON stays JSON: the same strings once parsed.
        const inv = JSON.parse(text);
        expect(inv.records[0].path).toBe(file);
        expect(inv.records[0].civitai.modelName).toBe(OSC52);
      }
      expect(r.stderr).not.toMatch(RAW_CONTROL);
    }
    const csv = Papa.parse<string[]>(readFileSync(join(out, "inv.csv"), "utf8"), { skipEmptyLines: true });
    expect(csv.errors).toEqual([]);
  });

  test("T14: error messages show outside text escaped (tool.version, --config, -o, --format, paths)", async () => {
    const dir = tmp.make();
    put(join(dir, "a.safetensors"), "a");
    const invPath = join(tmp.make(), "inv.json");
    expect((await runCli(["scan", dir, "--offline", "--no-cache", "-o", invPath])).code).toBe(0);
    const inv = JSON.parse(readFileSync(invPath, "utf8"));
    const newer = join(tmp.make(), "newer.json");
    writeFileSync(
      newer,
      JSON.stringify({ ...inv, schemaVersion: 99, tool: { name: "civitai-meta", version: "\u001b]52;c;cHduZWQ=\u0007" } }),
    );
    const cases: [string, string[]][] = [
      ["tool.version", ["report", newer]],
      ["--config", ["scan", dir, "--offline", "--no-cache", "--config", "/no/such/\u001b[31mcfg.json"]],
      ["-o", ["report", invPath, "-o", "/no/such/\u001b[31mdir/x.json"]],
      ["--format", ["report", invPath, "--format", "\u001b[31mxml"]],
      ["path", ["hash", "--no-cache", "/no/such/\u001b[31mmodel.safetensors"]],
      ["inventory path", ["report", "/no/such/\u001b]0;title\u0007.json"]],
    ];
    for (const [what, args] of cases) {
      const r = await runCli(args);
      expect({ what, code: r.code === 0 }).toEqual({ what, code: false });
      expect({ what, stderr: RAW_CONTROL.test(r.stderr) }).toEqual({ what, stderr: false });
      expect({ what, visible: r.stderr.includes("\\x1b") }).toEqual({ what, visible: true });
    }
  });

  test("T14: a bidi override in a name is shown as \\u202e on the terminal", async () => {
    const dir = tmp.make();
    expect(Bun.spawnSync(["mkfifo", join(dir, "a\u202egnp.safetensors")]).exitCode).toBe(0);
    const r = await runCli(["hash", "--no-cache", dir]);
    expect(r.stderr).toContain("a\\u202egnp.safetensors");
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });
});

describe("T17: a file with several names shows every name in every format", () => {
  test("T17: hard and soft links appear in JSON, CSV and Markdown", async () => {
    const dir = tmp.make();
    const a = join(dir, "a.safetensors");
    put(a, "one file, three names");
    linkSync(a, join(dir, "b-hardlink.safetensors"));
    symlinkSync(a, join(dir, "c-symlink.safetensors"));
    const out = tmp.make();
    for (const ext of ["json", "csv", "md"]) {
      const r = await runCli(["scan", dir, "--offline", "--no-cache", "-o", join(out, `inv.${ext}`)]);
      expect(r.code).toBe(0);
    }
    const inv = JSON.parse(readFileSync(join(out, "inv.json"), "utf8"));
    expect(inv.records).toHaveLength(1);
    expect(inv.records[0].aliases).toEqual([join(dir, "b-hardlink.safetensors"), join(dir, "c-symlink.safetensors")]);
    const rows = Papa.parse<Record<string, string>>(readFileSync(join(out, "inv.csv"), "utf8"), { header: true, skipEmptyLines: true });
    expect(rows.data).toHaveLength(1);
    const row = rows.data[0]!;
    expect(row.path).toBe(a);
    expect(Object.values(row).join("\n")).toContain(join(dir, "b-hardlink.safetensors"));
    expect(Object.values(row).join("\n")).toContain(join(dir, "c-symlink.safetensors"));
    const md = readFileSync(join(out, "inv.md"), "utf8");
    for (const name of ["a", "b-hardlink", "c-symlink"]) expect(md).toContain(`${name}.safetensors`);
  });

  test("T17: a folder giving one file 600 names (hard links and symlinks) is one file with every name", async () => {
    // The growth with the count of names (it was quadratic) is judged by `bun run bench hostile-scale`.
    const dir = tmp.make();
    const a = join(dir, "a.safetensors");
    put(a, "one file, many names");
    for (let i = 0; i < 300; i++) linkSync(a, join(dir, `h${i}.safetensors`));
    for (let i = 0; i < 300; i++) symlinkSync("a.safetensors", join(dir, `s${i}.safetensors`));
    const out = join(tmp.make(), "inv.json");
    const r = await runCli(["scan", dir, "--offline", "--no-cache", "-o", out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("1 file (");
    const [record] = JSON.parse(readFileSync(out, "utf8")).records as { path: string; aliases: string[] }[];
    expect(new Set([record!.path, ...record!.aliases]).size).toBe(601);
  });
});
