// Node entry (ESM `import` and, on Node >= 20.19, CommonJS `require`): loads the one .wasm file
// synchronously so the API is ready as soon as the module is.
import { readFileSync } from 'node:fs';
import * as mod from './dist/wasm_pki.js';
import { installIssueAsync, cryptoKeyApi } from './verify.js';
import { nodeVerifier, nodeSigner } from './node-verify.mjs';

mod.initSync({ module: readFileSync(new URL('./dist/wasm_pki_bg.wasm', import.meta.url)) });
installIssueAsync(mod.Ca, nodeVerifier, nodeSigner);

export * from './dist/wasm_pki.js';
// These also take a WebCrypto key (the module's own for anything else); see verify.js.
export const { createCa, loadCa, createCsr, signRenewalProof } = cryptoKeyApi(mod, globalThis.crypto.subtle, nodeSigner);
