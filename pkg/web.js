// Browser and bundler entry: fetches and instantiates the .wasm next to the glue (bundlers
// rewrite the `new URL(..., import.meta.url)` inside it), then exposes the API.
import init, { Ca } from './dist/wasm_pki.js';
import { installIssueAsync, webCryptoVerifier } from './verify.js';

await init({ module_or_path: new URL('./dist/wasm_pki_bg.wasm', import.meta.url) });

installIssueAsync(Ca, webCryptoVerifier(globalThis.crypto.subtle));

export * from './dist/wasm_pki.js';
