// Delivery modes and delivery trouble, end to end over real SMTP and DNS on loopback:
// smarthost, the implicit-TLS submission port, relaying unsigned mail by setting, a
// temporary failure retried, a permanent failure for one recipient of two, an MX whose
// STARTTLS breaks, an MX certificate that does not verify, malformed messages refused, a
// spool that cannot be written, and a queued message damaged on disk.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { verifyDkim } from '../helpers/dkim-verify';
import { DOMAIN, Harness, logLines, rawMessage, startWithSink, submit, submitError, waitForLog } from '../helpers/relay-harness';
import { freePort, Sink, SinkMessage, startSink } from '../helpers/sink';

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({ RELAY_RETRY_SCHEDULE: '1s' }, {
    onRcpt(rcpt, attempt) {
      const local = rcpt.split('@')[0].toLowerCase();
      if (local === 'tempfail-once' && attempt === 1) return { code: 451, message: '4.3.0 greylisted, try again later' };
      if (local === 'nosuchuser') return { code: 550, message: '5.1.1 no such user here' };
      return undefined;
    },
  }));
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

function idOf(response: string): string {
  const m = /queued as ([0-9A-Z]+)$/.exec(response);
  if (!m) throw new Error(`not a "queued as" reply: ${response}`);
  return m[1];
}

async function arrived(s: { messages: SinkMessage[] }, subject: string, timeoutMs = 15000): Promise<SinkMessage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = s.messages.find((m) => m.data.includes(`\r\nSubject: ${subject}\r\n`));
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`no message with subject "${subject}" arrived within ${timeoutMs} ms; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitFor(done: () => boolean, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`still not so after ${timeoutMs} ms; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function attemptsFor(id: string, recipient?: string): Record<string, unknown>[] {
  return logLines(h).filter((l) => l.msg === 'delivery attempt' && l.id === id && (recipient === undefined || l.recipient === recipient));
}

describe('a queued message damaged on disk', () => {
  afterAll(() => h.restart());

  test('is set aside at the next start with an error line naming it, and not sent', async () => {
    const closed = await freePort(); // nothing listens there: every attempt is deferred
    await h.restart({ RELAY_SMARTHOST: `127.0.0.8:${closed}` });
    const { response } = await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'damaged' }) });
    const id = idOf(response);
    await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.id === id && l.outcome === 'deferred');
    // What a file system that writes the size before the data can leave after a crash.
    const file = path.join(h.config.dataDir, 'spool', `${id}.eml`);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from('X'), 0, 1, 10);
    fs.closeSync(fd);

    await h.restart({ RELAY_SMARTHOST: `127.0.0.8:${closed}` });
    const line = await waitForLog(h, (l) => String(l.msg).startsWith('a queued message does not match its checksum'));
    expect(line.level).toBe(50);
    expect(line.file).toBe(path.join(h.config.dataDir, 'spool-damaged', `${id}.eml`));
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(path.join(h.config.dataDir, 'spool-damaged', `${id}.eml`))).toBe(true);
    expect(((await h.relay.queue.allEnvelopes(10_000)) ?? []).map((e) => e.id)).not.toContain(id);
  });
});

describe('smarthost', () => {
  let smarthost: Sink;
  beforeAll(async () => {
    smarthost = await startSink({ host: '127.0.0.8', name: 'smarthost.test' });
    await h.restart({ RELAY_SMARTHOST: `127.0.0.8:${smarthost.port}` });
  });
  afterAll(async () => {
    await h.restart();
    await smarthost.close();
  });

  test('everything goes to the smarthost, whatever the MX: two domains without any DNS record', async () => {
    const subject = 'via smarthost';
    const to = ['a@no-dns-one.test', 'b@no-dns-two.test'];
    const before = sink.messages.length;
    const { response } = await submit(h, { to, raw: rawMessage(`app@${DOMAIN}`, to.join(', '), { subject }) });
    const msg = await arrived(smarthost, subject);
    expect(msg.rcptTo.sort()).toEqual(to);
    expect(msg.remoteAddress).toBe('127.0.0.2');
    expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
    const done = await waitForLog(h, (l) => l.msg === 'message done' && l.id === idOf(response));
    expect(done.recipients).toEqual(expect.arrayContaining(to.map((address) => ({ address, status: 'delivered' }))));
    expect(attemptsFor(idOf(response)).every((l) => l.ip === '127.0.0.8')).toBe(true);
    expect(sink.messages.length).toBe(before); // the MX sink saw nothing
  });

  test('a recipient whose domain has an MX also goes to the smarthost', async () => {
    const subject = 'smarthost despite MX';
    const before = sink.messages.length;
    await submit(h, { to: ['user@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject }) });
    const msg = await arrived(smarthost, subject);
    expect(msg.rcptTo).toEqual(['user@dest.test']);
    expect(sink.messages.length).toBe(before);
  });
});

describe('implicit TLS submission port', () => {
  beforeAll(async () => {
    await h.restart({ RELAY_SUBMISSION_TLS_PORT: String(await freePort()) });
  });
  afterAll(() => h.restart());

  test('a client with secure: true submits; the message is delivered and verifies', async () => {
    expect(h.relay.ports.tls).toBeGreaterThan(0);
    const subject = 'implicit tls';
    const { response } = await submit(h, { port: h.relay.ports.tls, secure: true, raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject }) });
    expect(response).toMatch(/^250 2\.0\.0 queued as /);
    expect((await verifyDkim((await arrived(sink, subject)).data, h.records)).ok).toBe(true);
  });

  test('the implicit-TLS port does not talk SMTP in clear', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: h.relay.ports.tls! });
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    await new Promise<void>((resolve) => {
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      setTimeout(() => { socket.destroy(); resolve(); }, 1000);
    });
    expect(Buffer.concat(received).toString('latin1')).not.toMatch(/^220 /);
  });
});

describe('RELAY_UNSIGNED_POLICY=relay', () => {
  beforeAll(() => h.restart({ RELAY_UNSIGNED_POLICY: 'relay' }));
  afterAll(() => h.restart());

  test('mail of a domain without a key is delivered unsigned, with a warning in the log', async () => {
    const subject = 'unsigned by policy';
    const { response } = await submit(h, { from: 'app@nokey.test', raw: rawMessage('app@nokey.test', 'user@dest.test', { subject }) });
    expect(response).toMatch(/^250 2\.0\.0 queued as /);
    const msg = await arrived(sink, subject);
    expect(msg.mailFrom).toBe('app@nokey.test');
    expect(msg.data.toString('latin1')).not.toMatch(/^DKIM-Signature:/im);
    const warning = logLines(h).find((l) => l.level === 40 && /unsigned/i.test(String(l.msg)) && /nokey\.test/.test(JSON.stringify(l)));
    expect(warning).toBeDefined();
  });

  test('mail of a domain with a key is still signed', async () => {
    const subject = 'signed under relay policy';
    await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject }) });
    expect((await verifyDkim((await arrived(sink, subject)).data, h.records)).ok).toBe(true);
  });
});

test('451 on the first attempt, accepted on the second: delivered after the retry, two attempts logged', async () => {
  const subject = 'greylisted once';
  const { response } = await submit(h, { to: ['tempfail-once@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'tempfail-once@dest.test', { subject }) });
  const id = idOf(response);
  const msg = await arrived(sink, subject);
  expect(msg.rcptTo).toEqual(['tempfail-once@dest.test']);
  expect((await verifyDkim(msg.data, h.records)).ok).toBe(true);
  await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  const attempts = attemptsFor(id, 'tempfail-once@dest.test');
  expect(attempts.map((a) => a.outcome)).toEqual(['deferred', 'delivered']);
  expect(String(attempts[0].reply)).toMatch(/^451 4\.3\.0 greylisted/);
  expect(sink.rejections.filter((r) => r.rcptTo[0] === 'tempfail-once@dest.test')).toHaveLength(1);
});

test('550 for one of two recipients: the other is delivered, the refused one is logged as failed', async () => {
  const subject = 'one of two refused';
  const to = ['nosuchuser@dest.test', 'someone@dest.test'];
  const { response } = await submit(h, { to, raw: rawMessage(`app@${DOMAIN}`, to.join(', '), { subject }) });
  const id = idOf(response);
  const msg = await arrived(sink, subject);
  expect(msg.rcptTo).toEqual(['someone@dest.test']);
  const done = await waitForLog(h, (l) => l.msg === 'message done' && l.id === id);
  expect(done.recipients).toEqual(expect.arrayContaining([
    { address: 'nosuchuser@dest.test', status: 'failed' },
    { address: 'someone@dest.test', status: 'delivered' },
  ]));
  const refused = attemptsFor(id, 'nosuchuser@dest.test');
  expect(refused).toHaveLength(1); // a 5xx is not retried
  expect(refused[0].outcome).toBe('failed');
  expect(String(refused[0].reply)).toMatch(/^550 5\.1\.1 no such user/);
  expect(logLines(h).some((l) => l.level === 40 && l.recipient === 'nosuchuser@dest.test' && /550/.test(String(l.reply)))).toBe(true);
});

test('an MX certificate that does not verify (self-signed, other name) does not stop delivery over TLS', async () => {
  // the sink's certificate is self-signed and names mx.sink.test, not mx.dest.test
  const subject = 'unverifiable certificate';
  await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject }) });
  const msg = await arrived(sink, subject);
  expect(msg.secure).toBe(true);
});

/**
 * An MX that offers STARTTLS and then breaks the handshake (answers 220, then sends bytes
 * that are not TLS and closes). A client that does not use STARTTLS gets a plain session
 * that accepts everything. Just enough SMTP for nodemailer.
 */
interface BrokenTlsMx { starttls: number; messages: { rcptTo: string[]; data: Buffer }[]; close(): Promise<void> }

async function startBrokenTlsMx(host: string, port: number): Promise<BrokenTlsMx> {
  const mx: BrokenTlsMx = { starttls: 0, messages: [], close: async () => undefined };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let inData = false;
    let rcptTo: string[] = [];
    socket.write('220 broken-tls.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const data = Buffer.from(buffer.subarray(0, end + 2).toString('latin1').replace(/\r\n\.\./g, '\r\n.'), 'latin1');
          buffer = buffer.subarray(end + 5);
          inData = false;
          mx.messages.push({ rcptTo, data });
          rcptTo = [];
          socket.write('250 2.0.0 ok\r\n');
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffer.subarray(0, eol).toString('latin1');
        buffer = buffer.subarray(eol + 2);
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') socket.write('250-broken-tls.test\r\n250-8BITMIME\r\n250 STARTTLS\r\n');
        else if (verb === 'HELO') socket.write('250 broken-tls.test\r\n');
        else if (verb === 'STARTTLS') {
          mx.starttls += 1;
          socket.write('220 2.0.0 go ahead\r\n');
          socket.end('this is not a TLS server hello\r\n');
          return;
        } else if (verb === 'MAIL' || verb === 'RSET' || verb === 'NOOP') socket.write('250 2.0.0 ok\r\n');
        else if (verb === 'RCPT') {
          rcptTo.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          socket.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n');
          return;
        } else socket.write('502 5.5.1 not implemented\r\n');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  mx.close = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return mx;
}

test('an MX whose STARTTLS handshake fails gets the message in clear on the retry', async () => {
  // RELAY_MX_PORT applies to every MX: the broken one listens on that port at another address
  const broken = await startBrokenTlsMx('127.0.0.7', sink.port);
  try {
    h.dns.set('brokentls.test', 'MX', [{ exchange: 'mx.brokentls.test', priority: 10 }]);
    h.dns.set('mx.brokentls.test', 'A', ['127.0.0.7']);
    const subject = 'starttls broken';
    const { response } = await submit(h, { to: ['x@brokentls.test'], raw: rawMessage(`app@${DOMAIN}`, 'x@brokentls.test', { subject }) });
    const id = idOf(response);
    const done = await waitForLog(h, (l) => l.msg === 'message done' && l.id === id, 15000);
    expect(done.recipients).toEqual([{ address: 'x@brokentls.test', status: 'delivered' }]);
    expect(broken.starttls).toBeGreaterThanOrEqual(1);
    expect(broken.messages).toHaveLength(1);
    expect(broken.messages[0].rcptTo).toEqual(['x@brokentls.test']);
    expect(broken.messages[0].data.includes(`Subject: ${subject}\r\n`)).toBe(true);
    expect((await verifyDkim(broken.messages[0].data, h.records)).ok).toBe(true);
    const attempts = attemptsFor(id, 'x@brokentls.test');
    expect(attempts.at(-1)).toMatchObject({ outcome: 'delivered', tls: false });
  } finally {
    await broken.close();
  }
});

describe('malformed messages are refused before anything is queued', () => {
  test('a header line without a colon: 550 5.6.0', async () => {
    const raw = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { extraHeaders: 'This line is not a header field' });
    const r = await submitError(h, { raw });
    expect(r.code).toBe(550);
    expect(r.response).toMatch(/^550 5\.6\.0 /);
  });

  test('a body line over 998 octets: 550 5.6.0', async () => {
    const raw = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { body: `short line\r\n${'z'.repeat(999)}\r\nafter\r\n` });
    const r = await submitError(h, { raw });
    expect(r.code).toBe(550);
    expect(r.response).toMatch(/^550 5\.6\.0 .*999/);
  });

  test('a body line of exactly 998 octets is accepted', async () => {
    const subject = 'line of 998';
    const raw = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject, body: `${'z'.repeat(998)}\r\n` });
    const { response } = await submit(h, { raw });
    expect(response).toMatch(/^250 /);
    expect((await verifyDkim((await arrived(sink, subject)).data, h.records)).ok).toBe(true);
  });
});

// A small message is written straight into spool/, a large one (over 256 KiB, streamed as it
// arrives) into spool-tmp/ first: each folder is broken in turn. Root ignores permission
// bits, so the folder is replaced by a plain file: creating a message file in it fails
// (ENOTDIR) for any user.
test.each([
  ['small', 'spool', ''],
  ['large', 'spool-tmp', `${'y'.repeat(998)}\r\n`.repeat(400)],
])('a spool that cannot be written (%s message, %s/): 452 4.3.1, never 250; accepted again once it can be written', async (kind, folder, body) => {
  const broken = path.join(h.config.dataDir, folder);
  const queueDir = path.join(h.config.dataDir, 'spool');
  // nothing queued or being removed while spool/ is set aside
  await waitFor(() => fs.readdirSync(queueDir).length === 0);
  const aside = `${broken}.aside`;
  fs.renameSync(broken, aside);
  fs.writeFileSync(broken, 'not a folder');
  try {
    const r = await submitError(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: `spool broken ${kind}`, body }) });
    expect(r.code).toBe(452);
    expect(r.response).toMatch(/^452 4\.3\.1 .*spool/);
  } finally {
    fs.rmSync(broken, { force: true });
    fs.renameSync(aside, broken);
  }
  expect(fs.readdirSync(queueDir)).toEqual([]);
  const subject = `spool writable again ${kind}`;
  const { response } = await submit(h, { raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject, body }) });
  expect(response).toMatch(/^250 2\.0\.0 queued as /);
  expect((await verifyDkim((await arrived(sink, subject)).data, h.records)).ok).toBe(true);
  expect(sink.messages.some((m) => m.data.includes(`Subject: spool broken ${kind}\r\n`))).toBe(false);
});
