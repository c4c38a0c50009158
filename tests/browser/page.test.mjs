// The owner's page in Debian's Chromium, served by the real sandboxed signer (`wasm-pki serve`):
// key and CSR for both algorithms, downloads checked by openssl, the whole flow to a certificate
// with an enrolment token, and proof that no request carries the private key.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
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
  assert.equal(signs.length, 3, 'two submissions and one refused resubmission were seen');
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
