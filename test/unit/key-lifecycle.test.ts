// The key lifecycle against a real DNS server on loopback: pending keys do not sign, activation
// checks the published record and says what it found, the newest active key of each algorithm
// signs, Ed25519 never alone, retired keys stop, keys from before key states go on signing,
// and a key others can read or a damaged one is reported without stopping other domains.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Writable } from 'node:stream';
import { parseRecordValue, zoneFileRecord } from '../../src/dkim/dns-record';
import { activateKey, activatePublishedKeys, KeyLifecycleError, listKeys, retireKey } from '../../src/dkim/key-lifecycle';
import { readMetadata, writeMetadata } from '../../src/dkim/key-metadata';
import { KeyStore } from '../../src/dkim/key-store';
import { generateKey, GeneratedKey, KeygenError } from '../../src/dkim/keygen';
import { createResolver, Resolver } from '../../src/dns/resolver';
import { startDnsServer, TestDnsServer } from '../helpers/dns-server';

let dns: TestDnsServer;
let resolver: Resolver;
let keysDir: string;

beforeAll(async () => {
  dns = await startDnsServer({ host: '127.0.0.1' });
  resolver = createResolver({ servers: [dns.address], timeoutSeconds: 2 });
});
afterAll(() => dns.close());
beforeEach(() => {
  keysDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'key-lifecycle-')), 'keys');
  dns.clear();
});
afterEach(() => fs.rmSync(path.dirname(keysDir), { recursive: true, force: true }));

function publish(key: GeneratedKey): void {
  dns.set(key.recordName, 'TXT', [key.recordValue]);
}

/** A KeyStore whose log lines are collected. */
function store(): { keys: KeyStore; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  return { keys: new KeyStore(keysDir, pino({ level: 'debug' }, sink)), lines };
}

const selectors = (keys: KeyStore, domain: string) => keys.signingKeys(domain).map((k) => `${k.algorithm}:${k.selector}`);

test('metadata is written atomically and read back; a damaged file is an error naming it', () => {
  fs.mkdirSync(keysDir, { recursive: true });
  const file = path.join(keysDir, 's1.json');
  const meta = { algorithm: 'rsa' as const, bits: 2048, state: 'active' as const, created: '2025-03-07T00:00:00.000Z', activated: '2025-03-08T00:00:00.000Z', retired: null };
  writeMetadata(file, meta);
  expect(readMetadata(file)).toEqual(meta);
  expect(fs.readdirSync(keysDir)).toEqual(['s1.json']); // no temporary file left
  expect(readMetadata(path.join(keysDir, 'none.json'))).toBeNull();
  fs.writeFileSync(file, '{"algorithm": "rsa", "bits": 2048, "state": "on"');
  expect(() => readMetadata(file)).toThrow(`the key state file ${file} is not valid JSON`);
  fs.writeFileSync(file, JSON.stringify({ ...meta, state: 'on' }));
  expect(() => readMetadata(file)).toThrow(/is damaged: state is not one of pending, active, retired/);
});

test('a pending key does not sign; once its record is in DNS it activates and signs', async () => {
  const key = await generateKey(keysDir, { domain: 'example.org', selector: 's1' });
  const { keys } = store();
  expect(keys.signingKeys('example.org')).toEqual([]);

  await expect(activateKey(keysDir, 'example.org', 's1', resolver)).rejects.toThrow(
    new KeyLifecycleError('the key s1 of example.org stays pending: DNS has no record at s1._domainkey.example.org (NXDOMAIN: the name does not exist); ' +
      'publish the record (`dkim-relay keys record example.org s1` prints it again), then run `dkim-relay keys activate example.org s1` once it is visible'));
  expect(readMetadata(key.metadataPath)!.state).toBe('pending');

  publish(key);
  const result = await activateKey(keysDir, 'Example.ORG.', 's1', resolver, new Date('2026-01-02T03:04:05Z'));
  expect(result).toMatchObject({ activated: true, alreadyActive: false, check: { status: 'match' } });
  expect(readMetadata(key.metadataPath)).toMatchObject({ state: 'active', activated: '2026-01-02T03:04:05.000Z', retired: null });
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:s1']);
  expect((await activateKey(keysDir, 'example.org', 's1', resolver)).alreadyActive).toBe(true);
});

test('a key the running relay activates while `keys activate` waits for DNS: already active, not an error', async () => {
  // The relay checks pending keys every few seconds, so it may see a fresh record first.
  const key = await generateKey(keysDir, { domain: 'example.org', selector: 's1' });
  publish(key);
  const relayFirst: Resolver = {
    ...resolver,
    async txt(name) {
      const answer = await resolver.txt(name);
      await activatePublishedKeys(keysDir, resolver, new Date('2026-01-02T03:04:05Z')); // the relay, meanwhile
      return answer;
    },
  };
  const result = await activateKey(keysDir, 'example.org', 's1', relayFirst);
  expect(result).toMatchObject({ activated: true, alreadyActive: true });
  expect(readMetadata(key.metadataPath)).toMatchObject({ state: 'active', activated: '2026-01-02T03:04:05.000Z' });
});

describe('activation says what DNS returned when it refuses', () => {
  let key: GeneratedKey;
  beforeEach(async () => {
    key = await generateKey(keysDir, { domain: 'example.org', selector: 's1' });
  });
  const refusal = () => activateKey(keysDir, 'example.org', 's1', resolver).then(() => 'activated', (e: Error) => e.message);

  test('the name exists without a TXT record', async () => {
    dns.set(key.recordName, 'A', ['192.0.2.1']);
    expect(await refusal()).toContain('DNS has no TXT record at s1._domainkey.example.org (the name exists, with other record types)');
  });

  test('a record with another public key', async () => {
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    dns.set(key.recordName, 'TXT', [`v=DKIM1; k=rsa; p=${other}`]);
    const message = await refusal();
    expect(message).toContain(`the record at s1._domainkey.example.org has p=${other.slice(0, 12)}...${other.slice(-8)}, another public key than this key's`);
    expect(message).toContain('replace its value with the output of `dkim-relay keys record example.org s1 --format value`');
  });

  test('a record cut short when pasted', async () => {
    dns.set(key.recordName, 'TXT', [key.recordValue.slice(0, 200)]);
    expect(await refusal()).toMatch(/has p=\S+, which is not a valid RSA public key: was it pasted incompletely\?/);
  });

  test('a malformed record', async () => {
    dns.set(key.recordName, 'TXT', ['v=spf1 -all']);
    expect(await refusal()).toContain('the TXT record at s1._domainkey.example.org is not a valid DKIM key record: the record says v=spf1 -all: it is not a DKIM key record');
    dns.set(key.recordName, 'TXT', ['v=DKIM1; k=rsa; p=']);
    expect(await refusal()).toContain('has an empty p=, which revokes the key');
  });

  test('a DNS server that never answers: a timeout, and the key stays pending', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    try {
      const deaf = createResolver({ servers: [`127.0.0.1:${silent.address().port}`], timeoutSeconds: 0.5 });
      await expect(activateKey(keysDir, 'example.org', 's1', deaf)).rejects.toThrow(
        'the key s1 of example.org stays pending: looking up TXT s1._domainkey.example.org failed: no answer in time (timeout); check dns.servers (RELAY_DNS_SERVERS) and try again; try again when DNS answers');
      expect(readMetadata(key.metadataPath)!.state).toBe('pending');
    } finally {
      silent.close();
    }
  });

  test('an unknown key or a bad name', async () => {
    await expect(activateKey(keysDir, 'example.org', 's9', resolver)).rejects.toThrow(/there is no key with selector s9 for example.org in .*`dkim-relay keys list` shows the keys/);
    await expect(activateKey(keysDir, '../etc', 's1', resolver)).rejects.toThrow(KeyLifecycleError);
    await expect(activateKey(keysDir, 'example.org', '../s1', resolver)).rejects.toThrow(/is not a selector/);
  });
});

test('an RSA-4096 record published as several strings activates', async () => {
  const key = await generateKey(keysDir, { domain: 'example.org', selector: 'big', bits: 4096 });
  const strings = [...zoneFileRecord(key.selector, key.domain, key.recordValue).matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  expect(strings.length).toBeGreaterThan(2);
  dns.set(key.recordName, 'TXT', [strings]);
  await activateKey(keysDir, 'example.org', 'big', resolver);
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:big']);
});

test('the newest active key of each algorithm signs: RSA and Ed25519 together, never Ed25519 alone', async () => {
  await expect(generateKey(keysDir, { domain: 'example.org', algorithm: 'ed25519' }))
    .rejects.toThrow(new KeygenError('example.org has no RSA key, and an Ed25519 key never signs alone: Gmail, Outlook and Yahoo do not verify Ed25519 signatures, ' +
      'so an RSA key must always sign too. Make the RSA key first: dkim-relay keygen --domain example.org'));
  const a = await generateKey(keysDir, { domain: 'example.org', selector: 'a' });
  const ed = await generateKey(keysDir, { domain: 'example.org', selector: 'ed', algorithm: 'ed25519' });
  publish(a);
  publish(ed);
  // the RSA key is published but not active yet: the Ed25519 key may not become active first
  await expect(activateKey(keysDir, 'example.org', 'ed', resolver)).rejects.toThrow(
    /stays pending: example.org has no active RSA key, and an Ed25519 key never signs alone: Gmail, Outlook and Yahoo do not verify Ed25519/);

  // one pass of the relay's check activates both, RSA first
  const outcomes = await activatePublishedKeys(keysDir, resolver, new Date('2026-01-01T00:00:00Z'));
  expect(outcomes.map((o) => [o.selector, o.activated])).toEqual([['a', true], ['ed', true]]);
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:a', 'ed25519:ed']);

  const b = await generateKey(keysDir, { domain: 'example.org', selector: 'b' });
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:a', 'ed25519:ed']); // b is pending
  publish(b);
  await activateKey(keysDir, 'example.org', 'b', resolver, new Date('2026-02-01T00:00:00Z'));
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:b', 'ed25519:ed']);

  // retiring b: a signs again
  expect(retireKey(keysDir, 'example.org', 'b', new Date('2026-03-01T00:00:00Z')).warnings).toEqual([]);
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:a', 'ed25519:ed']);
  // a is now the last active RSA key next to an active Ed25519 key: retiring it is refused
  expect(() => retireKey(keysDir, 'example.org', 'a')).toThrow(
    /a is the last active RSA key of example.org, and the Ed25519 key ed must not sign alone: Gmail, Outlook and Yahoo do not verify Ed25519/);
  retireKey(keysDir, 'example.org', 'ed');
  // a is the last active RSA key: retiring it stops all mail of the domain, so it needs force
  expect(() => retireKey(keysDir, 'example.org', 'a')).toThrow(
    /a is the last active RSA key of example.org: once it is retired example.org has no signing key, and its mail is refused .* `dkim-relay keys retire example.org a --force`/);
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:a']);
  expect(retireKey(keysDir, 'example.org', 'a', new Date(), { force: true }).warnings).toEqual([expect.stringContaining('example.org has no active key now')]);
  expect(retireKey(keysDir, 'example.org', 'a').alreadyRetired).toBe(true);
  expect(store().keys.signingKeys('example.org')).toEqual([]);
  // a retired key's record is still there and its key may be activated again
  await activateKey(keysDir, 'example.org', 'a', resolver);
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:a']);
});

test('an active Ed25519 key without an active RSA key does not sign, and that is logged', async () => {
  fs.mkdirSync(path.join(keysDir, 'example.org'), { recursive: true, mode: 0o700 });
  const file = path.join(keysDir, 'example.org', 'ed.key');
  fs.writeFileSync(file, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const { keys, lines } = store();
  expect(keys.signingKeys('example.org')).toEqual([]);
  expect(lines.map((l) => l.msg)).toContain('example.org has an active Ed25519 key but no active RSA key, so its mail is not signed: ' +
    'Gmail, Outlook and Yahoo do not verify Ed25519. Make and activate an RSA key: dkim-relay keygen --domain example.org');
});

test('a key from before key states (no .json) signs, as an active key', async () => {
  const key = await generateKey(keysDir, { domain: 'example.org', selector: 'old' });
  fs.rmSync(key.metadataPath);
  expect(selectors(store().keys, 'example.org')).toEqual(['rsa:old']);
  const [report] = await listKeys(keysDir, { resolver });
  expect(report).toMatchObject({ selector: 'old', state: 'active', legacy: true, signing: true, dns: { status: 'missing' } });
});

test('a key others can read, an unreadable and a damaged key are reported with their path; other domains still sign', async () => {
  for (const domain of ['good.test', 'open.test', 'dir.test', 'bad.test', 'meta.test']) {
    const key = await generateKey(keysDir, { domain, selector: 's1' });
    publish(key);
    await activateKey(keysDir, domain, 's1', resolver);
  }
  const open = path.join(keysDir, 'open.test', 's1.key');
  fs.chmodSync(open, 0o644);
  const dir = path.join(keysDir, 'dir.test', 's1.key'); // stands for an unreadable file (the tests may run as root)
  fs.rmSync(dir);
  fs.mkdirSync(dir, { mode: 0o700 });
  const bad = path.join(keysDir, 'bad.test', 's1.key');
  fs.writeFileSync(bad, '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n');
  const meta = path.join(keysDir, 'meta.test', 's1.json');
  fs.writeFileSync(meta, '{"state":');

  const { keys, lines } = store();
  for (const d of ['open.test', 'dir.test', 'bad.test', 'meta.test']) expect(keys.signingKeys(d)).toEqual([]);
  expect(selectors(keys, 'good.test')).toEqual(['rsa:s1']);
  const messages = lines.map((l) => String(l.msg));
  expect(messages).toEqual([
    `DKIM key ${open} is readable by others (mode 0644) and is not used: run \`chmod 600 ${open}\`. Until then mail from open.test cannot be signed`,
    `DKIM key ${dir} cannot be read (EISDIR): make it readable by the user the relay runs as (owner of the file, mode 600). Until then mail from dir.test cannot be signed`,
    `DKIM key ${bad} is damaged or not a PEM private key: restore it from a backup, or make a new key with dkim-relay keygen. Until then mail from bad.test cannot be signed`,
    `the key state file ${meta} is not valid JSON: the key does not sign until its state is written again with \`dkim-relay keys activate meta.test s1\` or \`dkim-relay keys retire meta.test s1\`. Until then mail from meta.test cannot be signed`,
  ]);
  expect(messages.join('\n')).not.toMatch(/bm90IGEga2V5|MII/); // no key material
  // each problem is logged once, not on every message
  keys.signingKeys('open.test');
  expect(lines).toHaveLength(4);

  const reports = await listKeys(keysDir, { resolver });
  expect(reports.map((r) => [r.domain, r.signing, r.problem === null])).toEqual([
    ['bad.test', false, false], ['dir.test', false, false], ['good.test', true, true], ['meta.test', false, false], ['open.test', false, false],
  ]);
  expect(reports.find((r) => r.domain === 'open.test')!.problem).toContain(`chmod 600 ${open}`);

  // the fixes: chmod, and writing the state again
  fs.chmodSync(open, 0o600);
  await activateKey(keysDir, 'meta.test', 's1', resolver);
  const fixed = store().keys;
  expect(selectors(fixed, 'open.test')).toEqual(['rsa:s1']);
  expect(selectors(fixed, 'meta.test')).toEqual(['rsa:s1']);
  // a damaged key never signs; retiring it says to delete it
  fs.rmSync(path.join(keysDir, 'bad.test', 's1.json'));
  expect(() => retireKey(keysDir, 'bad.test', 's1')).toThrow(`rm ${bad}`);
});

test('listKeys reports state, times, size and whether the record matches', async () => {
  const a = await generateKey(keysDir, { domain: 'example.org', selector: 'a' }, new Date('2026-01-01T00:00:00Z'));
  const b = await generateKey(keysDir, { domain: 'example.org', selector: 'b', bits: 3072 }, new Date('2026-01-02T00:00:00Z'));
  publish(a);
  dns.set(b.recordName, 'TXT', [a.recordValue]);
  await activateKey(keysDir, 'example.org', 'a', resolver, new Date('2026-01-03T00:00:00Z'));
  const reports = await listKeys(keysDir, { resolver });
  expect(reports).toEqual([
    expect.objectContaining({ domain: 'example.org', selector: 'a', algorithm: 'rsa', bits: 2048, state: 'active', created: '2026-01-01T00:00:00.000Z',
      activated: '2026-01-03T00:00:00.000Z', retired: null, signing: true, legacy: false, problem: null, dns: expect.objectContaining({ status: 'match' }) }),
    expect.objectContaining({ selector: 'b', bits: 3072, state: 'pending', activated: null, signing: false, dns: expect.objectContaining({ status: 'mismatch' }) }),
  ]);
  expect(parseRecordValue(a.recordValue).p).not.toBe('');
  expect(JSON.stringify(reports)).not.toContain('PRIVATE');
  expect((await listKeys(keysDir))[0].dns).toBeNull();
});

test('watch: a key store that is a file is logged once, at error, naming keysDir', () => {
  fs.mkdirSync(path.dirname(keysDir), { recursive: true });
  fs.writeFileSync(keysDir, 'not a folder');
  const { keys, lines } = store();
  const watch = keys.watch(60_000);
  watch.stop();
  expect(lines.map((l) => [l.level, l.msg])).toEqual([[50, `keysDir (env RELAY_KEYS_DIR) ${keysDir} is a file, not a folder, so no DKIM key signs: point keysDir at the key store folder`]]);
  fs.rmSync(keysDir);
});

// Regression (merge of the key watch with periodic activation): a store that had scanned the
// domain while its key was pending refused mail for up to 2 s after the key became active,
// with the false reason "every DKIM key ... is retired".
test('a key activated after the store saw it pending signs at once', async () => {
  const { keys } = store();
  const key = await generateKey(keysDir, { domain: 'example.org', selector: 's1' });
  expect(selectors(keys, 'example.org')).toEqual([]);
  dns.set(key.recordName, 'TXT', [key.recordValue]);
  await activateKey(keysDir, 'example.org', 's1', resolver);
  expect(selectors(keys, 'example.org')).toEqual(['rsa:s1']);
});
