// Owner keys kept in this browser: WebCrypto key pairs made non-extractable, stored in IndexedDB
// (which stores the CryptoKey object itself, not its bytes: nothing here, not even this page, can
// read the private key back out; the browser signs with it on request).

const DB = 'wasm-pki';
const STORE = 'keys';

/** WebCrypto's parameters for the page's key types. */
export const ALGORITHMS = {
  p256: { name: 'ECDSA', namedCurve: 'P-256' },
  ed25519: { name: 'Ed25519' },
};

/** A new non-extractable key pair of `algorithm` ('p256' or 'ed25519'), usable only to sign. */
export async function generate(algorithm) {
  const params = ALGORITHMS[algorithm];
  if (!params) throw Object.assign(new Error(`unknown key type ${algorithm}`), { code: 'invalid_parameter' });
  try {
    return await crypto.subtle.generateKey(params, false, ['sign']);
  } catch (e) {
    if (e && e.name === 'NotSupportedError') {
      throw Object.assign(new Error(`This browser cannot keep a ${algorithm === 'p256' ? 'P-256' : 'Ed25519'} key: choose another key type or download the key.`), { code: 'unsupported_algorithm' });
    }
    throw e;
  }
}

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(Object.assign(new Error(`This browser's storage is unavailable: ${req.error?.message || 'refused'}`), { code: 'storage' }));
  });
}

async function run(mode, act) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = act(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('storage transaction aborted'));
    });
  } finally {
    db.close();
  }
}

/**
 * Every kept key: `{ id, label, algorithm, keyPair, certificate, created }`, newest first.
 * `certificate` is the PEM last issued for the key (null until one is).
 */
export async function all() {
  const list = await run('readonly', (s) => s.getAll());
  return (list || []).sort((a, b) => b.created - a.created);
}

/** Store `record` (a new one gets its `id`); resolves to the id. */
export async function put(record) {
  return run('readwrite', (s) => s.put(record));
}

/** Forget the key `id`. */
export async function remove(id) {
  await run('readwrite', (s) => s.delete(id));
}
