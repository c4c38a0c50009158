// Browser and bundler entry: fetches and instantiates the .wasm next to the glue (bundlers
// rewrite the `new URL(..., import.meta.url)` inside it), then exposes the API.
import init, * as mod from './dist/wasm_pki.js';
import { installIssueAsync, webCryptoVerifier, webCryptoSigner, cryptoKeyApi } from './verify.js';

await init({ module_or_path: new URL('./dist/wasm_pki_bg.wasm', import.meta.url) });

const signer = webCryptoSigner(globalThis.crypto.subtle);
installIssueAsync(mod.Ca, webCryptoVerifier(globalThis.crypto.subtle), signer);

export * from './dist/wasm_pki.js';
// These also take a WebCrypto key (the module's own for anything else); see verify.js.
export const { createCa, loadCa, createCsr, signRenewalProof } = cryptoKeyApi(mod, globalThis.crypto.subtle, signer);
