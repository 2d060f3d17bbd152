/**
 * A real `redis-server` (Debian's package) for the shared metadata cache's tests and bench (issue
 * 14): started on a free loopback port with a password, no persistence, in a temp folder; stopped
 * (or killed mid-run) by the caller; with `tls`, it speaks TLS only. `redisAvailable()` lets a test skip visibly where the package
 * is missing (.ci/run installs it).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSelfSignedCertificate } from "./tls-cert.ts";

export interface RedisServer {
  readonly port: number;
  /** With `tls`: the self-signed certificate (PEM file) the server presents, for NODE_EXTRA_CA_CERTS. */
  readonly caFile: string | null;
  readonly password: string;
  /** `redis://:<password>@127.0.0.1:<port>/<db>`. */
  url(db?: number): string;
  /** Runs redis-cli against db `db` (default 0) with the password; returns its trimmed stdout. `input` goes to its stdin (for `-x`). */
  cli(args: readonly string[], db?: number, input?: Uint8Array): string;
  /** SIGKILL: the server dies at once, as when its machine goes down. */
  kill(): void;
  stop(): Promise<void>;
}

export function redisAvailable(): boolean {
  return Bun.which("redis-server") !== null && Bun.which("redis-cli") !== null;
}

/** A port nobody listens on right now (bound then released; redis-server needs a number). */
function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

export interface StartRedisOptions {
  password?: string;
  /** Extra `redis-server` arguments, e.g. ["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"]. */
  args?: readonly string[];
  /**
   * Speak TLS only (rediss://), with a self-signed certificate for 127.0.0.1 and localhost made by
   * openssl in the server's folder (`caFile`). Needs redis-server built with TLS (Debian's is).
   */
  tls?: boolean;
}

export function tlsAvailable(): boolean {
  return redisAvailable() && Bun.which("openssl") !== null;
}

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const password = options.password ?? `pw-${crypto.randomUUID()}`;
  let lastError = "";
  // Another process may take the port between freePort() and the bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = freePort();
    const dir = mkdtempSync(join(tmpdir(), "civitai-meta-redis-"));
    if (options.tls) makeSelfSignedCertificate(dir);
    const listen = options.tls
      ? [
          "--port",
          "0",
          "--tls-port",
          String(port),
          "--tls-cert-file",
          join(dir, "cert.pem"),
          "--tls-key-file",
          join(dir, "key.pem"),
          "--tls-auth-clients",
          "no",
        ]
      : ["--port", String(port)];
    const tlsCli = options.tls ? ["--tls", "--cacert", join(dir, "cert.pem")] : [];
    const proc = Bun.spawn(
      [
        "redis-server",
        ...listen,
        "--bind",
        "127.0.0.1",
        "--requirepass",
        password,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        "--loglevel",
        "warning",
        ...(options.args ?? []),
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const cli = (args: readonly string[], db = 0, input?: Uint8Array): string => {
      const r = Bun.spawnSync(
        ["redis-cli", ...tlsCli, "-p", String(port), "-n", String(db), "--no-auth-warning", "-a", password, ...args],
        {
          stdin: input ?? "ignore",
        },
      );
      return r.stdout.toString().trim();
    };
    for (let i = 0; i < 100 && proc.exitCode === null; i++) {
      if (cli(["PING"]) === "PONG") {
        return {
          port,
          caFile: options.tls ? join(dir, "cert.pem") : null,
          password,
          url: (db = 0) => `${options.tls ? "rediss" : "redis"}://:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`,
          cli,
          kill: () => proc.kill("SIGKILL"),
          async stop() {
            proc.kill("SIGKILL");
            await proc.exited;
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await Bun.sleep(50);
    }
    proc.kill("SIGKILL");
    await proc.exited;
    lastError = await new Response(proc.stdout).text();
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`redis-server did not start: ${lastError.trim().slice(0, 500)}`);
}
