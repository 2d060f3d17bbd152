/**
 * `civitai-meta completion bash|zsh|fish`, checked in the shells themselves:
 *   bash: the script is sourced in a bash subshell and its function run on COMP_WORDS/COMP_CWORD
 *         the way bash runs it on Tab; COMPREPLY is compared.
 *   zsh:  an interactive zsh under zsh/zpty types a line with Tab, presses Enter, and a stand-in
 *         `civitai-meta` on PATH prints the arguments the completed line ran with.
 *   fish: `complete -C LINE` prints the completions fish would offer.
 * zsh and fish are Debian packages (.ci/run installs them); without them those tests skip visibly.
 * Every command and flag of the real definitions is checked to appear, so the scripts cannot drift.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ArgsDef } from "citty";
import { commands } from "../../src/commands/index.ts";
import { renderBash } from "../../src/ui/completion-bash.ts";
import { describeArgs, type CompletionCommand } from "../../src/ui/completion-model.ts";
import { runCli } from "../helpers/run-cli.ts";
import { tmpDirs } from "../helpers/tmp.ts";

const tmp = tmpDirs();
afterAll(() => tmp.cleanup());
const scripts: Record<string, string> = {};
let files: string;

beforeAll(async () => {
  const dir = tmp.make();
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await runCli(["completion", shell]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    scripts[shell] = join(dir, `completion.${shell}`);
    writeFileSync(scripts[shell]!, r.stdout);
  }
  // A folder to complete paths in: names with a space, a file and a folder sharing a prefix.
  files = tmp.make();
  mkdirSync(join(files, "my models/loras"), { recursive: true });
  writeFileSync(join(files, "my models/a.safetensors"), "x");
  mkdirSync(join(files, "mirror"));
  writeFileSync(join(files, "mine.json"), "{}");
});

describe("completion command", () => {
  test("an unknown or missing shell is a usage error that names the choices", async () => {
    for (const args of [["completion"], ["completion", "powershell"], ["completion", "bash", "zsh"]]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("completion takes one of bash, zsh or fish");
    }
  });

  test("bash: the script passes bash -n (and shellcheck, when installed) and registers a completion function", () => {
    expect(Bun.spawnSync(["bash", "-n", scripts.bash!]).exitCode).toBe(0);
    if (Bun.which("shellcheck")) {
      const lint = Bun.spawnSync(["shellcheck", "-s", "bash", scripts.bash!]);
      expect(lint.stdout.toString()).toBe("");
      expect(lint.exitCode).toBe(0);
    }
    // Paths go in through the environment, so any TMPDIR (spaces, quotes) is taken whole.
    const r = Bun.spawnSync(["bash", "--norc", "--noprofile", "-c", 'source "$SCRIPT" && complete -p civitai-meta'], {
      env: { ...process.env, SCRIPT: scripts.bash! },
    });
    expect(r.stdout.toString().trim()).toBe("complete -F _civitai_meta civitai-meta");
  });
});

/**
 * COMPREPLY for the words (the last one is being completed), as bash computes it on Tab; `options`
 * are the user's shell options (e.g. "set -eu"), and the shell must live on after the completion.
 */
function bashComplete(words: string[], cwd = files, script = scripts.bash!, options = ""): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, "'\\''")}'`).join(" ");
  const lines = [
    options,
    'source "$SCRIPT"',
    `COMP_WORDS=(${quoted})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE="\${COMP_WORDS[*]}"`,
    `COMP_POINT=\${#COMP_LINE}`,
    "_civitai_meta civitai-meta",
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
    "echo __END__",
  ].join("\n");
  const r = Bun.spawnSync(["bash", "--norc", "--noprofile", "-c", lines], {
    cwd,
    env: { ...process.env, SCRIPT: script },
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(r.stderr.toString()).toBe("");
  const out = r.stdout.toString().split("\n");
  // The shell carried on after the completion function (set -e would end it on a failed command).
  expect(out.at(-2)).toBe("__END__");
  return out
    .slice(0, -2)
    .filter((l) => l !== "")
    .sort();
}

describe("bash", () => {
  test("commands: a prefix completes to the command, nothing typed lists them all", () => {
    expect(bashComplete(["civitai-meta", "sc"])).toEqual(["scan"]);
    expect(bashComplete(["civitai-meta", "co"])).toEqual(["completion"]);
    expect(bashComplete(["civitai-meta", ""])).toEqual(Object.keys(commands).sort());
    expect(bashComplete(["civitai-meta", "--verbose", "ha"])).toEqual(["hash"]);
  });

  test("flags: long names, one-letter aliases and --no- negations of the command's own flags", () => {
    expect(bashComplete(["civitai-meta", "scan", "--fail"])).toEqual(["--fail-on"]);
    expect(bashComplete(["civitai-meta", "scan", "--no-"])).toEqual(["--no-cache", "--no-details", "--no-fallback", "--no-images"]);
    expect(bashComplete(["civitai-meta", "download", "-"])).toEqual(
      expect.arrayContaining(["-d", "-o", "-j", "-q", "-h", "--dest", "--emit", "--dry-run"]),
    );
    // Flags of other commands are not offered: --emit is download's, --algo is hash's.
    expect(bashComplete(["civitai-meta", "scan", "--em"])).toEqual([]);
    expect(bashComplete(["civitai-meta", "hash", "--al"])).toEqual(["--algo"]);
  });

  test("values of enum-like flags: --format, --emit, the cache action, the shell", () => {
    expect(bashComplete(["civitai-meta", "scan", "--format", ""])).toEqual(["csv", "html", "json", "junit", "md"]);
    expect(bashComplete(["civitai-meta", "report", "x.json", "--format", "j"])).toEqual(["json", "junit"]);
    expect(bashComplete(["civitai-meta", "report", "x.json", "--format", "c"])).toEqual(["csv"]);
    expect(bashComplete(["civitai-meta", "download", "--emit", "a"])).toEqual(["aria2"]);
    expect(bashComplete(["civitai-meta", "cache", "p"])).toEqual(["prune"]);
    expect(bashComplete(["civitai-meta", "completion", ""])).toEqual(["bash", "fish", "zsh"]);
  });

  test("--flag=value, split by bash at '=' or kept whole, completes the value", () => {
    // bash's default COMP_WORDBREAKS splits "--format=m" into "--format" "=" "m".
    expect(bashComplete(["civitai-meta", "scan", "--format", "=", "m"])).toEqual(["md"]);
    expect(bashComplete(["civitai-meta", "scan", "--format", "="])).toEqual(["csv", "html", "json", "junit", "md"]);
    expect(bashComplete(["civitai-meta", "scan", "--format=j"])).toEqual(["--format=json", "--format=junit"]);
  });

  test("comma-separated lists (--algo, --fail-on) complete the part after the last comma", () => {
    expect(bashComplete(["civitai-meta", "hash", "--algo", "sha256,auto"])).toEqual(["sha256,autov1", "sha256,autov2", "sha256,autov3"]);
    expect(bashComplete(["civitai-meta", "hash", "--algo", "cr"])).toEqual(["crc32"]);
    expect(bashComplete(["civitai-meta", "scan", "--fail-on", "not-found,s"])).toEqual(["not-found,skipped"]);
  });

  test("files for paths and file flags, folders only for folder flags, names with spaces kept whole", () => {
    expect(bashComplete(["civitai-meta", "scan", "m"])).toEqual(["mine.json", "mirror", "my models"]);
    expect(bashComplete(["civitai-meta", "scan", "my models/"])).toEqual(["my models/a.safetensors", "my models/loras"]);
    expect(bashComplete(["civitai-meta", "scan", "-o", "mi"])).toEqual(["mine.json", "mirror"]);
    expect(bashComplete(["civitai-meta", "download", "x.json", "--dest", "m"])).toEqual(["mirror", "my models"]);
    expect(bashComplete(["civitai-meta", "scan", "--cache-dir", "mi"])).toEqual(["mirror"]);
    // A flag value that is not a path (a number, a duration) gets no file names.
    expect(bashComplete(["civitai-meta", "scan", "--jobs", ""])).toEqual([]);
  });

  test("D6: file names that are glob patterns are offered as they are, never expanded against the folder", () => {
    const dir = tmp.make();
    for (const name of ["a*", "ab", "ac", "[x]", "x", "$(touch PWNED)", "q`touch PWNED`"]) writeFileSync(join(dir, name), "");
    // Unquoted $(compgen …) made "a*" match ab and ac again, and "[x]" turn into x.
    expect(bashComplete(["civitai-meta", "scan", "a"], dir)).toEqual(["a*", "ab", "ac"]);
    expect(bashComplete(["civitai-meta", "scan", "["], dir)).toEqual(["[x]"]);
    expect(bashComplete(["civitai-meta", "scan", "-o", "$"], dir)).toEqual(["$(touch PWNED)"]);
    expect(bashComplete(["civitai-meta", "scan", "q"], dir)).toEqual(["q`touch PWNED`"]);
    expect(existsSync(join(dir, "PWNED"))).toBe(false);
  });

  test("D6: a file name completed after --flag= kept whole is quoted, so entering the line never runs it", () => {
    const dir = tmp.make();
    for (const name of ["q`touch PWNED`", "$(touch PWNED)", "my file"]) writeFileSync(join(dir, name), "");
    // A COMP_WORDBREAKS without "=" leaves "--output=q" one word; the name was inserted as is before.
    expect(bashComplete(["civitai-meta", "scan", "--output=q"], dir)).toEqual(["--output=q\\`touch\\ PWNED\\`"]);
    expect(bashComplete(["civitai-meta", "scan", "--output=$"], dir)).toEqual(["--output=\\$\\(touch\\ PWNED\\)"]);
    expect(bashComplete(["civitai-meta", "scan", "--output=my"], dir)).toEqual(["--output=my\\ file"]);
    expect(bashComplete(["civitai-meta", "scan", "--format=j"], dir)).toEqual(["--format=json", "--format=junit"]);
  });

  test("a shell with set -eu survives every kind of completion, matches or none", () => {
    const strict = (words: string[]) => bashComplete(words, files, scripts.bash!, "set -euo pipefail");
    // No match made compgen fail inside COMPREPLY=($(…)), and set -e then closed the user's shell.
    expect(strict(["civitai-meta", "zz"])).toEqual([]);
    expect(strict(["civitai-meta", "scan", "--zz"])).toEqual([]);
    expect(strict(["civitai-meta", "scan", "--format", "zz"])).toEqual([]);
    expect(strict(["civitai-meta", "scan", "-o", "zz"])).toEqual([]);
    expect(strict(["civitai-meta", "hash", "--algo", "sha256,cr"])).toEqual(["sha256,crc32"]);
    expect(strict(["civitai-meta", "scan", "--format", "=", "m"])).toEqual(["md"]);
    expect(strict(["civitai-meta", "scan", "my"])).toEqual(["my models"]);
    expect(strict(["civitai-meta", "scan", "--", ""])).toEqual(["mine.json", "mirror", "my models"]);
  });

  test("flag values are skipped when counting positionals; after -- nothing is a flag", () => {
    expect(bashComplete(["civitai-meta", "cache", "--cache-dir", "/tmp", "p"])).toEqual(["prune"]);
    expect(bashComplete(["civitai-meta", "scan", "--format", "md", "--ex"])).toEqual(["--excel", "--exclude", "--ext"]);
    expect(bashComplete(["civitai-meta", "scan", "--format", "=", "md", "--excl"])).toEqual(["--exclude"]);
    expect(bashComplete(["civitai-meta", "cache", "info", "p"])).toEqual([]);
    expect(bashComplete(["civitai-meta", "scan", "--", "--fo"])).toEqual([]);
  });

  test("every command and every flag of the real definitions is offered (no drift)", async () => {
    for (const [name, load] of Object.entries(commands)) {
      const def = await load();
      const args = (typeof def.args === "function" ? await def.args() : await def.args) as ArgsDef;
      const offered = bashComplete(["civitai-meta", name, "-"]);
      for (const [flag, spec] of Object.entries(args ?? {})) {
        if (spec.type === "positional") continue;
        expect(offered).toContain(`--${flag}`);
        for (const alias of [("alias" in spec ? spec.alias : undefined) ?? []].flat())
          expect(offered).toContain(alias.length === 1 ? `-${alias}` : `--${alias}`);
      }
    }
  });
});

describe("a command added later", () => {
  test("an enum-typed flag and nested subcommands complete with no edit to the generator", () => {
    const node = (name: string, args: ArgsDef, subcommands: CompletionCommand[] = []): CompletionCommand => ({
      name,
      description: name,
      ...describeArgs(args),
      subcommands,
    });
    const set = node("set", { scope: { type: "enum", options: ["user", "project"] }, key: { type: "positional", valueHint: "key" } });
    const root = node("civitai-meta", {}, [node("config", {}, [set, node("show", {})])]);
    const file = join(tmp.make(), "synthetic.bash");
    writeFileSync(file, renderBash(root, "9.9.9"));
    expect(bashComplete(["civitai-meta", "config", ""], files, file)).toEqual(["set", "show"]);
    expect(bashComplete(["civitai-meta", "config", "set", "--sc"], files, file)).toEqual(["--scope"]);
    expect(bashComplete(["civitai-meta", "config", "set", "--scope", "p"], files, file)).toEqual(["project"]);
  });
});

const ZSH = Bun.which("zsh");
if (!ZSH) console.log("skipping zsh completion tests: zsh is not installed (apt-get install zsh)");

/**
 * Types each of `lines` (Tab included) into one interactive zsh with our script loaded, pressing
 * Enter after each, and returns the arguments each completed line ran `civitai-meta` with, e.g.
 * "[scan][--format=md]". One shell for all the lines (each typed on a fresh prompt): starting zsh
 * and compinit per line cost seconds.
 */
async function zshComplete(lines: readonly string[]): Promise<string[]> {
  const dir = tmp.make();
  const bin = join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "civitai-meta"), `#!/bin/sh\nprintf 'ARGS:'; for a in "$@"; do printf '[%s]' "$a"; done; echo\n`, {
    mode: 0o755,
  });
  const driver = join(dir, "drive.zsh");
  // Polled every 10 ms, up to 10 s per answer: at 50 ms a poll, the waits were a third of the test.
  writeFileSync(
    driver,
    `zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z 'PS1="> "; PATH=$BIN:$PATH; cd $FILES; autoload -Uz compinit && compinit -u -D && source $SCRIPT && print READY'
out=''
for i in {1..1000}; do if zpty -r -t z chunk 2>/dev/null; then out+=$chunk; [[ $out == *READY* ]] && break; else sleep 0.01; fi; done
for line in "$@"; do
  zpty -n -w z "$line"$'\\n'
  out=''
  for i in {1..1000}; do if zpty -r -t z chunk 2>/dev/null; then out+=$chunk; [[ $out == *ARGS:*$'\\n'* ]] && break; else sleep 0.01; fi; done
  print -r -- "\${\${out##*ARGS:}%%$'\\r'*}"
done
zpty -d z
`,
  );
  const proc = Bun.spawn([ZSH!, "-f", driver, ...lines], {
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH, HOME: dir, TERM: "dumb", BIN: bin, FILES: files, SCRIPT: scripts.zsh! },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000 * lines.length);
  const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  clearTimeout(timer);
  return out.trim().split("\n");
}

describe.skipIf(!ZSH)("zsh", () => {
  test("the script passes zsh -n and registers _civitai-meta after compinit", () => {
    expect(Bun.spawnSync([ZSH!, "-n", scripts.zsh!]).exitCode).toBe(0);
    const r = Bun.spawnSync(
      [ZSH!, "-f", "-c", "autoload -Uz compinit && compinit -u -D && source $SCRIPT && print -r -- $_comps[civitai-meta]"],
      {
        env: { HOME: tmp.make(), PATH: process.env.PATH, SCRIPT: scripts.zsh! },
      },
    );
    expect(r.stdout.toString().trim()).toBe("_civitai-meta");
  });

  test("Tab completes a command, a flag with its enum value, a list item, a negation and a positional choice", async () => {
    const typed: [string, string][] = [
      ["civitai-meta sc\t", "[scan]"],
      ["civitai-meta scan --form\tm\t", "[scan][--format=md]"],
      ["civitai-meta hash --algo=sha256,cr\t", "[hash][--algo=sha256,crc32]"],
      ["civitai-meta scan --no-det\t", "[scan][--no-details]"],
      ["civitai-meta cache pr\t", "[cache][prune]"],
      // Folders only (mine.json is left out); zsh drops the completed "/" when Enter follows.
      ["civitai-meta download x.json --dest mi\t", "[download][x.json][--dest][mirror]"],
    ];
    expect(await zshComplete(typed.map(([line]) => line))).toEqual(typed.map(([, args]) => args));
  }, 60_000);
});

const FISH = Bun.which("fish");
if (!FISH) console.log("skipping fish completion tests: fish is not installed (apt-get install fish)");

function fishComplete(line: string): string[] {
  const r = Bun.spawnSync([FISH!, "--no-config", "-c", "source $SCRIPT; complete -C $LINE"], {
    cwd: files,
    // A UTF-8 locale, or fish reads a non-ASCII path in SCRIPT as Latin-1.
    env: { HOME: tmp.make(), PATH: process.env.PATH, LC_ALL: "C.UTF-8", SCRIPT: scripts.fish!, LINE: line },
  });
  expect(r.stderr.toString()).toBe("");
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split("\t")[0]!)
    .sort();
}

describe.skipIf(!FISH)("fish", () => {
  test("the script passes fish -n", () => {
    expect(Bun.spawnSync([FISH!, "--no-config", "-n", scripts.fish!]).exitCode).toBe(0);
  });

  test("complete -C offers commands, flags, enum values, list items and files where they belong", () => {
    expect(fishComplete("civitai-meta sc")).toEqual(["scan"]);
    expect(fishComplete("civitai-meta scan --fail")).toEqual(["--fail-on"]);
    expect(fishComplete("civitai-meta scan --format ")).toEqual(["csv", "html", "json", "junit", "md"]);
    expect(fishComplete("civitai-meta hash --algo sha256,auto")).toEqual(["sha256,autov1", "sha256,autov2", "sha256,autov3"]);
    expect(fishComplete("civitai-meta cache ")).toEqual(expect.arrayContaining(["clear", "info", "prune"]));
    expect(fishComplete("civitai-meta scan --no-")).toEqual(["--no-cache", "--no-details", "--no-fallback", "--no-images"]);
    expect(fishComplete("civitai-meta scan mi")).toEqual(["mine.json", "mirror/"]);
    expect(fishComplete("civitai-meta download --dest mi")).toEqual(["mirror/"]);
  });
});
