// checkRequest: the CA's policy decision without a CA. It must agree with `ca.issue` on every row
// of the policy-bypass table (tests/policy_bypass.rs writes the rows to tests/out; the test
// command runs the Rust tests first) and on requests as the page builds them.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pki from '../../pkg/node.mjs';

const rowsFile = join(dirname(fileURLToPath(import.meta.url)), '..', 'out', 'policy_bypass.json');

/** `ca.issue`'s outcome: 'issued', or the code and message it threw. */
function issued(ca, csr, profile, options) {
  try {
    ca.issue(csr, profile, options);
    return { code: 'issued' };
  } catch (e) {
    return { code: e.code, message: e.message };
  }
}

/** `checkRequest`'s outcome in the same shape (a throw, or the verdict's error). */
function checked(request, profile, options) {
  try {
    const v = pki.checkRequest(request, profile, options);
    return v.allowed ? { code: 'issued', verdict: v } : { code: v.error.code, message: v.error.message, verdict: v };
  } catch (e) {
    return { code: e.code, message: e.message };
  }
}

test('checkRequest agrees with ca.issue on every row of the policy-bypass table', () => {
  assert.ok(existsSync(rowsFile), `${rowsFile} is missing: run cargo test --test policy_bypass first`);
  const rows = JSON.parse(readFileSync(rowsFile, 'utf8'));
  assert.ok(rows.length >= 40, `${rows.length} rows`);
  const ca = pki.createCa({ commonName: 'Check CA' });
  let refused = 0;
  for (const row of rows) {
    const csr = row.csrPem;
    const options = {};
    if (row.identity) options.identity = row.identity;
    if (row.lifetimeSecs) options.lifetimeSecs = row.lifetimeSecs;
    const want = issued(ca, csr, row.profile, options);
    const got = checked(csr, row.profile, options);
    assert.equal(got.code, want.code, `${row.what}: checkRequest ${got.code} (${got.message}), issue ${want.code} (${want.message})`);
    assert.equal(got.message, want.message, row.what);
    assert.equal(want.code, row.code || 'issued', `${row.what}: the table's expectation`);
    if (want.code !== 'issued') refused += 1;
  }
  assert.ok(refused >= 40, `${refused} refusals compared`);
});

test('checkRequest judges each name of a request object as the CA would, before any key exists', () => {
  const ca = pki.createCa({ commonName: 'Check CA' });
  const profile = { names: { allow: [{ type: 'dns', value: '.apps.example.com' }] }, maxLifetimeSecs: 86400 };
  const options = { identity: 'web.apps.example.com' };
  const request = { commonName: 'web.apps.example.com', dnsNames: ['web.apps.example.com', 'api.apps.example.com', 'db.example.com'] };
  const v = pki.checkRequest(request, profile, options);
  assert.equal(v.allowed, false);
  assert.deepEqual(v.names.map((n) => [n.name, n.allowed, n.identity]), [
    ['DNS:web.apps.example.com', true, true],
    ['DNS:api.apps.example.com', true, false],
    ['DNS:db.example.com', false, false],
  ]);
  const bad = v.names[2].error;
  const key = pki.generateKey('p256');
  const csr = pki.createCsr(key, request);
  const want = issued(ca, csr, profile, options);
  assert.equal(v.error.code, want.code);
  assert.equal(v.error.message, want.message);
  assert.equal(bad.code, 'policy');
  assert.match(bad.message, /db\.example\.com/);
  // The same request without the refused name: allowed, with the subject and lifetime it gets,
  // and the CSR of a real key gets the same verdict and then a certificate.
  const ok = { ...request, dnsNames: request.dnsNames.slice(0, 2) };
  const yes = pki.checkRequest(ok, profile, { ...options, lifetimeSecs: 3600 });
  assert.equal(yes.allowed, true);
  assert.equal(yes.lifetimeSecs, 3600);
  const okCsr = pki.createCsr(key, ok);
  assert.equal(pki.checkRequest(okCsr, profile, options).allowed, true);
  assert.equal(issued(ca, okCsr, profile, options).code, 'issued');
  // A key type the profile refuses, judged before the key is made.
  const edOnly = { ...profile, keyTypes: ['p256'] };
  const ed = pki.checkRequest(ok, edOnly, { ...options, keyType: 'ed25519' });
  const edIssued = issued(ca, pki.createCsr(pki.generateKey('ed25519'), ok), edOnly, options);
  assert.equal(ed.allowed, false);
  assert.equal(ed.error.code, edIssued.code);
  // The default profile: the identity only; a name-less request (a token-bound enrolment).
  const nameless = pki.checkRequest({}, {}, { identity: 'n.example.com' });
  assert.equal(nameless.allowed, true);
  assert.deepEqual(nameless.names.map((n) => n.name), ['DNS:n.example.com']);
});

test('checkRequest refuses malformed input with the codes issue uses', () => {
  const ca = pki.createCa({ commonName: 'Check CA' });
  for (const [request, profile, options] of [
    ['not a csr', {}, {}],
    ['-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', {}, {}],
    [pki.createCsr(pki.generateKey('p256'), { commonName: 'x' }), { nmes: {} }, {}],
    [pki.createCsr(pki.generateKey('p256'), { commonName: 'x' }), {}, { identiy: 'x' }],
  ]) {
    const want = issued(ca, request, profile, options);
    const got = checked(request, profile, options);
    assert.notEqual(want.code, 'issued');
    assert.equal(got.code, want.code, `${JSON.stringify([request, profile, options])}`);
  }
  assert.throws(() => pki.checkRequest({ comonName: 'typo' }, {}, {}), (e) => e.code === 'invalid_parameter');
  assert.throws(() => pki.checkRequest({ dnsNames: ['bad..name'] }, {}, {}), (e) => e.code === 'invalid_name');
  assert.throws(() => pki.checkRequest({}, {}, { keyType: 'rsa' }), (e) => e.code === 'invalid_parameter' || e.code === 'unsupported_algorithm');
});
