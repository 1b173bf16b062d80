// The reason of the 550 for a domain whose mail cannot be signed (issue 16 item 1): what is
// true of its keys, never "make one with keygen" when a key is already there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKey } from '../../src/dkim/keygen';
import { writeMetadata } from '../../src/dkim/key-metadata';
import { storedKeys } from '../../src/dkim/stored-keys';
import { unsignedReason } from '../../src/dkim/unsigned-reason';

let keysDir: string;
beforeEach(() => {
  keysDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'unsigned-reason-')), 'keys');
});
afterEach(() => fs.rmSync(path.dirname(keysDir), { recursive: true, force: true }));

const reason = (domain: string) => unsignedReason(domain, storedKeys(keysDir, domain));

test('no key at all: make one with keygen', () => {
  expect(reason('none.test')).toBe('no DKIM key for none.test: make one with `dkim-relay keygen --domain none.test` and publish its DNS record');
});

test('a pending key: its record and the activate command', async () => {
  const key = await generateKey(keysDir, { domain: 'p.test', selector: 's1' });
  expect(reason('p.test')).toBe(`the DKIM key s1 of p.test is pending, so it does not sign yet: publish the TXT record s1._domainkey.p.test "${key.recordValue}", then run \`dkim-relay keys activate p.test s1\``);
});

test('a pending key others can read: chmod, then publish and activate', async () => {
  const key = await generateKey(keysDir, { domain: 'p.test', selector: 's1' });
  fs.chmodSync(key.path, 0o644);
  expect(reason('p.test')).toBe(`no usable DKIM key for p.test: DKIM key ${key.path} is readable by others (mode 0644) and is not used: run \`chmod 600 ${key.path}\`; ` +
    'the key is also pending: then publish its record (`dkim-relay keys record p.test s1`) and run `dkim-relay keys activate p.test s1`');
});

test('an active key others can read: chmod', async () => {
  const key = await generateKey(keysDir, { domain: 'a.test', selector: 's1' });
  writeMetadata(key.metadataPath, { algorithm: 'rsa', bits: 2048, state: 'active', created: new Date().toISOString(), activated: new Date().toISOString(), retired: null });
  fs.chmodSync(key.path, 0o640);
  expect(reason('a.test')).toBe(`no usable DKIM key for a.test: DKIM key ${key.path} is readable by others (mode 0640) and is not used: run \`chmod 600 ${key.path}\``);
});

test('only retired keys, or only an Ed25519 key', async () => {
  const key = await generateKey(keysDir, { domain: 'r.test', selector: 's1' });
  writeMetadata(key.metadataPath, { algorithm: 'rsa', bits: 2048, state: 'retired', created: new Date().toISOString(), activated: null, retired: new Date().toISOString() });
  expect(reason('r.test')).toBe('every DKIM key of r.test is retired: make a new one with `dkim-relay keygen --domain r.test` and publish its DNS record');

  fs.mkdirSync(path.join(keysDir, 'ed.test'), { recursive: true });
  const crypto = await import('node:crypto');
  fs.writeFileSync(path.join(keysDir, 'ed.test', 'e1.key'), crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  expect(reason('ed.test')).toMatch(/^ed\.test has only an Ed25519 key, which never signs alone .*dkim-relay keygen --domain ed\.test/);
});
