/**
 * Preloaded into a CLI child process (`bun --preload`, see run-cli.ts `noJitter`) so that the HTTP
 * engine's retries do not sleep for real. The engine waits the larger of Retry-After and its
 * backoff, drawn with full jitter as `random() × ceiling` (src/civitai/http/backoff.ts); its
 * `random` defaults to Math.random, so 0 here makes every backoff 0 ms while the retry path itself
 * (attempt counts, classification, messages, Retry-After) runs unchanged. Nothing else in src/
 * draws from Math.random (temp names use crypto).
 */
Math.random = () => 0;
