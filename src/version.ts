import pkg from "../package.json" with { type: "json" };

/** Inlined at build time by the static JSON import; never read from disk at run time. */
export const VERSION: string = pkg.version;
export const NAME = "civitai-meta";
