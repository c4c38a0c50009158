// A stand-in signer for the page tests: serves www/ and the package like the real host will,
// and answers /v1/sign with a CA held in Node (through the same npm package).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, normalize, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pki from '../../pkg/node.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

export async function startSigner({ tokens = ['test-token'] } = {}) {
  const ca = pki.createCa({ commonName: 'Page Test CA', algorithm: 'p256' });
  const unused = new Set(tokens);
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (url.pathname === '/v1/info') return json(200, { name: 'test signer' });
      if (url.pathname === '/v1/sign' && req.method === 'POST') {
        const token = (req.headers.authorization || '').replace(/^Bearer /, '');
        if (!unused.delete(token)) return json(401, { error: { code: 'bad_token', message: 'unknown or used token' } });
        let body = '';
        for await (const chunk of req) body += chunk;
        const { csr } = JSON.parse(body);
        const certificate = ca.issue(csr, {});
        const d = pki.inspect(certificate);
        return json(200, { certificate, chain: [], ca: ca.certificatePem(), notAfter: d.notAfter, renewAfter: d.notBefore + (d.notAfter - d.notBefore) / 2 });
      }
      let rel = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
      const base = rel.startsWith('pkg/') ? root : join(root, 'www');
      const file = normalize(join(base, rel));
      if (!file.startsWith(root) || (rel.startsWith('pkg/') && !/^pkg\/(web\.js|dist\/[\w.]+)$/.test(rel))) return json(404, { error: { code: 'not_found', message: rel } });
      const data = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(data);
    } catch (e) {
      json(e.code === 'ENOENT' ? 404 : 500, { error: { code: 'error', message: String(e.message || e) } });
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, caPem: ca.certificatePem(), close: () => new Promise((r) => server.close(r)) };
}
