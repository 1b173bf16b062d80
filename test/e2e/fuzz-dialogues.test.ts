// 10,000 generated SMTP dialogues (fast-check) over real connections, many at a time:
// well-formed and broken commands, messages good and bad, pipelined or not, clients that
// hang up mid-DATA. For every dialogue each reply line is well-formed (code, and an
// enhanced status code on 4xx/5xx); afterwards the relay still answers, nothing
// half-received is left in the spool, and every message that got 250 was delivered.
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { connectRaw, isWellFormedReply } from '../helpers/raw-smtp';
import { DOMAIN, Harness, logLines, startWithSink } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

const DIALOGUES = Number(process.env.FUZZ_DIALOGUES ?? 10000);
const CONCURRENCY = 60;
const SEED = Number(process.env.FUZZ_SEED ?? 20261128);

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({
    RELAY_MAX_CLIENTS: '500',
    // the failed-login block is tested in bad-input.test.ts; here it would shut out every dialogue
    RELAY_AUTH_MAX_FAILURES: '100000000',
    RELAY_AUTH_MAX_USER_FAILURES: '100000000',
    RELAY_AUTH_FAILURE_DELAY: '0',
    RELAY_SOCKET_TIMEOUT: '3s',
    RELAY_MAX_SIZE: '64KB',
    RELAY_LOG_LEVEL: 'info',
    // accepted mail is delivered while the dialogues run
    RELAY_DELIVERY_CONCURRENCY: '10',
  }));
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

// ---- generators ------------------------------------------------------------------------
const junk = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', ':', '<', '>', '@', '.', '=', '\t', '\u0000', '\u00e9', '\u0001', '"'), maxLength: 40 });
const address = fc.oneof(
  fc.constant(`app@${DOMAIN}`), fc.constant('user@dest.test'), fc.constant(''), fc.constant('other@dest.test'),
  fc.constant('ceo@bank.test'), fc.constant('no-at-sign'), fc.constant('a@b@c'), fc.constant('x'.repeat(300) + '@dest.test'), junk
);
const mailParam = fc.constantFrom('', ' BODY=8BITMIME', ' SMTPUTF8', ' SIZE=1000', ' SIZE=99999999', ' BODY=BINARYMIME', ' FOO=BAR', ' RET=HDRS', ' ENVID=x');
const headerLine = fc.oneof(
  fc.constant(`From: App <app@${DOMAIN}>`), fc.constant(`From: app@${DOMAIN}`), fc.constant('From: ceo@bank.test'),
  fc.constant('From: a@example.org, b@example.org'), fc.constant('To: user@dest.test'), fc.constant('Subject: hello'),
  fc.constant('Subject: Gr\u00fc\u00dfe'), fc.constant('Date: Sat, 28 Nov 2026 02:00:00 +0000'), fc.constant('Message-ID: <a@b>'),
  fc.constant('X-Folded: a\r\n  b'), fc.constant('no colon here'), fc.constant(' leading space'), fc.constant(`X-Long: ${'l'.repeat(1100)}`),
  junk.map((j) => `X-Junk: ${j}`), junk
);
const bodyLine = fc.oneof(fc.constant('Hello'), fc.constant(''), fc.constant('..dot-stuffed'), fc.constant('.'), fc.constant(' trailing  '), fc.constant('b'.repeat(1200)), junk);
const message = fc.record({
  headers: fc.array(headerLine, { minLength: 0, maxLength: 8 }),
  body: fc.array(bodyLine, { maxLength: 6 }),
  lf: fc.boolean(),
}).map(({ headers, body, lf }) => {
  // dot-stuff lines like a client must; a lone '.' line stays unstuffed now and then to end DATA early
  const lines = [...headers, '', ...body].map((l) => (l.startsWith('.') && l !== '.' ? '.' + l : l));
  return lines.join(lf ? '\n' : '\r\n');
});
// A mostly good transaction, so that a good share of dialogues end in 250 and get delivered.
const goodMessage = fc.record({
  extra: fc.array(headerLine, { maxLength: 2 }),
  body: fc.array(bodyLine, { maxLength: 6 }),
  lf: fc.boolean(),
}).map(({ extra, body, lf }) => {
  const headers = [`From: App <app@${DOMAIN}>`, 'To: user@dest.test', 'Subject: fuzz', ...extra];
  const lines = [...headers, '', ...body].map((l) => (l.startsWith('.') ? '.' + l : l));
  return lines.join(lf ? '\n' : '\r\n');
});
const transaction = fc.record({ message: goodMessage, rcpts: fc.array(fc.constantFrom('user@dest.test', 'b@dest.test', 'bad address'), { minLength: 1, maxLength: 3 }) })
  .map(({ message: m, rcpts }) => ({ tx: [`MAIL FROM:<app@${DOMAIN}>`, ...rcpts.map((r) => `RCPT TO:<${r}>`)], data: m }));

const command = fc.oneof(
  { weight: 6, arbitrary: transaction },
  { weight: 3, arbitrary: fc.tuple(address, mailParam).map(([a, p]) => `MAIL FROM:<${a}>${p}`) },
  { weight: 3, arbitrary: address.map((a) => `RCPT TO:<${a}>`) },
  { weight: 3, arbitrary: message.map((m) => ({ data: m })) },
  { weight: 1, arbitrary: message.map((m) => ({ hangup: m.slice(0, Math.max(1, m.length >> 1)) })) },
  { weight: 1, arbitrary: fc.constantFrom('RSET', 'NOOP', 'HELP', 'VRFY x', 'EXPN x', 'QUIT', 'STARTTLS', 'DATA', 'BDAT 10', 'EHLO', 'HELO ', 'MAIL', 'RCPT') },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom('AUTH PLAIN', 'AUTH LOGIN', 'AUTH CRAM-MD5', 'AUTH PLAIN =', 'AUTH PLAIN AGFwcDEAeA=='), fc.base64String().map((b) => `AUTH PLAIN ${b}`)) },
  { weight: 1, arbitrary: junk },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 30 }).map((u) => Buffer.from(u)) }
);
const dialogue = fc.record({
  ehlo: fc.constantFrom('EHLO client.test', 'HELO client.test', 'EHLO [127.0.0.1]', ''),
  commands: fc.array(command, { minLength: 1, maxLength: 8 }),
  pipelined: fc.boolean(),
});
type Dialogue = typeof dialogue extends fc.Arbitrary<infer T> ? T : never;

// ---- running one dialogue ----------------------------------------------------------------
async function run(d: Dialogue): Promise<{ lines: string[]; queued: string[] }> {
  const s = await connectRaw(h.relay.ports.starttls, '127.0.0.1');
  const wait = async () => {
    if (!d.pipelined) await s.reply(5000).catch(() => undefined);
  };
  try {
    await s.reply(5000);
    if (d.ehlo) {
      s.write(`${d.ehlo}\r\n`);
      await wait();
    }
    for (const c of d.commands) {
      if (s.isClosed()) break;
      if (typeof c === 'string' || Buffer.isBuffer(c)) {
        s.write(Buffer.concat([Buffer.isBuffer(c) ? c : Buffer.from(c, 'utf8'), Buffer.from('\r\n')]));
        await wait();
      } else if ('data' in c) {
        for (const line of 'tx' in c ? c.tx : []) {
          s.write(`${line}\r\n`);
          await wait();
        }
        s.write('DATA\r\n');
        await wait();
        s.write(Buffer.from(`${c.data}\r\n.\r\n`, 'utf8'));
        await wait();
      } else {
        s.write('DATA\r\n');
        await wait();
        s.write(Buffer.from(c.hangup, 'utf8'));
        s.end();
        break;
      }
    }
    if (!s.isClosed()) s.write('QUIT\r\n');
    await Promise.race([s.closed, new Promise((r) => setTimeout(r, 8000).unref())]);
  } finally {
    s.end();
  }
  return { lines: s.lines, queued: s.lines.map((l) => /^250 2\.0\.0 queued as ([0-9A-Z]+)$/.exec(l)?.[1]).filter((x): x is string => !!x) };
}

test(`${DIALOGUES} generated dialogues get well-formed replies, and every 250 is delivered`, async () => {
  const samples = fc.sample(dialogue, { numRuns: DIALOGUES, seed: SEED });
  const queued: string[] = [];
  const problems: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < samples.length) {
      const d = samples[next++];
      const { lines, queued: ids } = await run(d);
      queued.push(...ids);
      const bad = lines.filter((l) => !isWellFormedReply(l));
      if (bad.length && problems.length < 5) problems.push(`${JSON.stringify(d)}\n  -> ${bad.join(' | ')}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  // eslint-disable-next-line no-console
  console.log(`fuzz: ${samples.length} dialogues (seed ${SEED}), ${queued.length} messages accepted`);
  expect(problems).toEqual([]);

  // the relay is still there
  const s = await connectRaw(h.relay.ports.starttls);
  expect(await s.reply()).toMatch(/^220 /);
  s.end();

  // every 250 was delivered (the sink accepts everything)
  expect(queued.length).toBeGreaterThan(DIALOGUES / 20);
  const deadline = Date.now() + 60000;
  let missing = queued;
  while (missing.length && Date.now() < deadline) {
    const done = new Set(logLines(h).filter((l) => l.msg === 'message done').map((l) => String(l.id)));
    missing = queued.filter((id) => !done.has(id));
    if (missing.length) await new Promise((r) => setTimeout(r, 250));
  }
  expect(missing).toEqual([]);
  // recipients at dest.test (the sink) were all delivered; other domains do not exist here
  const failed = logLines(h)
    .filter((l) => l.msg === 'message done')
    .flatMap((l) => l.recipients as { address: string; status: string }[])
    .filter((r) => r.address.endsWith('@dest.test') && r.status !== 'delivered');
  expect(failed).toEqual([]);
  // nothing half-received left behind
  expect(fs.readdirSync(path.join(h.config.dataDir, 'spool-tmp'))).toEqual([]);
  expect(fs.readdirSync(path.join(h.config.dataDir, 'spool'))).toEqual([]);
}, 600000);
