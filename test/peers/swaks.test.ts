// swaks (Debian's package) as a client of the relay, from 127.0.0.9: an address that is
// neither trusted nor allowed to AUTH in clear, so every submission here goes through
// STARTTLS + AUTH. What swaks sends arrives at the sink signed and verifies with python3-dkim.
// swaks is installed by .ci/run; when it (or its TLS support) is missing the tests fail.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { addUser } from '../../src/users/store';
import { verifyDkim } from '../helpers/dkim-verify';
import { DOMAIN, Harness, startWithSink, waitForLog } from '../helpers/relay-harness';
import { Sink, SinkMessage } from '../helpers/sink';

const SWAKS = 'swaks';
const USER = 'swaks-client';
const PASSWORD = 'password for swaks';

let h: Harness;
let sink: Sink;

interface SwaksResult { code: number | null; output: string }

/** Runs swaks and returns its exit code and transcript (stdout and stderr interleaved). */
function swaks(args: string[]): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(SWAKS, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => { output += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { output += c.toString('utf8'); });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(`cannot run swaks (${err.code ?? err.message}): install Debian's swaks and libnet-ssleay-perl (.ci/run does)`));
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The arguments every submission shares: the relay's port, from 127.0.0.9, STARTTLS. */
function base(subject: string, extra: string[] = []): string[] {
  return [
    '--server', '127.0.0.1', '--port', String(h.relay.ports.starttls),
    '--local-interface', '127.0.0.9',
    '--helo', 'client.swaks.test',
    '--from', `app@${DOMAIN}`, '--to', 'user@dest.test',
    '--header', `Subject: ${subject}`,
    '--timeout', '20',
    ...extra,
  ];
}

function auth(method: 'PLAIN' | 'LOGIN', password = PASSWORD): string[] {
  return ['--tls', '--auth', method, '--auth-user', USER, '--auth-password', password];
}

/** The queue ID from the relay's final reply in a swaks transcript. */
function queuedId(output: string): string {
  const m = /<~ +250 2\.0\.0 queued as ([0-9A-Z]+)/.exec(output);
  if (!m) throw new Error(`no "250 2.0.0 queued as" in the swaks transcript:\n${output}`);
  return m[1];
}

async function arrived(subject: string, timeoutMs = 15000): Promise<SinkMessage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = sink.messages.find((m) => m.data.includes(`Subject: ${subject}\r\n`));
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`no message with subject "${subject}" at the sink within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function expectSignedAndVerified(msg: SinkMessage): Promise<void> {
  const verdict = await verifyDkim(msg.data, h.records);
  expect(verdict.signatures).toHaveLength(1);
  expect(verdict.signatures[0]).toMatchObject({ d: DOMAIN, s: 's1', ok: true });
  expect(verdict.ok).toBe(true);
}

beforeAll(async () => {
  // Fail at once, clearly, if swaks or its TLS support is missing: never skip.
  const support = await swaks(['--support']);
  if (!/=== TLS supported/.test(support.output)) {
    throw new Error(`swaks has no TLS support (libnet-ssleay-perl missing?):\n${support.output}`);
  }
  ({ h, sink } = await startWithSink({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32', RELAY_PLAIN_AUTH_NETWORKS: '127.0.0.1/32' }));
  await addUser(h.config.usersFile, { name: USER, domains: [DOMAIN], password: PASSWORD });
  // A running relay looks at the users file at most once a second; a restart reads it now.
  await h.restart();
}, 60000);

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

test.each(['PLAIN', 'LOGIN'] as const)('STARTTLS + AUTH %s from an untrusted address: delivered and verified', async (method) => {
  const subject = `swaks auth ${method}`;
  const r = await swaks(base(subject, auth(method)));
  expect(r.output).toMatch(/^ *-> STARTTLS$/m);
  expect(r.output).toMatch(/<~ +235 /); // the AUTH reply came over TLS
  expect(r.output).toMatch(new RegExp(`~> AUTH ${method}`));
  expect(r.code).toBe(0);
  const id = queuedId(r.output);

  const msg = await arrived(subject);
  expect(msg.rcptTo).toEqual(['user@dest.test']);
  await expectSignedAndVerified(msg);
  await waitForLog(h, (l) => l.msg === 'accepted' && l.id === id && l.user === USER && l.client === '127.0.0.9');
});

test('wrong password: swaks shows 535 5.7.8 and nothing is queued', async () => {
  const r = await swaks(base('swaks wrong password', auth('PLAIN', 'not the password')));
  expect(r.output).toMatch(/<~\* +535 5\.7\.8 /);
  expect(r.output).not.toMatch(/queued as/);
  expect(r.code).not.toBe(0);
});

test('without STARTTLS the untrusted client is not offered AUTH and sends no password', async () => {
  const r = await swaks(base('swaks no tls', ['--auth', 'PLAIN', '--auth-user', USER, '--auth-password', PASSWORD]));
  expect(r.code).not.toBe(0);
  expect(r.output).toMatch(/<- +250 SIZE/); // the EHLO reply was read...
  expect(r.output).not.toMatch(/<- +250.AUTH/); // ...and offered no AUTH in clear
  expect(r.output).not.toMatch(/[-~]> AUTH/);
  expect(r.output).not.toMatch(/queued as/);
});

test('PIPELINING: MAIL, RCPT (two recipients) and DATA sent in one go, both recipients get the signed message', async () => {
  const subject = 'swaks pipelining';
  const r = await swaks([...base(subject, auth('PLAIN')), '--to', 'one@dest.test,two@dest.test', '--pipeline']);
  expect(r.code).toBe(0);
  // pipelined: swaks writes MAIL, both RCPTs and DATA before it reads the first reply
  const lines = r.output.split('\n');
  const mail = lines.findIndex((l) => /^ *~> MAIL FROM/.test(l));
  const data = lines.findIndex((l, i) => i > mail && /^ *~> DATA$/.test(l));
  expect(mail).toBeGreaterThan(-1);
  expect(data).toBeGreaterThan(mail);
  expect(lines.slice(mail + 1, data).filter((l) => /^ *~> RCPT TO/.test(l))).toHaveLength(2);
  expect(lines.slice(mail + 1, data).some((l) => /^ *<~/.test(l))).toBe(false);
  queuedId(r.output);

  const msg = await arrived(subject);
  expect(msg.rcptTo.sort()).toEqual(['one@dest.test', 'two@dest.test']);
  await expectSignedAndVerified(msg);
});

test('an 8-bit UTF-8 body (8BITMIME offered) arrives byte for byte and verifies', async () => {
  const subject = 'swaks 8bit';
  const body = 'Grüße aus Köln — naïve café, 日本語, ✓';
  const r = await swaks([
    ...base(subject, auth('LOGIN')),
    '--add-header', 'MIME-Version: 1.0',
    '--add-header', 'Content-Type: text/plain; charset=utf-8',
    '--add-header', 'Content-Transfer-Encoding: 8bit',
    '--body', body,
  ]);
  expect(r.output).toMatch(/<~ +250-8BITMIME/);
  expect(r.code).toBe(0);
  queuedId(r.output);

  const msg = await arrived(subject);
  expect(msg.data.includes(Buffer.from(body, 'utf8'))).toBe(true);
  await expectSignedAndVerified(msg);
});

test('a message file with LF-only line endings, sent unchanged (--no-data-fixup): delivered with CRLF, verifies', async () => {
  const subject = 'swaks lf file';
  const file = path.join(h.dir, 'lf-only.eml');
  const message = [
    `From: App <app@${DOMAIN}>`,
    'To: user@dest.test',
    `Subject: ${subject}`,
    'Date: Sat, 28 Nov 2026 02:00:00 +0000',
    `Message-ID: <lf-only.${Date.now()}@${DOMAIN}>`,
    '',
    'first line',
    'second line',
    '',
    'last line',
  ].join('\n');
  // With --no-data-fixup swaks sends the file as it is, so the file carries the end of DATA.
  fs.writeFileSync(file, `${message}\n\r\n.`);
  expect(fs.readFileSync(file).includes('\r\n')).toBe(true); // only the final terminator
  const r = await swaks([...base(subject, auth('PLAIN')), '--data', file, '--no-data-fixup']);
  expect(r.code).toBe(0);
  queuedId(r.output);

  const msg = await arrived(subject);
  const text = msg.data.toString('latin1');
  expect(text).not.toMatch(/[^\r]\n/); // no bare LF left
  expect(text).toContain('\r\n\r\nfirst line\r\nsecond line\r\n\r\nlast line\r\n');
  await expectSignedAndVerified(msg);
});
