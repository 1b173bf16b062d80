// Issue 19, "What happened to message X": the relay as a process writes the journal of final
// outcomes, and `queue show ID` (the CLI as another process, while the relay runs) tells what
// happened to a message that left the queue: delivered (where, when, reply), bounced (why,
// class, explanation, the bounce's id), deleted (by `queue delete`, running relay and stopped
// one). Also: records past queue.journalDays are removed at start, a torn last line is
// skipped, hostile reply texts reach the terminal without control characters, and the journal
// holds neither the AUTH password nor message bodies.
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { ensureBuilt } from '../helpers/built-cli';
import { rawMessage } from '../helpers/relay-harness';
import { kill, runCli, Running, serve, Setup, setupRelayFolders } from '../helpers/relay-process';
import { Sink, startSink } from '../helpers/sink';

beforeAll(ensureBuilt);

const FROM = 'app@example.org';
const BODY_MARKER = 'body-marker-7f3a9c-not-for-the-journal';
const DAY_MS = 86_400_000;

/** An id as spool.newId makes it, for a message accepted at `ms`. */
const idAt = (ms: number, tail: string) => ms.toString(36).padStart(9, '0').toUpperCase() + tail;

interface ShownRecipient { address: string; status: string; attempts: number; at?: string; host?: string; ip?: string; reply?: string; class?: string; explanation?: string; bounceId?: string }
interface Shown {
  id: string; outcome: string; queued: boolean; source: string; sender: string; finishedAt: string;
  recipients: ShownRecipient[]; bounces: string[]; noBounce?: string;
  history: { outcome: string; reply: string; class?: string; explanation?: string; host?: string; ip?: string }[];
}

async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('queue show for messages that left the queue (journal of final outcomes)', () => {
  let s: Setup;
  let relay: Running | undefined;
  let mx: Sink;
  let senderMx: Sink;
  let password: string;
  const journal = () => path.join(s.env.RELAY_DATA_DIR, 'journal');
  const today = () => new Date().toISOString().slice(0, 10);
  const oldId = idAt(Date.parse('2020-01-01T10:00:00Z'), 'DEADBEEF');
  const recentId = idAt(Date.now() - 2 * DAY_MS, 'FEEDFACE');

  const show = (id: string, json = false) => runCli(s, ['queue', 'show', id, ...(json ? ['--json'] : [])]);
  const shownJson = async (id: string): Promise<Shown> => {
    const r = await show(id, true);
    expect(r.code).toBe(0);
    return JSON.parse(r.output) as Shown;
  };
  /** Resolves once `id` is no longer queued and its record is in the journal. */
  const finished = (id: string) => until(`${id} in the journal`, async () => {
    const r = await show(id, true);
    if (r.code !== 0) return null;
    const parsed = JSON.parse(r.output) as Shown;
    return parsed.source === 'journal' ? parsed : null;
  });

  async function send(to: string, subject: string): Promise<string> {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1', port: s.port, secure: false, ignoreTLS: true,
      auth: { user: 'alice', pass: password }, connectionTimeout: 5000, socketTimeout: 10000,
    });
    try {
      const info = await transport.sendMail({ envelope: { from: FROM, to: [to] }, raw: rawMessage(FROM, to, { subject, body: `${BODY_MARKER}\r\n` }) });
      return /queued as ([0-9A-Z]+)$/.exec(info.response)![1];
    } finally {
      transport.close();
    }
  }

  beforeAll(async () => {
    mx = await startSink({
      host: '127.0.0.3',
      onRcpt: (rcpt) => {
        if (rcpt.startsWith('nobody@')) return { code: 550, message: '5.1.1 <nobody@dest.test>: Recipient address rejected: User unknown' };
        // a remote server's reply with terminal escape sequences (ESC [ ... m, OSC title, C1 CSI)
        if (rcpt.startsWith('hostile@')) return { code: 550, message: '5.7.1 \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \u009b2J rejected' };
        return undefined;
      },
    });
    senderMx = await startSink({ host: '127.0.0.4', port: mx.port });
    s = await setupRelayFolders({ RELAY_MX_PORT: String(mx.port), RELAY_RETRY_SCHEDULE: '30s' });
    s.dns.set('dest.test', 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
    s.dns.set('mx.dest.test', 'A', ['127.0.0.3']);
    s.dns.set('example.org', 'MX', [{ exchange: 'mx.example.org', priority: 10 }]);
    s.dns.set('mx.example.org', 'A', ['127.0.0.4']);
    s.dns.set('hold.test', 'MX', [{ exchange: 'mx.hold.test', priority: 10 }]);
    s.dns.set('mx.hold.test', 'A', ['127.0.0.6']); // nothing listens there: deferred

    const added = await runCli(s, ['users', 'add', 'alice', '--domain', 'example.org']);
    expect(added.code).toBe(0);
    password = added.output.split('\n')[0].trim();
    expect(password).toMatch(/^[\w-]{20,}$/);

    // a journal from before: one day file far past the retention, one within it
    fs.mkdirSync(journal(), { recursive: true, mode: 0o700 });
    const record = (id: string, at: number) => JSON.stringify({
      id, finishedAt: new Date(at).toISOString(), outcome: 'delivered', receivedAt: new Date(at - 1000).toISOString(), sender: FROM, size: 10,
      client: { address: '127.0.0.1' }, recipients: [{ address: 'old@dest.test', status: 'delivered', attempts: 1, reply: '250 ok', class: 'delivered', explanation: 'accepted' }],
      bounces: [], history: [],
    }) + '\n';
    fs.writeFileSync(path.join(journal(), '2020-01-01.jsonl'), record(oldId, Date.parse('2020-01-01T10:00:05Z')));
    const recentDay = new Date(Date.now() - 2 * DAY_MS).toISOString().slice(0, 10);
    fs.writeFileSync(path.join(journal(), `${recentDay}.jsonl`), record(recentId, Date.now() - 2 * DAY_MS + 5000));

    relay = await serve(s);
  });

  afterAll(async () => {
    await kill(relay);
    await mx?.close();
    await senderMx?.close();
    await s?.dns.close();
    if (s) fs.rmSync(s.dir, { recursive: true, force: true });
  });

  test('records older than queue.journalDays are removed at start; a message unknown to both says how long the journal keeps records', async () => {
    expect(fs.readdirSync(journal())).not.toContain('2020-01-01.jsonl');
    expect((await shownJson(recentId)).recipients[0].address).toBe('old@dest.test');
    const gone = await show(oldId);
    expect(gone.code).toBe(1);
    expect(gone.output).toContain(`no message ${oldId} in the queue`);
    expect(gone.output).toContain('keeps messages that left the queue for 7 day(s) (queue.journalDays, RELAY_JOURNAL_DAYS)');
    const off = await runCli(s, ['queue', 'show', oldId], { env: { RELAY_JOURNAL_DAYS: '0' } });
    expect(off.code).toBe(1);
    expect(off.output).toContain('the journal of final outcomes is off (queue.journalDays = 0, RELAY_JOURNAL_DAYS)');
  });

  test('a delivered message: where, when, the reply, class and explanation (text and --json)', async () => {
    const id = await send('ok@dest.test', 'delivered one');
    const record = await finished(id);
    expect(mx.messages.some((m) => m.rcptTo.includes('ok@dest.test'))).toBe(true);
    expect(record).toMatchObject({ id, outcome: 'delivered', queued: false, sender: FROM, bounces: [] });
    const [r] = record.recipients;
    expect(r).toMatchObject({ address: 'ok@dest.test', status: 'delivered', attempts: 1, host: 'mx.dest.test', ip: '127.0.0.3', class: 'delivered' });
    expect(r.reply).toMatch(/^250 /);
    expect(r.explanation).toBe('The destination accepted the message.');
    expect(Math.abs(Date.parse(r.at!) - Date.now())).toBeLessThan(60_000);
    expect(record.history.length).toBeGreaterThan(0);
    for (const h of record.history) expect(h).toEqual(expect.objectContaining({ class: expect.any(String), explanation: expect.any(String) }));

    const text = await show(id);
    expect(text.code).toBe(0);
    expect(text.output).toContain('status:      no longer queued: delivered to every recipient');
    expect(text.output).toMatch(/ {2}ok@dest\.test {2}delivered {2}attempts 1 {2}\S+ {2}mx\.dest\.test \[127\.0\.0\.3\]\n {4}reply: 250 /);
    expect(text.output).toContain('    delivered: The destination accepted the message.');
    expect(text.output).toContain('bounce:      none needed');
  });

  test('a bounced message (550 5.1.1 at the sink): why, class, explanation, and the bounce, itself in the journal once delivered', async () => {
    const id = await send('nobody@dest.test', 'bounced one');
    const record = await finished(id);
    expect(record.outcome).toBe('failed');
    const [r] = record.recipients;
    expect(r).toMatchObject({ address: 'nobody@dest.test', status: 'failed', class: 'recipient-unknown', host: 'mx.dest.test', ip: '127.0.0.3' });
    expect(r.reply).toMatch(/^550 5\.1\.1 /);
    expect(r.explanation).toBe('The recipient address does not exist at the destination.');
    expect(record.bounces).toHaveLength(1);
    expect(r.bounceId).toBe(record.bounces[0]);

    const text = await show(id);
    expect(text.output).toContain('status:      no longer queued: not delivered (failed)');
    expect(text.output).toMatch(/ {4}reply: 550 5\.1\.1 <nobody@dest\.test>: Recipient address rejected: User unknown\n {4}recipient-unknown: The recipient address does not exist at the destination\. Fix: /);
    expect(text.output).toContain(`bounce:      queued as ${record.bounces[0]} to ${FROM}`);

    // the bounce goes to the sender's MX and leaves the queue too
    const bounce = await finished(record.bounces[0]);
    expect(bounce).toMatchObject({ outcome: 'delivered', sender: '', recipients: [{ address: FROM, status: 'delivered', host: 'mx.example.org' }] });
    expect((await show(record.bounces[0])).output).toContain('(a bounce made by the relay)');
  });

  test('hostile texts: a remote reply with escape sequences, and a journal line with control characters in every field, reach the terminal without them', async () => {
    // smtp-server/nodemailer already turn a reply's control characters into spaces
    const id = await send('hostile@dest.test', 'hostile one');
    const record = await finished(id);
    expect(record.recipients[0].reply).toMatch(/^550 5\.7\.1 +\[31mred \[0m +\]0;pwned +2J rejected$/);
    // a record that holds them anyway (written by an older version, or edited): every string field
    const evil = '\x1b[2J\x1b]0;pwned\x07\u009b31m\r\nX';
    const evilId = idAt(Date.now(), 'BADC0DE5');
    fs.appendFileSync(path.join(journal(), `${today()}.jsonl`), JSON.stringify({
      id: evilId, finishedAt: new Date().toISOString(), outcome: 'failed', receivedAt: new Date().toISOString(), sender: `a${evil}@example.org`, size: 1,
      client: { address: evil, user: evil }, dsn: 'failed',
      recipients: [{ address: `r${evil}@dest.test`, status: 'failed', attempts: 1, at: evil, host: evil, ip: evil, reply: evil, class: evil, explanation: evil, fix: evil, bounceId: evil }],
      bounces: [evil], noBounce: evil,
      history: [{ at: Date.now(), recipients: [evil], outcome: evil, reply: evil, host: evil, ip: evil, class: evil, explanation: evil, fix: evil }],
    }) + '\n');
    const text = await show(evilId);
    expect(text.code).toBe(0);
    expect(text.output).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect(text.output).toContain('reply: \\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x0d\\x0aX');
    const json = await show(evilId, true);
    expect(json.output).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect((JSON.parse(json.output) as Shown).recipients[0].reply).toBe(evil); // escaped, not lost
    // the relay's own lines in the journal file: one JSON record per line, nothing raw
    for (const line of fs.readFileSync(path.join(journal(), `${today()}.jsonl`), 'utf8').split('\n').filter(Boolean)) {
      expect(() => JSON.parse(line)).not.toThrow();
      expect(line).not.toMatch(/[\x00-\x1f]/);
    }
  });

  test('a message deleted by queue delete while the relay runs: deleted, with the last reply before', async () => {
    // a client's header with a terminal escape sequence (OSC: set the window title) in it
    const id = await send('held@hold.test', 'deleted \x1b]0;pwned\x07 one');
    await until('the first attempt', async () => {
      const r = await show(id, true);
      return r.code === 0 && (JSON.parse(r.output) as { recipients: { attempts: number }[] }).recipients[0].attempts >= 1;
    });
    const queued = await show(id);
    expect(queued.output).toContain('  Subject: deleted \\x1b]0;pwned\\x07 one');
    expect(queued.output).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect(await runCli(s, ['queue', 'delete', id])).toMatchObject({ code: 0 });
    const record = await finished(id);
    expect(record).toMatchObject({ outcome: 'deleted', bounces: [], noBounce: 'deleted without --bounce' });
    const [r] = record.recipients;
    expect(r).toMatchObject({ address: 'held@hold.test', status: 'deleted', class: 'deleted', host: 'mx.hold.test', ip: '127.0.0.6' });
    expect(r.reply).toMatch(/^deleted from the queue by the administrator; last reply: .*(ECONNREFUSED|connect)/i);
    const text = await show(id);
    expect(text.output).toContain('status:      no longer queued: deleted from the queue by the administrator');
    expect(text.output).toContain('bounce:      none: deleted without --bounce');
  });

  test('a torn last line (a crash mid-write) is skipped by readers and ended by the next write', async () => {
    const delivered = await send('ok2@dest.test', 'before the tear');
    await finished(delivered);
    const file = path.join(journal(), `${today()}.jsonl`);
    fs.appendFileSync(file, `{"id":"${delivered}","finishedAt":"2026-`); // a record cut short
    const before = await show(delivered, true);
    expect(before.code).toBe(0);
    expect((JSON.parse(before.output) as Shown).outcome).toBe('delivered');

    const after = await send('ok3@dest.test', 'after the tear');
    expect((await finished(after)).outcome).toBe('delivered');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines).toContain(`{"id":"${delivered}","finishedAt":"2026-`); // on a line of its own
    expect(lines.find((l) => l.startsWith(`{"id":"${after}"`))).toBeDefined();
  });

  test('the journal holds neither the AUTH password nor message bodies', () => {
    const all = fs.readdirSync(journal()).map((n) => fs.readFileSync(path.join(journal(), n), 'utf8')).join('');
    expect(all).toContain('"user":"alice"');
    expect(all).not.toContain(password);
    expect(all).not.toContain(BODY_MARKER);
    expect(all).not.toContain('Subject:');
  });

  test('queue delete --bounce on a stopped relay writes the journal itself', async () => {
    const id = await send('held2@hold.test', 'deleted offline');
    await until('the first attempt', async () => {
      const r = await show(id, true);
      return r.code === 0 && (JSON.parse(r.output) as { recipients: { attempts: number }[] }).recipients[0].attempts >= 1;
    });
    await kill(relay, 'SIGTERM');
    relay = undefined;
    expect(await runCli(s, ['queue', 'delete', id, '--bounce'])).toMatchObject({ code: 0 });
    const record = await shownJson(id);
    expect(record).toMatchObject({ id, outcome: 'deleted', source: 'journal', recipients: [{ address: 'held2@hold.test', status: 'deleted' }] });
    expect(record.bounces).toHaveLength(1);
    expect(record.recipients[0].bounceId).toBe(record.bounces[0]);
    // the bounce waits in the spool for the next start
    expect(fs.existsSync(path.join(s.env.RELAY_DATA_DIR, 'spool', `${record.bounces[0]}.eml`))).toBe(true);
  });
});

describe('queue show for a message whose recipient expired', () => {
  let s: Setup;
  let relay: Running | undefined;
  let senderMx: Sink;

  beforeAll(async () => {
    senderMx = await startSink({ host: '127.0.0.4' });
    // retried every second, given up after 3 s; nothing listens on the recipient's MX
    s = await setupRelayFolders({ RELAY_MX_PORT: String(senderMx.port), RELAY_RETRY_SCHEDULE: '1s', RELAY_RETRY_EXPIRE: '3s' });
    s.dns.set('example.org', 'MX', [{ exchange: 'mx.example.org', priority: 10 }]);
    s.dns.set('mx.example.org', 'A', ['127.0.0.4']);
    s.dns.set('hold.test', 'MX', [{ exchange: 'mx.hold.test', priority: 10 }]);
    s.dns.set('mx.hold.test', 'A', ['127.0.0.6']);
    relay = await serve(s);
  });

  afterAll(async () => {
    await kill(relay);
    await senderMx?.close();
    await s?.dns.close();
    if (s) fs.rmSync(s.dir, { recursive: true, force: true });
  });

  test('expired: the relay gave up, with the last reply and its meaning, and the bounce', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.port, secure: false, ignoreTLS: true });
    const info = await transport.sendMail({ envelope: { from: FROM, to: ['late@hold.test'] }, raw: rawMessage(FROM, 'late@hold.test') });
    transport.close();
    const id = /queued as ([0-9A-Z]+)$/.exec(info.response)![1];
    const record = await until('the expired message in the journal', async () => {
      const r = await runCli(s, ['queue', 'show', id, '--json']);
      const parsed = r.code === 0 ? (JSON.parse(r.output) as Shown) : null;
      return parsed?.source === 'journal' ? parsed : null;
    }, 30000);
    expect(record.outcome).toBe('failed');
    const [r] = record.recipients;
    expect(r).toMatchObject({ address: 'late@hold.test', status: 'expired', class: 'expired', host: 'mx.hold.test' });
    expect(r.reply).toMatch(/^gave up after \d+ attempts in \d+ s: .*(ECONNREFUSED|connect)/i);
    expect(r.explanation).toMatch(/^The relay gave up: .*delivery\.retryExpire \(RELAY_RETRY_EXPIRE\).* The last reply meant: The destination's mail server took no connection/);
    expect(record.bounces).toHaveLength(1);
    const text = await runCli(s, ['queue', 'show', id]);
    expect(text.output).toMatch(/ {2}late@hold\.test {2}expired {2}attempts \d+ /);
    expect(text.output).toContain(`bounce:      queued as ${record.bounces[0]} to ${FROM}`);
  }, 60000);
});
