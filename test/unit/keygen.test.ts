import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, UsageError } from '../../src/cli-context';
import { capturedContext } from '../helpers/cli-context';
import { keygenCommand } from '../../src/cli/keygen-command';
import { loadConfig } from '../../src/config/load';
import { dkimRecordValue, parseRecordValue, zoneFileRecord } from '../../src/dkim/dns-record';
import { defaultSelectorBase, generateKey, KeygenError, selectorProblem } from '../../src/dkim/keygen';

let keysDir: string;
beforeEach(() => {
  keysDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keygen-')), 'keys');
});
afterEach(() => fs.rmSync(path.dirname(keysDir), { recursive: true, force: true }));

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const day = new Date('2025-03-07T23:30:00Z');

test('an RSA key: PKCS#8 PEM file 0600 in a 0700 domain folder, and its record', async () => {
  const key = await generateKey(keysDir, { domain: 'Example.ORG', selector: 's1' });
  expect(key).toEqual({
    domain: 'example.org',
    selector: 's1',
    algorithm: 'rsa',
    bits: 2048,
    path: path.join(keysDir, 'example.org', 's1.key'),
    metadataPath: path.join(keysDir, 'example.org', 's1.json'),
    recordName: 's1._domainkey.example.org',
    recordValue: expect.stringMatching(/^v=DKIM1; k=rsa; p=/),
  });
  const pem = fs.readFileSync(key.path, 'utf8');
  expect(pem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
  expect(mode(key.path)).toBe('600');
  expect(mode(path.dirname(key.path))).toBe('700');
  expect(fs.readdirSync(path.dirname(key.path)).sort()).toEqual(['s1.json', 's1.key']); // no temporary file left
  // a new key is pending: it does not sign before its record is published
  expect(JSON.parse(fs.readFileSync(key.metadataPath, 'utf8'))).toEqual({
    algorithm: 'rsa', bits: 2048, state: 'pending', created: expect.any(String), activated: null, retired: null,
  });

  const privateKey = crypto.createPrivateKey(pem);
  expect(privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  expect(key.recordValue).toBe(dkimRecordValue(privateKey));
  // record round trip: the p= read back from the zone line is the key's
  const p = parseRecordValue(zoneFileRecord(key.selector, key.domain, key.recordValue)).p;
  expect(p).toBe(crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64'));
});

test('an RSA-4096 record is split into several strings of at most 255 characters', async () => {
  const key = await generateKey(keysDir, { domain: 'example.org', bits: 4096 });
  expect(key.bits).toBe(4096);
  const line = zoneFileRecord(key.selector, key.domain, key.recordValue);
  const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  expect(strings.length).toBeGreaterThan(2);
  strings.forEach((s) => expect(s.length).toBeLessThanOrEqual(255));
  expect(parseRecordValue(line).p).toBe(parseRecordValue(key.recordValue).p);
});

test('an Ed25519 key publishes the raw 32-byte public key', async () => {
  await generateKey(keysDir, { domain: 'example.org', selector: 'rsa1' });
  const key = await generateKey(keysDir, { domain: 'example.org', algorithm: 'ed25519' });
  expect(key.algorithm).toBe('ed25519');
  expect(key.bits).toBe(256);
  const tags = parseRecordValue(key.recordValue);
  expect(tags.k).toBe('ed25519');
  const raw = Buffer.from(tags.p, 'base64');
  expect(raw).toHaveLength(32);
  const spki = crypto.createPublicKey(crypto.createPrivateKey(fs.readFileSync(key.path))).export({ type: 'spki', format: 'der' });
  expect(raw.equals(spki.subarray(-32))).toBe(true);
});

test('an existing key file is never overwritten', async () => {
  const first = await generateKey(keysDir, { domain: 'example.org', selector: 's1' });
  const before = fs.readFileSync(first.path, 'utf8');
  await expect(generateKey(keysDir, { domain: 'example.org', selector: 's1', algorithm: 'ed25519' }))
    .rejects.toThrow(/s1\.key \(or its state file s1\.json\) already exists and is never overwritten: choose another --selector/);
  expect(fs.readFileSync(first.path, 'utf8')).toBe(before);
  expect(fs.readdirSync(path.dirname(first.path)).sort()).toEqual(['s1.json', 's1.key']);
  expect(JSON.parse(fs.readFileSync(first.metadataPath, 'utf8')).algorithm).toBe('rsa');
});

test('default selectors are dated and never collide, for RSA and Ed25519 on one day', async () => {
  expect(defaultSelectorBase('rsa', day)).toBe('20250307-rsa');
  expect(defaultSelectorBase('ed25519', day)).toBe('20250307-ed');
  const made = [];
  for (const algorithm of ['rsa', 'ed25519', 'rsa', 'ed25519', 'rsa'] as const) {
    made.push((await generateKey(keysDir, { domain: 'example.org', algorithm }, day)).selector);
  }
  expect(made).toEqual(['20250307-rsa', '20250307-ed', '20250307-rsa-2', '20250307-ed-2', '20250307-rsa-3']);
  expect(fs.readdirSync(path.join(keysDir, 'example.org')).filter((n) => n.endsWith('.key')).sort()).toEqual(made.map((s) => `${s}.key`).sort());
});

test('weak, oversized and odd RSA sizes are refused', async () => {
  await expect(generateKey(keysDir, { domain: 'example.org', bits: 1024 }))
    .rejects.toThrow(new KeygenError('1024-bit keys are below what Gmail/Outlook/Yahoo expect (RFC 8301 sets 1024 bits as the minimum, providers want 2048): use --bits 2048 (the default), 3072 or 4096'));
  await expect(generateKey(keysDir, { domain: 'example.org', bits: 8192 })).rejects.toThrow(/larger than verifiers accept/);
  await expect(generateKey(keysDir, { domain: 'example.org', bits: 2500 })).rejects.toThrow(/use 2048, 3072 or 4096/);
  expect(fs.existsSync(keysDir)).toBe(false);
});

test('domains and selectors are checked', async () => {
  await expect(generateKey(keysDir, { domain: '../etc' })).rejects.toThrow(KeygenError);
  await expect(generateKey(keysDir, { domain: 'not a domain' })).rejects.toThrow(/spaces/);
  await expect(generateKey(keysDir, { domain: 'example.org', selector: 'bad/sel' })).rejects.toThrow(/not a valid selector/);
  await expect(generateKey(keysDir, { domain: 'example.org', selector: '..' })).rejects.toThrow(KeygenError);
  expect(selectorProblem('2025-01')).toBeNull();
  expect(selectorProblem('mail.2025')).toBeNull();
  expect(selectorProblem('-x')).not.toBeNull();
  expect(selectorProblem('a_b')).not.toBeNull();
  const key = await generateKey(keysDir, { domain: 'example.org', selector: 'Mail.2025' });
  expect(key.selector).toBe('mail.2025');
  expect(key.path).toBe(path.join(keysDir, 'example.org', 'mail.2025.key'));
});

describe('dkim-relay keygen', () => {
  const context = () => capturedContext(loadConfig({ env: { RELAY_KEYS_DIR: keysDir } }));

  test('stdout has only the zone line; stderr says where to publish it', async () => {
    const { ctx, out } = context();
    expect(await keygenCommand(['--domain', 'example.org', '--selector', 's1'], ctx)).toBe(0);
    expect(out.stdout).toMatch(/^s1\._domainkey\.example\.org\. 3600 IN TXT \( "v=DKIM1; k=rsa; p=[^\n]* \)\n$/);
    expect(out.stderr).toContain('s1._domainkey.example.org');
    expect(out.stderr).toContain(path.join(keysDir, 'example.org', 's1.key'));
    expect(out.stdout + out.stderr).not.toContain('PRIVATE KEY');
    const pem = fs.readFileSync(path.join(keysDir, 'example.org', 's1.key'), 'utf8');
    expect(parseRecordValue(out.stdout).p).toBe(parseRecordValue(dkimRecordValue(crypto.createPrivateKey(pem))).p);
  });

  test('--format value prints the bare value; Ed25519 reminds that RSA is needed too', async () => {
    await keygenCommand(['--domain', 'example.org'], context().ctx);
    const { ctx, out } = context();
    expect(await keygenCommand(['--domain', 'example.org', '--algorithm', 'ed25519', '--format', 'value'], ctx)).toBe(0);
    expect(out.stdout).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=\n$/);
    expect(out.stderr).toMatch(/Gmail, Outlook and Yahoo do not verify Ed25519/);
    expect(out.stderr).toContain('dkim-relay keygen --domain example.org');
  });

  test('usage errors and refusals', async () => {
    await expect(keygenCommand([], context().ctx)).rejects.toThrow(/--domain is required[\s\S]*usage: dkim-relay keygen/);
    await expect(keygenCommand(['--domain', 'example.org', '--algorithm', 'dsa'], context().ctx)).rejects.toThrow(UsageError);
    await expect(keygenCommand(['--domain', 'example.org', '--format', 'json'], context().ctx)).rejects.toThrow(UsageError);
    await expect(keygenCommand(['--domain', 'example.org', '--bits', 'many'], context().ctx)).rejects.toThrow(UsageError);
    await expect(keygenCommand(['--domain', 'example.org', '--algorithm', 'ed25519', '--bits', '2048'], context().ctx)).rejects.toThrow(UsageError);
    await expect(keygenCommand(['--domain', 'example.org', '--frob'], context().ctx)).rejects.toThrow(UsageError);
    await expect(keygenCommand(['example.org'], context().ctx)).rejects.toThrow(UsageError);
    await expect(keygenCommand(['--domain', 'example.org', '--bits', '1024'], context().ctx))
      .rejects.toThrow(new CliError('1024-bit keys are below what Gmail/Outlook/Yahoo expect (RFC 8301 sets 1024 bits as the minimum, providers want 2048): use --bits 2048 (the default), 3072 or 4096'));
    await keygenCommand(['--domain', 'example.org', '--selector', 's1'], context().ctx);
    await expect(keygenCommand(['--domain', 'example.org', '--selector', 's1'], context().ctx)).rejects.toThrow(CliError);
  });

  test('an unwritable key store is a CliError naming the setting', async () => {
    fs.mkdirSync(path.dirname(keysDir), { recursive: true });
    fs.writeFileSync(keysDir, 'a file, not a folder');
    await expect(keygenCommand(['--domain', 'example.org'], context().ctx)).rejects.toThrow(/RELAY_KEYS_DIR/);
  });
});
