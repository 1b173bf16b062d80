// A queue larger than the active queue (issue 20): only what is due soon is held in memory,
// the rest is found on disk through the spool's due index (src/spool/due-index.ts).
// Each test writes its queue before the relay starts, through the Spool class (as the relay
// commits a message), into a data dir handed to the harness; a small active bound
// (RELAY_ACTIVE_QUEUE_LIMIT) stands for the default 10,000. Delivery goes to a sink as the
// smarthost, so no DNS is needed for the queued mail.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { queueCommand } from '../../src/cli/queue-command';
import { bucketOf } from '../../src/spool/due-index';
import { Spool } from '../../src/spool/spool';
import { capturedContext } from '../helpers/cli-context';
import { DOMAIN, Harness, logLines, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { Sink, startSink } from '../helpers/sink';

const HOUR = 3600_000;

interface Queued { id: string; subject: string; due: number }

/** Commits messages to the spool in `dataDir` as the relay does, each due at its `due`. */
async function queueOnDisk(dataDir: string, items: { subject: string; due: number }[]): Promise<Queued[]> {
  const spool = new Spool(dataDir);
  await spool.open();
  await spool.index.repaired(); // it was empty: its index is whole, as a relay that ran on it would leave it
  const out: Queued[] = [];
  for (const { subject, due } of items) {
    const writer = spool.createWriter();
    await writer.write(Buffer.from(rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject })));
    const envelope = await writer.commit({
      receivedAt: new Date().toISOString(), sender: `app@${DOMAIN}`, dkimSignatures: '', client: { address: '127.0.0.1' },
      recipients: [{ address: 'user@dest.test', status: 'queued', attempts: 0, nextAttemptAt: due }],
    });
    spool.release(envelope.id);
    out.push({ id: envelope.id, subject, due });
  }
  await spool.close();
  return out;
}

const subjectOf = (data: Buffer) => /\r\nSubject: ([^\r\n]*)/.exec(data.toString('latin1'))?.[1] ?? '';

function indexEntries(dataDir: string): string[] {
  const dir = path.join(dataDir, 'spool-index');
  return fs.readdirSync(dir).filter((b) => /^\d+$/.test(b)).flatMap((b) => fs.readdirSync(path.join(dir, b)).map((id) => `${b}/${id}`));
}

async function until<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let dir: string;
let dataDir: string;
let sink: Sink | undefined;
let h: Harness | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-big-queue-'));
  dataDir = path.join(dir, 'data');
});

afterEach(async () => {
  await h?.stop();
  await sink?.close();
  h = undefined;
  sink = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string>, sinkOptions: Parameters<typeof startSink>[0] = {}): Promise<Harness> {
  sink = await startSink({ host: '127.0.0.3', ...sinkOptions });
  h = await startHarness({ RELAY_DATA_DIR: dataDir, RELAY_SMARTHOST: `127.0.0.3:${sink.port}`, RELAY_RETRY_SCHEDULE: '1h', ...env });
  return h;
}

test('a deferred queue larger than the active bound is not loaded: the relay counts it, holds none of it, and accepts and delivers new mail at once', async () => {
  await queueOnDisk(dataDir, Array.from({ length: 300 }, (_, i) => ({ subject: `later ${i}`, due: Date.now() + HOUR + i * 1000 })));
  const relay = await start({ RELAY_ACTIVE_QUEUE_LIMIT: '20' });
  await until('the spool counted', () => relay.relay.queue.size === 300);
  expect(relay.relay.queue.activeSize).toBe(0);
  await submit(relay, { to: ['user@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'new one' }) });
  const [got] = await sink!.waitForMessages(1, 10_000);
  expect(subjectOf(got.data)).toBe('new one');
  await until('the delivered message removed', () => relay.relay.queue.size === 300);
  expect(relay.relay.queue.activeSize).toBe(0);
  expect(logLines(relay).filter((l) => l.msg === 'delivery attempt')).toHaveLength(1);
});

test('messages due now beyond the active bound: never more than the bound in memory, each tried once, the deferred leave memory', async () => {
  const N = 150;
  await queueOnDisk(dataDir, Array.from({ length: N }, (_, i) => ({ subject: `due ${i}`, due: Date.now() - 1000 })));
  const relay = await start({ RELAY_ACTIVE_QUEUE_LIMIT: '10' }, { onRcpt: () => ({ code: 451, message: '4.3.0 try later' }) });
  let most = 0;
  const sampler = setInterval(() => (most = Math.max(most, relay.relay.queue.activeSize)), 5);
  try {
    await until(`${N} attempts`, () => logLines(relay).filter((l) => l.msg === 'delivery attempt').length >= N, 60_000);
    await until('the deferred messages out of memory', () => relay.relay.queue.activeSize === 0);
  } finally {
    clearInterval(sampler);
  }
  expect(most).toBeGreaterThan(0);
  expect(most).toBeLessThanOrEqual(10);
  const attempts = logLines(relay).filter((l) => l.msg === 'delivery attempt');
  expect(new Set(attempts.map((l) => l.id)).size).toBe(N); // each once: none loaded twice
  expect(relay.relay.queue.size).toBe(N);
  // every message's index entry moved to the minute of its retry, an hour away
  const soon = bucketOf(Date.now() + 30 * 60_000);
  expect(indexEntries(dataDir).filter((e) => Number(e.split('/')[0]) < soon)).toEqual([]);
  expect(indexEntries(dataDir)).toHaveLength(N);
});

test('due messages are delivered in the order they are due (one at a time through an active queue of one)', async () => {
  const now = Date.now();
  // due 1 to 8 minutes ago, each in its own minute, committed in shuffled order
  const order = [5, 2, 7, 0, 3, 6, 1, 4];
  await queueOnDisk(dataDir, order.map((k) => ({ subject: `due -${8 - k}m`, due: now - (8 - k) * 60_000 })));
  const relay = await start({ RELAY_ACTIVE_QUEUE_LIMIT: '1' });
  const got = await sink!.waitForMessages(8, 20_000);
  expect(got.map((m) => subjectOf(m.data))).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((k) => `due -${8 - k}m`));
  await until('an empty queue', () => relay.relay.queue.size === 0);
  expect(indexEntries(dataDir)).toEqual([]);
});

describe('crash and restart', () => {
  test('a message whose index entry is missing (a crash of the machine lost it) is still found and delivered', async () => {
    const queued = await queueOnDisk(dataDir, ['a', 'b', 'c'].map((s) => ({ subject: s, due: Date.now() - 1000 })));
    const lost = queued[1];
    fs.unlinkSync(path.join(dataDir, 'spool-index', String(bucketOf(lost.due)), lost.id));
    // what a relay running on another boot, never stopped cleanly, leaves behind
    fs.writeFileSync(path.join(dataDir, 'spool-index', 'state.json'), JSON.stringify({ clean: false, bootId: 'a-boot-before-the-crash' }));
    const relay = await start({});
    const got = await sink!.waitForMessages(3, 20_000);
    expect(got.map((m) => subjectOf(m.data)).sort()).toEqual(['a', 'b', 'c']);
    const repaired = await waitForLog(relay, (l) => String(l.msg).startsWith('the spool index lacked messages'));
    expect(repaired).toMatchObject({ added: 1, removed: 0 });
  });

  test('without the repair, the message the index lacks is not found (what the test above relies on)', async () => {
    const queued = await queueOnDisk(dataDir, ['a', 'b'].map((s) => ({ subject: s, due: Date.now() - 1000 })));
    fs.unlinkSync(path.join(dataDir, 'spool-index', String(bucketOf(queued[1].due)), queued[1].id));
    const relay = await start({}); // the index was closed cleanly: trusted, no scan
    await sink!.waitForMessages(1, 10_000);
    await new Promise((r) => setTimeout(r, 2500));
    expect(sink!.messages.map((m) => subjectOf(m.data))).toEqual(['a']);
    expect(relay.relay.queue.size).toBe(1);
  });

  test('a spool without an index (written by an older version) is indexed at start and delivered', async () => {
    await queueOnDisk(dataDir, ['a', 'b', 'c', 'd'].map((s) => ({ subject: s, due: Date.now() - 1000 })));
    fs.rmSync(path.join(dataDir, 'spool-index'), { recursive: true });
    const relay = await start({});
    const got = await sink!.waitForMessages(4, 20_000);
    expect(got.map((m) => subjectOf(m.data)).sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(logLines(relay).some((l) => l.msg === 'no spool index yet: it is built from the spool in the background')).toBe(true);
  });

  test('stale index entries are harmless: one for a message that is gone is dropped, an early one is moved, nothing is sent twice or early', async () => {
    const now = Date.now();
    const [due, later] = await queueOnDisk(dataDir, [{ subject: 'due', due: now - 1000 }, { subject: 'later', due: now + HOUR }]);
    const index = path.join(dataDir, 'spool-index');
    const past = bucketOf(now - 5 * 60_000);
    fs.mkdirSync(path.join(index, String(past)), { recursive: true });
    fs.writeFileSync(path.join(index, String(past), '0MX000000DEADBEEF'), ''); // its message was removed
    fs.writeFileSync(path.join(index, String(past), later.id), ''); // a move that a crash cut short
    fs.writeFileSync(path.join(index, String(bucketOf(due.due)), due.id), ''); // (already there)
    const relay = await start({});
    const [got] = await sink!.waitForMessages(1, 10_000);
    expect(subjectOf(got.data)).toBe('due');
    await until('the stale entries dealt with', () => !fs.existsSync(path.join(index, String(past))));
    await new Promise((r) => setTimeout(r, 1500));
    expect(sink!.messages).toHaveLength(1);
    expect(indexEntries(dataDir)).toEqual([`${bucketOf(later.due)}/${later.id}`]);
    expect(relay.relay.queue.size).toBe(1);
    expect(relay.relay.queue.activeSize).toBe(0);
    expect(logLines(relay).filter((l) => Number(l.level) >= 50)).toEqual([]);
  });

  test('a message committed and then killed before any attempt: after a restart (same boot) it is delivered from its index entry', async () => {
    // the state a SIGKILL leaves: the index marked in use (not clean) on this boot
    await queueOnDisk(dataDir, [{ subject: 'killed', due: Date.now() - 1000 }]);
    const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    fs.writeFileSync(path.join(dataDir, 'spool-index', 'state.json'), JSON.stringify({ clean: false, bootId }));
    const relay = await start({});
    const [got] = await sink!.waitForMessages(1, 10_000);
    expect(subjectOf(got.data)).toBe('killed');
    expect(logLines(relay).some((l) => String(l.msg).includes('spool index'))).toBe(false); // no scan was needed
  });
});

test('the queue CLI on a queue larger than the active bound: list, show, retry and delete of messages on disk, retry --all', async () => {
  const queued = await queueOnDisk(dataDir, Array.from({ length: 40 }, (_, i) => ({ subject: `held ${i}`, due: Date.now() + HOUR + i })));
  const relay = await start({ RELAY_ACTIVE_QUEUE_LIMIT: '5' });
  const cli = async (...args: string[]) => {
    const { ctx, out } = capturedContext(relay.config);
    const code = await queueCommand(args, ctx);
    return { code, ...out };
  };
  await until('the spool counted', () => relay.relay.queue.size === 40);
  expect(relay.relay.queue.activeSize).toBe(0);

  const listed = JSON.parse((await cli('list', '--json')).stdout) as { id: string; recipients: { status: string }[] }[];
  expect(listed.map((m) => m.id)).toEqual(queued.map((q) => q.id).sort()); // in the order of their ids: the order accepted
  const text = await cli('list');
  expect(text.stdout).toMatch(/40 message\(s\)\n$/);
  const shown = await cli('show', queued[3].id);
  expect(shown.code).toBe(0);
  expect(shown.stdout).toContain('  Subject: held 3');

  const retried = await cli('retry', queued[7].id);
  expect(retried).toMatchObject({ code: 0 });
  expect(retried.stdout).toMatch(/^1 message\(s\) will be tried now/);
  const [first] = await sink!.waitForMessages(1, 10_000);
  expect(subjectOf(first.data)).toBe('held 7');

  const deleted = await cli('delete', queued[9].id);
  expect(deleted).toMatchObject({ code: 0 });
  expect(fs.existsSync(path.join(dataDir, 'spool', `${queued[9].id}.eml`))).toBe(false);
  await until('38 left', () => relay.relay.queue.size === 38);

  const all = await cli('retry', '--all');
  expect(all).toMatchObject({ code: 0 });
  expect(all.stdout).toMatch(/^38 message\(s\) will be tried now/);
  let most = 0;
  const sampler = setInterval(() => (most = Math.max(most, relay.relay.queue.activeSize)), 5);
  try {
    await sink!.waitForMessages(39, 30_000);
  } finally {
    clearInterval(sampler);
  }
  expect(most).toBeLessThanOrEqual(5);
  expect(new Set(sink!.messages.map((m) => subjectOf(m.data))).size).toBe(39);
  await until('an empty queue', () => relay.relay.queue.size === 0);
  expect(JSON.parse((await cli('list', '--json')).stdout)).toEqual([]);
  expect(fs.readdirSync(path.join(dataDir, 'spool'))).toEqual([]);
}, 60_000);
