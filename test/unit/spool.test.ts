// The spool's file protocol on a real file system: one .eml per message (message bytes +
// envelope trailer), a .json only once there is delivery state, and what a restart finds
// (a restart reads no message: what the tests "find" they read with list, load or repairIndex).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ownCopy, Spool, SpoolEnvelope } from '../../src/spool/spool';
import { encodeTrailer, FOOTER_LENGTH } from '../../src/spool/trailer';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-spool-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const SIGNATURE = 'DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; b=abc\r\n';

function messageOf(bytes: number): Buffer {
  const head = 'From: a@example.org\r\nTo: b@example.net\r\nSubject: spool\r\n\r\n';
  const line = `${'y'.repeat(70)}\r\n`;
  return Buffer.from(head + line.repeat(Math.max(0, Math.ceil((bytes - head.length) / line.length))));
}

async function commit(spool: Spool, message: Buffer, chunkSize = 16 * 1024): Promise<SpoolEnvelope> {
  const writer = spool.createWriter();
  for (let i = 0; i < message.length; i += chunkSize) await writer.write(message.subarray(i, i + chunkSize));
  const now = Date.now();
  return writer.commit({
    receivedAt: new Date(now).toISOString(),
    sender: 'a@example.org',
    recipients: [{ address: 'b@example.net', status: 'queued', attempts: 0, nextAttemptAt: now }],
    dkimSignatures: SIGNATURE,
    client: { address: '127.0.0.1' },
  });
}

async function bytesOf(source: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(source)) return source;
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const spoolFiles = () => fs.readdirSync(path.join(dir, 'spool')).sort();

test.each([['small (held in memory)', 10 * 1024], ['large (streamed to disk)', 700 * 1024], ['header-only', 0]])(
  'a %s message is one file: the message bytes, then its envelope; a restart finds it whole', async (_kind, size) => {
    const spool = new Spool(dir);
    await spool.open();
    const message = messageOf(size);
    const envelope = await commit(spool, message);
    expect(envelope.size).toBe(message.length);
    expect(envelope).not.toHaveProperty('dkimSignatures'); // kept in the trailer only
    expect(spoolFiles()).toEqual([`${envelope.id}.eml`]);
    expect(fs.readdirSync(path.join(dir, 'spool-tmp'))).toEqual([]);
    const file = fs.readFileSync(spool.messagePath(envelope.id));
    expect(file.subarray(0, message.length).equals(message)).toBe(true);
    expect(file.length).toBeGreaterThan(message.length + FOOTER_LENGTH);

    const expected = Buffer.concat([Buffer.from(SIGNATURE), message]);
    expect((await bytesOf(spool.openSigned(envelope))).equals(expected)).toBe(true);

    const again = new Spool(dir);
    await again.open();
    const [found, ...rest] = await again.list();
    expect(rest).toEqual([]);
    expect(found).toEqual(envelope);
    expect((await bytesOf(again.openSigned(found))).equals(expected)).toBe(true); // from the file this time
    expect((await again.readHeaders(found.id)).toString()).toBe('From: a@example.org\r\nTo: b@example.net\r\nSubject: spool\r\n');
  });

test('a message kept in memory for its first delivery owns exactly its bytes, not a slab of a shared buffer', () => {
  // Node's Buffer.concat would return a view into a 64 KB pool slab for anything under 32 KB;
  // queued messages would then hold slabs (and everything else in them) alive
  const socketRead = Buffer.alloc(64 * 1024, 'x');
  for (const size of [1, 700, 10 * 1024, 40 * 1024]) {
    const chunks = [socketRead.subarray(0, Math.ceil(size / 2)), socketRead.subarray(100, 100 + Math.floor(size / 2))];
    const kept = ownCopy(chunks, size);
    expect(kept.equals(Buffer.concat(chunks))).toBe(true);
    expect(kept.byteOffset).toBe(0);
    expect(kept.buffer.byteLength).toBe(size);
  }
});

test('delivery state goes to <id>.json, which wins over the trailer after a restart; removal takes both files', async () => {
  const spool = new Spool(dir);
  await spool.open();
  const envelope = await commit(spool, messageOf(2000));
  envelope.recipients[0] = { ...envelope.recipients[0], attempts: 1, lastReply: '451 4.3.0 try later', nextAttemptAt: Date.now() + 60_000 };
  await spool.update(envelope);
  expect(spoolFiles()).toEqual([`${envelope.id}.eml`, `${envelope.id}.json`]);
  expect(fs.readFileSync(spool.statePath(envelope.id), 'utf8')).not.toContain('DKIM-Signature');

  const again = new Spool(dir);
  await again.open();
  const [found] = await again.list();
  expect(found.recipients[0].lastReply).toBe('451 4.3.0 try later');
  expect(found.recipients[0].attempts).toBe(1);
  // the signatures come from the trailer
  expect((await bytesOf(again.openSigned(found))).equals(Buffer.concat([Buffer.from(SIGNATURE), messageOf(2000)]))).toBe(true);
  expect((await again.list()).map((e) => e.id)).toEqual([envelope.id]);

  await again.remove(found.id);
  expect(spoolFiles()).toEqual([]);
});

test('a state file of an older version, which carried the signatures too: they are sent once, from the trailer', async () => {
  const spool = new Spool(dir);
  await spool.open();
  const envelope = await commit(spool, messageOf(1500));
  fs.writeFileSync(spool.statePath(envelope.id), JSON.stringify({ ...envelope, dkimSignatures: SIGNATURE }));

  const [found] = await new Spool(dir).list();
  expect(found).toEqual(envelope);
  expect(found).not.toHaveProperty('dkimSignatures');
  expect((await bytesOf(spool.openSigned(found))).equals(Buffer.concat([Buffer.from(SIGNATURE), messageOf(1500)]))).toBe(true);
});

test('a message whose file went away while queued: sending it is a stream error, not a throw', async () => {
  const spool = new Spool(dir);
  await spool.open();
  const envelope = await commit(spool, messageOf(1000));
  await spool.update(envelope); // no longer in memory
  fs.unlinkSync(spool.messagePath(envelope.id));
  const source = spool.openSigned(envelope);
  expect(Buffer.isBuffer(source)).toBe(false);
  await expect(bytesOf(source)).rejects.toThrow(/ENOENT/);
});

test('after a crash, what was never committed or is left of a removal is cleaned away by the index repair; committed messages stay', async () => {
  const spool = new Spool(dir);
  await spool.open();
  const kept = await commit(spool, messageOf(3000));
  const queue = path.join(dir, 'spool');
  const whole = fs.readFileSync(spool.messagePath(kept.id));
  // (names of ids made before the repair began: it leaves younger ones alone, they may be
  // being written) a torn file (cut inside its trailer), a file without any trailer, an empty
  // one (a small message's file is created in the queue folder itself: a crash right after),
  // an orphan state file, a temporary file (an hour old)
  fs.writeFileSync(path.join(queue, '000000001TORN.eml'), whole.subarray(0, whole.length - 5));
  fs.writeFileSync(path.join(queue, '000000001BARE.eml'), messageOf(500));
  fs.writeFileSync(path.join(queue, '000000001EMPTY.eml'), '');
  fs.writeFileSync(path.join(queue, '000000001ORPHAN.json'), JSON.stringify(kept));
  const tmp = path.join(queue, `${kept.id}.json.tmp`);
  fs.writeFileSync(tmp, '{');
  fs.utimesSync(tmp, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
  // a trailer whose stated message size does not match the bytes before it
  const lying = Buffer.from(whole);
  lying.write('X', 0);
  fs.writeFileSync(path.join(queue, '000000001LIES.eml'), Buffer.concat([Buffer.from('extra'), lying]));

  const again = new Spool(dir);
  await again.open();
  const repaired = await again.repairIndex(async () => undefined);
  expect(repaired).toEqual({ checked: 5, added: 0, removed: 4, complete: true });
  expect((await again.list()).map((e) => e.id)).toEqual([kept.id]);
  expect(spoolFiles()).toEqual([`${kept.id}.eml`]);
});

test('a torn file the index leads to is removed when loaded, as one never committed', async () => {
  const spool = new Spool(dir);
  await spool.open();
  const kept = await commit(spool, messageOf(3000));
  const whole = fs.readFileSync(spool.messagePath(kept.id));
  fs.writeFileSync(spool.messagePath('TORN'), whole.subarray(0, whole.length - 5));
  expect(await new Spool(dir).load('TORN')).toBeNull();
  expect(spoolFiles()).toEqual([`${kept.id}.eml`]);
});

test('an aborted message leaves nothing, whether it was in memory or already on disk', async () => {
  const spool = new Spool(dir);
  await spool.open();
  for (const size of [100, 600 * 1024]) {
    const writer = spool.createWriter();
    await writer.write(messageOf(size));
    await writer.abort();
  }
  expect(spoolFiles()).toEqual([]);
  expect(fs.readdirSync(path.join(dir, 'spool-tmp'))).toEqual([]);
});

test('a queued file that cannot be read is an error naming it when loaded, and is kept (never taken for one not committed)', async () => {
  const spool = new Spool(dir);
  await spool.open();
  await commit(spool, messageOf(1000));
  // root reads any file whatever its mode, so the unreadable "file" is a folder (EISDIR)
  fs.mkdirSync(path.join(dir, 'spool', '000000001UNREADABLE.eml'));
  const again = new Spool(dir);
  await again.open();
  await expect(again.load('000000001UNREADABLE')).rejects.toThrow(/cannot read the queued message .*UNREADABLE\.eml \(EISDIR\); fix/);
  await again.repairIndex(async () => undefined);
  expect(spoolFiles()).toContain('000000001UNREADABLE.eml');
  expect(spoolFiles().filter((f) => f.endsWith('.eml'))).toHaveLength(2);
});

test.each([['small (held in memory)', 10 * 1024], ['large (streamed to disk)', 700 * 1024]])(
  'a %s message whose bytes changed after its commit is set aside when loaded for delivery, neither sent nor deleted', async (_kind, size) => {
    const spool = new Spool(dir);
    await spool.open();
    const kept = await commit(spool, messageOf(2000));
    const envelope = await commit(spool, messageOf(size));
    expect(typeof envelope.crc32).toBe('number');
    envelope.recipients[0] = { ...envelope.recipients[0], attempts: 1, lastReply: '451 4.3.0 try later' };
    await spool.update(envelope); // a state file too: it goes aside with the message
    // What a file system that writes the size before the data can leave after a crash: the
    // trailer is whole, a block before it is not.
    const file = spool.messagePath(envelope.id);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(512), 0, 512, Math.floor(size / 2));
    fs.closeSync(fd);

    const again = new Spool(dir);
    await again.open();
    expect(await again.load(envelope.id)).toBeNull();
    expect(await again.load(kept.id)).toEqual(kept);
    expect(spoolFiles()).toEqual([`${kept.id}.eml`]);
    const aside = path.join(dir, 'spool-damaged');
    expect(fs.readdirSync(aside).sort()).toEqual([`${envelope.id}.eml`, `${envelope.id}.json`]);
    expect(again.damaged.sort()).toEqual([path.join(aside, `${envelope.id}.eml`), path.join(aside, `${envelope.id}.json`)]);
  });

test('a message queued by a version without checksums is still taken at start', async () => {
  const spool = new Spool(dir);
  await spool.open();
  const envelope = await commit(spool, messageOf(3000));
  const { crc32: _ignored, ...older } = envelope;
  const file = spool.messagePath(envelope.id);
  const bytes = fs.readFileSync(file).subarray(0, envelope.size);
  fs.writeFileSync(file, Buffer.concat([bytes, encodeTrailer(older)]));
  const found = await new Spool(dir).load(envelope.id);
  expect(found).toEqual(older);
});
