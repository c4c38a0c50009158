// The workload owner's page: key and CSR made here; only the CSR (and the token) leave the page.
import * as pki from './pkg/web.js';
import * as keep from './keep.js';

const $ = (id) => document.getElementById(id);
let key = null; // a key for a file lives only in this variable (inside WebAssembly memory)
let kept = null; // or the record of a key kept in this browser (a non-extractable CryptoKey pair)
let csrPem = '';
let issued = null;

const list = (id) => $(id).value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

function showError(err) {
  const box = $('error');
  box.textContent = err ? `${err.message || err}${err.code ? ` (${err.code})` : ''}` : '';
  box.hidden = !err;
  if (err) box.focus?.();
}

function status(text) {
  $('status').textContent = text;
}

function describe(dl, d) {
  const rows = [
    ['Subject', d.subject || '(empty)'],
    ['Key', `${d.key.algorithm}, SHA-256 ${d.key.fingerprintSha256}`],
    ['DNS names', d.names.dns.join(', ')],
    ['IP addresses', d.names.ip.join(', ')],
    ['URIs', d.names.uri.join(', ')],
    ['E-mails', d.names.email.join(', ')],
    ['Issuer', d.issuer],
    ['Serial', d.serial],
    ['Valid', d.notBeforeText ? `${d.notBeforeText} → ${d.notAfterText}` : null],
    ['Usage', [...d.keyUsage, ...d.extendedKeyUsage].join(', ')],
    ['Signature', d.signatureAlgorithm],
  ].filter(([, v]) => v);
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
}

function download(name, text, type = 'application/x-pem-file') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function baseName() {
  return ($('commonName').value.trim() || 'workload').replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** The signer's JSON answer, or its refusal thrown with the code. */
async function answerOf(res) {
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = answer.error || {};
    throw Object.assign(new Error(e.message || `The signer answered ${res.status}.`), { code: e.code || `http_${res.status}` });
  }
  return answer;
}

// The token's rules (GET /v1/token), once the owner has entered it: its identity, profile and
// lifetime. Requests are then checked with the CA's own decision (checkRequest) before anything
// is made or sent.
let grant = null;
let lookup = null; // the lookup of the token now in the field: { token, promise }

function duration(secs) {
  if (secs % 86400 === 0) return `${secs / 86400} day${secs === 86400 ? '' : 's'}`;
  if (secs % 3600 === 0) return `${secs / 3600} h`;
  return `${Math.round(secs / 60)} min`;
}

/**
 * Ask the signer what the token in the field allows (once per token), fill the names in from its
 * identity; resolves to the rules, or to null after showing why the token is refused.
 */
function lookUpToken() {
  const token = $('token').value.trim();
  if (lookup && lookup.token === token) return lookup.promise;
  lookup = { token, promise: fetchRules(token) };
  return lookup.promise;
}

function forgetToken() {
  grant = null;
  lookup = null;
}

async function fetchRules(token) {
  grant = null;
  $('token-info').hidden = true;
  for (const o of $('algorithm').options) o.disabled = false;
  if (!token) return null;
  showError(null);
  try {
    const answer = await answerOf(await fetch('/v1/token', { headers: { Authorization: `Bearer ${token}` } }));
    grant = answer;
    const allowed = answer.rules.keyTypes || [];
    for (const o of $('algorithm').options) o.disabled = allowed.length > 0 && !allowed.includes(o.value);
    if ($('algorithm').selectedOptions[0]?.disabled) {
      $('algorithm').value = [...$('algorithm').options].find((o) => !o.disabled)?.value ?? $('algorithm').value;
    }
    const id = answer.identity;
    if (id && !/^spiffe:/.test(id) && !$('commonName').value.trim()) $('commonName').value = id;
    if (id && !/^spiffe:/.test(id) && !/@/.test(id) && !list('dnsNames').length && !/^[0-9.:]+$/.test(id)) $('dnsNames').value = id;
    if (id && /^spiffe:/.test(id) && !list('uris').length) $('uris').value = id;
    const uses = answer.usesLeft === 1 ? '1 use' : `${answer.usesLeft} uses`;
    $('token-info').textContent = `Token for ${id || 'names the profile allows'} (profile ${answer.profile}): `
      + `certificates valid ${duration(answer.lifetimeSecs)}; ${uses} left; expires ${new Date(answer.expiresAt * 1000).toLocaleString()}.`;
    $('token-info').hidden = false;
    return answer;
  } catch (err) {
    showError(err);
    return null;
  }
}
$('token').addEventListener('input', forgetToken);
$('token').addEventListener('change', () => { lookUpToken(); });
$('token-check').addEventListener('click', () => { lookUpToken(); });

/** The CA's decision on `request` (a request object or a CSR) under the token's rules, as an error. */
function refusal(request, keyType) {
  if (!grant) return null;
  const options = grant.identity ? { identity: grant.identity } : {};
  if (keyType) options.keyType = keyType;
  const v = pki.checkRequest(request, grant.rules, options);
  if (v.allowed) return null;
  const names = v.names.filter((n) => !n.allowed).map((n) => n.error.message);
  return Object.assign(new Error(names.length ? names.join('\n') : v.error.message), { code: v.error.code });
}

const keepInBrowser = () => $('keep-browser').checked;
const algorithmName = (a) => (a === 'p256' ? 'P-256' : 'Ed25519');

function showKeepChoice() {
  $('file-options').hidden = keepInBrowser();
}
$('keep-file').addEventListener('change', showKeepChoice);
$('keep-browser').addEventListener('change', showKeepChoice);

$('csr-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError(null);
  $('generate').disabled = true;
  try {
    const commonName = $('commonName').value.trim();
    const request = {
      commonName: commonName || undefined,
      organization: $('organization').value.trim() || undefined,
      organizationalUnit: $('organizationalUnit').value.trim() || undefined,
      country: $('country').value.trim().toUpperCase() || undefined,
      dnsNames: list('dnsNames'),
      ipAddresses: list('ipAddresses'),
      uris: list('uris'),
      emails: list('emails'),
    };
    if (!commonName && !request.dnsNames.length && !request.ipAddresses.length && !request.uris.length && !request.emails.length) {
      throw Object.assign(new Error('Enter a common name or at least one DNS name, IP address, URI or e-mail.'), { code: 'invalid_parameter' });
    }
    const algorithm = $('algorithm').value;
    // The token's profile decides first: a request it refuses gets no key.
    const refused = refusal(request, algorithm);
    if (refused) throw refused;
    if (keepInBrowser()) {
      // WebCrypto makes the key, non-extractable; the module builds the CSR and WebCrypto signs it.
      const keyPair = await keep.generate(algorithm);
      csrPem = await pki.createCsr(keyPair, request);
      // A kept key that never got its certificate is of no use: replaced, not hoarded.
      if (kept && !kept.certificate) await keep.remove(kept.id);
      const record = { label: commonName || request.dnsNames[0] || request.uris[0] || 'key', algorithm, keyPair, certificate: null, created: Date.now() };
      record.id = await keep.put(record);
      key?.free();
      key = null;
      kept = record;
      await listKept(record.id);
    } else {
      const fresh = pki.generateKey(algorithm);
      csrPem = pki.createCsr(fresh, request);
      key?.free();
      key = fresh;
      kept = null;
    }
    $('csr-pem').value = csrPem;
    describe($('csr-details'), pki.inspect(csrPem));
    $('download-key').hidden = !!kept;
    $('key-note-file').hidden = !!kept;
    $('key-note-browser').hidden = !kept;
    $('result').hidden = false;
    $('issued').hidden = true;
    status(kept
      ? `Generated a ${algorithmName(algorithm)} key kept in this browser (it cannot be exported) and a CSR.`
      : `Generated a ${algorithmName(algorithm)} key and a CSR in this page.`);
  } catch (err) {
    showError(err);
  } finally {
    $('generate').disabled = false;
  }
});

$('download-csr').addEventListener('click', () => download(`${baseName()}.csr`, csrPem));
$('download-key').addEventListener('click', () => {
  showError(null);
  try {
    const pass = $('passphrase').value;
    if (!key) throw new Error('Generate a key first.');
    status(pass ? 'Encrypting the key…' : '');
    download(`${baseName()}.key`, key.privateKeyPem(pass || undefined));
    status(pass ? 'Downloaded the encrypted private key.' : 'Downloaded the private key (not encrypted).');
  } catch (err) {
    showError(err);
  }
});

/** POST to the signer and return its JSON answer, or throw its refusal with the code. */
async function post(path, headers, body) {
  return answerOf(await fetch(path, { method: 'POST', headers, body }));
}

function showIssued(answer, newKey) {
  issued = answer;
  $('cert-pem').value = answer.certificate;
  describe($('cert-details'), pki.inspect(answer.certificate));
  $('download-new-key').hidden = !newKey;
  $('issued').hidden = false;
}

$('submit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError(null);
  const token = $('token').value.trim();
  if (!csrPem) return showError(new Error('Generate a CSR first.'));
  if (!token) return showError(new Error('Paste the enrolment token your operator gave you.'));
  // The token is looked up first (a refused one is reported, not sent), and the CSR itself is
  // checked under its rules: a request the profile refuses is never sent.
  $('send').disabled = true;
  if (!(await lookUpToken())) {
    $('send').disabled = false;
    return undefined;
  }
  try {
    const refused = refusal(csrPem);
    if (refused) {
      $('send').disabled = false;
      return showError(refused);
    }
  } catch (err) {
    $('send').disabled = false;
    return showError(err);
  }
  status('Submitting the CSR…');
  try {
    // Only the CSR and the token are sent.
    const answer = await post('/v1/sign', { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      JSON.stringify({ csr: csrPem }));
    showIssued(answer, false);
    if (kept) {
      kept.certificate = answer.certificate;
      await keep.put(kept);
      await listKept(kept.id);
    }
    status(kept ? 'Certificate issued; this browser keeps its key for renewals.' : 'Certificate issued.');
    // One use spent: the next request asks the signer again what is left.
    forgetToken();
  } catch (err) {
    showError(err);
    status('');
  } finally {
    $('send').disabled = false;
  }
});

/** The kept keys with a certificate, offered for renewal; `select` picks one by id. */
async function listKept(select) {
  const source = $('renew-source');
  let records = [];
  try {
    records = (await keep.all()).filter((r) => r.certificate);
  } catch {
    // No storage (a private window may refuse it): only files can be renewed.
  }
  source.replaceChildren(source.options[0], ...records.map((r) => {
    const o = document.createElement('option');
    o.value = String(r.id);
    const until = pki.inspect(r.certificate).notAfterText;
    o.textContent = `Kept in this browser: ${r.label} (${algorithmName(r.algorithm)}, certificate until ${until})`;
    return o;
  }));
  if (select !== undefined && records.some((r) => r.id === select)) source.value = String(select);
  showRenewSource();
}

function showRenewSource() {
  const fromBrowser = $('renew-source').value !== '';
  $('renew-files').hidden = fromBrowser;
  $('forget-key').hidden = !fromBrowser;
}
$('renew-source').addEventListener('change', showRenewSource);

async function keptRecord() {
  const id = Number($('renew-source').value);
  const record = (await keep.all()).find((r) => r.id === id);
  if (!record) throw Object.assign(new Error('That key is no longer kept in this browser.'), { code: 'not_found' });
  return record;
}

/** Names for a re-key CSR: the certificate's own. */
function namesOf(certPem) {
  const d = pki.inspect(certPem);
  return { dnsNames: d.names.dns, ipAddresses: d.names.ip, uris: d.names.uri, emails: d.names.email };
}

// Renewal: the key (kept in this browser, or read from its file into this page) signs a proof (a
// JWS naming this signer's renew URL, valid two minutes, usable once) and only the proof is sent.
$('renew-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError(null);
  const rekey = $('renew-rekey').checked;
  const audience = `${location.origin}/v1/renew`;
  const fromBrowser = $('renew-source').value !== '';
  const keyFile = $('renew-key').files[0];
  const certFile = $('renew-cert').files[0];
  if (!fromBrowser && (!keyFile || !certFile)) return showError(new Error('Choose your private key file and your certificate file.'));
  $('renew-send').disabled = true;
  status('Renewing…');
  let held = null;
  let fresh = null;
  try {
    const headers = {};
    let body;
    let record = null;
    let freshPair = null;
    if (fromBrowser) {
      record = await keptRecord();
      headers.Authorization = `Bearer ${await pki.signRenewalProof(record.keyPair, record.certificate, audience)}`;
      if (rekey) {
        freshPair = await keep.generate(record.algorithm);
        body = JSON.stringify({ csr: await pki.createCsr(freshPair, namesOf(record.certificate)) });
      }
    } else {
      const [keyPem, certText] = await Promise.all([keyFile.text(), certFile.text()]);
      held = pki.importKey(keyPem, $('renew-passphrase').value || undefined);
      const certPem = (certText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/) || [''])[0];
      if (!certPem) throw Object.assign(new Error('The certificate file holds no PEM certificate.'), { code: 'bad_pem' });
      headers.Authorization = `Bearer ${pki.signRenewalProof(held, certPem, audience)}`;
      if (rekey) {
        fresh = pki.generateKey(held.algorithm);
        body = JSON.stringify({ csr: pki.createCsr(fresh, namesOf(certPem)) });
      }
    }
    if (body) headers['Content-Type'] = 'application/json';
    const answer = await post('/v1/renew', headers, body);
    if (record) {
      // The kept record follows the certificate: a re-key replaces its key (the old one is gone).
      if (freshPair) record.keyPair = freshPair;
      record.certificate = answer.certificate;
      await keep.put(record);
      key?.free();
      key = null;
      kept = record;
      await listKept(record.id);
    } else {
      // The key that goes with the new certificate is the one the page keeps (for downloads).
      key?.free();
      key = fresh || held;
      kept = null;
      if (fresh) held.free();
      held = null;
      fresh = null;
    }
    $('commonName').value = pki.inspect(answer.certificate).subject.replace(/^.*CN=([^,]+).*$/, '$1');
    showIssued(answer, !record && rekey);
    status(rekey
      ? (record ? 'Renewed with a new key, kept in this browser in place of the old one.' : 'Renewed with a new key: download it with the certificate.')
      : 'Certificate renewed (same key).');
  } catch (err) {
    held?.free();
    fresh?.free();
    showError(err);
    status('');
  } finally {
    $('renew-send').disabled = false;
  }
});

$('forget-key').addEventListener('click', async () => {
  showError(null);
  try {
    const record = await keptRecord();
    await keep.remove(record.id);
    if (kept?.id === record.id) kept = null;
    await listKept();
    status(`Forgot the key for ${record.label}: this browser no longer holds it.`);
  } catch (err) {
    showError(err);
  }
});

$('download-new-key').addEventListener('click', () => {
  showError(null);
  try {
    const pass = $('passphrase').value || $('renew-passphrase').value;
    download(`${baseName()}.key`, key.privateKeyPem(pass || undefined));
  } catch (err) {
    showError(err);
  }
});

$('download-cert').addEventListener('click', () => download(`${baseName()}.crt`, issued.certificate));
$('download-chain').addEventListener('click', () => download(`${baseName()}-chain.pem`, [issued.certificate, ...(issued.chain || [])].join('')));
$('download-ca').addEventListener('click', () => download('ca.pem', issued.ca));

// Served by a signer? Then offer submission.
fetch('/v1/info').then((r) => {
  if (r.ok) {
    $('token-section').hidden = false;
    $('submit').hidden = false;
    $('renew').hidden = false;
  }
}).catch(() => {});
listKept();
$('error').tabIndex = -1;
status('Ready. Nothing has been generated or sent yet.');
