// A TLS report is delivered whatever the recipient domain's TLS policy (RFC 8460 5.3), so its
// connection may be unverified. That connection must carry the report only: ordinary mail for
// the same MX host waiting at the same time must get its own connection, which has to meet
// the domain's MTA-STS policy. Here the report's domain enforces MTA-STS and its MX presents a
// certificate for another name: the report goes through, the ordinary message waiting behind
// it (one connection allowed to that host) is deferred and never reaches that MX.
import { PolicyServer, startPolicyServer } from '../helpers/mta-sts-server';
import { DOMAIN, Harness, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { Sink, startSink } from '../helpers/sink';
import { createTestCa } from '../helpers/test-ca';

jest.setTimeout(90_000);

const POLICY_IP = '127.0.0.10';
let policies: PolicyServer;
let h: Harness;
let source: Sink; // 127.0.0.3: MX of src.test, whose TLS report goes to tls@strict.test
let strictMx: Sink; // 127.0.0.4: MX of strict.test, certificate for another name, DATA answered slowly

beforeAll(async () => {
  const ca = await createTestCa();
  source = await startSink({ host: '127.0.0.3' });
  strictMx = await startSink({ host: '127.0.0.4', port: source.port, certificate: await ca.issue(['wrong-name.test']), dataDelayMs: 3000 });
  policies = await startPolicyServer(POLICY_IP, await ca.issue(['mta-sts.default.test']));
  h = await startHarness({
    RELAY_MX_PORT: String(source.port),
    RELAY_DELIVERY_CA_FILE: ca.file,
    RELAY_RETRY_SCHEDULE: '1h',
    RELAY_TLSRPT_INTERVAL: '2s',
    RELAY_DESTINATION_LIMITS: JSON.stringify([{ match: 'mx.strict.test', connections: 1, messagesPerConnection: 10, throttlePause: '15m' }]),
  }, { mtaStsPort: policies.port });
  h.dns.set('src.test', 'MX', [{ exchange: 'mx.src.test', priority: 10 }]);
  h.dns.set('mx.src.test', 'A', ['127.0.0.3']);
  h.dns.set('_smtp._tls.src.test', 'TXT', ['v=TLSRPTv1; rua=mailto:tls@strict.test']);
  h.dns.set('strict.test', 'MX', [{ exchange: 'mx.strict.test', priority: 10 }]);
  h.dns.set('mx.strict.test', 'A', ['127.0.0.4']);
  h.dns.set('_mta-sts.strict.test', 'TXT', ['v=STSv1; id=20261203;']);
  h.dns.set('mta-sts.strict.test', 'A', [POLICY_IP]);
  policies.set('strict.test', { certificate: await ca.issue(['mta-sts.strict.test']), mx: ['mx.strict.test'], mode: 'enforce' });
});

afterAll(async () => {
  await h?.stop();
  await Promise.all([source?.close(), strictMx?.close(), policies?.close()]);
});

test('the unverified connection of a TLS report carries no other mail for that MX', async () => {
  await submit(h, { to: ['user@src.test'], raw: rawMessage(`app@${DOMAIN}`, 'user@src.test', { subject: 'counted for the report' }) });
  await source.waitForMessages(1, 20_000);
  // the report's connection to strict.test's MX is open (its DATA is answered after 3 s) ...
  const deadline = Date.now() + 30_000;
  while (!strictMx.connections.length) {
    if (Date.now() > deadline) throw new Error(`no TLS report connection to strict.test's MX; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // ... when ordinary mail for strict.test arrives and waits for that host's one connection
  const { response } = await submit(h, { to: ['user@strict.test'], raw: rawMessage(`app@${DOMAIN}`, 'user@strict.test', { subject: 'must meet MTA-STS' }) });
  const id = /queued as ([0-9A-Z]+)$/.exec(response)![1];
  const line = await waitForLog(h, (l) => String(l.msg).startsWith('delivery attempt') && l.id === id, 30_000);
  expect(line).toMatchObject({ outcome: 'deferred', tlsFailure: 'certificate-host-mismatch' });
  await new Promise((r) => setTimeout(r, 500));
  const rcpts = strictMx.messages.flatMap((m) => m.rcptTo);
  expect(rcpts).toContain('tls@strict.test'); // the report itself went through (RFC 8460 5.3)
  expect(rcpts).not.toContain('user@strict.test');
});
