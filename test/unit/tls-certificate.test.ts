import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/load';
import { loadTlsCertificate, makeSelfSigned, TlsCertificateError } from '../../src/submission/tls-certificate';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-cert-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const configWith = (env: Record<string, string>) => loadConfig({ env: { RELAY_DATA_DIR: path.join(dir, 'data'), ...env } });

test('a self-signed certificate is made on first use, kept, and reused', () => {
  const config = configWith({});
  const first = loadTlsCertificate(config, 'relay.example.org');
  expect(first.generated).toBe(true);
  expect(first.path).toBe(path.join(dir, 'data', 'tls', 'selfsigned.crt'));
  const keyFile = path.join(dir, 'data', 'tls', 'selfsigned.key');
  expect((fs.statSync(keyFile).mode & 0o777).toString(8)).toBe('600');
  expect(fs.readFileSync(keyFile, 'utf8')).toBe(first.key);

  const x509 = new crypto.X509Certificate(first.cert);
  expect(x509.subject).toBe('CN=relay.example.org');
  expect(x509.subjectAltName).toBe('DNS:relay.example.org');
  expect(x509.checkHost('relay.example.org')).toBe('relay.example.org');
  expect(x509.checkPrivateKey(crypto.createPrivateKey(first.key))).toBe(true);
  expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  const from = Date.parse(x509.validFrom);
  expect(Date.now() - from).toBeGreaterThan(23 * 3600 * 1000);
  expect(Date.parse(x509.validTo) - from).toBeGreaterThan(9.9 * 365 * 24 * 3600 * 1000);
  expect(x509.verify(x509.publicKey)).toBe(true); // self-signed, sha256

  const second = loadTlsCertificate(config, 'relay.example.org');
  expect(second.generated).toBe(false);
  expect(second.cert).toBe(first.cert);
  expect(second.key).toBe(first.key);
});

test('an expired self-signed certificate is replaced', () => {
  const config = configWith({});
  const tlsDir = path.join(dir, 'data', 'tls');
  fs.mkdirSync(tlsDir, { recursive: true });
  const old = makeSelfSigned('relay.example.org', new Date(Date.now() - 11 * 365 * 24 * 3600 * 1000));
  fs.writeFileSync(path.join(tlsDir, 'selfsigned.key'), old.key, { mode: 0o600 });
  fs.writeFileSync(path.join(tlsDir, 'selfsigned.crt'), old.cert);
  const now = loadTlsCertificate(config, 'relay.example.org');
  expect(now.generated).toBe(true);
  expect(now.cert).not.toBe(old.cert);
  expect(Date.parse(new crypto.X509Certificate(now.cert).validTo)).toBeGreaterThan(Date.now());
});

test('the certificate serves TLS with node:tls', async () => {
  const { key, cert } = loadTlsCertificate(configWith({}), 'localhost');
  expect(() => tls.createSecureContext({ key, cert })).not.toThrow();
  const server = tls.createServer({ key, cert }, (socket) => socket.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const text = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [cert] }, () => {
        let data = '';
        socket.on('data', (c) => (data += c));
        socket.on('end', () => resolve(data));
      });
      socket.on('error', reject);
    });
    expect(text).toBe('hello'); // verified against the certificate itself as CA, host name checked
  } finally {
    server.close();
  }
});

test('configured key and certificate files are read', () => {
  const made = makeSelfSigned('mail.example.org');
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  fs.writeFileSync(keyFile, made.key);
  fs.writeFileSync(certFile, made.cert);
  const loaded = loadTlsCertificate(configWith({ RELAY_TLS_KEY: keyFile, RELAY_TLS_CERT: certFile }), 'ignored.example');
  expect(loaded).toEqual({ key: made.key, cert: made.cert, generated: false, path: certFile });
  expect(fs.existsSync(path.join(dir, 'data'))).toBe(false);
});

test('configured files that are missing, unset, not PEM or not a pair give a clear error', () => {
  const made = makeSelfSigned('mail.example.org');
  const other = makeSelfSigned('other.example.org');
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const otherCert = path.join(dir, 'other.pem');
  const junk = path.join(dir, 'junk.pem');
  fs.writeFileSync(keyFile, made.key);
  fs.writeFileSync(certFile, made.cert);
  fs.writeFileSync(otherCert, other.cert);
  fs.writeFileSync(junk, 'not pem at all');
  const load = (env: Record<string, string>) => () => loadTlsCertificate(configWith(env), 'x.example');

  expect(load({ RELAY_TLS_KEY: keyFile })).toThrow(/tls\.key \(env RELAY_TLS_KEY\) is set to .*key\.pem but tls\.cert \(env RELAY_TLS_CERT\) is not/);
  expect(load({ RELAY_TLS_CERT: certFile })).toThrow(/tls\.cert \(env RELAY_TLS_CERT\) is set to .*cert\.pem but tls\.key \(env RELAY_TLS_KEY\) is not/);
  expect(load({ RELAY_TLS_KEY: path.join(dir, 'missing.pem'), RELAY_TLS_CERT: certFile }))
    .toThrow(/RELAY_TLS_KEY\): .*missing\.pem does not exist/);
  expect(load({ RELAY_TLS_KEY: keyFile, RELAY_TLS_CERT: path.join(dir, 'missing.pem') }))
    .toThrow(/RELAY_TLS_CERT\): .*missing\.pem does not exist/);
  expect(load({ RELAY_TLS_KEY: junk, RELAY_TLS_CERT: certFile })).toThrow(/RELAY_TLS_KEY\): .*junk\.pem is not an unencrypted PEM private key/);
  expect(load({ RELAY_TLS_KEY: keyFile, RELAY_TLS_CERT: junk })).toThrow(/RELAY_TLS_CERT\): .*junk\.pem is not a PEM certificate/);
  expect(load({ RELAY_TLS_KEY: certFile, RELAY_TLS_CERT: keyFile })).toThrow(TlsCertificateError);
  expect(load({ RELAY_TLS_KEY: keyFile, RELAY_TLS_CERT: otherCert })).toThrow(/is not the key of the certificate/);

  // The key never shows in a message.
  const body = made.key.split('\n')[1];
  for (const env of [{ RELAY_TLS_KEY: keyFile, RELAY_TLS_CERT: otherCert }, { RELAY_TLS_KEY: certFile, RELAY_TLS_CERT: keyFile }]) {
    try {
      load(env)();
    } catch (err) {
      expect((err as Error).message).not.toContain(body);
    }
  }
});

test('a serial whose random bytes start with 0x00 still makes a certificate OpenSSL accepts (minimal DER)', () => {
  // before: forge wrote the leading 0x00 as given, and OpenSSL refused the certificate
  // ("illegal padding"), for about one random serial in 256
  for (const first of [0x00, 0x80]) {
    const bytes = Buffer.alloc(16, 0x11);
    bytes[0] = first;
    const { key, cert } = makeSelfSigned('relay.example.org', new Date(), bytes);
    expect(() => new crypto.X509Certificate(cert)).not.toThrow();
    expect(() => tls.createSecureContext({ key, cert })).not.toThrow();
    expect(new crypto.X509Certificate(cert).serialNumber).toMatch(/^01/);
  }
});
