// Node entry (ESM `import` and, on Node >= 20.19, CommonJS `require`): loads the one .wasm file
// synchronously so the API is ready as soon as the module is.
import { verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { initSync, Ca } from './dist/wasm_pki.js';
import { installIssueAsync } from './verify.js';

initSync({ module: readFileSync(new URL('./dist/wasm_pki_bg.wasm', import.meta.url)) });

// node:crypto's synchronous verify (OpenSSL): faster than awaiting WebCrypto for the same check.
installIssueAsync(Ca, (p) =>
  verify(
    p.algorithm === 'ES256' ? 'sha256' : null,
    p.message,
    { key: Buffer.from(p.spki), format: 'der', type: 'spki', dsaEncoding: 'ieee-p1363' },
    p.signature,
  ),
);

export * from './dist/wasm_pki.js';
