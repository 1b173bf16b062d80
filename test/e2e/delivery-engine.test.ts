// The delivery engine end to end, over real SMTP and DNS on loopback, with a retry schedule
// in seconds: retries on the schedule, per-recipient outcomes, bounces (RFC 3464, parsed by
// Python's email package) back at the sender's MX, MX fallback, null MX, connection reuse
// and the per-destination connection limit, a throttling reply pausing its destination,
// a destination that takes no connection left alone for a while, routes reused for their DNS TTL.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { generateKey } from '../../src/dkim/keygen';
import { sendControlRequest } from '../../src/spool/control';
import { verifyDkim } from '../helpers/dkim-verify';
import { DOMAIN, HELO, Harness, logLines, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { Sink, SinkMessage, startSink } from '../helpers/sink';

let h: Harness;
let mx: Sink; // the recipients' MX (127.0.0.3)
let senderMx: Sink; // example.org's MX, where bounces arrive (127.0.0.4)
let limited: Sink; // a destination with a limit of 2 connections (127.0.0.7)

const LIMITS = [
  { match: 'mx.limits.test', connections: 2, messagesPerConnection: 5 },
  { match: '*.throttle.test', throttlePause: '3s' },
];

beforeAll(async () => {
  mx = await startSink({
    host: '127.0.0.3',
    onRcpt(rcpt, attempt) {
      const local = rcpt.split('@')[0].toLowerCase();
      if (local === 'tempfail-twice' && attempt <= 2) return { code: 451, message: '4.3.0 greylisted, try again later' };
      if (local === 'nosuchuser') return { code: 550, message: '5.1.1 no such user here' };
      if (local === 't1' && attempt === 1) return { code: 421, message: '4.7.0 [TS01] Messages from 127.0.0.2 temporarily deferred due to unexpected volume' };
      return undefined;
    },
  });
  senderMx = await startSink({ host: '127.0.0.4', port: mx.port });
  limited = await startSink({ host: '127.0.0.7', port: mx.port });
  h = await startHarness({ RELAY_MX_PORT: String(mx.port), RELAY_RETRY_SCHEDULE: '1s', RELAY_DESTINATION_LIMITS: JSON.stringify(LIMITS) });
  for (const d of ['dest.test', 'retry.test']) {
    h.dns.set(d, 'MX', [{ exchange: `mx.${d}`, priority: 10 }]);
    h.dns.set(`mx.${d}`, 'A', ['127.0.0.3']);
  }
  h.dns.set(DOMAIN, 'MX', [{ exchange: `mx.${DOMAIN}`, priority: 10 }]);
  h.dns.set(`mx.${DOMAIN}`, 'A', ['127.0.0.4']);
  h.dns.set('limits.test', 'MX', [{ exchange: 'mx.limits.test', priority: 10 }]);
  h.dns.set('mx.limits.test', 'A', ['127.0.0.7']);
  h.dns.set('throttle.test', 'MX', [{ exchange: 'mx.throttle.test', priority: 10 }]);
  h.dns.set('mx.throttle.test', 'A', ['127.0.0.3']);
  // A key for the HELO name's domain: bounces from MAILER-DAEMON@relay.example.net are signed.
  const key = await generateKey(path.join(h.dir, 'keys'), { domain: 'example.net', selector: 'b1', algorithm: 'rsa', bits: 2048 });
  h.dns.set(key.recordName, 'TXT', [key.recordValue]);
  h.records[key.recordName] = key.recordValue;
  await h.restart(); // the relay sees (and activates) the new key at start
});

afterAll(async () => {
  await h?.stop();
  await Promise.all([mx?.close(), senderMx?.close(), limited?.close()]);
});

function idOf(response: string): string {
  const m = /queued as ([0-9A-Z]+)$/.exec(response);
  if (!m) throw new Error(`not a "queued as" reply: ${response}`);
  return m[1];
}

async function arrived(s: Sink, match: (m: SinkMessage) => boolean, timeoutMs = 15000): Promise<SinkMessage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = s.messages.find(match);
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`no matching message arrived within ${timeoutMs} ms; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const withSubject = (subject: string) => (m: SinkMessage) => m.data.includes(`\r\nSubject: ${subject}\r\n`);

interface ParsedDsn {
  contentType: string; reportType: string; from: string; to: string; subject: string; autoSubmitted: string;
  defects: string[]; parts: string[]; perMessage: Record<string, string>; perRecipient: Record<string, string>[];
  originalHeaders: string; text: string;
}

function parseDsn(data: Buffer): ParsedDsn {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, '..', 'helpers', 'parse_dsn.py')], { input: data });
  return JSON.parse(out.toString()) as ParsedDsn;
}

function attempts(id: string): Record<string, unknown>[] {
  return logLines(h).filter((l) => l.msg === 'delivery attempt' && l.id === id);
}

test('a 4xx twice, then accepted: delivered on the third attempt, on the schedule, every attempt logged', async () => {
  const { response } = await submit(h, { to: ['tempfail-twice@retry.test'], raw: rawMessage(`app@${DOMAIN}`, 'tempfail-twice@retry.test', { subject: 'retried' }) });
  const id = idOf(response);
  const msg = await arrived(mx, withSubject('retried'));
  expect(msg.rcptTo).toEqual(['tempfail-twice@retry.test']);
  await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  const tries = attempts(id);
  expect(tries.map((a) => a.outcome)).toEqual(['deferred', 'deferred', 'delivered']);
  expect(tries[0].reply).toMatch(/^451 4\.3\.0 greylisted/);
  // 1s schedule with up to 10% jitter
  const times = tries.map((a) => Number(a.time));
  expect(times[1] - times[0]).toBeGreaterThanOrEqual(950);
  expect(times[2] - times[1]).toBeGreaterThanOrEqual(950);
  expect(senderMx.messages.filter(withSubject('retried'))).toHaveLength(0);
});

test('5xx for one of three recipients: two delivered, one RFC 3464 bounce at the sender\'s MX, signed', async () => {
  const to = ['a@dest.test', 'nosuchuser@dest.test', 'c@dest.test'];
  const before = senderMx.messages.length;
  const { response } = await submit(h, { to, raw: rawMessage(`app@${DOMAIN}`, to.join(', '), { subject: 'three recipients' }) });
  const id = idOf(response);
  const delivered = await arrived(mx, withSubject('three recipients'));
  expect(delivered.rcptTo.sort()).toEqual(['a@dest.test', 'c@dest.test']);

  const bounce = (await senderMx.waitForMessages(before + 1, 15000))[before];
  expect(bounce.mailFrom).toBe(''); // the null sender: nothing answers a bounce
  expect(bounce.rcptTo).toEqual([`app@${DOMAIN}`]);
  const dsn = parseDsn(bounce.data);
  expect(dsn.defects).toEqual([]);
  expect(dsn.contentType).toBe('multipart/report');
  expect(dsn.reportType).toBe('delivery-status');
  expect(dsn.parts).toEqual(['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
  expect(dsn.from).toBe(`Mail Delivery System <MAILER-DAEMON@${HELO}>`);
  expect(dsn.to).toBe(`<app@${DOMAIN}>`);
  expect(dsn.autoSubmitted).toBe('auto-replied');
  expect(dsn.perMessage['Reporting-MTA']).toBe(`dns; ${HELO}`);
  expect(Date.parse(dsn.perMessage['Arrival-Date'])).toBeGreaterThan(Date.now() - 60_000);
  expect(dsn.perRecipient).toHaveLength(1);
  expect(dsn.perRecipient[0]).toMatchObject({
    'Final-Recipient': 'rfc822; nosuchuser@dest.test',
    Action: 'failed',
    Status: '5.1.1',
    'Remote-MTA': 'dns; mx.dest.test',
  });
  expect(dsn.perRecipient[0]['Diagnostic-Code']).toMatch(/^smtp; 550 5\.1\.1 no such user here/);
  expect(dsn.originalHeaders).toContain('Subject: three recipients');
  expect(dsn.originalHeaders).toMatch(/DKIM-Signature: .*d=example\.org/s);
  expect(dsn.text).toContain('nosuchuser@dest.test');

  const verdict = await verifyDkim(bounce.data, h.records);
  expect(verdict.ok).toBe(true);
  expect(verdict.signatures[0]).toMatchObject({ d: 'example.net', s: 'b1' });
  const done = await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  expect(done.recipients).toEqual([
    { address: 'a@dest.test', status: 'delivered' },
    { address: 'nosuchuser@dest.test', status: 'failed' },
    { address: 'c@dest.test', status: 'delivered' },
  ]);
});

test('first MX refuses connections: the second MX gets the message in the same attempt', async () => {
  h.dns.set('twomx.test', 'MX', [{ exchange: 'mx1.twomx.test', priority: 10 }, { exchange: 'mx2.twomx.test', priority: 20 }]);
  h.dns.set('mx1.twomx.test', 'A', ['127.0.0.5']); // nothing listens there
  h.dns.set('mx2.twomx.test', 'A', ['127.0.0.3']);
  const { response } = await submit(h, { to: ['x@twomx.test'], raw: rawMessage(`app@${DOMAIN}`, 'x@twomx.test', { subject: 'two mx' }) });
  const id = idOf(response);
  await arrived(mx, withSubject('two mx'));
  await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  expect(attempts(id).map((a) => [a.ip, a.outcome])).toEqual([['127.0.0.5', 'deferred'], ['127.0.0.3', 'delivered']]);
});

test('null MX: bounced at once with status 5.1.10, no connection made', async () => {
  h.dns.set('nullmx.test', 'MX', [{ exchange: '', priority: 0 }]);
  const { response } = await submit(h, { to: ['x@nullmx.test'], raw: rawMessage(`app@${DOMAIN}`, 'x@nullmx.test', { subject: 'to a null mx' }) });
  const id = idOf(response);
  const started = Date.now();
  const bounce = await arrived(senderMx, (m) => m.data.includes('x@nullmx.test'));
  expect(Date.now() - started).toBeLessThan(5000);
  const dsn = parseDsn(bounce.data);
  expect(dsn.perRecipient[0]).toMatchObject({ 'Final-Recipient': 'rfc822; x@nullmx.test', Action: 'failed', Status: '5.1.10' });
  expect(dsn.perRecipient[0]['Diagnostic-Code']).toMatch(/null MX/);
  expect(attempts(id).filter((a) => a.ip)).toEqual([]);
});

test('a route is looked up once while its records\' TTL lasts, and every time when the TTL is 0', async () => {
  const lookups = (name: string) => h.dns.queries.filter((q) => q.name === name).length;
  const sendThree = async (domain: string) => {
    for (let i = 0; i < 3; i++) {
      const { response } = await submit(h, { to: [`x@${domain}`], raw: rawMessage(`app@${DOMAIN}`, `x@${domain}`, { subject: `ttl ${domain} ${i}` }) });
      await waitForLog(h, (l) => l.msg === 'message done' && l.id === idOf(response));
    }
  };
  for (const d of ['ttl30.test', 'ttl0.test']) {
    h.dns.set(d, 'MX', [{ exchange: `mx.${d}`, priority: 10 }]);
    h.dns.set(`mx.${d}`, 'A', ['127.0.0.3']);
  }
  try {
    h.dns.ttl = 30;
    await sendThree('ttl30.test');
  } finally {
    h.dns.ttl = 0;
  }
  await sendThree('ttl0.test');
  expect([lookups('ttl30.test'), lookups('mx.ttl30.test')]).toEqual([1, 1]);
  expect([lookups('ttl0.test'), lookups('mx.ttl0.test')]).toEqual([3, 3]);
});

test('one connection carries several messages; a destination limit of 2 connections holds', async () => {
  const n = 14;
  const subjects = Array.from({ length: n }, (_, i) => `limited ${i}`);
  // submitted 7 at a time, so the relay has more messages than connections
  for (let i = 0; i < n; i += 7) {
    await Promise.all(subjects.slice(i, i + 7).map((subject) => submit(h, { to: ['u@limits.test'], raw: rawMessage(`app@${DOMAIN}`, 'u@limits.test', { subject }) })));
  }
  const got = await limited.waitForMessages(n, 20000);
  expect(got.map((m) => /Subject: (limited \d+)/.exec(m.data.toString())![1]).sort()).toEqual([...subjects].sort());
  expect(limited.openConnections().max).toBeLessThanOrEqual(2);
  const perSession = new Map<string, number>();
  for (const m of got) perSession.set(m.sessionId, (perSession.get(m.sessionId) ?? 0) + 1);
  expect(Math.max(...perSession.values())).toBeGreaterThan(1); // reused
  expect(Math.max(...perSession.values())).toBeLessThanOrEqual(5); // messagesPerConnection
  expect(perSession.size).toBeLessThan(n);
  const onConnection = logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'limits.test').map((l) => Number(l.onConnection));
  expect(Math.max(...onConnection)).toBeGreaterThan(1);
});

test('a throttling 421 pauses the destination: logged once, nothing sent there until the pause ends', async () => {
  const first = await submit(h, { to: ['t1@throttle.test'], raw: rawMessage(`app@${DOMAIN}`, 't1@throttle.test', { subject: 'throttled 1' }) });
  const paused = await waitForLog(h, (l) => l.msg !== undefined && String(l.msg).includes('throttles us'));
  expect(paused).toMatchObject({ level: 40, rule: '*.throttle.test', pauseSeconds: 3 });
  expect(paused.reply).toMatch(/^421 4\.7\.0 \[TS01\]/);
  const pausedAt = Number(paused.time);
  // more mail for the paused destination waits, without an attempt
  await submit(h, { to: ['t2@throttle.test'], raw: rawMessage(`app@${DOMAIN}`, 't2@throttle.test', { subject: 'throttled 2' }) });
  await submit(h, { to: ['t3@throttle.test'], raw: rawMessage(`app@${DOMAIN}`, 't3@throttle.test', { subject: 'throttled 3' }) });
  await Promise.all(['throttled 1', 'throttled 2', 'throttled 3'].map((s) => arrived(mx, withSubject(s), 15000)));
  const throttleAttempts = logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'throttle.test');
  expect(throttleAttempts.filter((a) => a.outcome === 'deferred')).toHaveLength(1);
  for (const a of throttleAttempts.filter((x) => x.outcome === 'delivered')) expect(Number(a.time)).toBeGreaterThanOrEqual(pausedAt + 2900);
  expect(logLines(h).filter((l) => String(l.msg).includes('throttles us'))).toHaveLength(1);
  await waitForLog(h, (l) => l.msg === 'message done' && l.id === idOf(first.response));
});

test('a destination that took no connection is not tried again for each new message: deferred at once, until `queue retry`', async () => {
  h.dns.set('down.test', 'MX', [{ exchange: 'mx.down.test', priority: 10 }]);
  h.dns.set('mx.down.test', 'A', ['127.0.0.8']); // nothing listens there yet
  const first = idOf((await submit(h, { to: ['a@down.test'], raw: rawMessage(`app@${DOMAIN}`, 'a@down.test', { subject: 'down 1' }) })).response);
  const refused = await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.id === first);
  expect(refused).toMatchObject({ outcome: 'deferred', ip: '127.0.0.8' });
  expect(refused.reply).toMatch(/ECONNREFUSED/);
  const later: string[] = [];
  for (const n of [2, 3]) {
    later.push(idOf((await submit(h, { to: [`x${n}@down.test`], raw: rawMessage(`app@${DOMAIN}`, `x${n}@down.test`, { subject: `down ${n}` }) })).response));
  }
  for (const id of later) {
    const held = await waitForLog(h, (l) => l.msg === 'delivery attempt: destination unreachable' && l.id === id);
    expect(held).toMatchObject({ outcome: 'deferred', host: 'mx.down.test', ip: '127.0.0.8' });
    expect(held.reply).toMatch(/^not tried: mx\.down\.test \[127\.0\.0\.8\] took no connection \d+ s ago \(.*ECONNREFUSED/);
  }
  // the first message's retry (1 s schedule) is held the same way: one connection attempt in all
  await waitForLog(h, (l) => l.msg === 'delivery attempt: destination unreachable' && l.id === first);
  const down = await startSink({ host: '127.0.0.8', port: mx.port });
  try {
    const reply = await sendControlRequest(h.config.dataDir, { action: 'retry', all: true });
    expect(reply.ok).toBe(true);
    await Promise.all(['down 1', 'down 2', 'down 3'].map((subject) => arrived(down, withSubject(subject))));
    const tries = logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'down.test');
    expect(tries.filter((a) => a.outcome === 'deferred')).toHaveLength(1);
    expect(tries.filter((a) => a.outcome === 'delivered')).toHaveLength(3);
  } finally {
    await down.close();
  }
});
