// Node entry (ESM `import` and, on Node >= 20.19, CommonJS `require`): loads the one .wasm file
// synchronously so the API is ready as soon as the module is.
import { readFileSync } from 'node:fs';
import { initSync, Ca } from './dist/wasm_pki.js';
import { installIssueAsync } from './verify.js';
import { nodeVerifier } from './node-verify.mjs';

initSync({ module: readFileSync(new URL('./dist/wasm_pki_bg.wasm', import.meta.url)) });
installIssueAsync(Ca, nodeVerifier);

export * from './dist/wasm_pki.js';
