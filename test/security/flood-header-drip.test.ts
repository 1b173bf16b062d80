// Issue 15, section 3 (header drip): a header section that arrives in tiny pieces is read as
// it would be in one piece: accepted, signed, and verifiable, whatever the cuts, including a
// blank line (CRLF CRLF) cut between chunks; and submission.maxHeaderSize still holds. The
// relay now collects the header in linear time (src/header-section.ts); the cost itself is
// measured in bench/header-drip.js (bench/HEADER-DRIP.md), never asserted here.
import { verifyDkim } from '../helpers/dkim-verify';
import { connectRaw, RawSession } from '../helpers/raw-smtp';
import { DOMAIN, Harness, rawMessage, startWithSink } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({ RELAY_MAX_HEADER_SIZE: '4KB' }));
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends the message in the given pieces, pausing after each so that the relay reads them one by one. */
async function dripMessage(pieces: Buffer[]): Promise<string> {
  const s: RawSession = await connectRaw(h.relay.ports.starttls, '127.0.0.1');
  try {
    expect(await s.reply()).toMatch(/^220 /);
    expect(await s.command('EHLO drip.test')).toMatch(/^250/);
    expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250/);
    expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^250/);
    expect(await s.command('DATA')).toMatch(/^354/);
    for (const piece of pieces) {
      s.write(piece);
      await pause(3);
    }
    s.write('\r\n.\r\n');
    return await s.reply(20000);
  } finally {
    s.end();
  }
}

function pieces(text: string, cuts: number[]): Buffer[] {
  const all = Buffer.from(text, 'latin1');
  const points = [0, ...cuts, all.length];
  return points.slice(1).map((p, i) => all.subarray(points[i], p));
}

async function expectDeliveredAndSigned(subject: string) {
  const deadline = Date.now() + 15000;
  const find = () => sink.messages.find((x) => x.data.toString('latin1').includes(`Subject: ${subject}\r\n`));
  let m = find();
  while (!m && Date.now() < deadline) {
    await pause(50);
    m = find();
  }
  expect(m).toBeDefined();
  const text = m!.data.toString('latin1');
  const verdict = await verifyDkim(m!.data, h.records);
  expect(verdict.ok).toBe(true);
  expect(verdict.signatures.map((s) => s.d)).toEqual([DOMAIN]);
  // the header section ended where it should: the body is the body
  expect(text).toMatch(/\r\n\r\nfirst body line\r\nsecond body line\r\n$/);
  return text;
}

test('a header sent one byte at a time is accepted and signed', async () => {
  const text = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'byte by byte', body: 'first body line\r\nsecond body line' });
  const reply = await dripMessage(pieces(text, Array.from({ length: text.length - 1 }, (_, i) => i + 1)));
  expect(reply).toMatch(/^250 2\.0\.0 queued as /);
  await expectDeliveredAndSigned('byte by byte');
});

test.each([
  ['CRLF | CRLF', 2],
  ['CR | LF CRLF', 1],
  ['CRLF CR | LF', 3],
  ['CRLF | CR | LF', -1],
])('a blank line cut as %s between chunks ends the header section there', async (name, cut) => {
  const subject = `cut ${name}`;
  const text = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject, body: 'first body line\r\nsecond body line' });
  const end = text.indexOf('\r\n\r\n');
  const cuts = cut === -1 ? [end + 2, end + 3] : [end + cut];
  // the header before the blank line in 7-byte pieces, so the cut lands in a stream of small chunks
  const before = Array.from({ length: Math.floor(end / 7) }, (_, i) => (i + 1) * 7).filter((c) => c < cuts[0]);
  const reply = await dripMessage(pieces(text, [...before, ...cuts]));
  expect(reply).toMatch(/^250 2\.0\.0 queued as /);
  const delivered = await expectDeliveredAndSigned(subject);
  expect(delivered).toContain(`\r\nSubject: ${subject}\r\n`);
});

test('submission.maxHeaderSize still applies to a header that arrives in small chunks', async () => {
  const filler = Array.from({ length: 80 }, (_, i) => `X-Filler-${i}: ${'x'.repeat(50)}`).join('\r\n'); // about 5 KB
  const text = rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'too big', extraHeaders: filler, body: 'first body line\r\nsecond body line' });
  const cuts = Array.from({ length: Math.floor(text.length / 40) }, (_, i) => (i + 1) * 40);
  const reply = await dripMessage(pieces(text, cuts));
  expect(reply).toMatch(/^552 5\.3\.4 the header section is larger than 4096 bytes/);
  expect(reply).toMatch(/RELAY_MAX_HEADER_SIZE/);
});
