// Node's verifier for Ca.issueAsync: node:crypto's synchronous verify (OpenSSL), the key imported
// as a JWK (OpenSSL 3 decodes a JWK two to ten times faster than the same key as SPKI DER, and
// awaiting WebCrypto costs more still). Ed25519 is left to wasm (undefined): Node 20's OpenSSL
// verifies it slower than the module does (BENCHMARKS.md), as is a key OpenSSL will not import.
import { createPublicKey, verify, sign, KeyObject } from 'node:crypto';

const b64u = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');

/** The verdict on a PendingIssue's signature, or undefined to verify it in wasm. */
export function nodeVerifier(p) {
  if (p.algorithm !== 'ES256') return undefined;
  const raw = p.publicKey;
  const jwk = { kty: 'EC', crv: 'P-256', x: b64u(raw.subarray(1, 33)), y: b64u(raw.subarray(33, 65)) };
  let key;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    return undefined;
  }
  return verify('sha256', p.message, { key, dsaEncoding: 'ieee-p1363' }, p.signature);
}

// Node's signer for a CA (or an owner) whose key is a CryptoKey: node:crypto's synchronous sign
// on the same key (`KeyObject.from`, kept per CryptoKey), about 7x cheaper here than awaiting
// `subtle.sign`, whose work goes through libuv's thread pool. The key stays outside wasm either
// way. (Node's `KeyObject.from` also exports a non-extractable CryptoKey: in Node,
// non-extractable is not a boundary; in browsers it is.)
const keyObjects = new WeakMap();

/** The raw signature (P-256 r‖s, Ed25519 64 bytes) of `bytes` by the CryptoKey `privateKey`. */
export function nodeSigner(privateKey, algorithm, bytes) {
  let key = keyObjects.get(privateKey);
  if (!key) {
    key = KeyObject.from(privateKey);
    keyObjects.set(privateKey, key);
  }
  const sig = algorithm === 'Ed25519'
    ? sign(null, bytes, key)
    : sign('sha256', bytes, { key, dsaEncoding: 'ieee-p1363' });
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.length);
}
