// How long `dkim-relay keygen` takes per algorithm and size: generateKey from dist/ (the code
// the CLI runs), writing into a temporary key store, N keys each. RSA key generation searches
// for random primes, so its time varies a lot from key to key: min, median and max are shown.
//
//   npm run build && node_modules/.bin/node bench/keygen-time.js [N]
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { generateKey } = require('../dist/dkim/keygen');

const runs = Number(process.argv[2] ?? 10);
const cases = [
  { algorithm: 'rsa', bits: 2048 },
  { algorithm: 'rsa', bits: 3072 },
  { algorithm: 'rsa', bits: 4096 },
  { algorithm: 'ed25519' },
];

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keygen-bench-'));
  const keysDir = path.join(dir, 'keys');
  try {
    // Ed25519 needs an RSA key in its domain (DESIGN rule 7)
    await generateKey(keysDir, { domain: 'bench.test', selector: 'rsa-base' });
    console.log(`node ${process.version}, ${os.cpus()[0].model}, ${os.cpus().length} CPUs, ${runs} keys each`);
    console.log('| key | min ms | median ms | max ms |');
    console.log('|---|---:|---:|---:|');
    for (const c of cases) {
      const times = [];
      for (let i = 0; i < runs; i++) {
        const start = process.hrtime.bigint();
        await generateKey(keysDir, { domain: 'bench.test', algorithm: c.algorithm, bits: c.bits });
        times.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      times.sort((a, b) => a - b);
      const name = c.algorithm === 'rsa' ? `RSA-${c.bits}` : 'Ed25519';
      const f = (ms) => ms.toFixed(1);
      console.log(`| ${name} | ${f(times[0])} | ${f(times[Math.floor(times.length / 2)])} | ${f(times[times.length - 1])} |`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
