import { defineCommand } from "citty";
import { EXIT, UsageError } from "../shared/errors.ts";
import { inspectFile } from "../local/inspect.ts";
import { formatInspect } from "../local/inspect-text.ts";
import { resolveCacheDir } from "../config/paths.ts";
import { escapeControl, escapeJsonControls } from "../shared/format.ts";
import { logger } from "../ui/logger.ts";
import { globalArgs, hashingArgs } from "./_shared.ts";
import { resolvePath } from "../shared/fs-path.ts";
import { writeStdout } from "../shared/stdio.ts";

export default defineCommand({
  meta: {
    name: "inspect",
    description:
      "Show everything known locally about one model file: its format by content, header metadata (kohya training keys, ModelSpec), a guess of what it is, hashes (also the ones it embeds) and other tools' sidecar files. Reads only headers; never loads pickles.",
  },
  args: {
    ...globalArgs,
    file: { type: "positional", required: false, description: "The model file", valueHint: "file" },
    json: { type: "boolean", description: "Print JSON instead of text" },
    hash: {
      type: "boolean",
      default: true,
      negativeDescription: "Do not hash the file (headers and sidecars only)",
      description: "Compute sha256, autov2 and autov3",
    },
    "cache-dir": hashingArgs["cache-dir"],
    cache: hashingArgs.cache,
  },
  async run({ args }) {
    const files = args._;
    if (files.length !== 1)
      throw new UsageError("inspect needs exactly one file, e.g. civitai-meta inspect ~/models/loras/my_lora.safetensors");
    const path = resolvePath(files[0]!);
    const result = await inspectFile(path, {
      hash: args.hash !== false,
      cacheDir: args.cache === false ? false : resolveCacheDir(args["cache-dir"], undefined),
      onWarning: (m) => logger.warn(escapeControl(m)),
    });
    writeStdout(args.json ? `${escapeJsonControls(JSON.stringify(result, null, 2))}\n` : formatInspect(result));
    process.exitCode = result.local.errors.length > 0 || result.hashError ? EXIT.failure : EXIT.ok;
  },
});
