import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, linkSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { NODE_WALKER_FS, SKIP_REASON, walk, type WalkerFs } from "../../../src/scan/walker.ts";
import { listEntries, listEntriesSync, type ListedEntry } from "../../../src/shared/fs-names.ts";
import { decodeFsName } from "../../../src/shared/fs-path.ts";

const TIMEOUT = 10_000;
const base = mkdtempSync(join(tmpdir(), "civitai-meta-walker-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let counter = 0;
/** A fresh folder holding `files` (relative path → contents). */
function tree(files: Record<string, string> = {}): string {
  const root = join(base, `t${counter++}`);
  mkdirSync(root, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return root;
}

function paths(result: { files: { path: string }[] }): string[] {
  return result.files.map((f) => f.path);
}

function errno(code: string, syscall: string, path: string): Error {
  return Object.assign(new Error(`${code}: simulated, ${syscall} '${path}'`), { code, syscall, path });
}

/** Real fs that records every call, to prove what was (not) touched. */
function recordingFs(): { fs: WalkerFs; calls: [string, string][] } {
  const calls: [string, string][] = [];
  const fs: WalkerFs = {
    readdir: (p) => (calls.push(["readdir", p]), NODE_WALKER_FS.readdir(p)),
    stat: (p) => (calls.push(["stat", p]), NODE_WALKER_FS.stat(p)),
    lstat: (p) => (calls.push(["lstat", p]), NODE_WALKER_FS.lstat(p)),
    realpath: (p) => (calls.push(["realpath", p]), NODE_WALKER_FS.realpath(p)),
  };
  return { fs, calls };
}

describe("walk", () => {
  test(
    "nested folders, case-insensitive extensions, full FoundFile shape",
    async () => {
      const root = tree({
        "a.safetensors": "a",
        "sub/deep/B.SafeTensors": "bb",
        "sub/c.gguf": "ccc",
        "sub/d.CKPT": "d",
        "readme.txt": "not a model",
        "sub/info.json": "{}",
      });
      const result = await walk([root], {});
      expect(paths(result)).toEqual([
        join(root, "a.safetensors"),
        join(root, "sub/c.gguf"),
        join(root, "sub/d.CKPT"),
        join(root, "sub/deep/B.SafeTensors"),
      ]);
      expect(result.skipped).toEqual([]);
      expect(result.missing).toEqual([]);
      expect(result.warnings).toEqual([]);

      const file = result.files.find((f) => f.path.endsWith("B.SafeTensors"));
      const st = statSync(join(root, "sub/deep/B.SafeTensors"), { bigint: true });
      expect(file).toEqual({
        path: join(root, "sub/deep/B.SafeTensors"),
        paths: [join(root, "sub/deep/B.SafeTensors")],
        realPath: join(root, "sub/deep/B.SafeTensors"),
        identity: {
          dev: Number(st.dev),
          ino: Number(st.ino),
          size: 2,
          mtimeNs: st.mtimeNs.toString(),
          ctimeNs: st.ctimeNs.toString(),
        },
        mtimeMs: expect.any(Number),
      });
      expect(Math.abs((file?.mtimeMs ?? 0) - statSync(join(root, "sub/deep/B.SafeTensors")).mtimeMs)).toBeLessThan(0.01);
    },
    TIMEOUT,
  );

  test(
    "--ext changes what is looked for",
    async () => {
      const root = tree({ "a.safetensors": "a", "b.gguf": "b", "c.onnx": "c", "d.ONNX": "d" });
      expect(paths(await walk([root], { extensions: ["gguf"] }))).toEqual([join(root, "b.gguf")]);
      expect(paths(await walk([root], { extensions: [".onnx,safetensors"] }))).toEqual([
        join(root, "a.safetensors"),
        join(root, "c.onnx"),
        join(root, "d.ONNX"),
      ]);
      // Empty list = defaults.
      expect(paths(await walk([root], { extensions: [] }))).toEqual([join(root, "a.safetensors"), join(root, "b.gguf")]);
    },
    TIMEOUT,
  );

  test(
    "--exclude by name and by relative glob; excluded folders are not descended into",
    async () => {
      const root = tree({
        "keep.safetensors": "k",
        "x.bin": "x",
        "sub/y.bin": "y",
        "backup/old.safetensors": "o",
        "loras/backup/old2.safetensors": "o2",
        "loras/a.pt": "a",
        "loras/a.gguf": "a",
        "loras/deep/a.pt": "a",
        "sd15/old/z.safetensors": "z",
        "sd15/new/z.safetensors": "z2",
      });
      const { fs, calls } = recordingFs();
      const result = await walk([root], { exclude: ["*.bin", "backup", "loras/*.pt", "sd15/old/**"], fs });
      expect(paths(result)).toEqual([
        join(root, "keep.safetensors"),
        join(root, "loras/a.gguf"),
        join(root, "loras/deep/a.pt"),
        join(root, "sd15/new/z.safetensors"),
      ]);
      // Silently left out: not "skipped".
      expect(result.skipped).toEqual([]);
      const readdirs = calls.filter(([op]) => op === "readdir").map(([, p]) => p);
      expect(readdirs).not.toContain(join(root, "backup"));
      expect(readdirs).not.toContain(join(root, "loras/backup"));
      expect(readdirs).not.toContain(join(root, "sd15/old"));
      expect(readdirs).toContain(join(root, "sd15/new"));
    },
    TIMEOUT,
  );

  test(
    "symlink cycles (ln -s .. models/loop, ln -s . x) complete and list every real file once",
    async () => {
      const root = tree({ "top.safetensors": "t", "models/m.safetensors": "m", "models/sub/s.gguf": "s" });
      symlinkSync("..", join(root, "models/loop"));
      symlinkSync(".", join(root, "x"));
      symlinkSync("../..", join(root, "models/sub/up"));
      const result = await walk([root], {});
      expect(paths(result)).toEqual([join(root, "models/m.safetensors"), join(root, "models/sub/s.gguf"), join(root, "top.safetensors")]);
      for (const f of result.files) expect(f.paths).toHaveLength(1);
      expect(result.warnings).toEqual([]);
      expect(result.skipped).toEqual([]);
      // The cycle is a note, not a problem.
      expect(result.notes.some((n) => n.startsWith(join(root, "models/loop")))).toBe(true);
      expect(result.notes.some((n) => n.startsWith(join(root, "x")))).toBe(true);
    },
    TIMEOUT,
  );

  test(
    "a folder is listed the same with and without a promise, names that are not UTF-8 included",
    async () => {
      const root = tree({ "a.safetensors": "a", "sub/b.gguf": "b" });
      writeFileSync(Buffer.concat([Buffer.from(join(root, "bad-")), Buffer.from([0xff]), Buffer.from(".safetensors")]), "c");
      symlinkSync(join(root, "sub"), join(root, "link"));
      const shape = (entries: ListedEntry[]) =>
        entries
          .map((e) => [e.name, e.isFile(), e.isDirectory(), e.isSymbolicLink()])
          .sort((x, y) => String(x[0]).localeCompare(String(y[0])));
      const sync = shape(listEntriesSync(root));
      expect(sync).toEqual(shape(await listEntries(root)));
      expect(sync.map(([name]) => name)).toEqual(["a.safetensors", `bad-${decodeFsName(Buffer.from([0xff]))}.safetensors`, "link", "sub"]);
      // The walk, which lists folders on a local disk without a promise, finds the file by its bytes.
      // (joined by hand: node:path turns the lone surrogate that keeps the byte into U+FFFD)
      expect(paths(await walk([root], {}))).toContain(`${root}/bad-${decodeFsName(Buffer.from([0xff]))}.safetensors`);
    },
    TIMEOUT,
  );

  test(
    "only roots and linked folders are resolved: a folder listed in one gets its real path plus its name",
    async () => {
      const outside = tree({ "deep/er/o.safetensors": "o" });
      const root = tree({ "a/b/m.safetensors": "m" });
      symlinkSync(outside, join(root, "link"));
      const { fs, calls } = recordingFs();
      const result = await walk([root], { fs });
      const real = new Map(result.files.map((f) => [f.path, f.realPath]));
      expect(real.get(join(root, "a/b/m.safetensors"))).toBe(join(realpathSync(root), "a/b/m.safetensors"));
      expect(real.get(join(root, "link/deep/er/o.safetensors"))).toBe(join(realpathSync(outside), "deep/er/o.safetensors"));
      const resolved = calls.filter(([op]) => op === "realpath").map(([, p]) => p);
      expect(resolved.sort()).toEqual([root, join(root, "link")].sort());
    },
    TIMEOUT,
  );

  test(
    "a symlinked folder is followed once; real paths win over links into the tree",
    async () => {
      const outside = tree({ "o.safetensors": "o" });
      const root = tree({ "z-real/m.safetensors": "m" });
      symlinkSync(outside, join(root, "link1"));
      symlinkSync(outside, join(root, "link2"));
      // Sorts before "z-real" but must not become the displayed path of m.safetensors.
      symlinkSync(join(root, "z-real"), join(root, "a-link"));
      const { fs, calls } = recordingFs();
      const result = await walk([root], { fs });
      expect(paths(result)).toEqual([join(root, "link1/o.safetensors"), join(root, "z-real/m.safetensors")]);
      expect(result.files[0]?.realPath).toBe(join(outside, "o.safetensors"));
      expect(calls.filter(([op, p]) => op === "readdir" && p === join(root, "link2"))).toEqual([]);
      expect(result.notes).toEqual([
        `${join(root, "a-link")}: same folder as ${join(root, "z-real")}, not scanned again`,
        `${join(root, "link2")}: same folder as ${join(root, "link1")}, not scanned again`,
      ]);
    },
    TIMEOUT,
  );

  test(
    "FIFO, link to /dev/zero, unix socket and dangling link are skipped with reasons, without hanging or reading",
    async () => {
      const root = tree({ "ok.safetensors": "ok" });
      const mk = Bun.spawnSync(["mkfifo", join(root, "fifo.safetensors")]);
      expect(mk.exitCode).toBe(0);
      symlinkSync("/dev/zero", join(root, "zero.safetensors"));
      symlinkSync(join(root, "nowhere.safetensors"), join(root, "dangling.safetensors"));
      symlinkSync("self.gguf", join(root, "self.gguf"));
      symlinkSync("/dev/zero", join(root, "zero-not-a-model"));
      const socketPath = join(root, "sock.safetensors");
      const listener = Bun.listen({ unix: socketPath, socket: { data() {} } });
      try {
        const { fs, calls } = recordingFs();
        const result = await walk([root], { fs });
        expect(paths(result)).toEqual([join(root, "ok.safetensors")]);
        expect(result.skipped).toEqual([
          { path: join(root, "dangling.safetensors"), reason: SKIP_REASON.broken },
          { path: join(root, "fifo.safetensors"), reason: "not a regular file (FIFO)" },
          { path: join(root, "self.gguf"), reason: SKIP_REASON.loop },
          { path: join(root, "sock.safetensors"), reason: "not a regular file (socket)" },
          { path: join(root, "zero.safetensors"), reason: "link to a non-regular file (character device)" },
        ]);
        expect(result.warnings).toEqual([]);
        // WalkerFs has no open/read at all; the /dev/zero link and the FIFO were at most stat-ed.
        const touched = calls.filter(([, p]) => p.endsWith("zero.safetensors") || p.endsWith("fifo.safetensors"));
        for (const [op] of touched) expect(["stat", "lstat"]).toContain(op);
      } finally {
        listener.stop(true);
      }
    },
    TIMEOUT,
  );

  test(
    "a hard link and a file symlink are one FoundFile with every path",
    async () => {
      const root = tree({ "b/real.safetensors": "model" });
      linkSync(join(root, "b/real.safetensors"), join(root, "c-hard.safetensors"));
      symlinkSync(join(root, "b/real.safetensors"), join(root, "a-soft.safetensors"));
      const result = await walk([root], {});
      expect(result.files).toHaveLength(1);
      const [file] = result.files;
      expect(file?.paths).toEqual([join(root, "a-soft.safetensors"), join(root, "b/real.safetensors"), join(root, "c-hard.safetensors")]);
      expect(file?.path).toBe(join(root, "a-soft.safetensors"));
      // The displayed path keeps the link; realPath resolves it.
      expect(file?.realPath).toBe(join(root, "a-soft.safetensors").replace("a-soft", "b/real"));
      expect(file?.identity.size).toBe(5);
    },
    TIMEOUT,
  );

  test(
    ".part, .incomplete and an aria2 control file mark downloads in progress",
    async () => {
      const root = tree({
        "done.safetensors": "d",
        "a.safetensors.part": "p",
        "b.gguf.incomplete": "i",
        "c.safetensors": "c",
        "c.safetensors.aria2": "ctl",
        "video.mp4.part": "v",
        ".civitai-meta-tmp-123.safetensors": "ours",
      });
      const result = await walk([root], {});
      expect(paths(result)).toEqual([join(root, "done.safetensors")]);
      expect(result.skipped).toEqual([
        { path: join(root, "a.safetensors.part"), reason: "download in progress (.part)" },
        { path: join(root, "b.gguf.incomplete"), reason: "download in progress (.incomplete)" },
        { path: join(root, "c.safetensors"), reason: "download in progress (aria2 control file present)" },
      ]);
    },
    TIMEOUT,
  );

  test(
    "a file that grows between the two stats is skipped (deterministic, via the injected stat)",
    async () => {
      const root = tree({ "growing.safetensors": "x", "steady.safetensors": "s" });
      const growing = join(root, "growing.safetensors");
      let grown = false;
      const fs: WalkerFs = {
        ...NODE_WALKER_FS,
        stat: async (p) => {
          const st = await NODE_WALKER_FS.stat(p);
          // Another process appends right after the walker's first look.
          if (p === growing && !grown) {
            grown = true;
            appendFileSync(growing, "more bytes");
          }
          return st;
        },
      };
      const result = await walk([root], { fs });
      expect(grown).toBe(true);
      expect(paths(result)).toEqual([join(root, "steady.safetensors")]);
      expect(result.skipped).toEqual([{ path: growing, reason: SKIP_REASON.sizeChanged }]);
    },
    TIMEOUT,
  );

  test(
    "a file written by a concurrent appender during stabilityDelayMs is skipped",
    async () => {
      const root = tree({ "dl.safetensors": "x", "steady.safetensors": "s" });
      const dl = join(root, "dl.safetensors");
      const timer = setInterval(() => appendFileSync(dl, "chunk"), 5);
      try {
        const result = await walk([root], { stabilityDelayMs: 100 });
        expect(paths(result)).toEqual([join(root, "steady.safetensors")]);
        expect(result.skipped).toEqual([{ path: dl, reason: SKIP_REASON.sizeChanged }]);
      } finally {
        clearInterval(timer);
      }
    },
    TIMEOUT,
  );

  test(
    "an unreadable folder or file is a warning and the rest is still found",
    async () => {
      const root = tree({ "a/ok.safetensors": "1", "locked/hidden.safetensors": "2", "z.safetensors": "3", "nostat.gguf": "4" });
      const locked = join(root, "locked");
      const nostat = join(root, "nostat.gguf");
      const fs: WalkerFs = {
        ...NODE_WALKER_FS,
        readdir: (p) => (p === locked ? Promise.reject(errno("EACCES", "scandir", p)) : NODE_WALKER_FS.readdir(p)),
        stat: (p) => (p === nostat ? Promise.reject(errno("EPERM", "stat", p)) : NODE_WALKER_FS.stat(p)),
      };
      const result = await walk([root], { fs });
      expect(paths(result)).toEqual([join(root, "a/ok.safetensors"), join(root, "z.safetensors")]);
      expect(result.warnings).toEqual([`${nostat}: cannot read file information (EPERM)`, `${locked}: cannot read folder (EACCES)`]);
    },
    TIMEOUT,
  );

  test(
    "a missing root goes to `missing` and the other roots are still walked",
    async () => {
      const root = tree({ "m.safetensors": "m" });
      const gone = join(base, "does-not-exist");
      const result = await walk([gone, root], {});
      expect(result.missing).toEqual([gone]);
      expect(paths(result)).toEqual([join(root, "m.safetensors")]);
    },
    TIMEOUT,
  );

  test(
    "files given as arguments: relative paths become absolute, other extensions are reported",
    async () => {
      const root = tree({ "one.safetensors": "1", "two.safetensors": "2", "notes.txt": "n", "dl.gguf.part": "p" });
      const rel = relative(process.cwd(), join(root, "one.safetensors"));
      const result = await walk([rel, join(root, "notes.txt"), join(root, "dl.gguf.part"), rel], {
        exclude: ["*.safetensors"], // never applies to a path the user named
      });
      expect(paths(result)).toEqual([join(root, "one.safetensors")]);
      expect(result.files[0]?.paths).toEqual([join(root, "one.safetensors")]);
      expect(result.skipped).toEqual([
        { path: join(root, "dl.gguf.part"), reason: "download in progress (.part)" },
        { path: join(root, "notes.txt"), reason: SKIP_REASON.notModel },
      ]);
    },
    TIMEOUT,
  );

  test(
    "a file argument and the folder holding it give one FoundFile; an aria2 companion counts for arguments too",
    async () => {
      const root = tree({ "m.safetensors": "m", "n.safetensors": "n", "n.safetensors.aria2": "ctl" });
      const result = await walk([join(root, "m.safetensors"), root, join(root, "n.safetensors")], {});
      expect(paths(result)).toEqual([join(root, "m.safetensors")]);
      expect(result.skipped).toEqual([{ path: join(root, "n.safetensors"), reason: SKIP_REASON.aria2 }]);
    },
    TIMEOUT,
  );

  test(
    "an empty folder gives an empty result",
    async () => {
      const root = tree();
      expect(await walk([root], {})).toEqual({ files: [], skipped: [], missing: [], warnings: [], notes: [] });
    },
    TIMEOUT,
  );

  test(
    "maxDepth stops descending with a warning; onProgress counts folders and files",
    async () => {
      const root = tree({ "a.safetensors": "a", "l1/b.safetensors": "b", "l1/l2/c.safetensors": "c" });
      const progress: [number, number][] = [];
      const result = await walk([root], { maxDepth: 1, onProgress: (d, f) => progress.push([d, f]) });
      expect(paths(result)).toEqual([join(root, "a.safetensors"), join(root, "l1/b.safetensors")]);
      expect(result.warnings).toEqual([`${join(root, "l1/l2")}: not scanned, deeper than the depth limit (1)`]);
      expect(progress).toEqual([
        [1, 1],
        [2, 2],
      ]);
    },
    TIMEOUT,
  );

  test(
    "two walks of the same tree are deep-equal",
    async () => {
      const root = tree({ "b.safetensors": "b", "A.safetensors": "a", "é/x.gguf": "x", "_/y.pt": "y", "z.part": "z", "q.ckpt.part": "q" });
      symlinkSync("..", join(root, "é/loop"));
      symlinkSync(join(root, "b.safetensors"), join(root, "link.safetensors"));
      symlinkSync("missing", join(root, "broken.sft"));
      const first = await walk([root], {});
      const second = await walk([root], {});
      expect(second).toEqual(first);
      expect(paths(first)).toEqual([
        join(root, "A.safetensors"),
        join(root, "_/y.pt"),
        join(root, "b.safetensors"),
        join(root, "é/x.gguf"),
      ]);
    },
    TIMEOUT,
  );
});
