// The journal of final outcomes on a real file system (spool/journal.ts): day files, rotation
// by a given clock, the per-day size cap, torn lines, and the read API (find, recent).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finalOutcome } from '../../src/delivery/final-outcome';
import { JournalReader, JournalRecord, JournalWriter } from '../../src/spool/journal';
import { SpoolEnvelope } from '../../src/spool/spool';

const DAY_MS = 86_400_000;
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-journal-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const journalFiles = () => fs.readdirSync(path.join(dir, 'journal')).sort();

function record(id: string, finishedAt: number, extra: Partial<JournalRecord> = {}): JournalRecord {
  return {
    id, finishedAt: new Date(finishedAt).toISOString(), outcome: 'delivered', receivedAt: new Date(finishedAt - 1000).toISOString(),
    sender: 'a@example.org', size: 100, client: { address: '127.0.0.1' },
    recipients: [{ address: 'b@example.net', status: 'delivered', attempts: 1, reply: '250 ok' }], bounces: [], history: [], ...extra,
  };
}

test('records go to the file of their UTC day; files past the retention are removed by rotate', async () => {
  const now = Date.parse('2026-12-10T12:00:00Z');
  const writer = new JournalWriter(dir, { days: 7, maxDayBytes: 1 << 20 });
  await writer.open(now);
  for (const [id, at] of [['A', Date.parse('2026-12-01T23:59:00Z')], ['B', Date.parse('2026-12-02T00:01:00Z')], ['C', now]] as const) {
    writer.append(record(id, at), at);
  }
  await writer.close();
  expect(journalFiles()).toEqual(['2026-12-01.jsonl', '2026-12-02.jsonl', '2026-12-10.jsonl']);
  // 7 days: a day file goes once its last moment is more than 7 days old
  expect(await writer.rotate(Date.parse('2026-12-09T12:00:00Z'))).toEqual(['2026-12-01.jsonl']);
  expect(await writer.rotate(Date.parse('2026-12-10T00:00:00Z') - 1)).toEqual([]);
  expect(await writer.rotate(Date.parse('2026-12-10T00:00:00Z'))).toEqual(['2026-12-02.jsonl']);
  expect(journalFiles()).toEqual(['2026-12-10.jsonl']);
  const reader = new JournalReader(dir);
  expect(await reader.find('A')).toBeNull();
  expect((await reader.find('C'))?.finishedAt).toBe(new Date(now).toISOString());
});

test('0 days: nothing is written and the files of an earlier journal are removed', async () => {
  fs.mkdirSync(path.join(dir, 'journal'));
  fs.writeFileSync(path.join(dir, 'journal', '2026-12-01.jsonl'), JSON.stringify(record('A', Date.now())) + '\n');
  const writer = new JournalWriter(dir, { days: 0, maxDayBytes: 1 << 20 });
  await writer.open();
  writer.append(record('B', Date.now()));
  await writer.close();
  expect(journalFiles()).toEqual([]);
});

test('a day file stops at maxDayBytes, with one warning naming the setting', async () => {
  const warnings: string[] = [];
  const one = Buffer.byteLength(JSON.stringify(record('X0000', Date.now())) + '\n');
  const writer = new JournalWriter(dir, { days: 7, maxDayBytes: one * 3 + 10, warn: (_f, message) => warnings.push(message) });
  await writer.open();
  for (let i = 0; i < 5; i++) writer.append(record(`X000${i}`, Date.now()));
  await writer.flush();
  for (let i = 5; i < 8; i++) writer.append(record(`X000${i}`, Date.now()));
  await writer.close();
  const [file] = journalFiles();
  expect(fs.statSync(path.join(dir, 'journal', file)).size).toBe(one * 3);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('queue.journalMaxDaySize, RELAY_JOURNAL_MAX_DAY_SIZE');
});

test('appends are batched: nothing is written until the flush, and append never waits', async () => {
  const writer = new JournalWriter(dir, { days: 7, maxDayBytes: 1 << 20 });
  await writer.open();
  const started = process.hrtime.bigint();
  for (let i = 0; i < 1000; i++) writer.append(record(`M${i}`, Date.now()));
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  expect(journalFiles()).toEqual([]); // nothing written in the caller: the writes come later, asynchronously
  await writer.close();
  const text = fs.readFileSync(path.join(dir, 'journal', journalFiles()[0]), 'utf8');
  expect(text.split('\n').filter(Boolean)).toHaveLength(1000);
  console.log(`journal: 1000 appends took ${Math.round(micros)} µs in the caller`);
});

test('torn lines are skipped by readers; the next write starts a line of its own', async () => {
  const now = Date.now();
  const writer = new JournalWriter(dir, { days: 7, maxDayBytes: 1 << 20 });
  await writer.open();
  writer.append(record('A', now), now);
  await writer.flush();
  const file = path.join(dir, 'journal', journalFiles()[0]);
  fs.appendFileSync(file, '{"id":"B","finishedAt":"20'); // cut short by a crash
  const reader = new JournalReader(dir);
  expect((await reader.find('A'))?.id).toBe('A');
  expect(await reader.find('B')).toBeNull();
  expect(reader.skipped).toBe(1);
  writer.append(record('C', now), now);
  await writer.close();
  expect((await new JournalReader(dir).find('C'))?.id).toBe('C');
  expect(fs.readFileSync(file, 'utf8').split('\n')).toEqual([expect.stringMatching(/^\{"id":"A"/), '{"id":"B","finishedAt":"20', expect.stringMatching(/^\{"id":"C"/), '']);
});

test('find returns the last record of an id (a message finished again after a crash); recent filters by time', async () => {
  const t0 = Date.parse('2026-12-01T10:00:00Z');
  const writer = new JournalWriter(dir, { days: 3650, maxDayBytes: 1 << 20 });
  await writer.open(t0);
  writer.append(record('A', t0, { outcome: 'failed' }), t0);
  writer.append(record('B', t0 + 1000), t0 + 1000);
  writer.append(record('A', t0 + DAY_MS, { outcome: 'delivered' }), t0 + DAY_MS);
  await writer.close();
  const reader = new JournalReader(dir);
  expect((await reader.find('A'))?.outcome).toBe('delivered');
  expect((await reader.recent(t0 + 500)).map((r) => r.id)).toEqual(['B', 'A']);
  expect((await reader.recent(t0 + 2 * DAY_MS))).toEqual([]);
  expect(await reader.find('NOSUCH')).toBeNull();
  expect(await reader.find('A', t0 + 2 * DAY_MS)).toBeNull(); // only from sinceMs on
  expect((await reader.recent(0, 2)).map((r) => r.id)).toEqual(['B', 'A']);
  const seen: string[] = [];
  await reader.forEach(t0, (r) => seen.push(`${r.id}:${r.outcome}`));
  expect(seen).toEqual(['A:failed', 'B:delivered', 'A:delivered']);
});

test('recent keeps only the last `limit` records of many', async () => {
  const t0 = Date.parse('2026-12-01T10:00:00Z');
  const writer = new JournalWriter(dir, { days: 3650, maxDayBytes: 1 << 30 });
  await writer.open(t0);
  for (let i = 0; i < 2500; i++) writer.append(record(`R${i}`, t0 + i), t0 + i);
  await writer.close();
  const last = await new JournalReader(dir).recent(t0, 100);
  expect(last.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => `R${2400 + i}`));
});

test('find skips day files before the message was accepted (by its id)', async () => {
  const accepted = Date.parse('2026-12-05T10:00:00Z');
  const id = accepted.toString(36).padStart(9, '0').toUpperCase() + 'ABCDEF01';
  fs.mkdirSync(path.join(dir, 'journal'));
  // a record with this id in a file three days too early cannot be it
  fs.writeFileSync(path.join(dir, 'journal', '2026-12-02.jsonl'), JSON.stringify(record(id, Date.parse('2026-12-02T10:00:00Z'))) + '\n');
  expect(await new JournalReader(dir).find(id)).toBeNull();
  fs.writeFileSync(path.join(dir, 'journal', '2026-12-04.jsonl'), JSON.stringify(record(id, Date.parse('2026-12-04T23:00:00Z'))) + '\n');
  expect(await new JournalReader(dir).find(id)).not.toBeNull(); // a day of slack for clocks
});

test('finalOutcome: statuses, last attempt with host, IP, class and explanation, bounces', () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  const envelope: SpoolEnvelope = {
    id: 'M1', receivedAt: new Date(now - 60_000).toISOString(), sender: 'a@example.org', size: 10, client: { address: '127.0.0.1', user: 'alice' },
    recipients: [
      { address: 'ok@x.test', status: 'delivered', attempts: 1, nextAttemptAt: 0, lastReply: '250 2.0.0 ok', lastAttemptAt: now - 1000, remoteHost: 'mx.x.test' },
      { address: 'no@x.test', status: 'failed', attempts: 1, nextAttemptAt: 0, lastReply: '550 5.1.1 no such user', lastAttemptAt: now - 1000, remoteHost: 'mx.x.test', notified: true, bounceId: 'D1' },
      { address: 'late@y.test', status: 'failed', attempts: 9, nextAttemptAt: 0, lastReply: 'gave up after 9 attempts in 5 d: 451 4.3.0 later', lastAttemptAt: now - 2000, remoteHost: 'mx.y.test', expired: true, notified: true, bounceId: 'D1' },
    ],
    history: [
      { at: now - 1000, recipients: ['ok@x.test'], outcome: 'delivered', reply: '250 2.0.0 ok', host: 'mx.x.test', ip: '192.0.2.1', class: 'delivered', explanation: 'accepted' },
      { at: now - 1000, recipients: ['no@x.test'], outcome: 'failed', reply: '550 5.1.1 no such user', host: 'mx.x.test', ip: '192.0.2.1', class: 'recipient-unknown', explanation: 'gone' },
    ],
  };
  const r = finalOutcome(envelope, false, now);
  expect(Object.keys(r)[0]).toBe('id');
  expect(r).toMatchObject({ id: 'M1', outcome: 'partly-delivered', bounces: ['D1'], client: { user: 'alice' } });
  expect(r.noBounce).toBeUndefined();
  expect(r.recipients[0]).toMatchObject({ status: 'delivered', host: 'mx.x.test', ip: '192.0.2.1', class: 'delivered', explanation: 'accepted' });
  expect(r.recipients[1]).toMatchObject({ status: 'failed', class: 'recipient-unknown', explanation: 'gone', bounceId: 'D1' });
  // not in the history: classified from its reply
  expect(r.recipients[2]).toMatchObject({ status: 'expired', class: 'expired', host: 'mx.y.test', reply: 'gave up after 9 attempts in 5 d: 451 4.3.0 later' });
  expect(r.recipients[2].ip).toBeUndefined();
  expect(r.recipients[2].explanation).toMatch(/^The relay gave up: .*delivery\.retryExpire.*The last reply meant: /);
  expect(finalOutcome({ ...envelope, sender: '', recipients: [envelope.recipients[1]].map((x) => ({ ...x, bounceId: undefined })) }, false, now).noBounce)
    .toMatch(/null sender/);
});
