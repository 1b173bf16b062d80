// Delivery verdicts end to end: a sink MX answers with real provider texts; the relay's class
// and plain-language explanation show in the `delivery attempt` log line, in `queue show
// --json` (each attempt), and in the human-readable part of the bounce. A user rules file
// overrides a built-in rule; a bad one is refused at start, naming the file.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, ensureBuilt, NODE } from '../helpers/built-cli';
import { DOMAIN, Harness, logLines, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { Sink, startSink } from '../helpers/sink';

let h: Harness;
let mx: Sink; // the recipients' MX (127.0.0.3)
let senderMx: Sink; // example.org's MX, where bounces arrive (127.0.0.4)
let rulesFile: string;

// Provider texts: support.google.com/a/answer/3726730 (Gmail 5.7.26), observed Outlook
// S3140 bounce (pastebin.com/index/3Peq5x5F), Yahoo [TSS04] (tamingdns.com/bounce-decoder/yahoo).
const REPLIES: Record<string, { code: number; message: string }> = {
  gmail: { code: 550, message: '5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.' },
  outlook: { code: 550, message: '5.7.1 Unfortunately, messages from [127.0.0.2] weren\'t sent. Please contact your Internet service provider since part of their network is on our block list (S3140).' },
  yahoo: { code: 421, message: '4.7.0 [TSS04] Messages from 127.0.0.2 temporarily deferred due to unexpected volume or user complaints' },
  custom: { code: 550, message: '5.7.1 Rejected by ACME filter rule 42' },
};

beforeAll(async () => {
  await ensureBuilt();
  mx = await startSink({
    host: '127.0.0.3',
    onRcpt(rcpt) {
      return REPLIES[rcpt.split('@')[0].toLowerCase()];
    },
  });
  senderMx = await startSink({ host: '127.0.0.4', port: mx.port });
  h = await startHarness({ RELAY_MX_PORT: String(mx.port), RELAY_RETRY_SCHEDULE: '1h' });
  rulesFile = path.join(h.dir, 'rules.json');
  fs.writeFileSync(rulesFile, JSON.stringify([
    { id: 'acme-filter', match: { text: 'ACME filter rule' }, class: 'policy', explanation: 'ACME\'s content filter refused it.', fix: 'Write to postmaster@acme.test.' },
    { id: 'my-outlook', match: { text: 'S3140' }, class: 'reputation', explanation: 'Our own words on S3140.', fix: 'Open a ticket with the hoster.' },
  ]));
  h.dns.set('dest.test', 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
  h.dns.set('mx.dest.test', 'A', ['127.0.0.3']);
  h.dns.set(DOMAIN, 'MX', [{ exchange: `mx.${DOMAIN}`, priority: 10 }]);
  h.dns.set(`mx.${DOMAIN}`, 'A', ['127.0.0.4']);
});

afterAll(async () => {
  await h?.stop();
  await Promise.all([mx?.close(), senderMx?.close()]);
});

function idOf(response: string): string {
  const m = /queued as ([0-9A-Z]+)$/.exec(response);
  if (!m) throw new Error(`not a "queued as" reply: ${response}`);
  return m[1];
}

function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  return { ...clean, ...h.env, ...extra };
}

async function bounceText(subject: string, timeoutMs = 15000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = senderMx.messages.find((m) => m.data.includes(`Subject: ${subject}`) && m.mailFrom === '');
    if (b) {
      const out = execFileSync('/usr/bin/python3', [path.join(__dirname, '..', 'helpers', 'parse_dsn.py')], { input: b.data });
      return (JSON.parse(out.toString()) as { text: string }).text;
    }
    if (Date.now() > deadline) throw new Error(`no bounce for ${subject}; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('Gmail 5.7.26: authentication, explained in the log line and in the bounce', async () => {
  const id = idOf((await submit(h, { to: ['gmail@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'gmail@dest.test', { subject: 'gmail verdict' }) })).response);
  const line = await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.id === id, 15000);
  expect(line).toMatchObject({ outcome: 'failed', class: 'authentication' });
  expect(String(line.explanation)).toMatch(/unauthenticated: SPF, DKIM or DMARC/);
  expect(String(line.fix)).toMatch(/SPF record/);
  const text = await bounceText('gmail verdict');
  expect(text).toMatch(/What it means \(authentication\): Gmail refuses this message as unauthenticated/);
  expect(text).toMatch(/What to do: Publish an SPF record/);
});

test('Yahoo [TSS04]: rate-limit, the destination paused, class and explanation on the attempt in queue show --json', async () => {
  const id = idOf((await submit(h, { to: ['yahoo@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'yahoo@dest.test', { subject: 'yahoo verdict' }) })).response);
  const line = await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.id === id, 15000);
  expect(line).toMatchObject({ outcome: 'deferred', class: 'rate-limit' });
  await waitForLog(h, (l) => String(l.msg).includes('throttles us'), 15000);
  // the spool is written after the attempt: wait for the history to show it
  let shown: { history: Array<Record<string, unknown>> } = { history: [] };
  for (let i = 0; i < 100 && !shown.history.length; i++) {
    shown = JSON.parse(execFileSync(NODE, [BIN, 'queue', 'show', id, '--json'], { cwd: h.dir, env: childEnv() }).toString());
    if (!shown.history.length) await new Promise((r) => setTimeout(r, 100));
  }
  expect(shown.history[0]).toMatchObject({ class: 'rate-limit' });
  expect(String(shown.history[0].explanation)).toMatch(/Yahoo defers mail/);
  const textOut = execFileSync(NODE, [BIN, 'queue', 'show', id], { cwd: h.dir, env: childEnv() }).toString();
  expect(textOut).toMatch(/rate-limit: Yahoo defers mail/);
});

test('a user rules file overrides a built-in rule', async () => {
  await h.restart({ RELAY_CLASSIFIER_RULES: rulesFile });
  const id = idOf((await submit(h, { to: ['outlook@dest.test', 'custom@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'outlook@dest.test', { subject: 'user rules verdict' }) })).response);
  await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.id === id && l.recipient === 'custom@dest.test', 15000);
  const lines = logLines(h).filter((l) => l.msg === 'delivery attempt' && l.id === id);
  expect(lines.find((l) => l.recipient === 'outlook@dest.test')).toMatchObject({ class: 'reputation', explanation: 'Our own words on S3140.' });
  expect(lines.find((l) => l.recipient === 'custom@dest.test')).toMatchObject({ class: 'policy', explanation: 'ACME\'s content filter refused it.' });
  const text = await bounceText('user rules verdict');
  expect(text).toMatch(/What to do: Open a ticket with the hoster\./);
  expect(text).toMatch(/What to do: Write to postmaster@acme\.test\./);
});

test('a bad rules file is refused at start, naming the file and the rule', () => {
  const bad = path.join(h.dir, 'bad-rules.json');
  fs.writeFileSync(bad, JSON.stringify([{ id: 'broken', match: { text: '([' }, class: 'policy', explanation: 'x' }]));
  let stderr = '';
  let code = 0;
  try {
    execFileSync(NODE, [BIN, 'serve'], { cwd: h.dir, env: childEnv({ RELAY_CLASSIFIER_RULES: bad, RELAY_SUBMISSION_PORT: '0' }), stdio: 'pipe', timeout: 30000 });
  } catch (err) {
    const e = err as { status: number; stderr: Buffer };
    code = e.status;
    stderr = e.stderr.toString();
  }
  expect(code).not.toBe(0);
  expect(stderr).toContain(`RELAY_CLASSIFIER_RULES file ${bad}`);
  expect(stderr).toMatch(/rule 1 \("broken"\): match\.text is not a valid regular expression/);
});
