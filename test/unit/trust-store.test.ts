// delivery.caFile and delivery.mtaSts as users write them: the CA file is checked when the
// relay starts (readable, PEM, every certificate parses), and on/off means what it says.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { ConfigError, loadConfig } from '../../src/config/load';
import { createTrustStore, readCaFile } from '../../src/delivery/trust-store';
import { createTestCa } from '../helpers/test-ca';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-ca-file-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a CA file adds its certificates to the built-in ones', async () => {
  const ca = await createTestCa();
  const store = createTrustStore(ca.file);
  expect(store.extra).toBe(1);
  expect(store.ca).toHaveLength(tls.rootCertificates.length + 1);
  expect(store.ca.at(-1)!.trim()).toBe(ca.cert.trim());
  expect(createTrustStore('').extra).toBe(0);
});

test('a missing, empty or broken CA file is refused, naming the setting and the file', () => {
  const missing = path.join(tmp, 'nope.pem');
  expect(() => readCaFile(missing)).toThrow(`delivery.caFile (env RELAY_DELIVERY_CA_FILE) ${missing} cannot be read (ENOENT)`);
  const text = path.join(tmp, 'text.pem');
  fs.writeFileSync(text, 'hello\n');
  expect(() => readCaFile(text)).toThrow(/holds no PEM certificate/);
  const broken = path.join(tmp, 'broken.pem');
  fs.writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  expect(() => readCaFile(broken)).toThrow(/certificate 1 does not parse/);
});

test('RELAY_MTA_STS: on by default; on/off (and true/false, yes/no) from the environment; anything else refused', () => {
  expect(loadConfig({ env: {} }).delivery.mtaSts).toBe(true);
  expect(loadConfig({ env: { RELAY_MTA_STS: 'off' } }).delivery.mtaSts).toBe(false);
  expect(loadConfig({ env: { RELAY_MTA_STS: 'ON' } }).delivery.mtaSts).toBe(true);
  expect(loadConfig({ env: { RELAY_MTA_STS: 'no' } }).delivery.mtaSts).toBe(false);
  expect(() => loadConfig({ env: { RELAY_MTA_STS: 'maybe' } })).toThrow(ConfigError);
  expect(() => loadConfig({ env: { RELAY_MTA_STS: 'maybe' } })).toThrow(/must be on or off/);
  expect(loadConfig({ env: { RELAY_DELIVERY_CA_FILE: '/etc/x.pem' } }).delivery.caFile).toBe('/etc/x.pem');
});
