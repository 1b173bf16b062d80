// Hostile and broken client input over real connections: every case gets a well-formed
// SMTP reply with an enhanced status code, the relay keeps running, nothing half-received
// is spooled, and what got 250 is delivered (and verifies).
import fs from 'node:fs';
import path from 'node:path';
import { addUser } from '../../src/users/store';
import { verifyDkim } from '../helpers/dkim-verify';
import { connectRaw, isWellFormedReply, RawSession } from '../helpers/raw-smtp';
import { DOMAIN, Harness, rawMessage, startWithSink } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32',
    RELAY_MAX_RECIPIENTS: '100',
    RELAY_AUTH_MAX_FAILURES: '10',
    RELAY_AUTH_FAILURE_DELAY: '0.05',
    RELAY_AUTH_BLOCK_TIME: '1m',
    RELAY_SOCKET_TIMEOUT: '2s',
  }));
  await addUser(h.config.usersFile, { name: 'app1', domains: [DOMAIN], password: 'correct horse battery' });
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

async function session(localAddress = '127.0.0.1'): Promise<RawSession> {
  const s = await connectRaw(h.relay.ports.starttls, localAddress);
  expect(await s.reply()).toMatch(/^220 /);
  expect(await s.command('EHLO client.test')).toMatch(/^250/);
  return s;
}

/** MAIL, RCPT, DATA and the message bytes; returns the reply to the final dot. */
async function transaction(s: RawSession, body: string | Buffer, rcpts = ['user@dest.test']): Promise<string> {
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250/);
  for (const r of rcpts) await s.command(`RCPT TO:<${r}>`);
  expect(await s.command('DATA')).toMatch(/^354/);
  s.write(body);
  s.write('\r\n.\r\n');
  return s.reply(20000);
}

function spooled(): string[] {
  const dir = path.join(h.config.dataDir, 'spool');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

function expectWellFormed(s: RawSession) {
  const bad = s.lines.filter((l) => !isWellFormedReply(l));
  expect(bad).toEqual([]);
}

test('a command line over the limit gets 421 with an enhanced code and the connection ends', async () => {
  const s = await session();
  const r = await s.command(`MAIL FROM:<${'a'.repeat(5000)}@example.org>`).catch(() => s.lines[s.lines.length - 1]);
  expect(r).toMatch(/^421 4\.\d+\.\d+ .*too long/);
  await s.closed;
  expectWellFormed(s);
  s.end();
});

test('a header line over 998 octets: 550 5.6.0, nothing spooled', async () => {
  const s = await session();
  const r = await transaction(s, rawMessage(`app@${DOMAIN}`, 'user@dest.test', { extraHeaders: `X-Long: ${'y'.repeat(1200)}` }));
  expect(r).toMatch(/^550 5\.6\.0 the message has a line of 1208 octets/);
  expectWellFormed(s);
  s.end();
});

test('a header without a colon: 550 5.6.0 naming the line', async () => {
  const s = await session();
  const r = await transaction(s, rawMessage(`app@${DOMAIN}`, 'user@dest.test', { extraHeaders: 'This is not a header' }));
  expect(r).toMatch(/^550 5\.6\.0 header line 8 \("This is not a header"\) is not a header field/);
  s.end();
});

test('bare LF, bare CR and NUL bytes: accepted messages verify at the sink', async () => {
  const s = await session();
  const before = sink.messages.length;
  const bodies = [
    rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'bare-lf', body: 'line one\nline two\n' }),
    rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'bare-cr', body: 'line one\rstill one\r\nline two\r\n' }),
    rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'nul', body: 'a\u0000b\r\n' }),
  ];
  const replies: string[] = [];
  for (const b of bodies) replies.push(await transaction(s, Buffer.from(b, 'latin1')));
  expectWellFormed(s);
  s.end();
  const accepted = replies.filter((r) => /^250 /.test(r)).length;
  const msgs = (await sink.waitForMessages(before + accepted, 15000)).slice(before);
  const failing: string[] = [];
  for (const m of msgs) {
    const verdict = await verifyDkim(m.data, h.records);
    if (!verdict.ok) failing.push(`${/Subject: (\S+)/.exec(m.data.toString())?.[1]}: ${JSON.stringify(verdict.signatures)}`);
  }
  expect(failing).toEqual([]);
  for (const r of replies) expect(r).toMatch(/^(250 2\.0\.0 queued as|5\d\d 5\.\d+\.\d+ )/);
});

test('8-bit header without SMTPUTF8 gets a well-formed answer, and verifies if accepted', async () => {
  const s = await session();
  const before = sink.messages.length;
  const r = await transaction(s, Buffer.from(rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'Grüße aus Köln' }), 'utf8'));
  expectWellFormed(s);
  s.end();
  if (/^250 /.test(r)) {
    const [m] = (await sink.waitForMessages(before + 1, 15000)).slice(before);
    expect((await verifyDkim(m.data, h.records)).ok).toBe(true);
  } else {
    expect(r).toMatch(/^5\d\d 5\.6\.\d+ /);
  }
});

test('too many recipients: 452 4.5.3 beyond the limit, the message goes to the first 100', async () => {
  const s = await session();
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250/);
  const replies: string[] = [];
  for (let i = 0; i < 1000; i++) s.write(`RCPT TO:<r${i}@dest.test>\r\n`);
  for (let i = 0; i < 1000; i++) replies.push(await s.reply());
  expect(replies.slice(0, 100).every((r) => /^250 /.test(r))).toBe(true);
  expect(replies[100]).toMatch(/^452 4\.5\.3 /);
  expectWellFormed(s);
  s.end();
});

test('10 MB of headers: 552 5.3.4, nothing spooled, the relay still answers', async () => {
  const s = await session();
  const filler = `X-Filler: ${'z'.repeat(900)}\r\n`.repeat(Math.ceil((10 * 1024 * 1024) / 912));
  const r = await transaction(s, `From: a@${DOMAIN}\r\n${filler}\r\nbody\r\n`);
  expect(r).toMatch(/^552 5\.3\.4 the header section is larger than/);
  s.end();
  expect(spooled().filter((f) => f.endsWith('.eml')).length).toBe(h.relay.queue.size);
});

// A small message is held in memory until its commit, a large one (over 256 KiB) streams to
// a file in spool-tmp as it arrives: both are cut off here.
test.each([['small', 150], ['large', 600 * 1024]])('a client that disconnects mid-DATA (%s message) leaves nothing in the spool', async (_kind, bytes) => {
  const queued = spooled().length;
  const s = await session();
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250/);
  expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^250/);
  expect(await s.command('DATA')).toMatch(/^354/);
  const message = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { body: `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(bytes / 78)) });
  s.write(message.slice(0, bytes));
  await new Promise((r) => setTimeout(r, 200));
  // the large one is on its way to disk already, the small one is not
  expect(fs.readdirSync(path.join(h.config.dataDir, 'spool-tmp')).length).toBe(bytes > 256 * 1024 ? 1 : 0);
  s.end();
  await new Promise((r) => setTimeout(r, 300));
  expect(fs.readdirSync(path.join(h.config.dataDir, 'spool-tmp'))).toEqual([]);
  expect(spooled().length).toBeLessThanOrEqual(queued);
  const again = await session();
  again.end();
});

test('a slow client is disconnected after the idle timeout with 421', async () => {
  const s = await session();
  await s.closed;
  expect(s.lines[s.lines.length - 1]).toMatch(/^421 4\.\d+\.\d+ /);
});

test('pipelined garbage gets one well-formed reply per line', async () => {
  const s = await session();
  const garbage = ['FOO', 'MAIL', 'RCPT TO:<x@dest.test>', 'DATA', '\u0001\u0002', 'MAIL FROM:<<<', 'EHLO'];
  for (const g of garbage) s.write(`${g}\r\n`);
  for (let i = 0; i < garbage.length; i++) await s.reply();
  expectWellFormed(s);
  expect(await s.command('NOOP')).toMatch(/^250/);
  s.end();
});

test('AUTH with bad base64 gets a 5xx with an enhanced code', async () => {
  const s = await session();
  const r = await s.command('AUTH PLAIN !!!not-base64!!!');
  expect(r).toMatch(/^5\d\d 5\.\d+\.\d+ /);
  expectWellFormed(s);
  s.end();
});

test('100 wrong passwords in a row: slowed, then refused with 421 4.7.0', async () => {
  const wrong = Buffer.from('\u0000app1\u0000wrong password').toString('base64');
  const replies: string[] = [];
  const started = Date.now();
  for (let i = 0; i < 100 && replies.length < 100; i++) {
    let s: RawSession;
    try {
      s = await connectRaw(h.relay.ports.starttls, '127.0.0.1');
    } catch {
      break;
    }
    const greeting = await s.reply();
    if (!/^220/.test(greeting)) {
      replies.push(greeting);
      s.end();
      continue;
    }
    await s.command('EHLO guesser.test');
    replies.push(await s.command(`AUTH PLAIN ${wrong}`));
    s.end();
  }
  expect(replies.slice(0, 9).every((r) => /^535 5\.7\.8 /.test(r))).toBe(true);
  expect(replies[9]).toMatch(/^421 4\.7\.0 too many failed logins from 127\.0\.0\.1/);
  // from then on AUTH from the address is refused (127.0.0.1 is trusted, so its connections are still taken)
  expect(replies.slice(10).every((r) => /^421 4\.7\.0 /.test(r))).toBe(true);
  expect(replies.length).toBe(100);
  // failures 4..9 were answered late (0.05 s x 1..5)
  expect(Date.now() - started).toBeGreaterThanOrEqual(50 * (1 + 2 + 3 + 4 + 5 + 5));
  // the right password from another address still works
  const ok = await session('127.0.0.9');
  expect(await ok.command('STARTTLS')).toMatch(/^220/);
  ok.end();
});
