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
    const res = await fetch('/v1/sign', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ csr: csrPem }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = body.error || {};
      throw Object.assign(new Error(e.message || `The signer answered ${res.status}.`), { code: e.code || `http_${res.status}` });
    }
    issued = body;
    $('cert-pem').value = body.certificate;
    describe($('cert-details'), pki.inspect(body.certificate));
    $('issued').hidden = false;
    status('Certificate issued.');
  } catch (err) {
    showError(err);
    status('');
  } finally {
    $('send').disabled = false;
  }
});

$('download-cert').addEventListener('click', () => download(`${baseName()}.crt`, issued.certificate));
$('download-chain').addEventListener('click', () => download(`${baseName()}-chain.pem`, [issued.certificate, ...(issued.chain || [])].join('')));
$('download-ca').addEventListener('click', () => download('ca.pem', issued.ca));

// Served by a signer? Then offer submission.
fetch('/v1/info').then((r) => { if (r.ok) $('submit').hidden = false; }).catch(() => {});
$('error').tabIndex = -1;
status('Ready. Nothing has been generated or sent yet.');
