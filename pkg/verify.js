// Ca.prototype.issueAsync: the CSR's signature verified by the platform's crypto (node:crypto in
// Node, WebCrypto in browsers) instead of in wasm, where P-256 is several times slower. The module
// checks every encoding first (beginIssue) and takes the verdict (finishIssue), so both paths
// refuse exactly the same CSRs; RSA, and any algorithm the platform lacks, is verified in wasm.

/** Verifies with WebCrypto (`crypto.subtle`); resolves to undefined when it lacks the algorithm. */
export function webCryptoVerifier(subtle) {
  return async (p) => {
    const es256 = p.algorithm === 'ES256';
    let key;
    try {
      key = await subtle.importKey(
        'raw',
        p.publicKey,
        es256 ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' },
        false,
        ['verify'],
      );
    } catch (e) {
      if (e && e.name === 'NotSupportedError') return undefined;
      throw e;
    }
    return subtle.verify(
      es256 ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'Ed25519' },
      key,
      p.signature,
      p.message,
    );
  };
}

/** Adds `issueAsync(csrPem, profile?, options?)` to the module's `Ca` class. */
export function installIssueAsync(Ca, verifier) {
  Object.defineProperty(Ca.prototype, 'issueAsync', {
    value: async function issueAsync(csrPem, profile, options) {
      const pending = this.beginIssue(csrPem, profile, options);
      let valid;
      try {
        if (pending.algorithm !== undefined) valid = await verifier(pending);
      } catch (e) {
        pending.free();
        throw e;
      }
      return this.finishIssue(pending, valid);
    },
    writable: true,
    configurable: true,
  });
}
