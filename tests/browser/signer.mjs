// Starts the real sandboxed signer (`wasm-pki serve`, path in WASM_PKI_BIN) with a fresh CA, for
// the page tests, and makes tokens with its CLI. It serves HTTPS, as by default.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** `policy`: a policy file's TOML for `serve --policy` (tokens may then name its profiles). */
export async function startSigner({ policy } = {}) {
  const bin = process.env.WASM_PKI_BIN;
  if (!bin) throw new Error('WASM_PKI_BIN must name the wasm-pki binary (scripts/test.sh sets it)');
  const dir = mkdtempSync(join(tmpdir(), 'wasm-pki-page-'));
  const ca = join(dir, 'ca');
  execFileSync(bin, ['init', '--dir', ca, '--name', 'Page Test CA'], { stdio: 'pipe' });
  const policyArgs = [];
  if (policy) {
    writeFileSync(join(dir, 'policy.toml'), policy);
    policyArgs.push('--policy', join(dir, 'policy.toml'));
  }
  const child = spawn(bin, ['serve', '--dir', ca, '--listen', '127.0.0.1:0', ...policyArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('wasm-pki serve did not start')), 60_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = line.match(/listening on (https:\/\/[^ ]+\/)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => reject(new Error(`wasm-pki serve exited with ${code}`)));
  });
  return {
    url,
    // The root the browser is told to trust (the signer's HTTPS certificate chains to it).
    caFile: join(ca, 'root.pem'),
    token: (identity, ...extra) => execFileSync(bin, ['token', 'create', '--dir', ca, '--identity', identity, ...policyArgs, ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop(),
    close: async () => { child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r)); rmSync(dir, { recursive: true, force: true }); },
  };
}
