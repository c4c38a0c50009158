// Two builds of the module side by side in one Node process (not a test): the same JS glue loaded
// twice (two module instances), each initialised with its own .wasm, rounds interleaved A, B, A, B
// so that a noisy machine slows both alike. For size/speed trade-offs (issue 16, part 4).
// Usage: node benches/node/ab.mjs A.wasm B.wasm [--rounds 9] [--ms 300]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : def; };
const files = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
if (files.length !== 2) {
  console.error('usage: node benches/node/ab.mjs A.wasm B.wasm [--rounds 9] [--ms 300]');
  process.exit(2);
}
const ROUNDS = opt('rounds', 9);
const MS = opt('ms', 300);
const CN = 'bench.example.com';

async function load(tag, file) {
  const glue = await import(`../../pkg/dist/wasm_pki.js?${tag}`);
  glue.initSync({ module: readFileSync(file) });
  return glue;
}

function ops(pki, alg) {
  const ca = pki.createCa({ commonName: 'Bench CA', algorithm: alg });
  const key = pki.generateKey(alg);
  const csr = pki.createCsr(key, { commonName: CN, dnsNames: [CN] });
  return {
    'CSR create': () => pki.createCsr(key, { commonName: CN, dnsNames: [CN] }),
    'CSR parse+verify': () => pki.inspect(csr),
    'CA signs a CSR': () => ca.issue(csr, { acceptCsr: true }),
  };
}

/** µs per call over about MS milliseconds. */
function round(fn) {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < MS * 1e6) {
    fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return elapsed / n / 1e3;
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const [a, b] = [await load('a', files[0]), await load('b', files[1])];
console.log(`A = ${files[0]}\nB = ${files[1]}\n${ROUNDS} interleaved rounds of ${MS} ms, median µs\n`);
console.log('| algorithm | operation | A | B | B / A |\n|---|---|---|---|---|');
for (const alg of ['p256', 'ed25519']) {
  const [oa, ob] = [ops(a, alg), ops(b, alg)];
  for (const name of Object.keys(oa)) {
    for (let i = 0; i < 3; i++) { oa[name](); ob[name](); }
    const ta = [], tb = [];
    for (let r = 0; r < ROUNDS; r++) { ta.push(round(oa[name])); tb.push(round(ob[name])); }
    const [ma, mb] = [median(ta), median(tb)];
    console.log(`| ${alg} | ${name} | ${ma.toFixed(0)} | ${mb.toFixed(0)} | ${(mb / ma).toFixed(3)} |`);
  }
}
