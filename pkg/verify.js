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

// The WebCrypto private key of each CA whose key is outside the module (`createCa` with
// `options.key`, `loadCa` with a CryptoKey). Never exported, never copied into wasm memory.
const caKeys = new WeakMap();

const webCryptoSign = (algorithm) =>
  algorithm === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };

function isCryptoKey(k) {
  return typeof CryptoKey !== 'undefined' && k instanceof CryptoKey;
}

/** Adds `issueAsync(csrPem, profile?, options?)` to the module's `Ca` class. */
export function installIssueAsync(Ca, verifier, subtle) {
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
      if (this.holdsKey) return this.finishIssue(pending, valid);
      const key = caKeys.get(this);
      if (!key) {
        pending.free();
        throw Object.assign(new Error('this CA has no key: load it with loadCa(certPem, cryptoKey)'), {
          code: 'invalid_parameter',
        });
      }
      const unsigned = this.finishIssueUnsigned(pending, valid);
      try {
        const sig = await subtle.sign(webCryptoSign(unsigned.algorithm), key, unsigned.tbs);
        return unsigned.assemble(new Uint8Array(sig));
      } finally {
        unsigned.free();
      }
    },
    writable: true,
    configurable: true,
  });
}

/**
 * `createCa` and `loadCa` that also take a WebCrypto key: `createCa({ ..., key: CryptoKeyPair })`
 * resolves to a root CA whose certificate that key signed; `loadCa(certPem, cryptoKey)` loads one.
 * Either CA signs through WebCrypto in `issueAsync` (its `issue` refuses: the key is not in wasm).
 */
export function cryptoKeyCa(mod, subtle) {
  // Synchronous as before without a key; a Promise with one (WebCrypto signs asynchronously).
  function createCa(options) {
    if (!options || options.key === undefined) return mod.createCa(options);
    return createWithKey(options);
  }
  async function createWithKey(options) {
    const { key, ...rest } = options;
    if (!key || !isCryptoKey(key.privateKey) || !isCryptoKey(key.publicKey)) {
      throw Object.assign(new Error('options.key must be a CryptoKeyPair (WebCrypto)'), {
        code: 'invalid_parameter',
      });
    }
    const spki = new Uint8Array(await subtle.exportKey('spki', key.publicKey));
    const unsigned = mod.rootUnsigned(rest, spki);
    let pem;
    try {
      const sig = await subtle.sign(webCryptoSign(unsigned.algorithm), key.privateKey, unsigned.tbs);
      pem = unsigned.assemble(new Uint8Array(sig));
    } finally {
      unsigned.free();
    }
    const ca = mod.loadCaCertificate(pem);
    caKeys.set(ca, key.privateKey);
    return ca;
  }
  function loadCa(certPem, key, passphrase) {
    if (!isCryptoKey(key)) return mod.loadCa(certPem, key, passphrase);
    const ca = mod.loadCaCertificate(certPem);
    caKeys.set(ca, key);
    return ca;
  }
  return { createCa, loadCa };
}
