// Issue 15, section 3: commands that send no mail are limited per session, like Postfix's
// smtpd_junk_command_limit (src/submission/junk-commands.ts, submission.maxJunkCommands,
// default 100): the 101st NOOP (RSET, VRFY, HELP, EHLO, or refused command) since the last
// accepted message gets 421 4.7.0 and the connection is closed. Before, a NOOP every 2 s kept
// a connection forever.
import { connectRaw, isWellFormedReply, RawSession } from '../helpers/raw-smtp';
import { DOMAIN, Harness, rawMessage, startWithSink } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32' }));
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

async function session(address = '127.0.0.1'): Promise<RawSession> {
  const s = await connectRaw(h.relay.ports.starttls, address);
  expect(await s.reply()).toMatch(/^220 /);
  return s;
}

const CUT_OFF = /^421 4\.7\.0 too many commands that send no mail: 100 .*\(submission\.maxJunkCommands, RELAY_MAX_JUNK_COMMANDS\); closing the connection$/;

test.each([
  ['NOOP', '127.0.0.1', /^250 /],
  ['RSET', '127.0.0.1', /^250 /],
  ['VRFY someone', '127.0.0.1', /^252 /],
  ['HELP', '127.0.0.1', /^214 /],
  ['EHLO again.test', '127.0.0.1', /^250[ -]/],
])('a session that sends %s in a loop is cut off after 100 of them', async (command, address, answer) => {
  const s = await session(address);
  expect(await s.command('EHLO loop.test')).toMatch(/^250/);
  // EHLO above is the first junk command (Postfix counts HELO/EHLO too): 99 more, then the cut
  for (let i = 0; i < 99; i++) {
    const reply = await s.command(command);
    if (!answer.test(reply)) throw new Error(`command ${i + 1}: unexpected reply ${reply}`);
  }
  const last = await s.command(command);
  expect(last).toMatch(CUT_OFF);
  await s.closed;
  expect(s.lines.filter((l) => !isWellFormedReply(l))).toEqual([]);
});

test('refused commands count too: an untrusted client looping MAIL FROM without AUTH hears its refusal, then 421', async () => {
  const s = await session('127.0.0.9');
  expect(await s.command('EHLO loop.test')).toMatch(/^250/);
  for (let i = 0; i < 99; i++) expect(await s.command(`MAIL FROM:<x@${DOMAIN}>`)).toMatch(/^530 5\.7\.0 /);
  // the 101st: its own answer, then the cut (a 421 may come at any time, RFC 5321 3.8)
  expect(await s.command(`MAIL FROM:<x@${DOMAIN}>`)).toMatch(/^530 5\.7\.0 /);
  expect(await s.reply()).toMatch(CUT_OFF);
  await s.closed;
  expect(s.lines.filter((l) => !isWellFormedReply(l))).toEqual([]);
});

test('recipients over the limit (452) count only past 1000 in a transaction, as Postfix\'s smtpd_recipient_overshoot_limit', async () => {
  const s = await session('127.0.0.1');
  expect(await s.command('EHLO many.test')).toMatch(/^250/);
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250 /);
  // maxRecipients (500) accepted, 1000 over it not counted, then 99 counted (EHLO was the first)
  const n = 500 + 1000 + 99;
  for (let i = 0; i < n; i++) s.write(`RCPT TO:<r${i}@dest.test>\r\n`);
  const replies: string[] = [];
  for (let i = 0; i < n; i++) replies.push(await s.reply());
  expect(replies.slice(0, 500).every((r) => r.startsWith('250 '))).toBe(true);
  expect(replies.slice(500).every((r) => r.startsWith('452 4.5.3 '))).toBe(true);
  expect(await s.command('RCPT TO:<one-more@dest.test>')).toMatch(/^452 4\.5\.3 /);
  expect(await s.reply()).toMatch(CUT_OFF);
  await s.closed;
});

test('a slow NOOP loop is cut off the same: the limit counts commands, it is not a rate', async () => {
  // the pace of the attack does not matter to the count; a short pause shows it is not a rate limit
  const s = await session('127.0.0.9');
  expect(await s.command('EHLO slow.test')).toMatch(/^250/);
  for (let i = 0; i < 99; i++) {
    if (i % 25 === 0) await new Promise((r) => setTimeout(r, 100));
    expect(await s.command('NOOP')).toMatch(/^250 /);
  }
  expect(await s.command('NOOP')).toMatch(CUT_OFF);
  await s.closed;
});

test('a session that sends 150 messages with RSET and NOOP between them is never cut off', async () => {
  const before = sink.messages.length;
  const s = await session('127.0.0.1');
  try {
    expect(await s.command('EHLO busy.test')).toMatch(/^250/);
    for (let i = 0; i < 150; i++) {
      expect(await s.command('NOOP')).toMatch(/^250 /);
      expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250 /);
      expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^250 /);
      expect(await s.command('DATA')).toMatch(/^354 /);
      s.write(rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: `message ${i}` }));
      expect(await s.command('.')).toMatch(/^250 2\.0\.0 queued as /);
      expect(await s.command('RSET')).toMatch(/^250 /);
    }
    expect(await s.command('QUIT')).toMatch(/^221 /);
  } finally {
    s.end();
  }
  await sink.waitForMessages(before + 150, 60000);
});

test('the count starts afresh after an accepted message, not after a refused one', async () => {
  const s = await session('127.0.0.1');
  expect(await s.command('EHLO count.test')).toMatch(/^250/);
  for (let i = 0; i < 90; i++) expect(await s.command('NOOP')).toMatch(/^250 /);
  // a refused message (no From) does not reset the count, and is counted itself
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250 /);
  expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^250 /);
  expect(await s.command('DATA')).toMatch(/^354 /);
  s.write('Subject: no From\r\n\r\nbody\r\n');
  expect(await s.command('.')).toMatch(/^5\d\d /);
  // 1 EHLO + 90 NOOP + 1 refused message = 92: 8 more, then the cut
  for (let i = 0; i < 8; i++) expect(await s.command('NOOP')).toMatch(/^250 /);
  // an accepted message now starts the count afresh
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250 /);
  expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^250 /);
  expect(await s.command('DATA')).toMatch(/^354 /);
  s.write(rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'resets the count' }));
  expect(await s.command('.')).toMatch(/^250 2\.0\.0 queued as /);
  for (let i = 0; i < 100; i++) expect(await s.command('NOOP')).toMatch(/^250 /);
  expect(await s.command('NOOP')).toMatch(CUT_OFF);
  await s.closed;
});
