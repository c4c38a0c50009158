// The owner's page in Debian's Chromium, served by the real sandboxed signer (`wasm-pki serve`):
// key and CSR for both algorithms, downloads checked by openssl, the whole flow to a certificate
// with an enrolment token, and proof that no request carries the private key.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSigner } from './signer.mjs';
import { tempDir, opensslOk } from '../node/helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { chromium } = createRequire(join(root, 'pkg', 'package.json'))('playwright-core');

/**
 * Chromium trusting `caFile` (when given) and nothing else of ours: the root goes into an NSS
 * database under a fresh HOME (Chromium on Linux reads ~/.pki/nssdb), so certificate errors are
 * not ignored but there are none. Playwright gives every launch a fresh profile directory too.
 */
async function launch(t, caFile) {
  const home = mkdtempSync(join(tmpdir(), 'wasm-pki-chromium-home-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  if (caFile) {
    const db = `sql:${join(home, '.pki', 'nssdb')}`;
    mkdirSync(join(home, '.pki', 'nssdb'), { recursive: true });
    execFileSync('certutil', ['-d', db, '-N', '--empty-password'], { stdio: 'pipe' });
    execFileSync('certutil', ['-d', db, '-A', '-t', 'C,,', '-n', 'wasm-pki test CA', '-i', caFile], { stdio: 'pipe' });
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    env: { ...process.env, HOME: home },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  return browser;
}

/** Every encoding of the private key an exfiltrating page might use. */
function secretForms(keyPem) {
  const der = Buffer.from(keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const d = createPrivateKey(keyPem).export({ format: 'jwk' }).d;
  const scalar = Buffer.from(d, 'base64url');
  const forms = [keyPem.split('\n')[1], der.toString('base64'), der.toString('base64url'), der.toString('hex'), d, scalar.toString('base64'), scalar.toString('hex')];
  return forms.flatMap((f) => [f, encodeURIComponent(f), f.toUpperCase()]).filter((f) => f.length >= 16);
}

async function fillAndGenerate(page, alg, cn) {
  await page.selectOption('#algorithm', alg);
  await page.fill('#commonName', cn);
  await page.fill('#dnsNames', cn);
  await page.click('#generate');
  await page.waitForFunction(() => document.querySelector('#csr-pem').value.includes('BEGIN CERTIFICATE REQUEST'));
}

async function downloadText(page, button) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return { name: dl.suggestedFilename(), text: readFileSync(await dl.path(), 'utf8') };
}

test('owner page: keys born in the page, CSR verified, certificate obtained, key never sent', async (t) => {
  const signer = await startSigner();
  t.after(() => signer.close());
  const { dir, write } = tempDir(t);
  assert.ok(signer.url.startsWith('https://'), signer.url);
  // Without the CA in its store, the browser refuses the signer: the trust below is real.
  const stranger = await launch(t);
  await assert.rejects(stranger.newPage().then((p) => p.goto(signer.url)), /ERR_CERT_AUTHORITY_INVALID/);
  const browser = await launch(t, signer.caFile);
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 900, height: 1400 } });
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), headers: JSON.stringify(r.headers()), body: r.postData() || '' }));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(signer.url);
  await page.waitForSelector('#submit:not([hidden])');

  const keys = [];
  for (const alg of ['p256', 'ed25519']) {
    const cn = `${alg}.workload.example.com`;
    await fillAndGenerate(page, alg, cn);
    const details = await page.textContent('#csr-details');
    assert.match(details, new RegExp(alg === 'p256' ? 'P-256' : 'Ed25519'));
    const csr = await downloadText(page, '#download-csr');
    assert.equal(csr.name, `${cn}.csr`);
    write('page.csr', csr.text);
    assert.match(opensslOk(dir, ['req', '-in', 'page.csr', '-verify', '-noout']), /verify OK/);
    // Plain key download, then an encrypted one.
    const key = await downloadText(page, '#download-key');
    assert.match(key.text, /^-----BEGIN PRIVATE KEY-----/);
    keys.push(key.text);
    write('page.key', key.text);
    const pub = opensslOk(dir, ['pkey', '-in', 'page.key', '-pubout']);
    assert.equal(pub, opensslOk(dir, ['req', '-in', 'page.csr', '-pubkey', '-noout']), 'the key belongs to the CSR');
    await page.fill('#passphrase', 'page passphrase');
    const enc = await downloadText(page, '#download-key');
    assert.match(enc.text, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    write('page-enc.key', enc.text);
    assert.equal(opensslOk(dir, ['pkey', '-in', 'page-enc.key', '-passin', 'pass:page passphrase', '-pubout']), pub);
    await page.fill('#passphrase', '');
    // Submit with the token; the issued certificate is shown and downloadable.
    await page.fill('#token', signer.token(cn));
    await page.click('#send');
    await page.waitForSelector('#issued:not([hidden])');
    const cert = await downloadText(page, '#download-cert');
    const ca = await downloadText(page, '#download-ca');
    const chain = await downloadText(page, '#download-chain');
    write('leaf.pem', cert.text);
    write('ca.pem', ca.text);
    write('chain.pem', chain.text);
    assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'leaf.pem']), /leaf\.pem: OK/);
    assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', '-untrusted', 'chain.pem', 'chain.pem']), /chain\.pem: OK/);
    assert.equal(opensslOk(dir, ['x509', '-in', 'leaf.pem', '-noout', '-pubkey']), pub, 'the certificate carries the page-born key');
    assert.match(await page.textContent('#cert-details'), new RegExp(cn.replace(/\./g, '\\.')));
  }
  mkdirSync(join(root, 'tests', 'out'), { recursive: true });
  await page.screenshot({ path: join(root, 'tests', 'out', 'page.png'), fullPage: true });

  // A used token is refused with a clear message.
  await page.click('#send');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /used up/);
  // Bad input gets a clear message.
  await page.fill('#dnsNames', 'bad..name');
  await page.click('#generate');
  await page.waitForFunction(() => /invalid_name/.test(document.querySelector('#error').textContent));

  await page.fill('#dnsNames', 'ed25519.workload.example.com');
  await page.click('#generate');
  await page.waitForFunction(() => document.querySelector('#error').hidden);

  assert.deepEqual(errors, []);
  const signs = requests.filter((r) => r.url.endsWith('/v1/sign'));
  assert.equal(signs.length, 2, 'two submissions; the used token was refused by its lookup, before sending');
  assert.ok(requests.some((r) => r.url.endsWith('/v1/token')), 'the token was looked up');
  assert.ok(signs[0].body.includes('BEGIN CERTIFICATE REQUEST'), 'the recorder sees request bodies');
  for (const keyPem of keys) {
    for (const form of secretForms(keyPem)) {
      for (const r of requests) {
        for (const part of [r.url, r.headers, r.body]) {
          assert.ok(!part.includes(form), `private key material (${form.slice(0, 12)}…) found in a request to ${r.url}`);
        }
      }
    }
  }
  // Nothing but the signer itself was contacted.
  for (const r of requests) assert.ok(r.url.startsWith(signer.url) || r.url.startsWith('blob:'), r.url);
});

test('owner page renews and re-keys from the key and certificate files; only a proof is sent', async (t) => {
  const signer = await startSigner();
  t.after(() => signer.close());
  const { dir, write } = tempDir(t);
  const browser = await launch(t, signer.caFile);
  // First visit: a key and a certificate, downloaded.
  const first = await browser.newPage({ acceptDownloads: true });
  await first.goto(signer.url);
  await first.waitForSelector('#submit:not([hidden])');
  const cn = 'renew.workload.example.com';
  await fillAndGenerate(first, 'p256', cn);
  await first.fill('#passphrase', 'file pass');
  const key = await downloadText(first, '#download-key');
  await first.fill('#token', signer.token(cn));
  await first.click('#send');
  await first.waitForSelector('#issued:not([hidden])');
  const cert = await downloadText(first, '#download-chain');
  await first.close();
  const keyFile = write('held.key', key.text);
  const certFile = write('held.crt', cert.text);
  write('held-plain.key', opensslOk(dir, ['pkey', '-in', 'held.key', '-passin', 'pass:file pass']));
  const heldPlain = readFileSync(join(dir, 'held-plain.key'), 'utf8');
  const heldPub = opensslOk(dir, ['pkey', '-in', 'held-plain.key', '-pubout']);

  // Coming back later: a fresh page, the files loaded into it.
  const page = await browser.newPage({ acceptDownloads: true });
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), headers: r.headers(), body: r.postData() || '' }));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(signer.url);
  await page.waitForSelector('#renew:not([hidden])');
  await page.setInputFiles('#renew-key', keyFile);
  await page.fill('#renew-passphrase', 'file pass');
  await page.setInputFiles('#renew-cert', certFile);
  await page.click('#renew-send');
  await page.waitForSelector('#issued:not([hidden])');
  assert.match(await page.textContent('#status'), /same key/);
  const renewed = await downloadText(page, '#download-cert');
  const ca = await downloadText(page, '#download-ca');
  write('renewed.pem', renewed.text);
  write('ca.pem', ca.text);
  assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'renewed.pem']), /renewed\.pem: OK/);
  assert.equal(opensslOk(dir, ['x509', '-in', 'renewed.pem', '-noout', '-pubkey']), heldPub, 'same key');
  const serial = (f) => opensslOk(dir, ['x509', '-in', f, '-noout', '-serial']);
  write('held-leaf.pem', cert.text);
  assert.notEqual(serial('renewed.pem'), serial('held-leaf.pem'));
  assert.ok(await page.isHidden('#download-new-key'));

  // Re-key from the renewed certificate: a new key made here, its CSR and a proof sent.
  await page.setInputFiles('#renew-cert', join(dir, 'renewed.pem'));
  await page.check('#renew-rekey');
  await page.click('#renew-send');
  await page.waitForFunction(() => /new key/.test(document.querySelector('#status').textContent));
  const rekeyed = await downloadText(page, '#download-cert');
  await page.fill('#renew-passphrase', '');
  const newKey = await downloadText(page, '#download-new-key');
  write('rekeyed.pem', rekeyed.text);
  write('new.key', newKey.text);
  assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'rekeyed.pem']), /rekeyed\.pem: OK/);
  const newPub = opensslOk(dir, ['pkey', '-in', 'new.key', '-pubout']);
  assert.equal(opensslOk(dir, ['x509', '-in', 'rekeyed.pem', '-noout', '-pubkey']), newPub);
  assert.notEqual(newPub, heldPub);
  assert.match(opensslOk(dir, ['x509', '-in', 'rekeyed.pem', '-noout', '-ext', 'subjectAltName']), /DNS:renew\.workload\.example\.com/);

  // A wrong passphrase for the key file is a clear error, and nothing is sent.
  await page.uncheck('#renew-rekey');
  await page.fill('#renew-passphrase', 'wrong');
  await page.setInputFiles('#renew-cert', certFile);
  await page.click('#renew-send');
  await page.waitForFunction(() => /passphrase/.test(document.querySelector('#error').textContent));

  assert.deepEqual(errors, []);
  const renews = requests.filter((r) => r.url.endsWith('/v1/renew'));
  assert.equal(renews.length, 2);
  for (const r of renews) {
    const proof = r.headers.authorization.replace(/^Bearer /, '');
    const [h, c] = proof.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    const claims = JSON.parse(Buffer.from(c, 'base64url'));
    assert.equal(header.alg, 'ES256');
    assert.equal(claims.aud, `${new URL(signer.url).origin}/v1/renew`);
  }
  assert.equal(renews[0].body, '', 'a renewal sends no body');
  assert.match(renews[1].body, /BEGIN CERTIFICATE REQUEST/);
  // Neither the held key nor the new one crossed any request, in any encoding.
  for (const keyPem of [heldPlain, newKey.text]) {
    for (const form of secretForms(keyPem)) {
      for (const r of requests) {
        for (const part of [r.url, JSON.stringify(r.headers), r.body]) {
          assert.ok(!part.includes(form), `private key material (${form.slice(0, 12)}…) found in a request to ${r.url}`);
        }
      }
    }
  }
  for (const r of requests) assert.ok(r.url.startsWith(signer.url) || r.url.startsWith('blob:'), r.url);
});

/** The kept keys as the page stored them: id, label, certificate, extractable, SPKI PEM. */
async function keptKeys(page) {
  return page.evaluate(async () => {
    const keep = await import('./keep.js');
    const out = [];
    for (const r of await keep.all()) {
      let exported = 'refused';
      try {
        await crypto.subtle.exportKey('pkcs8', r.keyPair.privateKey);
        exported = 'exported';
      } catch (e) {
        exported = e.name;
      }
      const spki = new Uint8Array(await crypto.subtle.exportKey('spki', r.keyPair.publicKey));
      const b64 = btoa(String.fromCharCode(...spki)).replace(/.{1,64}/g, '$&\n');
      out.push({ id: r.id, label: r.label, algorithm: r.algorithm, certificate: r.certificate, extractable: r.keyPair.privateKey.extractable, usages: r.keyPair.privateKey.usages, exported, spki: `-----BEGIN PUBLIC KEY-----\n${b64}-----END PUBLIC KEY-----\n` });
    }
    return out;
  });
}

test('owner page keeps a non-extractable key in IndexedDB, and renews and re-keys with it on a later visit', async (t) => {
  const signer = await startSigner();
  t.after(() => signer.close());
  const { dir, write } = tempDir(t);
  const browser = await launch(t, signer.caFile);
  // One browser profile for both visits: what IndexedDB keeps survives closing the page.
  const context = await browser.newContext({ acceptDownloads: true });
  const requests = [];
  context.on('request', (r) => requests.push({ url: r.url(), headers: r.headers(), body: r.postData() || '' }));
  const errors = [];
  const first = await context.newPage();
  first.on('pageerror', (e) => errors.push(e));
  await first.goto(signer.url);
  await first.waitForSelector('#submit:not([hidden])');
  write('ca.pem', readFileSync(signer.caFile, 'utf8'));
  for (const alg of ['ed25519', 'p256']) {
    const cn = `kept-${alg}.workload.example.com`;
    await first.check('#keep-browser');
    assert.ok(await first.isHidden('#passphrase'), 'no passphrase for a key that is never written out');
    await fillAndGenerate(first, alg, cn);
    // The CSR box still shows the previous CSR until the new one is made.
    await first.waitForFunction(() => /key kept in this browser/.test(document.querySelector('#status').textContent));
    assert.ok(await first.isHidden('#download-key'), 'a kept key cannot be downloaded');
    const csr = await downloadText(first, '#download-csr');
    write('kept.csr', csr.text);
    assert.match(opensslOk(dir, ['req', '-in', 'kept.csr', '-verify', '-noout']), /verify OK/);
    await first.fill('#token', signer.token(cn));
    await first.click('#send');
    await first.waitForSelector('#issued:not([hidden])');
    const cert = await downloadText(first, '#download-cert');
    write('kept.pem', cert.text);
    assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'kept.pem']), /kept\.pem: OK/);
    const rec = (await keptKeys(first)).find((r) => r.label === cn);
    assert.ok(rec, `${cn} is kept`);
    assert.equal(rec.extractable, false);
    assert.deepEqual(rec.usages, ['sign']);
    assert.equal(rec.exported, 'InvalidAccessError', 'WebCrypto refuses to export the kept key');
    assert.equal(rec.certificate, cert.text);
    assert.equal(opensslOk(dir, ['x509', '-in', 'kept.pem', '-noout', '-pubkey']), rec.spki, 'the certificate carries the kept key');
  }
  await first.close();

  // A later visit: the kept P-256 key is offered; renew with it, then re-key it.
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(signer.url);
  await page.waitForSelector('#renew:not([hidden])');
  const before = (await keptKeys(page)).find((r) => r.label === 'kept-p256.workload.example.com');
  await page.waitForSelector(`#renew-source option[value="${before.id}"]`, { state: 'attached' });
  await page.selectOption('#renew-source', String(before.id));
  assert.ok(await page.isHidden('#renew-key'), 'no key file is asked for');
  await page.click('#renew-send');
  await page.waitForFunction(() => /same key/.test(document.querySelector('#status').textContent));
  const renewed = await downloadText(page, '#download-cert');
  write('renewed.pem', renewed.text);
  assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'renewed.pem']), /renewed\.pem: OK/);
  assert.equal(opensslOk(dir, ['x509', '-in', 'renewed.pem', '-noout', '-pubkey']), before.spki);
  const afterRenew = (await keptKeys(page)).find((r) => r.id === before.id);
  assert.equal(afterRenew.certificate, renewed.text, 'the kept record follows the certificate');

  await page.check('#renew-rekey');
  await page.click('#renew-send');
  await page.waitForFunction(() => /new key, kept/.test(document.querySelector('#status').textContent));
  assert.ok(await page.isHidden('#download-new-key'), 'a kept key is not offered for download');
  const rekeyed = await downloadText(page, '#download-cert');
  write('rekeyed.pem', rekeyed.text);
  assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'rekeyed.pem']), /rekeyed\.pem: OK/);
  assert.match(opensslOk(dir, ['x509', '-in', 'rekeyed.pem', '-noout', '-ext', 'subjectAltName']), /DNS:kept-p256\.workload\.example\.com/);
  const after = (await keptKeys(page)).find((r) => r.id === before.id);
  assert.notEqual(after.spki, before.spki, 'a new key replaced the old one');
  assert.equal(opensslOk(dir, ['x509', '-in', 'rekeyed.pem', '-noout', '-pubkey']), after.spki);
  assert.equal(after.extractable, false);
  assert.equal(after.exported, 'InvalidAccessError');

  // Forgetting the key removes it from the browser and from the list.
  await page.uncheck('#renew-rekey');
  await page.click('#forget-key');
  await page.waitForFunction(() => /Forgot the key/.test(document.querySelector('#status').textContent));
  assert.ok(!(await keptKeys(page)).some((r) => r.id === before.id));
  assert.equal(await page.locator(`#renew-source option[value="${before.id}"]`).count(), 0);
  assert.ok(await page.isVisible('#renew-key'), 'back to key files');

  // The npm package in this browser: a CA whose key is a non-extractable CryptoKey issues through
  // WebCrypto (issueAsync); openssl checks the root and the leaf.
  const made = await page.evaluate(async () => {
    const pki = await import('./pkg/web.js');
    const out = {};
    for (const [alg, params] of [['p256', { name: 'ECDSA', namedCurve: 'P-256' }], ['ed25519', { name: 'Ed25519' }]]) {
      const pair = await crypto.subtle.generateKey(params, false, ['sign', 'verify']);
      const ca = await pki.createCa({ commonName: `Browser ${alg} CA`, key: pair });
      const leafKey = pki.generateKey('p256');
      const csr = pki.createCsr(leafKey, { commonName: 'b.example.com', dnsNames: ['b.example.com'] });
      out[alg] = { holdsKey: ca.holdsKey, root: ca.certificatePem(), leaf: await ca.issueAsync(csr, {}, { identity: 'b.example.com' }) };
    }
    return out;
  });
  for (const [alg, m] of Object.entries(made)) {
    assert.equal(m.holdsKey, false, alg);
    write('browser-ca.pem', m.root);
    write('browser-leaf.pem', m.leaf);
    assert.match(opensslOk(dir, ['verify', '-x509_strict', '-CAfile', 'browser-ca.pem', 'browser-leaf.pem']), /browser-leaf\.pem: OK/, alg);
  }

  assert.deepEqual(errors, []);
  const renews = requests.filter((r) => r.url.endsWith('/v1/renew'));
  assert.equal(renews.length, 2);
  for (const r of renews) {
    const [h, c] = r.headers.authorization.replace(/^Bearer /, '').split('.');
    assert.equal(JSON.parse(Buffer.from(h, 'base64url')).alg, 'ES256');
    assert.equal(JSON.parse(Buffer.from(c, 'base64url')).aud, `${new URL(signer.url).origin}/v1/renew`);
  }
  assert.equal(renews[0].body, '');
  assert.match(renews[1].body, /BEGIN CERTIFICATE REQUEST/);
  for (const r of requests) {
    assert.ok(r.url.startsWith(signer.url) || r.url.startsWith('blob:'), r.url);
    assert.ok(!/PRIVATE KEY|"d":/.test(r.body), `no private key in a request to ${r.url}`);
  }
});

/** POST `body` as JSON to the signer with a bearer token, trusting only its CA. */
function postJson(signer, path, token, body) {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, signer.url), {
      method: 'POST', ca: readFileSync(signer.caFile),
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('owner page reads the token first: names filled in, key types and lifetime shown, a refused request never sent', async (t) => {
  const signer = await startSigner({
    policy: `
[profiles.apps]
usage = "server"
keyTypes = ["p256"]
defaultLifetimeSecs = 3600
maxLifetimeSecs = 86400
names = { allow = [{ type = "dns", value = ".apps.example.com" }] }
`,
  });
  t.after(() => signer.close());
  const { dir, write } = tempDir(t);
  const browser = await launch(t, signer.caFile);
  const page = await browser.newPage({ acceptDownloads: true });
  const requests = [];
  page.on('request', (r) => requests.push({ url: r.url(), method: r.method() }));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(signer.url);
  await page.waitForSelector('#token-section:not([hidden])');

  // A spent token and an expired one are reported on entry, before any key is made.
  const spent = signer.token('spent.apps.example.com', '--profile', 'apps');
  opensslOk(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'spent.key',
    '-subj', '/CN=spent.apps.example.com', '-out', 'spent.csr']);
  const spentAnswer = await postJson(signer, '/v1/sign', spent, { csr: readFileSync(join(dir, 'spent.csr'), 'utf8') });
  assert.equal(spentAnswer.status, 200, spentAnswer.body);
  await page.fill('#token', spent);
  await page.click('#token-check');
  await page.waitForFunction(() => /token_used/.test(document.querySelector('#error').textContent));
  assert.ok(await page.isHidden('#token-info'));
  const expired = signer.token('old.apps.example.com', '--profile', 'apps', '--ttl', '1s');
  await new Promise((r) => setTimeout(r, 2100));
  await page.fill('#token', expired);
  await page.click('#token-check');
  await page.waitForFunction(() => /token_expired/.test(document.querySelector('#error').textContent));
  assert.equal(await page.inputValue('#csr-pem'), '', 'no key or CSR was made');

  // A good token: identity filled in, Ed25519 not offered, the lifetime shown.
  const tok = signer.token('web.apps.example.com', '--profile', 'apps');
  await page.fill('#token', tok);
  await page.click('#token-check');
  await page.waitForFunction(() => /1 h/.test(document.querySelector('#token-info').textContent));
  assert.equal(await page.inputValue('#commonName'), 'web.apps.example.com');
  assert.equal(await page.inputValue('#dnsNames'), 'web.apps.example.com');
  assert.ok(await page.isDisabled('#algorithm option[value="ed25519"]'), 'the profile allows P-256 only');
  assert.match(await page.textContent('#token-info'), /profile apps/);

  // A name outside the profile: refused with the profile's reason, no key made, nothing sent.
  await page.fill('#dnsNames', 'web.apps.example.com, db.example.com');
  await page.click('#generate');
  await page.waitForFunction(() => /db\.example\.com is not allowed/.test(document.querySelector('#error').textContent));
  assert.match(await page.textContent('#error'), /\(policy\)/);
  assert.equal(await page.inputValue('#csr-pem'), '', 'no key or CSR was made for a refused request');

  // The allowed request: made, checked again, sent, signed.
  await page.fill('#dnsNames', 'web.apps.example.com, api.apps.example.com');
  await page.click('#generate');
  await page.waitForFunction(() => document.querySelector('#csr-pem').value.includes('BEGIN CERTIFICATE REQUEST'));
  await page.click('#send');
  await page.waitForSelector('#issued:not([hidden])');
  const cert = await downloadText(page, '#download-cert');
  write('apps.pem', cert.text);
  write('ca.pem', readFileSync(signer.caFile, 'utf8'));
  assert.match(opensslOk(dir, ['verify', '-CAfile', 'ca.pem', 'apps.pem']), /apps\.pem: OK/);
  assert.match(opensslOk(dir, ['x509', '-in', 'apps.pem', '-noout', '-ext', 'subjectAltName']), /DNS:api\.apps\.example\.com/);

  assert.deepEqual(errors, []);
  const signs = requests.filter((r) => r.url.endsWith('/v1/sign'));
  assert.equal(signs.length, 1, 'only the allowed request was sent');
  assert.ok(requests.filter((r) => r.url.endsWith('/v1/token')).length >= 3);
});

test('owner page on a phone-sized screen is usable by keyboard', async (t) => {
  const signer = await startSigner();
  t.after(() => signer.close());
  const browser = await launch(t, signer.caFile);
  const page = await browser.newPage({ viewport: { width: 375, height: 800 } });
  await page.goto(signer.url);
  await page.focus('#algorithm');
  await page.keyboard.press('ArrowDown'); // ed25519
  await page.keyboard.press('Tab');
  await page.keyboard.type('phone.example.com');
  await page.focus('#generate');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#csr-pem').value.includes('BEGIN CERTIFICATE REQUEST'));
  assert.match(await page.textContent('#csr-details'), /Ed25519/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page overflows horizontally by ${overflow}px`);
});
