// Delivery that follows the protocol (issue 17), over real SMTP: what the client declared in
// MAIL FROM (BODY=8BITMIME, SMTPUTF8) reaches the MX when it offers it, survives a restart,
// and a UTF-8 address to an MX without SMTPUTF8 fails with 5.6.7 and a bounce; an 8-bit body
// to an MX without 8BITMIME goes as it is. The Received field, internationalized domains
// routed by their A-labels, and MX hosts of equal preference taking turns at being first.
import { verifyDkim } from '../helpers/dkim-verify';
import { connectRaw } from '../helpers/raw-smtp';
import { DOMAIN, HELO, Harness, rawMessage, startHarness, submit } from '../helpers/relay-harness';
import { Sink, SinkMessage, startSink } from '../helpers/sink';
import { addUser } from '../../src/users/store';

let h: Harness;
/** dest.test: offers 8BITMIME and SMTPUTF8 */
let full: Sink;
/** old.test: offers neither */
let old: Sink;
/** xn--bcher-kva.test (bücher.test) */
let idn: Sink;
/** pair.test: two MX hosts of preference 10 */
let pairA: Sink;
let pairB: Sink;
/** example.org: bounces to the sender */
let bounces: Sink;
/** While false, full refuses jürgen@dest.test with 451 (the restart test). */
let restarted = true;

const SENDER = `app@${DOMAIN}`;

beforeAll(async () => {
  full = await startSink({
    host: '127.0.0.3',
    onRcpt: (rcpt) => (!restarted && rcpt === 'later@dest.test' ? { code: 451, message: '4.3.0 try again later' } : undefined),
  });
  const port = full.port; // one MX port for all sinks (each on its own address)
  old = await startSink({ host: '127.0.0.4', port, hide8BITMIME: true, hideSMTPUTF8: true });
  idn = await startSink({ host: '127.0.0.5', port });
  pairA = await startSink({ host: '127.0.0.6', port });
  pairB = await startSink({ host: '127.0.0.7', port });
  bounces = await startSink({ host: '127.0.0.8', port });
  h = await startHarness({ RELAY_MX_PORT: String(port), RELAY_MESSAGES_PER_CONNECTION: '1' });
  const mx = (domain: string, ip: string) => {
    h.dns.set(domain, 'MX', [{ exchange: `mx.${domain}`, priority: 10 }]);
    h.dns.set(`mx.${domain}`, 'A', [ip]);
  };
  mx('dest.test', '127.0.0.3');
  mx('old.test', '127.0.0.4');
  mx('xn--bcher-kva.test', '127.0.0.5');
  mx(DOMAIN, '127.0.0.8');
  h.dns.set('pair.test', 'MX', [{ exchange: 'mx1.pair.test', priority: 10 }, { exchange: 'mx2.pair.test', priority: 10 }]);
  h.dns.set('mx1.pair.test', 'A', ['127.0.0.6']);
  h.dns.set('mx2.pair.test', 'A', ['127.0.0.7']);
  await addUser(h.config.usersFile, { name: 'app1', domains: [DOMAIN], password: 'app1 password' });
}, 30_000);

afterAll(async () => {
  await h?.stop();
  for (const s of [full, old, idn, pairA, pairB, bounces]) await s?.close();
});

/**
 * Submits over a raw session from 127.0.0.1 (trusted, plain ESMTP) with exactly the MAIL FROM
 * parameters given; returns the queue ID.
 */
async function sendRaw(opts: { params?: string; to: string[]; message: Buffer | string; ehlo?: string }): Promise<string> {
  const s = await connectRaw(h.relay.ports.starttls, '127.0.0.1');
  try {
    expect(await s.reply()).toMatch(/^220 /);
    expect(await s.command(opts.ehlo ?? 'EHLO client.test')).toMatch(/^250/);
    expect(await s.command(`MAIL FROM:<${SENDER}>${opts.params ? ` ${opts.params}` : ''}`)).toMatch(/^250 /);
    for (const rcpt of opts.to) expect(await s.command(Buffer.from(`RCPT TO:<${rcpt}>`, 'utf8'))).toMatch(/^250 /);
    expect(await s.command('DATA')).toMatch(/^354 /);
    const data = Buffer.isBuffer(opts.message) ? opts.message : Buffer.from(opts.message, 'utf8');
    const reply = await s.command(Buffer.concat([data, Buffer.from('\r\n.')]));
    expect(reply).toMatch(/^250 2\.0\.0 queued as /);
    return /queued as (\S+)/.exec(reply)![1];
  } finally {
    s.end();
  }
}

function messageFor(sink: Sink, rcpt: string, subject: string): Promise<SinkMessage> {
  const find = () => sink.messages.find((m) => m.rcptTo.includes(rcpt) && m.data.toString('utf8').includes(`Subject: ${subject}\r\n`));
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      const m = find();
      if (m) return resolve(m);
      if (Date.now() - started > 15_000) return reject(new Error(`no message "${subject}" for ${rcpt} at ${sink.host}`));
      setTimeout(check, 50);
    };
    check();
  });
}

/** The header section of a delivered message, unfolded field by field. */
function fields(data: Buffer): string[] {
  const head = data.subarray(0, data.indexOf('\r\n\r\n')).toString('utf8');
  return head.split(/\r\n(?![ \t])/);
}

const EIGHT_BIT_BODY = 'Grüße aus Köln – 8 bit, no transfer encoding.\r\n';

describe('MAIL FROM parameters', () => {
  test('BODY=8BITMIME and SMTPUTF8 reach an MX that offers them, for a UTF-8 recipient', async () => {
    await sendRaw({ params: 'BODY=8BITMIME SMTPUTF8', to: ['jürgen@dest.test'], message: rawMessage(SENDER, 'jürgen@dest.test', { subject: 'declared both', body: EIGHT_BIT_BODY }) });
    const msg = await messageFor(full, 'jürgen@dest.test', 'declared both');
    expect(msg.mailParams).toMatchObject({ BODY: '8BITMIME', SMTPUTF8: true });
    expect(msg.data.toString('utf8')).toContain(EIGHT_BIT_BODY);
    expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
  });

  test('SMTPUTF8 declared for UTF-8 header fields with ASCII addresses is passed on too', async () => {
    await sendRaw({ params: 'SMTPUTF8', to: ['user@dest.test'], message: rawMessage(SENDER, 'user@dest.test', { subject: 'Grüße utf8 header' }) });
    const msg = await messageFor(full, 'user@dest.test', 'Grüße utf8 header');
    expect(msg.mailParams.SMTPUTF8).toBe(true);
    expect(msg.mailParams.BODY).toBeUndefined();
  });

  test('nothing declared: neither parameter is sent', async () => {
    await sendRaw({ to: ['user@dest.test'], message: rawMessage(SENDER, 'user@dest.test', { subject: 'declared none' }) });
    const msg = await messageFor(full, 'user@dest.test', 'declared none');
    expect(msg.mailParams.BODY).toBeUndefined();
    expect(msg.mailParams.SMTPUTF8).toBeUndefined();
  });

  test('the declared parameters are kept in the spool: a retry after a restart still sends them', async () => {
    restarted = false;
    const rejectionsBefore = full.rejections.length;
    await sendRaw({ params: 'BODY=8BITMIME', to: ['later@dest.test'], message: rawMessage(SENDER, 'later@dest.test', { subject: 'after restart', body: EIGHT_BIT_BODY }) });
    const until = Date.now() + 15_000;
    while (full.rejections.length === rejectionsBefore && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(full.rejections.length).toBeGreaterThan(rejectionsBefore);
    await h.restart({ RELAY_MX_PORT: String(full.port), RELAY_MESSAGES_PER_CONNECTION: '1' });
    restarted = true;
    const msg = await messageFor(full, 'later@dest.test', 'after restart');
    expect(msg.mailParams.BODY).toBe('8BITMIME');
  }, 30_000);

  test('a UTF-8 recipient to an MX without SMTPUTF8 fails with 5.6.7 and a bounce; the ASCII one is delivered', async () => {
    await sendRaw({ params: 'SMTPUTF8', to: ['jürgen@old.test', 'user@old.test'], message: rawMessage(SENDER, 'user@old.test', { subject: 'no smtputf8 there' }) });
    const msg = await messageFor(old, 'user@old.test', 'no smtputf8 there');
    expect(msg.rcptTo).toEqual(['user@old.test']);
    expect(msg.mailParams.SMTPUTF8).toBeUndefined();
    expect(old.messages.some((m) => m.rcptTo.some((r) => r.includes('rgen')))).toBe(false);
    const bounce = await new Promise<SinkMessage>((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        const m = bounces.messages.find((b) => b.data.toString('utf8').includes('no smtputf8 there'));
        if (m) return resolve(m);
        if (Date.now() - started > 15_000) return reject(new Error('no bounce'));
        setTimeout(check, 50);
      };
      check();
    });
    expect(bounce.mailFrom).toBe('');
    expect(bounce.rcptTo).toEqual([SENDER]);
    const text = bounce.data.toString('utf8');
    expect(text).toMatch(/Status: 5\.6\.7/);
    expect(text).toMatch(/rgen@old\.test/);
    expect(text).not.toMatch(/Final-Recipient: rfc822; ?user@old\.test/);
  });

  test('an 8-bit message to an MX without 8BITMIME is delivered as it is (no BODY, same bytes, signature intact)', async () => {
    await sendRaw({ params: 'BODY=8BITMIME', to: ['user@old.test'], message: rawMessage(SENDER, 'user@old.test', { subject: 'eight bit to old', body: EIGHT_BIT_BODY }) });
    const msg = await messageFor(old, 'user@old.test', 'eight bit to old');
    expect(msg.mailParams.BODY).toBeUndefined();
    expect(msg.data.toString('utf8')).toContain(EIGHT_BIT_BODY);
    expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
  });
});

describe('Received field', () => {
  test('ESMTPSA with TLS version and cipher, queue ID, one recipient; above the signed fields; the signature verifies', async () => {
    const { response } = await submit(h, { auth: { user: 'app1', pass: 'app1 password' }, raw: rawMessage(SENDER, 'user@dest.test', { subject: 'trace authenticated' }) });
    const id = /queued as (\S+)/.exec(response)![1];
    const msg = await messageFor(full, 'user@dest.test', 'trace authenticated');
    const all = fields(msg.data);
    const received = all.filter((f) => /^Received:/i.test(f));
    expect(received).toHaveLength(1);
    const field = received[0];
    expect(field).toMatch(new RegExp(
      '^Received: from [!-~]+ \\(\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby ' + HELO.replace(/\./g, '\\.') +
      ' \\(dkim-relay\\) with ESMTPSA \\(TLSv1\\.[23] [A-Z0-9_-]+\\)\\r\\n\\tid ' + id +
      ' for <user@dest\\.test>;\\r\\n\\t(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d{2} [A-Z][a-z]{2} \\d{4} \\d{2}:\\d{2}:\\d{2} [+-]\\d{4}$'));
    // order: the signatures the relay puts in front, then Received, then the client's fields
    const names = all.map((f) => f.slice(0, f.indexOf(':')).toLowerCase());
    expect(names[0]).toBe('dkim-signature');
    expect(names.indexOf('received')).toBeLessThan(names.indexOf('from'));
    const verdict = await verifyDkim(msg.data, h.records);
    expect(verdict.ok).toBe(true);
    expect(verdict.signatures.every((s) => !s.h.includes('received'))).toBe(true);
  });

  test('plain ESMTP from a trusted network: no TLS comment, no "for" with two recipients, the EHLO name sanitized', async () => {
    // smtp-server takes up to 300 characters without control characters; the field gets 100
    const ehlo = `EHLO evil;(name)"x\\\u00e9${'a'.repeat(250)}`;
    await sendRaw({ ehlo, to: ['user@dest.test', 'other@dest.test'], message: rawMessage(SENDER, 'user@dest.test', { subject: 'trace plain' }) });
    const msg = await messageFor(full, 'user@dest.test', 'trace plain');
    const field = fields(msg.data).find((f) => /^Received:/i.test(f))!;
    expect(field).toMatch(/^Received: from evil\?\?name\?\?x\?\?a{85}\.\.\. \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(dkim-relay\) with ESMTP\r\n\tid \S+;\r\n\t\w{3}, /);
    expect(field).not.toMatch(/ for </);
    expect(field.length).toBeLessThan(300);
    expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
  });
});

test('an internationalized recipient domain is routed by its A-label MX; RCPT TO carries the address as given', async () => {
  await sendRaw({ params: 'SMTPUTF8', to: ['jürgen@bücher.test'], message: rawMessage(SENDER, 'jürgen@bücher.test', { subject: 'idn route' }) });
  const msg = await messageFor(idn, 'jürgen@bücher.test', 'idn route');
  expect(msg.rcptTo).toEqual(['jürgen@bücher.test']);
  expect(msg.mailParams.SMTPUTF8).toBe(true);
});

test('MX hosts of equal preference: each is tried first over 40 deliveries (one connection per message)', async () => {
  const before = { a: pairA.connections.length, b: pairB.connections.length, msgs: pairA.messages.length + pairB.messages.length };
  for (let i = 0; i < 40; i++) {
    await sendRaw({ to: ['user@pair.test'], message: rawMessage(SENDER, 'user@pair.test', { subject: `pair ${i}` }) });
  }
  const until = Date.now() + 30_000;
  while (pairA.messages.length + pairB.messages.length - before.msgs < 40 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  expect(pairA.messages.length + pairB.messages.length - before.msgs).toBe(40);
  // Both accept, so a connection is only ever made to the host tried first. Each host is
  // first with probability 1/2: both at least once in 40 fails by chance with p = 2^-39.
  const a = pairA.connections.length - before.a;
  const b = pairB.connections.length - before.b;
  expect(a).toBeGreaterThan(0);
  expect(b).toBeGreaterThan(0);
  expect(a + b).toBe(40);
}, 60_000);

test('submission.hideClient (RELAY_HIDE_CLIENT) leaves the client\'s name and address out of the Received field', async () => {
  await h.restart({ RELAY_MX_PORT: String(full.port), RELAY_MESSAGES_PER_CONNECTION: '1', RELAY_HIDE_CLIENT: 'true' });
  await sendRaw({ ehlo: 'EHLO secret-client.test', to: ['user@dest.test'], message: rawMessage(SENDER, 'user@dest.test', { subject: 'trace hidden' }) });
  const msg = await messageFor(full, 'user@dest.test', 'trace hidden');
  const field = fields(msg.data).find((f) => /^Received:/i.test(f))!;
  expect(field).toMatch(/^Received: by \S+ \(dkim-relay\) with ESMTP\r\n\tid \S+ for <user@dest\.test>;\r\n\t\w{3}, /);
  expect(msg.data.toString('latin1')).not.toContain('secret-client');
  expect(field).not.toContain('127.0.0.1');
  expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
}, 30_000);
