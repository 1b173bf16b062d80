// Cost of the HTTP observer's hooks on the message path (issue 19): how long one call of each
// takes, with http.listen set (without it the hooks are not called at all). Run after a
// build: `node_modules/.bin/node bench/metrics-hooks.js`.
'use strict';
const { RelayMonitor } = require('../dist/http/relay-monitor');

const monitor = new RelayMonitor({ startedAt: Date.now(), dataDir: '/tmp', keysDir: '/nonexistent' });
const N = 1_000_000;
const providers = ['*.protection.outlook.com', '*.google.com', 'mx.example.net', 'mx1.example.com'];
const cases = {
  'accepted()': () => monitor.accepted(),
  'recipientDone(delivered)': (i) => monitor.recipientDone({ provider: providers[i & 3], domain: 'example.com', outcome: 'delivered', reply: '250 2.0.0 Ok: queued as 4Xyz', host: 'mx.example.net' }),
  'messageSent()': (i) => monitor.messageSent(providers[i & 3], 120),
  'connectionOpened()': (i) => monitor.connectionOpened(providers[i & 3], 'opportunistic'),
  'recipientDone(deferred: classified)': (i) => monitor.recipientDone({ provider: providers[i & 3], domain: 'example.com', outcome: 'deferred', reply: '451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.', host: 'x.mail.protection.outlook.com' }),
};
for (const [name, fn] of Object.entries(cases)) {
  const n = name.includes('classified') ? N / 10 : N;
  for (let i = 0; i < 10_000; i++) fn(i); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - start) / n;
  console.log(`${name.padEnd(38)} ${ns.toFixed(0).padStart(6)} ns per call`);
}
monitor.metrics.registry.metrics().then((text) => console.log(`/metrics after the run: ${text.length} bytes`));
