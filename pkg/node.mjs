// Node entry (ESM `import` and, on Node >= 20.19, CommonJS `require`): loads the one .wasm file
// synchronously so the API is ready as soon as the module is.
import { readFileSync } from 'node:fs';
import * as mod from './dist/wasm_pki.js';
import { installIssueAsync, cryptoKeyCa } from './verify.js';
import { nodeVerifier } from './node-verify.mjs';

mod.initSync({ module: readFileSync(new URL('./dist/wasm_pki_bg.wasm', import.meta.url)) });
installIssueAsync(mod.Ca, nodeVerifier, globalThis.crypto.subtle);

export * from './dist/wasm_pki.js';
// createCa and loadCa also take a WebCrypto key (the module's own for anything else).
export const { createCa, loadCa } = cryptoKeyCa(mod, globalThis.crypto.subtle);
