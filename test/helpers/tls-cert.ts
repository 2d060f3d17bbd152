import { join } from "node:path";

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made by openssl in `dir`: `cert.pem` and
 * `key.pem`, whose paths it returns. Throws with openssl's message when it cannot.
 */
export function makeSelfSignedCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const gen = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      // An EC key: made at once, where an RSA key's prime search takes up to seconds.
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (gen.exitCode !== 0) throw new Error(`openssl could not make a certificate: ${gen.stderr.toString().slice(0, 500)}`);
  return { cert, key };
}
