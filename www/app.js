// The workload owner's page: key and CSR made here; only the CSR (and the token) leave the page.
import * as pki from './pkg/web.js';

const $ = (id) => document.getElementById(id);
let key = null; // the private key lives only in this variable (inside WebAssembly memory)
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

$('csr-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  showError(null);
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
    key?.free();
    key = pki.generateKey($('algorithm').value);
    csrPem = pki.createCsr(key, request);
    $('csr-pem').value = csrPem;
    describe($('csr-details'), pki.inspect(csrPem));
    $('result').hidden = false;
    $('issued').hidden = true;
    status(`Generated a ${key.algorithm === 'p256' ? 'P-256' : 'Ed25519'} key and a CSR in this page.`);
  } catch (err) {
    showError(err);
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
  const res = await fetch(path, { method: 'POST', headers, body });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = answer.error || {};
    throw Object.assign(new Error(e.message || `The signer answered ${res.status}.`), { code: e.code || `http_${res.status}` });
  }
  return answer;
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
  $('send').disabled = true;
  status('Submitting the CSR…');
  try {
    // Only the CSR and the token are sent.
    const answer = await post('/v1/sign', { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      JSON.stringify({ csr: csrPem }));
    showIssued(answer, false);
    status('Certificate issued.');
  } catch (err) {
    showError(err);
    status('');
  } finally {
    $('send').disabled = false;
  }
});

// Renewal: the key and certificate files are read into this page; the key signs a proof (a JWS
// naming this signer's renew URL, valid two minutes, usable once) and only the proof is sent.
$('renew-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError(null);
  const keyFile = $('renew-key').files[0];
  const certFile = $('renew-cert').files[0];
  if (!keyFile || !certFile) return showError(new Error('Choose your private key file and your certificate file.'));
  $('renew-send').disabled = true;
  status('Renewing…');
  let held = null;
  let fresh = null;
  try {
    const [keyPem, certText] = await Promise.all([keyFile.text(), certFile.text()]);
    held = pki.importKey(keyPem, $('renew-passphrase').value || undefined);
    const certPem = (certText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/) || [''])[0];
    if (!certPem) throw Object.assign(new Error('The certificate file holds no PEM certificate.'), { code: 'bad_pem' });
    const d = pki.inspect(certPem);
    const proof = pki.signRenewalProof(held, certPem, `${location.origin}/v1/renew`);
    const headers = { Authorization: `Bearer ${proof}` };
    let body;
    if ($('renew-rekey').checked) {
      fresh = pki.generateKey(held.algorithm);
      const names = { dnsNames: d.names.dns, ipAddresses: d.names.ip, uris: d.names.uri, emails: d.names.email };
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify({ csr: pki.createCsr(fresh, names) });
    }
    const answer = await post('/v1/renew', headers, body);
    // The key that goes with the new certificate is the one the page keeps (for downloads).
    key?.free();
    key = fresh || held;
    if (fresh) held.free();
    held = null;
    fresh = null;
    $('commonName').value = pki.inspect(answer.certificate).subject.replace(/^.*CN=([^,]+).*$/, '$1');
    showIssued(answer, key && $('renew-rekey').checked);
    status($('renew-rekey').checked ? 'Renewed with a new key: download it with the certificate.' : 'Certificate renewed (same key).');
  } catch (err) {
    held?.free();
    fresh?.free();
    showError(err);
    status('');
  } finally {
    $('renew-send').disabled = false;
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
fetch('/v1/info').then((r) => { if (r.ok) { $('submit').hidden = false; $('renew').hidden = false; } }).catch(() => {});
$('error').tabIndex = -1;
status('Ready. Nothing has been generated or sent yet.');
