// Browser and bundler entry: fetches and instantiates the .wasm next to the glue (bundlers
// rewrite the `new URL(..., import.meta.url)` inside it), then exposes the API.
import init, * as mod from './dist/wasm_pki.js';
import { installIssueAsync, webCryptoVerifier, cryptoKeyCa } from './verify.js';

await init({ module_or_path: new URL('./dist/wasm_pki_bg.wasm', import.meta.url) });

installIssueAsync(mod.Ca, webCryptoVerifier(globalThis.crypto.subtle), globalThis.crypto.subtle);

export * from './dist/wasm_pki.js';
// createCa and loadCa also take a WebCrypto key (the module's own for anything else).
export const { createCa, loadCa } = cryptoKeyCa(mod, globalThis.crypto.subtle);
