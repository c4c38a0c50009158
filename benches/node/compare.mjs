// Node benchmark (not a test): wasm-pki against the JS libraries people pick today, in one run.
// Usage: node benches/node/compare.mjs [--rounds 5] [--ms 400]
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pki from '../../pkg/node.mjs';
import { nodeVerifier } from '../../pkg/node-verify.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const req = createRequire(join(root, 'pkg', 'package.json'));
req('reflect-metadata'); // @peculiar/x509's DI container needs it
const x509 = req('@peculiar/x509');
const pkijs = req('pkijs');
const asn1js = req('asn1js');
const forge = req('node-forge');
const { KJUR, KEYUTIL } = req('jsrsasign');

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : def; };
const ROUNDS = opt('rounds', 5);
const MS = opt('ms', 400);
const subtle = webcrypto.subtle;
x509.cryptoProvider.set(webcrypto);
pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto }));

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const ED = { name: 'Ed25519' };
const CN = 'bench.example.com';

/** Median µs per call of fn (sync or async) over ROUNDS rounds of about MS milliseconds. */
async function measure(fn) {
  for (let i = 0; i < 3; i++) await fn();
  const results = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < MS * 1e6) {
      await fn();
      n++;
      elapsed = Number(process.hrtime.bigint() - start);
    }
    results.push(elapsed / n / 1e3);
  }
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)];
}

// ---- wasm-pki
function wasmOps(alg) {
  const ca = pki.createCa({ commonName: 'Bench CA', algorithm: alg });
  const key = pki.generateKey(alg);
  const csr = pki.createCsr(key, { commonName: CN, dnsNames: [CN] });
  return {
    keygen: () => pki.generateKey(alg).free(),
    csrCreate: () => pki.createCsr(key, { commonName: CN, dnsNames: [CN] }),
    // As issueAsync verifies: P-256 by node:crypto after the module's checks, Ed25519 in wasm.
    csrVerify: alg === 'p256'
      ? () => {
        const p = ca.beginIssue(csr, { acceptCsr: true });
        const valid = nodeVerifier(p);
        p.free();
        if (!valid) throw new Error('bad');
      }
      : () => pki.inspect(csr),
    caSign: () => ca.issueAsync(csr, { acceptCsr: true }),
  };
}

// ---- the module with its CA key a non-extractable WebCrypto key (issue 26): built in wasm,
// signed by WebCrypto (node:crypto's native ECDSA / Ed25519)
async function wasmWebCryptoKeyOps(alg) {
  const pair = await subtle.generateKey(alg === 'p256' ? EC : ED, false, ['sign', 'verify']);
  const ca = await pki.createCa({ commonName: 'Bench CA', key: pair });
  const csr = pki.createCsr(pki.generateKey(alg), { commonName: CN, dnsNames: [CN] });
  return { caSign: () => ca.issueAsync(csr, { acceptCsr: true }) };
}

// ---- the same module verifying in wasm (no platform crypto: the synchronous path)
function wasmSyncOps(alg) {
  const ca = pki.createCa({ commonName: 'Bench CA', algorithm: alg });
  const csr = pki.createCsr(pki.generateKey(alg), { commonName: CN, dnsNames: [CN] });
  return {
    csrVerify: () => pki.inspect(csr),
    caSign: () => ca.issue(csr, { acceptCsr: true }),
  };
}

// ---- @peculiar/x509 on WebCrypto
async function peculiarOps(alg) {
  const a = alg === 'p256' ? EC : ED;
  const usages = ['sign', 'verify'];
  const caKeys = await subtle.generateKey(a, true, usages);
  const keys = await subtle.generateKey(a, true, usages);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=Bench CA', notBefore: new Date(), notAfter: new Date(Date.now() + 864e5), keys: caKeys, signingAlgorithm: a,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const makeCsr = () => x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${CN}`, keys, signingAlgorithm: a, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: CN }])],
  });
  const csrPem = (await makeCsr()).toString('pem');
  return {
    keygen: () => subtle.generateKey(a, true, usages),
    csrCreate: makeCsr,
    csrVerify: async () => { const c = new x509.Pkcs10CertificateRequest(csrPem); if (!(await c.verify())) throw new Error('bad'); },
    caSign: async () => {
      const c = new x509.Pkcs10CertificateRequest(csrPem);
      if (!(await c.verify())) throw new Error('bad');
      const serial = Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex');
      return x509.X509CertificateGenerator.create({
        serialNumber: `7${serial.slice(1)}`, subject: `CN=${CN}`, issuer: caCert.subject, notBefore: new Date(), notAfter: new Date(Date.now() + 864e5),
        signingKey: caKeys.privateKey, publicKey: c.publicKey, signingAlgorithm: a,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']),
          c.getExtension(x509.SubjectAlternativeNameExtension) ?? new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: CN }]),
          await x509.SubjectKeyIdentifierExtension.create(c.publicKey),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
    },
  };
}

// ---- pkijs on WebCrypto (no Ed25519)
async function pkijsOps() {
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const caKeys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const cnAttr = () => new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: CN }) });
  const makeCsr = async () => {
    const csr = new pkijs.CertificationRequest();
    csr.subject.typesAndValues.push(cnAttr());
    await csr.subjectPublicKeyInfo.importKey(keys.publicKey);
    const san = new pkijs.GeneralNames({ names: [new pkijs.GeneralName({ type: 2, value: CN })] });
    csr.attributes = [new pkijs.Attribute({
      type: '1.2.840.113549.1.9.14',
      values: [new pkijs.Extensions({ extensions: [new pkijs.Extension({ extnID: '2.5.29.17', critical: false, extnValue: san.toSchema().toBER(false) })] }).toSchema()],
    })];
    await csr.sign(keys.privateKey, 'SHA-256');
    return csr.toSchema().toBER(false);
  };
  const csrDer = await makeCsr();
  const caName = new pkijs.RelativeDistinguishedNames({ typesAndValues: [new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: 'Bench CA' }) })] });
  return {
    keygen: () => subtle.generateKey(EC, true, ['sign', 'verify']),
    csrCreate: makeCsr,
    csrVerify: async () => { const c = pkijs.CertificationRequest.fromBER(csrDer); if (!(await c.verify())) throw new Error('bad'); },
    caSign: async () => {
      const c = pkijs.CertificationRequest.fromBER(csrDer);
      if (!(await c.verify())) throw new Error('bad');
      const cert = new pkijs.Certificate();
      cert.version = 2;
      cert.serialNumber = new asn1js.Integer({ valueHex: webcrypto.getRandomValues(new Uint8Array(16)).map((b, i) => (i ? b : b & 0x7f)).buffer });
      cert.issuer = caName;
      cert.subject.typesAndValues.push(cnAttr());
      cert.notBefore.value = new Date();
      cert.notAfter.value = new Date(Date.now() + 864e5);
      cert.subjectPublicKeyInfo = c.subjectPublicKeyInfo;
      const bc = new pkijs.BasicConstraints({ cA: false });
      cert.extensions = [new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: bc.toSchema().toBER(false), parsedValue: bc })];
      await cert.sign(caKeys.privateKey, 'SHA-256');
      return cert.toSchema().toBER(false);
    },
  };
}

// ---- jsrsasign (pure JS, P-256 only here)
function jsrsasignOps() {
  const kp = KEYUTIL.generateKeypair('EC', 'secp256r1');
  const ca = KEYUTIL.generateKeypair('EC', 'secp256r1');
  const makeCsr = () => KJUR.asn1.csr.CSRUtil.newCSRPEM({
    subject: { str: `/CN=${CN}` }, sbjpubkey: kp.pubKeyObj, sigalg: 'SHA256withECDSA', sbjprvkey: kp.prvKeyObj,
    extreq: [{ extname: 'subjectAltName', array: [{ dns: CN }] }],
  });
  const csrPem = makeCsr();
  return {
    keygen: () => KEYUTIL.generateKeypair('EC', 'secp256r1'),
    csrCreate: makeCsr,
    csrVerify: () => { if (!KJUR.asn1.csr.CSRUtil.verifySignature(csrPem)) throw new Error('bad'); },
    caSign: () => {
      if (!KJUR.asn1.csr.CSRUtil.verifySignature(csrPem)) throw new Error('bad');
      const p = KJUR.asn1.csr.CSRUtil.getParam(csrPem);
      return new KJUR.asn1.x509.Certificate({
        version: 3, serial: { hex: '7f' + Math.random().toString(16).slice(2).padEnd(30, '0') }, issuer: { str: '/CN=Bench CA' },
        notbefore: '260101000000Z', notafter: '270101000000Z', subject: { str: `/CN=${CN}` }, sbjpubkey: p.sbjpubkey,
        ext: [{ extname: 'basicConstraints', cA: false, critical: true }, { extname: 'subjectAltName', array: [{ dns: CN }] }],
        sigalg: 'SHA256withECDSA', cakey: ca.prvKeyObj,
      }).getPEM();
    },
  };
}

// ---- node-forge: no ECDSA; Ed25519 keygen only
function forgeOps() {
  return { keygen: () => forge.pki.ed25519.generateKeyPair() };
}

const OPS = [['keygen', 'keygen'], ['csrCreate', 'CSR create'], ['csrVerify', 'CSR parse+verify'], ['caSign', 'CA signs a CSR']];

async function main() {
  const rows = [];
  for (const alg of ['p256', 'ed25519']) {
    const libs = [['wasm-pki', wasmOps(alg)], ['wasm-pki (WebCrypto CA key)', await wasmWebCryptoKeyOps(alg)], ['wasm-pki (wasm verifies)', wasmSyncOps(alg)], ['@peculiar/x509', await peculiarOps(alg)]];
    if (alg === 'p256') libs.push(['pkijs', await pkijsOps()], ['jsrsasign', jsrsasignOps()]);
    else libs.push(['node-forge', forgeOps()]);
    for (const [key, label] of OPS) {
      const times = {};
      for (const [name, ops] of libs) if (ops[key]) times[name] = await measure(ops[key]);
      rows.push({ alg, label, times });
    }
  }
  const names = ['wasm-pki', 'wasm-pki (WebCrypto CA key)', 'wasm-pki (wasm verifies)', '@peculiar/x509', 'pkijs', 'jsrsasign', 'node-forge'];
  console.log(`Node ${process.version}, ${ROUNDS} rounds of ${MS} ms, median µs per operation (× = peer time / wasm-pki time)\n`);
  console.log(`| algorithm | operation | ${names.join(' | ')} |`);
  console.log(`|---|---|${names.map(() => '---').join('|')}|`);
  for (const { alg, label, times } of rows) {
    const base = times['wasm-pki'];
    const cells = names.map((n) => {
      const t = times[n];
      if (t === undefined) return 'n/a';
      return n === 'wasm-pki' ? `${t.toFixed(0)}` : `${t.toFixed(0)} (${(t / base).toFixed(1)}×)`;
    });
    console.log(`| ${alg === 'p256' ? 'P-256' : 'Ed25519'} | ${label} | ${cells.join(' | ')} |`);
  }
  // For scripts/bench.sh: CSR creation and CA signing against the fastest peer.
  console.log('');
  for (const { alg, label, times } of rows) {
    if (!['CSR create', 'CSR parse+verify', 'CA signs a CSR'].includes(label)) continue;
    const peers = Object.entries(times).filter(([n]) => !n.startsWith('wasm-pki'));
    if (peers.length === 0) continue;
    const [peer, t] = peers.reduce((a, b) => (b[1] < a[1] ? b : a));
    const ours = times['wasm-pki'];
    console.log(['SUMMARY', `${alg} ${label} in Node (vs fastest JS library, ${peer})`, `${ours.toFixed(0)} µs`,
      `${t.toFixed(0)} µs`, `${(t / ours).toFixed(1)}x faster`, label === 'CSR parse+verify' ? '>= 3x faster' : '>= 5x faster'].join('\t'));
    const keyed = times['wasm-pki (WebCrypto CA key)'];
    if (label === 'CA signs a CSR' && keyed !== undefined && times.pkijs !== undefined) {
      console.log(['SUMMARY', `${alg} CA signs a CSR in Node, WebCrypto CA key (vs pkijs)`, `${keyed.toFixed(0)} µs`,
        `${times.pkijs.toFixed(0)} µs`, `${(times.pkijs / keyed).toFixed(1)}x faster`, '>= 5x faster (issue 26)'].join('\t'));
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
