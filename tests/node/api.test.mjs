// The npm API in Node: round trips, and outputs checked by openssl and Node's own crypto.
import test from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto, createPublicKey } from 'node:crypto';
import * as pki from '../../pkg/node.mjs';
import { tempDir, openssl, opensslOk, pemToDer, derToPem } from './helpers.mjs';

const ALGS = ['p256', 'ed25519'];

for (const alg of ALGS) {
  test(`${alg}: key round trips, plain and encrypted`, (t) => {
    const { dir, write } = tempDir(t);
    const key = pki.generateKey(alg);
    assert.equal(key.algorithm, alg);
    const back = pki.importKey(key.privateKeyPem());
    assert.equal(back.publicKeyPem(), key.publicKeyPem());
    const enc = key.privateKeyPem('s3cret pass');
    assert.match(enc, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.equal(pki.importKey(enc, 's3cret pass').fingerprint(), key.fingerprint());
    assert.throws(() => pki.importKey(enc, 'wrong'), (e) => e.code === 'passphrase');
    assert.throws(() => pki.importKey(enc), (e) => e.code === 'passphrase' && /passphrase is required/.test(e.message));
    // openssl opens both and derives the same public key.
    write('plain.pem', key.privateKeyPem());
    write('enc.pem', enc);
    assert.equal(opensslOk(dir, ['pkey', '-in', 'plain.pem', '-pubout']).trim(), key.publicKeyPem().trim());
    assert.equal(opensslOk(dir, ['pkey', '-in', 'enc.pem', '-passin', 'pass:s3cret pass', '-pubout']).trim(), key.publicKeyPem().trim());
    // Node agrees on the JWK.
    const jwk = key.publicKeyJwk();
    assert.deepEqual(createPublicKey(key.publicKeyPem()).export({ format: 'jwk' }), jwk);
  });

  test(`${alg}: CSR verified by openssl, inspected by us`, (t) => {
    const { dir, write } = tempDir(t);
    const key = pki.generateKey(alg);
    const csr = pki.createCsr(key, {
      commonName: 'workload.example.com',
      organization: 'Example',
      dnsNames: ['workload.example.com'],
      ipAddresses: ['192.0.2.1'],
      uris: ['spiffe://example.org/ns/a/sa/b'],
      emails: ['ops@example.com'],
    });
    write('req.pem', csr);
    const out = opensslOk(dir, ['req', '-in', 'req.pem', '-verify', '-noout', '-text']);
    assert.match(out, /verify OK/);
    assert.match(out, /DNS:workload\.example\.com/);
    const d = pki.inspect(csr);
    assert.equal(d.kind, 'csr');
    assert.deepEqual(d.names, { dns: ['workload.example.com'], ip: ['192.0.2.1'], uri: ['spiffe://example.org/ns/a/sa/b'], email: ['ops@example.com'], other: [] });
    assert.equal(d.key.fingerprintSha256, key.fingerprint());
  });
}

for (const caAlg of ALGS) {
  test(`${caAlg} CA: issued leaves pass openssl and node's X509Certificate`, (t) => {
    const { dir, write } = tempDir(t);
    const ca = pki.createCa({ commonName: `Node Test CA ${caAlg}`, algorithm: caAlg, validityDays: 30 });
    write('ca.pem', ca.certificatePem());
    for (const leafAlg of ALGS) {
      const key = pki.generateKey(leafAlg);
      const csr = pki.createCsr(key, { commonName: 'svc.example.com', dnsNames: ['svc.example.com'], ipAddresses: ['10.0.0.5'] });
      const leafPem = ca.issue(csr, { acceptCsr: true });
      write('leaf.pem', leafPem);
      for (const purpose of ['sslserver', 'sslclient']) {
        assert.match(opensslOk(dir, ['verify', '-x509_strict', '-CAfile', 'ca.pem', '-purpose', purpose, 'leaf.pem']), /leaf\.pem: OK/);
      }
      const leaf = new X509Certificate(leafPem);
      const caCert = new X509Certificate(ca.certificatePem());
      assert.ok(leaf.verify(caCert.publicKey), 'signature by the CA');
      assert.ok(leaf.checkIssued(caCert));
      assert.equal(leaf.checkHost('svc.example.com'), 'svc.example.com');
      assert.equal(leaf.checkHost('other.example.com'), undefined);
      assert.equal(leaf.checkIP('10.0.0.5'), '10.0.0.5');
      assert.equal(leaf.subjectAltName, 'DNS:svc.example.com, IP Address:10.0.0.5');
      assert.equal(leaf.ca, false);
      assert.equal(caCert.ca, true);
      assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
      const chain = pki.verifyChain([leafPem, ca.certificatePem()]);
      assert.equal(chain.subjects.length, 2);
      // Expired by the time the leaf's lifetime is over.
      assert.throws(() => pki.verifyChain([leafPem, ca.certificatePem()], Date.now() + 2 * 86400e3), (e) => e.code === 'chain');
    }
  });
}

test('profiles: identity, name rules, SPIFFE, lifetime', (t) => {
  const ca = pki.createCa({ commonName: 'Profile CA' });
  const key = pki.generateKey('p256');
  const csr = pki.createCsr(key, { commonName: 'evil', dnsNames: ['a.example.com'] });
  // The issuer decides the subject.
  const leaf = ca.issue(csr, { subjectFrom: 'identity', names: { allow: [] } }, { identity: 'a.example.com', lifetimeSecs: 600 });
  const d = pki.inspect(leaf);
  assert.equal(d.subject, 'CN=a.example.com');
  assert.equal(d.notAfter - d.notBefore, 600 + 60);
  // Outside the rules: refused, not trimmed.
  const wide = pki.createCsr(key, { commonName: 'x', dnsNames: ['a.example.com', 'evil.com'] });
  assert.throws(() => ca.issue(wide, { names: { allow: [{ type: 'dns', value: '.example.com' }] } }), (e) => e.code === 'policy' && /evil\.com/.test(e.message));
  assert.throws(() => ca.issue(csr, { acceptCsr: true }, { lifetimeSecs: 400 * 86400 }), (e) => e.code === 'policy');
  assert.throws(() => ca.issue(csr, { nmes: {} }), (e) => e.code === 'invalid_parameter' && /unknown field `nmes`/.test(e.message));
  // SPIFFE SVID.
  const svidCsr = pki.createCsr(key, { uris: ['spiffe://example.org/ns/prod/sa/web'] });
  const svid = pki.inspect(ca.issue(svidCsr, { spiffe: { trustDomain: 'example.org', pathPrefix: '/ns/prod' } }));
  assert.deepEqual(svid.names.uri, ['spiffe://example.org/ns/prod/sa/web']);
  assert.deepEqual(svid.keyUsage, ['digitalSignature']);
  assert.throws(() => ca.issue(svidCsr, { spiffe: { trustDomain: 'other.org' } }), (e) => e.code === 'policy');
});

test('errors carry a code and a message', () => {
  assert.throws(() => pki.generateKey('rsa'), (e) => e instanceof Error && e.code === 'invalid_parameter' && /p256 or ed25519/.test(e.message));
  assert.throws(() => pki.inspect('garbage'), (e) => typeof e.code === 'string' && e.message.length > 0);
  assert.throws(() => pki.inspect('-----BEGIN CERTIFICATE REQUEST-----\n' + 'A'.repeat(1 << 20)), (e) => e.code === 'too_large');
  assert.throws(() => pki.createCsr(pki.generateKey('p256'), { commonName: 'a\u0000b' }), (e) => e.code === 'invalid_name');
  assert.throws(() => pki.createCsr(pki.generateKey('p256'), { dnsNames: ['bad..name'] }), (e) => e.code === 'invalid_name');
  assert.throws(() => pki.createCsr(pki.generateKey('p256'), 'nope'), (e) => e.code === 'invalid_parameter');
  assert.throws(() => pki.verifyChain(42), (e) => e.code === 'invalid_parameter');
  assert.throws(() => pki.loadCa('x', 'y'), (e) => e.code === 'bad_pem' || e.code === 'malformed');
});

test('loadCa round trip with an encrypted key', () => {
  const ca = pki.createCa({ commonName: 'Load CA', algorithm: 'ed25519' });
  const again = pki.loadCa(ca.certificatePem(), ca.privateKeyPem('pw'), 'pw');
  const csr = pki.createCsr(pki.generateKey('p256'), { dnsNames: ['l.example.com'] });
  pki.verifyChain([again.issue(csr, { acceptCsr: true }), ca.certificatePem()]);
});

test('WebCrypto: our keys import and sign; its keys import into us', async () => {
  const subtle = webcrypto.subtle;
  const params = { p256: [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }], ed25519: [{ name: 'Ed25519' }, { name: 'Ed25519' }] };
  const data = new TextEncoder().encode('signed by WebCrypto, verified by wasm-pki');
  for (const alg of ALGS) {
    const [imp, sig] = params[alg];
    // Ours into WebCrypto: PKCS#8 and JWK.
    const key = pki.generateKey(alg);
    const priv = await subtle.importKey('pkcs8', pemToDer(key.privateKeyPem()), imp, false, ['sign']);
    const signature = new Uint8Array(await subtle.sign(sig, priv, data));
    assert.ok(pki.verifySignature(key.publicKeyPem(), data, signature), `${alg}: WebCrypto signature`);
    assert.equal(pki.verifySignature(key.publicKeyPem(), new TextEncoder().encode('tampered'), signature), false);
    const pub = await subtle.importKey('jwk', key.publicKeyJwk(), imp, true, ['verify']);
    assert.ok(await subtle.verify(sig, pub, key.sign(data), data), `${alg}: our signature verified by WebCrypto`);
    // WebCrypto's into ours.
    const pair = await subtle.generateKey(imp, true, ['sign', 'verify']);
    const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey));
    const spki = new Uint8Array(await subtle.exportKey('spki', pair.publicKey));
    const mine = pki.importKey(derToPem('PRIVATE KEY', pkcs8));
    assert.equal(mine.publicKeyPem(), derToPem('PUBLIC KEY', spki));
    const csr = pki.createCsr(mine, { commonName: 'webcrypto.example.com' });
    assert.equal(pki.inspect(csr).key.algorithm, alg === 'p256' ? 'P-256' : 'Ed25519');
  }
});

for (const alg of ALGS) {
  test(`${alg}: renewal proof verified by Node's crypto with the certificate's key`, async () => {
    const { verify } = await import('node:crypto');
    const ca = pki.createCa({ commonName: 'Proof CA' });
    const key = pki.generateKey(alg);
    const leaf = ca.issue(pki.createCsr(key, { dnsNames: ['p.example.com'] }), {}, { identity: 'p.example.com', lifetimeSecs: 600 });
    const aud = 'https://ca.example:8443/v1/renew';
    const proof = pki.signRenewalProof(key, leaf, aud);
    const [h, c, s] = proof.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    const claims = JSON.parse(Buffer.from(c, 'base64url'));
    assert.equal(header.alg, alg === 'p256' ? 'ES256' : 'EdDSA');
    assert.equal(header.typ, 'JWT');
    // x5c[0] is the certificate, as standard base64 DER (RFC 7515 4.1.6).
    const cert = new X509Certificate(Buffer.from(header.x5c[0], 'base64'));
    assert.equal(cert.raw.toString('base64'), new X509Certificate(leaf).raw.toString('base64'));
    assert.equal(claims.aud, aud);
    assert.equal(claims.exp - claims.iat, 120);
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 5);
    assert.match(claims.jti, /^[0-9a-f]{32}$/);
    assert.equal(claims.sub, cert.serialNumber.toLowerCase());
    // Node verifies the JWS with the certificate's public key (JOSE: r‖s for ES256).
    const opts = alg === 'p256' ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' } : cert.publicKey;
    const digest = alg === 'p256' ? 'sha256' : null;
    assert.ok(verify(digest, Buffer.from(`${h}.${c}`), opts, Buffer.from(s, 'base64url')));
    // Another key, or a certificate that is not the key's: refused.
    const other = pki.generateKey(alg);
    assert.throws(() => pki.signRenewalProof(other, leaf, aud), (e) => e.code === 'invalid_parameter');
    assert.throws(() => pki.signRenewalProof(key, 'not a certificate', aud), (e) => e.code === 'bad_pem' || e.code === 'malformed');
  });
}

// A CA whose key is a non-extractable WebCrypto key: the root and every leaf are built in wasm
// and signed by WebCrypto; the key never enters the module; openssl and Node check the results.
for (const [alg, params] of [
  ['ES256', { name: 'ECDSA', namedCurve: 'P-256' }],
  ['Ed25519', { name: 'Ed25519' }],
]) {
  test(`${alg} WebCrypto CA key: createCa and loadCa with a CryptoKey, issueAsync signs through WebCrypto`, async (t) => {
    const { dir, write } = tempDir(t);
    const pair = await webcrypto.subtle.generateKey(params, false, ['sign', 'verify']);
    assert.equal(pair.privateKey.extractable, false);
    const ca = await pki.createCa({ commonName: `WebCrypto ${alg} CA`, key: pair });
    assert.equal(ca.holdsKey, false);
    assert.throws(() => ca.privateKeyPem(), (e) => e.code === 'invalid_parameter');
    const leafKey = pki.generateKey('p256');
    const csr = pki.createCsr(leafKey, { commonName: 'wc.example.com', dnsNames: ['wc.example.com'] });
    // The synchronous path has no key to sign with: it refuses, and says why.
    assert.throws(() => ca.issue(csr, {}, { identity: 'wc.example.com' }), (e) => e.code === 'invalid_parameter' && /held outside/.test(e.message));
    const leaf = await ca.issueAsync(csr, {}, { identity: 'wc.example.com' });
    write('ca.pem', ca.certificatePem());
    write('leaf.pem', leaf);
    assert.match(opensslOk(dir, ['verify', '-x509_strict', '-CAfile', 'ca.pem', 'leaf.pem']), /leaf\.pem: OK/);
    const root = new X509Certificate(ca.certificatePem());
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pair.publicKey));
    assert.ok(root.verify(createPublicKey({ key: spki, format: 'der', type: 'spki' })), 'the root is signed by the CryptoKey');
    assert.ok(new X509Certificate(leaf).verify(root.publicKey), 'the leaf is signed by the CryptoKey');
    assert.ok(new X509Certificate(leaf).checkIssued(root));
    // The policy is the module's as ever: a name outside the profile is refused before signing.
    const evil = pki.createCsr(leafKey, { commonName: 'wc.example.com', dnsNames: ['wc.example.com', 'evil.example.net'] });
    await assert.rejects(ca.issueAsync(evil, {}, { identity: 'wc.example.com' }), (e) => e.code === 'policy');
    // loadCa with the certificate and the CryptoKey: the same CA again.
    const again = pki.loadCa(ca.certificatePem(), pair.privateKey);
    const second = await again.issueAsync(csr, {}, { identity: 'wc.example.com' });
    assert.ok(new X509Certificate(second).verify(root.publicKey));
    // A certificate alone signs nothing.
    const bare = pki.loadCaCertificate(ca.certificatePem());
    await assert.rejects(bare.issueAsync(csr, {}, { identity: 'wc.example.com' }), (e) => e.code === 'invalid_parameter');
    // Not a key pair: refused with a code.
    await assert.rejects(pki.createCa({ commonName: 'x', key: { privateKey: 1 } }), (e) => e.code === 'invalid_parameter');
  });
}

// The owner's key as a non-extractable WebCrypto key (what the page keeps in IndexedDB): the CSR
// and the renewal proof are built in wasm and signed by WebCrypto; openssl and Node check them.
for (const [alg, params] of [
  ['ES256', { name: 'ECDSA', namedCurve: 'P-256' }],
  ['Ed25519', { name: 'Ed25519' }],
]) {
  test(`${alg} WebCrypto owner key: createCsr and signRenewalProof sign through WebCrypto`, async (t) => {
    const { verify } = await import('node:crypto');
    const { dir, write } = tempDir(t);
    const pair = await webcrypto.subtle.generateKey(params, false, ['sign', 'verify']);
    await assert.rejects(webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
    const csr = await pki.createCsr(pair, { commonName: 'kept.example.com', dnsNames: ['kept.example.com'] });
    write('kept.csr', csr);
    assert.match(opensslOk(dir, ['req', '-in', 'kept.csr', '-verify', '-noout']), /verify OK/);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pair.publicKey));
    assert.equal(opensslOk(dir, ['req', '-in', 'kept.csr', '-pubkey', '-noout']), derToPem('PUBLIC KEY', spki));
    const ca = pki.createCa({ commonName: 'Kept CA' });
    const leaf = await ca.issueAsync(csr, {}, { identity: 'kept.example.com' });
    const aud = 'https://ca.example:8443/v1/renew';
    const proof = await pki.signRenewalProof(pair, leaf, aud);
    const [h, c, s] = proof.split('.');
    assert.equal(JSON.parse(Buffer.from(h, 'base64url')).alg, alg === 'ES256' ? 'ES256' : 'EdDSA');
    assert.equal(JSON.parse(Buffer.from(c, 'base64url')).aud, aud);
    const cert = new X509Certificate(leaf);
    const opts = alg === 'ES256' ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' } : cert.publicKey;
    assert.ok(verify(alg === 'ES256' ? 'sha256' : null, Buffer.from(`${h}.${c}`), opts, Buffer.from(s, 'base64url')));
    // Another key pair cannot sign for this certificate; bad requests keep their codes.
    const other = await webcrypto.subtle.generateKey(params, false, ['sign', 'verify']);
    await assert.rejects(pki.signRenewalProof(other, leaf, aud), (e) => e.code === 'invalid_parameter');
    await assert.rejects(pki.createCsr(pair, { dnsNames: ['bad..name'] }), (e) => e.code === 'invalid_name');
    await assert.rejects(pki.createCsr({ privateKey: pair.privateKey }, { commonName: 'x' }), (e) => e.code === 'invalid_parameter');
    // The module checks the signature it is handed: a lying signer gets no CSR.
    const unsigned = pki.csrUnsigned(new Uint8Array(spki), { commonName: 'kept.example.com' });
    assert.throws(() => unsigned.assemble(new Uint8Array(64)), (e) => e.code === 'bad_signature');
    unsigned.free();
    const root = pki.rootUnsigned({ commonName: 'Lied-to CA' }, new Uint8Array(spki));
    assert.throws(() => root.assemble(new Uint8Array(64)), (e) => e.code === 'bad_signature');
    root.free();
    const proofInput = pki.renewalProofUnsigned(new Uint8Array(spki), leaf, aud);
    assert.throws(() => proofInput.assemble(new Uint8Array(64)), (e) => e.code === 'bad_signature');
    proofInput.free();
  });
}
