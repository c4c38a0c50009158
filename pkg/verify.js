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

/**
 * Signs with a WebCrypto private key (`crypto.subtle`): resolves to the raw signature (P-256
 * r‖s, Ed25519 64 bytes). Node passes its own, synchronous and faster (`node-verify.mjs`).
 */
export function webCryptoSigner(subtle) {
  return async (privateKey, algorithm, bytes) =>
    new Uint8Array(await subtle.sign(webCryptoSign(algorithm), privateKey, bytes));
}

function isCryptoKey(k) {
  return typeof CryptoKey !== 'undefined' && k instanceof CryptoKey;
}

/**
 * Adds `issueAsync(csrPem, profile?, options?)` to the module's `Ca` class: `verifier` checks
 * the CSR's signature, `signer` signs for a CA whose key is a CryptoKey.
 */
export function installIssueAsync(Ca, verifier, signer) {
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
      return signOutside(signer, key, unsigned, unsigned.tbs);
    },
    writable: true,
    configurable: true,
  });
}

/** Sign `unsigned`'s bytes with a WebCrypto private key and hand the signature back to it. */
async function signOutside(signer, privateKey, unsigned, bytes) {
  try {
    return unsigned.assemble(await signer(privateKey, unsigned.algorithm, bytes));
  } finally {
    unsigned.free();
  }
}

function keyPairOrThrow(key, what) {
  if (!key || !isCryptoKey(key.privateKey) || !isCryptoKey(key.publicKey)) {
    throw Object.assign(new Error(`${what} must be a CryptoKeyPair (WebCrypto)`), { code: 'invalid_parameter' });
  }
  return key;
}

/**
 * The module's functions that also take a WebCrypto key, which never enters wasm memory (the
 * module builds the bytes, WebCrypto signs them, the module checks and assembles):
 * - `createCa({ ..., key: CryptoKeyPair })` resolves to a root CA whose certificate that key
 *   signed; `loadCa(certPem, cryptoKey)` loads one. Either CA signs through WebCrypto in
 *   `issueAsync` (its `issue` refuses: the key is not in wasm).
 * - `createCsr(cryptoKeyPair, request)` and `signRenewalProof(cryptoKeyPair, certPem, audience)`
 *   resolve to the CSR and the proof, signed by a (non-extractable) WebCrypto key.
 * With the module's own `Key` each is the module's function, synchronous as before.
 */
export function cryptoKeyApi(mod, subtle, signer) {
  const spkiOf = async (key) => new Uint8Array(await subtle.exportKey('spki', key.publicKey));
  function createCa(options) {
    if (!options || options.key === undefined) return mod.createCa(options);
    return createWithKey(options);
  }
  async function createWithKey(options) {
    const { key, ...rest } = options;
    keyPairOrThrow(key, 'options.key');
    const unsigned = mod.rootUnsigned(rest, await spkiOf(key));
    const ca = mod.loadCaCertificate(await signOutside(signer, key.privateKey, unsigned, unsigned.tbs));
    caKeys.set(ca, key.privateKey);
    return ca;
  }
  function loadCa(certPem, key, passphrase) {
    if (!isCryptoKey(key)) return mod.loadCa(certPem, key, passphrase);
    const ca = mod.loadCaCertificate(certPem);
    caKeys.set(ca, key);
    return ca;
  }
  function createCsr(key, request) {
    if (!isCryptoKey(key?.privateKey)) return mod.createCsr(key, request);
    return (async () => {
      keyPairOrThrow(key, 'key');
      const unsigned = mod.csrUnsigned(await spkiOf(key), request);
      return signOutside(signer, key.privateKey, unsigned, unsigned.tbs);
    })();
  }
  function signRenewalProof(key, certificatePem, audience) {
    if (!isCryptoKey(key?.privateKey)) return mod.signRenewalProof(key, certificatePem, audience);
    return (async () => {
      keyPairOrThrow(key, 'key');
      const unsigned = mod.renewalProofUnsigned(await spkiOf(key), certificatePem, audience);
      return signOutside(signer, key.privateKey, unsigned, unsigned.signingInput);
    })();
  }
  return { createCa, loadCa, createCsr, signRenewalProof };
}
