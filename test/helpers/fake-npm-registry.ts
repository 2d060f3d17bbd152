/**
 * A fake npm registry on 127.0.0.1 so the packaging tests install our packages the way users do
 * (`npm install civitai-meta`: npm reads each optional dependency's os/cpu/libc from the registry
 * and downloads only the tarball that fits) without publishing anything or touching the internet.
 *
 *   const registry = await startFakeNpmRegistry([{ manifest: pkgJson, tarball: "/tmp/x.tgz" }, …]);
 *   npm install --registry registry.url civitai-meta
 *   registry.tarballRequests  // names whose tarball npm fetched
 *
 * A package given without a tarball is listed (npm can read its manifest) but its tarball answers
 * 404; a name not given at all answers 404 like an unpublished package.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

export interface FakePackage {
  /** The package.json that would be published. */
  manifest: { name: string; version: string } & Record<string, unknown>;
  /** Path of the `npm pack` tarball, if it may be downloaded. */
  tarball?: string;
}

export interface FakeNpmRegistry {
  readonly url: string;
  /** Every path requested, in order. */
  readonly requests: string[];
  /** Package names whose tarball was requested. */
  readonly tarballRequests: string[];
  stop(): Promise<void>;
}

export async function startFakeNpmRegistry(packages: FakePackage[]): Promise<FakeNpmRegistry> {
  const byName = new Map(packages.map((p, i) => [p.manifest.name, { ...p, index: i }]));
  const requests: string[] = [];
  const tarballRequests: string[] = [];
  const tarballs = new Map<number, Buffer>();
  const tarballOf = (i: number, path: string): Buffer => {
    let data = tarballs.get(i);
    if (!data) tarballs.set(i, (data = readFileSync(path)));
    return data;
  };

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      requests.push(url.pathname);
      const tar = /^\/-\/tarballs\/(\d+)\.tgz$/.exec(url.pathname);
      if (tar) {
        const entry = packages[Number(tar[1])];
        if (entry) tarballRequests.push(entry.manifest.name);
        if (!entry?.tarball) return Response.json({ error: "not found" }, { status: 404 });
        return new Response(tarballOf(Number(tar[1]), entry.tarball), { headers: { "content-type": "application/octet-stream" } });
      }
      const name = decodeURIComponent(url.pathname.slice(1));
      const entry = byName.get(name);
      if (!entry) return Response.json({ error: "Not found" }, { status: 404 });
      const { version } = entry.manifest;
      const dist: Record<string, string> = { tarball: `${origin}/-/tarballs/${entry.index}.tgz` };
      if (entry.tarball) {
        const data = tarballOf(entry.index, entry.tarball);
        dist.integrity = `sha512-${createHash("sha512").update(data).digest("base64")}`;
        dist.shasum = createHash("sha1").update(data).digest("hex");
      }
      return Response.json({
        _id: name,
        name,
        "dist-tags": { latest: version },
        versions: { [version]: { ...entry.manifest, _id: `${name}@${version}`, dist } },
      });
    },
  });
  const origin = `http://127.0.0.1:${server.port}`;
  return {
    url: origin,
    requests,
    tarballRequests,
    async stop() {
      await server.stop(true);
    },
  };
}
