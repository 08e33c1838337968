// `keepsake serve` as a child process (KEEPSAKE_BIN, KEEPSAKE_WASM from the Rust test that
// runs `npm test`), and agents for it with agent-js's default verification.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { HttpAgent } from '@icp-sdk/core/agent';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';

/** `extra`: more `serve` arguments (e.g. `--storage 2`). */
export async function startServe(extra = []) {
  const bin = process.env.KEEPSAKE_BIN;
  const wasm = process.env.KEEPSAKE_WASM;
  if (!bin || !wasm) throw new Error('set KEEPSAKE_BIN and KEEPSAKE_WASM (crates/keepsake/tests/ts_client.rs does)');
  const dir = mkdtempSync(join(tmpdir(), 'keepsake-ts-'));
  const child = spawn(bin, ['--state', join(dir, 'state'), '--wasm', wasm, '--json', 'serve', '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
  const first = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`keepsake serve exited with ${code}`)));
  });
  const info = JSON.parse(first);
  return {
    url: info.url,
    canisterId: info.canister,
    directory: info.directory,
    dir,
    /** Ctrl-C, then (once it has closed its store) the state folder goes. */
    async stop() {
      const exited = child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An agent for `url` as `identity` (a new Ed25519 key by default); `fetch` may count requests. */
export async function agentFor(url, identity = Ed25519KeyIdentity.generate(), fetch = globalThis.fetch) {
  return HttpAgent.create({ host: url, identity, shouldFetchRootKey: true, fetch });
}

/** `n` pseudo-random bytes from `seed` (xorshift; fast enough for 50 MB). */
export function bytes(n, seed) {
  const out = new Uint8Array(n);
  const view = new Uint32Array(out.buffer, 0, Math.floor(n / 4));
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < view.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    view[i] = x;
  }
  for (let i = view.length * 4; i < n; i++) out[i] = i & 0xff;
  return out;
}
