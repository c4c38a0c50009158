// `npm pack`, install the tarball into an empty project, and use it by ESM import, CommonJS
// require and TypeScript (the browser way is covered by the page tests).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkgDir = join(root, 'pkg');

test('the packed tarball works with import, require and tsc', (t) => {
  const { dir } = tempDir(t);
  const packOut = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: pkgDir, encoding: 'utf8' }));
  const files = packOut[0].files.map((f) => f.path).sort();
  assert.deepEqual(files.filter((f) => f.endsWith('.wasm')), ['dist/wasm_pki_bg.wasm'], 'exactly one .wasm in the package');
  for (const f of ['index.d.ts', 'node.mjs', 'web.js', 'dist/wasm_pki.js', 'package.json']) assert.ok(files.includes(f), `${f} packed`);
  const tarball = join(dir, packOut[0].filename);
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: app, stdio: 'pipe' });

  writeFileSync(join(app, 'esm.mjs'), `
    import { generateKey, createCsr, createCa, inspect } from 'wasm-pki';
    const ca = createCa({ commonName: 'ESM CA' });
    const csr = createCsr(generateKey('ed25519'), { commonName: 'esm.example.com', dnsNames: ['esm.example.com'] });
    console.log(inspect(ca.issue(csr, { acceptCsr: true })).names.dns[0]);
  `);
  assert.equal(execFileSync('node', ['esm.mjs'], { cwd: app, encoding: 'utf8' }).trim(), 'esm.example.com');

  writeFileSync(join(app, 'cjs.cjs'), `
    const pki = require('wasm-pki');
    const csr = pki.createCsr(pki.generateKey('p256'), { commonName: 'cjs.example.com' });
    console.log(pki.inspect(csr).kind);
  `);
  const cjs = execFileSync('node', ['cjs.cjs'], { cwd: app, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(cjs.trim(), 'csr');

  // The declarations type-check a real use, and reject a wrong one.
  writeFileSync(join(app, 'use.ts'), `
    import { generateKey, createCsr, createCa, inspect, verifyChain, type Description, type Profile } from 'wasm-pki';
    const key = generateKey('p256');
    const csr: string = createCsr(key, { commonName: 'ts.example.com', dnsNames: ['ts.example.com'] });
    const profile: Profile = { names: { allow: [{ type: 'dns', value: '.example.com' }] }, usage: 'server' };
    const ca = createCa({ commonName: 'TS CA', algorithm: 'ed25519' });
    const d: Description = inspect(ca.issue(csr, profile));
    const n: number | null = d.notAfter;
    verifyChain([ca.certificatePem()], Date.now()).subjects.map((s: string) => s.length);
    // @ts-expect-error: 'rsa' is not a key algorithm we generate
    generateKey('rsa');
    // @ts-expect-error: unknown request field
    createCsr(key, { commonNme: 'typo' });
    // @ts-expect-error: usage must be one of the three
    const bad: Profile = { usage: 'both' };
    // @ts-expect-error: the identity is what the caller vouches for, not part of the profile
    const mixed: Profile = { identity: 'a.example.com' };
    inspect(ca.issue(csr, { acceptCsr: true }, { identity: 'ts.example.com', lifetimeSecs: 60 }));
    export { n, bad, mixed };
  `);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: false }, files: ['use.ts'] }));
  execFileSync(join(pkgDir, 'node_modules', '.bin', 'tsc'), ['-p', app], { cwd: app, stdio: 'pipe' });
  assert.ok(readdirSync(join(app, 'node_modules', 'wasm-pki', 'dist')).includes('wasm_pki_bg.wasm'));
  assert.ok(readFileSync(join(app, 'node_modules', 'wasm-pki', 'index.d.ts'), 'utf8').includes('export declare function createCsr'));
});
