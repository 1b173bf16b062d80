// /metrics after a known workload: the counts match what was sent, refused, delivered,
// deferred and bounced, with the reply classes; promtool (Debian's prometheus package)
// accepts the exposition. Real SMTP in, a real sink MX out, scraped over HTTP on loopback.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DOMAIN, Harness, HELO, rawMessage, startHarness, submit, submitError, waitForLog } from '../helpers/relay-harness';
import { connectRaw } from '../helpers/raw-smtp';
import { get, promtoolCheck, sample, total } from '../helpers/http-client';
import { Sink, startSink } from '../helpers/sink';

let h: Harness;
let mx: Sink;
let port: number;

beforeAll(async () => {
  mx = await startSink({
    host: '127.0.0.3',
    onRcpt(rcpt) {
      if (rcpt.startsWith('nobody@')) return { code: 550, message: '5.1.1 no such user here' };
      if (rcpt.startsWith('later@')) return { code: 451, message: '4.3.0 try again later' };
      return undefined;
    },
  });
  // retries an hour away: the deferred recipient is tried exactly once while the test runs
  h = await startHarness({ RELAY_MX_PORT: String(mx.port), RELAY_RETRY_SCHEDULE: '1h', RELAY_HTTP_LISTEN: '127.0.0.1:0', RELAY_TRUSTED_NETWORKS: '127.0.0.1/32' });
  // dest.test and example.org (where the bounce goes) both have their MX on the sink
  for (const domain of ['dest.test', DOMAIN]) h.dns.set(domain, 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
  h.dns.set('mx.dest.test', 'A', ['127.0.0.3']);
  port = h.relay.http!.port;
});

afterAll(async () => {
  await h?.stop();
  await mx?.close();
});

test('after 5 accepted (3 delivered, 1 bounced, 1 deferred) and 3 refused, /metrics says so, and promtool passes it', async () => {
  for (let i = 0; i < 3; i++) await submit(h, { to: [`user${i}@dest.test`] });
  await submit(h, { to: ['nobody@dest.test'] });
  await submit(h, { to: ['later@dest.test'] });
  // refused: two at DATA (no DKIM key for the From domain), one at MAIL FROM (a remote client without AUTH)
  for (let i = 0; i < 2; i++) {
    const r = await submitError(h, { from: 'app@nokey.test', raw: rawMessage('app@nokey.test', 'user@dest.test') });
    expect(r.code).toBe(550);
  }
  const remote = await connectRaw(h.relay.ports.starttls, '127.0.0.9');
  await remote.reply();
  await remote.command('EHLO client.test');
  expect(await remote.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^530 5\.7\.0/);
  remote.end();

  // 3 delivered + the bounce of nobody@ to app@example.org
  await mx.waitForMessages(4, 20_000);
  await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.recipient === 'later@dest.test', 20_000);
  await waitForLog(h, (l) => l.msg === 'delivery attempt' && typeof l.recipient === 'string' && l.recipient === `app@${DOMAIN}` && l.outcome === 'delivered', 20_000);

  // the deferred message leaves memory once its state is written, a moment after its log line
  const deadline = Date.now() + 10_000;
  while (h.relay.queue.activeSize && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const res = await get(port, '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const m = res.body;
  expect(sample(m, 'dkim_relay_messages_accepted_total')).toBe(5);
  // the node's name (node.name, else the HELO name) on every series, so several nodes stay apart
  expect(sample(m, 'dkim_relay_messages_accepted_total', { node: HELO })).toBe(5);
  expect(m.split('\n').filter((l) => l.startsWith('dkim_relay_') && !l.includes(`node="${HELO}"`))).toEqual([]);
  expect(sample(m, 'dkim_relay_messages_refused_total', { stage: 'data', status: '5.7.1' })).toBe(2);
  expect(sample(m, 'dkim_relay_messages_refused_total', { stage: 'mail_from', status: '5.7.0' })).toBe(1);
  const provider = 'mx.dest.test';
  expect(sample(m, 'dkim_relay_deliveries_total', { provider, outcome: 'delivered', class: 'delivered' })).toBe(4);
  expect(sample(m, 'dkim_relay_deliveries_total', { provider, outcome: 'failed', class: 'recipient-unknown' })).toBe(1);
  expect(sample(m, 'dkim_relay_deliveries_total', { provider, outcome: 'deferred', class: 'transient' })).toBe(1);
  expect(total(m, 'dkim_relay_deliveries_total')).toBe(6);
  // every message went over a connection to a sink that offers STARTTLS
  expect(sample(m, 'dkim_relay_delivery_duration_seconds_count', { provider })).toBe(6);
  expect(total(m, 'dkim_relay_delivery_connections_total', { provider, tls: 'opportunistic' })).toBeGreaterThanOrEqual(1);
  expect(total(m, 'dkim_relay_delivery_connections_total', { tls: 'none' })).toBe(0);
  // left in the queue: the deferred one, due in an hour, so on disk, not in the active queue
  // (queue_recipients reads the active queue only: a scrape opens no message; the oldest age
  // comes from the spool's file names)
  expect(sample(m, 'dkim_relay_queue_messages')).toBe(1);
  expect(sample(m, 'dkim_relay_queue_active_messages')).toBe(0);
  expect(sample(m, 'dkim_relay_queue_recipients', { state: 'deferred' })).toBe(0);
  expect(sample(m, 'dkim_relay_queue_recipients', { state: 'new' })).toBe(0);
  expect(sample(m, 'dkim_relay_queue_oldest_message_age_seconds')).toBeGreaterThan(0);
  expect(sample(m, 'dkim_relay_dkim_keys', { state: 'active' })).toBe(1);
  expect(sample(m, 'dkim_relay_dkim_keys', { state: 'pending' })).toBe(0);
  expect(sample(m, 'dkim_relay_signing_failures_total')).toBe(0);
  expect(sample(m, 'dkim_relay_spool_free_bytes')).toBeGreaterThan(0);
  // the test zone has no PTR for 127.0.0.2: the identity check at start warned
  expect(sample(m, 'dkim_relay_identity_ok')).toBe(0);
  expect(sample(m, 'dkim_relay_identity_check', { check: 'identity.ptr', status: 'fail' }) ?? sample(m, 'dkim_relay_identity_check', { check: 'identity.ptr', status: 'warn' })).toBe(1);
  expect(sample(m, 'dkim_relay_process_resident_memory_bytes')).toBeGreaterThan(0);

  const lint = await promtoolCheck(m);
  expect(lint.output).toBe('');
  expect(lint.code).toBe(0);
}, 60_000);

test('a destination that throttles is paused, counted and shown as paused', async () => {
  // 421 + [TSS04] (Yahoo's words) from a second MX: the destination is paused
  const slow = await startSink({ host: '127.0.0.4', port: mx.port, onRcpt: () => ({ code: 421, message: '4.7.0 [TSS04] Messages from 127.0.0.2 temporarily deferred due to unexpected volume' }) });
  try {
    h.dns.set('slow.test', 'MX', [{ exchange: 'mx.slow.test', priority: 10 }]);
    h.dns.set('mx.slow.test', 'A', ['127.0.0.4']);
    await submit(h, { to: ['someone@slow.test'] });
    await waitForLog(h, (l) => typeof l.msg === 'string' && l.msg.includes('throttles us'), 20_000);
    const m = (await get(port, '/metrics')).body;
    expect(sample(m, 'dkim_relay_destination_paused', { provider: 'mx.slow.test' })).toBe(1);
    expect(sample(m, 'dkim_relay_destination_pauses_total', { provider: 'mx.slow.test' })).toBe(1);
    expect(sample(m, 'dkim_relay_destination_pause_end_timestamp_seconds', { provider: 'mx.slow.test' })).toBeGreaterThan(Date.now() / 1000 + 60);
    expect(sample(m, 'dkim_relay_deliveries_total', { provider: 'mx.slow.test', outcome: 'deferred', class: 'rate-limit' })).toBe(1);
    // with the pause gauges in it too
    expect(await promtoolCheck(m)).toEqual({ code: 0, output: '' });
  } finally {
    await slow.close();
  }
}, 60_000);

test('the README\'s Prometheus scrape job is a valid Prometheus configuration (promtool check config)', async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const at = readme.indexOf('A Prometheus scrape job');
  expect(at).toBeGreaterThan(-1);
  const yaml = /```yaml\n([\s\S]*?)```/.exec(readme.slice(at))![1];
  const tokenFile = path.join(h.dir, 'dkim-relay.token');
  fs.writeFileSync(tokenFile, 'secret\n');
  const configFile = path.join(h.dir, 'prometheus.yml');
  fs.writeFileSync(configFile, yaml.replace('/etc/prometheus/dkim-relay.token', tokenFile));
  const r = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile('/usr/bin/promtool', ['check', 'config', configFile], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr }));
  });
  expect(r.output).toMatch(/SUCCESS/);
  expect(r.code).toBe(0);
});
