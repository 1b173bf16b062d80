// The relay end to end over real SMTP on loopback: a client submits, the relay signs with
// example.org's key, spools and delivers from 127.0.0.2 to a sink MX found through a real
// DNS server; python3-dkim verifies what the sink received.
import { addUser } from '../../src/users/store';
import { verifyDkim } from '../helpers/dkim-verify';
import { DOMAIN, HELO, Harness, logLines, RELAY_IP, rawMessage, startWithSink, submit, submitError, waitForLog } from '../helpers/relay-harness';
import { Sink, startSink } from '../helpers/sink';

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink());
  await addUser(h.config.usersFile, { name: 'app1', domains: [DOMAIN], password: 'correct horse battery' });
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

async function nextMessage(before: number) {
  const all = await sink.waitForMessages(before + 1, 15000);
  return all[before];
}

test('a submitted message arrives signed, from the fixed IP with the fixed HELO', async () => {
  const before = sink.messages.length;
  const { response } = await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'first' }) });
  expect(response).toMatch(/^250 2\.0\.0 queued as [0-9A-Z]+$/);

  const msg = await nextMessage(before);
  expect(msg.remoteAddress).toBe(RELAY_IP);
  expect(msg.helo).toBe(HELO);
  expect(msg.secure).toBe(true);
  expect(msg.mailFrom).toBe(`app@${DOMAIN}`);
  expect(msg.rcptTo).toEqual(['user@dest.test']);

  const verdict = await verifyDkim(msg.data, h.records);
  expect(verdict.signatures).toHaveLength(1);
  expect(verdict.ok).toBe(true);
  const sig = verdict.signatures[0];
  expect(sig).toMatchObject({ d: DOMAIN, s: 's1', a: 'rsa-sha256' });
  expect(sig.h.filter((name) => name === 'from')).toHaveLength(2);
  expect(msg.data.toString()).toMatch(/c=relaxed\/relaxed/);
  expect(msg.data.toString()).not.toMatch(/[;\s]l=\d/);

  const tampered = Buffer.from(msg.data.toString().replace('this is a test', 'this is a tost'));
  expect((await verifyDkim(tampered, h.records)).ok).toBe(false);

  const accepted = logLines(h).find((l) => l.msg === 'accepted' && response.endsWith(String(l.id)));
  expect(accepted).toMatchObject({ client: '127.0.0.1', recipients: 1, domain: DOMAIN, selectors: ['s1'] });
  await waitForLog(h, (l) => l.msg === 'delivery attempt' && response.endsWith(String(l.id)) && l.ip === '127.0.0.3' && /^250/.test(String(l.reply)));
});

test('Date and Message-ID are added when missing, before signing', async () => {
  const before = sink.messages.length;
  await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { noDate: true, noMessageId: true }) });
  const msg = await nextMessage(before);
  const text = msg.data.toString();
  expect(text).toMatch(/\r\nDate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\n/);
  expect(text).toMatch(new RegExp(`\\r\\nMessage-ID: <[0-9a-f-]+@${HELO}>\\r\\n`));
  expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
});

test('a message with LF line endings is signed as delivered (CRLF)', async () => {
  const before = sink.messages.length;
  await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test').replace(/\r\n/g, '\n') });
  const msg = await nextMessage(before);
  expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
});

test('STARTTLS + AUTH PLAIN and LOGIN from an untrusted address relay', async () => {
  for (const method of ['PLAIN', 'LOGIN'] as const) {
    const before = sink.messages.length;
    const { response } = await submit(h, { localAddress: '127.0.0.9', auth: { user: 'app1', pass: 'correct horse battery', method } });
    expect(response).toMatch(/^250 2\.0\.0 queued as/);
    expect((await verifyDkim((await nextMessage(before)).data, h.records)).ok).toBe(true);
  }
});

describe('refusals', () => {
  // 127.0.0.9 stands for a remote client: outside the trusted and plain-AUTH networks.
  beforeAll(() => h.restart({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32', RELAY_PLAIN_AUTH_NETWORKS: '127.0.0.1/32', RELAY_MAX_SIZE: '200KB' }));
  afterAll(() => h.restart());

  test('wrong password: 535 5.7.8', async () => {
    const r = await submitError(h, { localAddress: '127.0.0.9', auth: { user: 'app1', pass: 'wrong password' } });
    expect(r.code).toBe(535);
    expect(r.response).toMatch(/^535 5\.7\.8 /);
  });

  test('no AUTH from an untrusted address: 530 5.7.0', async () => {
    const r = await submitError(h, { localAddress: '127.0.0.9' });
    expect(r.code).toBe(530);
    expect(r.response).toMatch(/^530 5\.7\.0 authentication required/);
  });

  test('AUTH before STARTTLS from a remote address is neither offered nor accepted', async () => {
    const r = await submitError(h, { localAddress: '127.0.0.9', ignoreTLS: true, auth: { user: 'app1', pass: 'correct horse battery' } });
    // nodemailer does not even try: the server offered no AUTH before TLS
    expect(r.response).toMatch(/authentication|AUTH|STARTTLS/i);
    expect(r.code === undefined || r.code >= 500).toBe(true);
  });

  test('AUTH from loopback works without TLS when loopback is a plain-AUTH network', async () => {
    const { response } = await submit(h, { localAddress: '127.0.0.1', ignoreTLS: true, auth: { user: 'app1', pass: 'correct horse battery' } });
    expect(response).toMatch(/^250 2\.0\.0/);
  });

  test('an authenticated user cannot use a foreign sender domain', async () => {
    const r = await submitError(h, { localAddress: '127.0.0.9', from: 'ceo@bank.test', auth: { user: 'app1', pass: 'correct horse battery' } });
    expect(r.code).toBe(550);
    expect(r.response).toMatch(/^550 5\.7\.1 user app1 is not allowed to send as bank\.test \(MAIL FROM\)/);
  });

  test('an authenticated user cannot spoof the From header', async () => {
    const r = await submitError(h, {
      localAddress: '127.0.0.9', auth: { user: 'app1', pass: 'correct horse battery' },
      raw: rawMessage('ceo@bank.test', 'user@dest.test'),
    });
    expect(r.code).toBe(550);
    expect(r.response).toMatch(/^550 5\.7\.1 user app1 is not allowed to send as bank\.test \(From header\)/);
  });

  test('an oversized message: 552 5.3.4 naming the limit, nothing spooled', async () => {
    const r = await submitError(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { body: ('x'.repeat(76) + '\r\n').repeat(4000) }) });
    expect(r.code).toBe(552);
    expect(r.response).toMatch(/^552 5\.3\.4 .*204800/);
    expect(h.relay.queue.size).toBe(0);
  });

  test('a domain without a DKIM key: 550 5.7.1 with the keygen command', async () => {
    const r = await submitError(h, { from: 'a@nokey.test', raw: rawMessage('a@nokey.test', 'user@dest.test') });
    expect(r.code).toBe(550);
    expect(r.response).toContain('no DKIM key for nokey.test');
    expect(r.response).toContain('dkim-relay keygen --domain nokey.test');
  });

  test('two From headers: 550 5.6.0', async () => {
    const r = await submitError(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { extraHeaders: 'From: other@example.org' }) });
    expect(r.code).toBe(550);
    expect(r.response).toMatch(/^550 5\.6\.0 the message has 2 From headers/);
  });
});

test('MX fallback: the first MX refuses connections, the second gets the message', async () => {
  h.dns.set('fallback.test', 'MX', [{ exchange: 'mx1.fallback.test', priority: 10 }, { exchange: 'mx2.fallback.test', priority: 20 }]);
  h.dns.set('mx1.fallback.test', 'A', ['127.0.0.5']); // nothing listens there
  h.dns.set('mx2.fallback.test', 'A', ['127.0.0.3']);
  const before = sink.messages.length;
  const { response } = await submit(h, { to: ['someone@fallback.test'], raw: rawMessage(`app@${DOMAIN}`, 'someone@fallback.test') });
  const msg = await nextMessage(before);
  expect(msg.rcptTo).toEqual(['someone@fallback.test']);
  await waitForLog(h, (l) => l.msg === 'message done' && response.endsWith(String(l.id)));
  const attempts = logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'fallback.test');
  expect(attempts.map((a) => a.ip)).toEqual(['127.0.0.5', '127.0.0.3']);
  expect(attempts[0].outcome).toBe('deferred');
});

test('a restart with messages in the spool delivers them', async () => {
  h.dns.set('later.test', 'MX', [{ exchange: 'mx.later.test', priority: 10 }]);
  h.dns.set('mx.later.test', 'A', ['127.0.0.6']);
  const { response } = await submit(h, { to: ['a@later.test'], raw: rawMessage(`app@${DOMAIN}`, 'a@later.test') });
  const id = response.split(' ').pop();
  await h.restart({ RELAY_RETRY_SCHEDULE: '1s' });
  const late = await startSink({ host: '127.0.0.6', port: sink.port });
  try {
    // counted in the background (a start reads no message): logged shortly after
    await waitForLog(h, (l) => l.msg === 'picked up queued messages from the spool' && l.messages === 1);
    const [msg] = await late.waitForMessages(1, 15000);
    expect(msg.rcptTo).toEqual(['a@later.test']);
    expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
    await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  } finally {
    await late.close();
  }
});

test('a null MX domain fails at once, without a connection', async () => {
  h.dns.set('nomail.test', 'MX', [{ exchange: '', priority: 0 }]);
  const { response } = await submit(h, { to: ['x@nomail.test'], raw: rawMessage(`app@${DOMAIN}`, 'x@nomail.test') });
  const id = response.split(' ').pop();
  const done = await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  expect(done).toMatchObject({ recipients: [{ address: 'x@nomail.test', status: 'failed' }] });
  expect(logLines(h).some((l) => l.id === id && String(l.reply).includes('null MX'))).toBe(true);
});

test('an SMTPUTF8 recipient address is accepted and relayed with SMTPUTF8', async () => {
  const before = sink.messages.length;
  const { connectRaw } = await import('../helpers/raw-smtp');
  const s = await connectRaw(h.relay.ports.starttls);
  await s.reply();
  expect(await s.command('EHLO client.test')).toMatch(/SMTPUTF8/);
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}> SMTPUTF8`)).toMatch(/^250 /);
  expect(await s.command(Buffer.from('RCPT TO:<jürgen@dest.test>', 'utf8'))).toMatch(/^250 /);
  expect(await s.command('DATA')).toMatch(/^354 /);
  s.write(Buffer.from(rawMessage(`app@${DOMAIN}`, 'jürgen@dest.test', { subject: 'utf8 address' }) + '\r\n.\r\n', 'utf8'));
  expect(await s.reply()).toMatch(/^250 2\.0\.0 queued as/);
  s.end();
  const msg = await nextMessage(before);
  expect(msg.rcptTo).toEqual(['jürgen@dest.test']);
  expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
});
