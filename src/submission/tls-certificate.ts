// The certificate the submission server offers on STARTTLS and implicit TLS: the configured
// key and certificate files (tls.key, tls.cert), or else a self-signed one made on first start
// and kept in <dataDir>/tls/. Clients of a relay (Postfix relayhost, apps) mostly encrypt
// without verifying, so self-signed is a working default; a real certificate is better.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type * as Forge from 'node-forge';
import { RelayConfig } from '../config/schema';

export interface TlsCertificate {
  /** PEM private key; never log it. */
  key: string;
  /** PEM certificate (chain). */
  cert: string;
  /** True when the self-signed certificate was made by this call. */
  generated: boolean;
  /** The certificate file in use. */
  path: string;
}

export class TlsCertificateError extends Error {}

const VALID_YEARS = 10;

export function loadTlsCertificate(config: RelayConfig, hostname: string): TlsCertificate {
  const { key, cert } = config.tls;
  if (key || cert) return loadConfigured(key, cert);
  return loadSelfSigned(path.join(config.dataDir, 'tls'), hostname);
}

function loadConfigured(keyFile: string, certFile: string): TlsCertificate {
  if (!keyFile) {
    throw new TlsCertificateError(
      `tls.cert (env RELAY_TLS_CERT) is set to ${certFile} but tls.key (env RELAY_TLS_KEY) is not: set both, or neither for a self-signed certificate`,
    );
  }
  if (!certFile) {
    throw new TlsCertificateError(
      `tls.key (env RELAY_TLS_KEY) is set to ${keyFile} but tls.cert (env RELAY_TLS_CERT) is not: set both, or neither for a self-signed certificate`,
    );
  }
  const key = readSetting(keyFile, 'tls.key (env RELAY_TLS_KEY)');
  const cert = readSetting(certFile, 'tls.cert (env RELAY_TLS_CERT)');
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch {
    // The parser's message is not repeated: it is of no help and could quote the file.
    throw new TlsCertificateError(
      `tls.key (env RELAY_TLS_KEY): ${keyFile} is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----); ` +
        'an encrypted key can be decrypted with `openssl pkey -in KEY -out KEY.plain`',
    );
  }
  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert);
  } catch {
    throw new TlsCertificateError(`tls.cert (env RELAY_TLS_CERT): ${certFile} is not a PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsCertificateError(
      `tls.key (env RELAY_TLS_KEY) ${keyFile} is not the key of the certificate in tls.cert (env RELAY_TLS_CERT) ${certFile}: ` +
        'the first certificate in the file must be the server\'s own, followed by its chain',
    );
  }
  return { key, cert, generated: false, path: certFile };
}

function readSetting(file: string, setting: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read by this user' : `cannot be read (${code})`;
    throw new TlsCertificateError(`${setting}: ${path.resolve(file)} ${why}: fix the path or the file's permissions`);
  }
}

/** The self-signed pair in `dir`, made when missing, unreadable, mismatched or expired. */
function loadSelfSigned(dir: string, hostname: string): TlsCertificate {
  const keyFile = path.join(dir, 'selfsigned.key');
  const certFile = path.join(dir, 'selfsigned.crt');
  const existing = readUsablePair(keyFile, certFile);
  if (existing) return { ...existing, generated: false, path: certFile };

  const made = makeSelfSigned(hostname);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomic(keyFile, made.key, 0o600);
    writeAtomic(certFile, made.cert, 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TlsCertificateError(
      `cannot write the self-signed certificate to ${dir} (${code ?? (err as Error).message}): check dataDir (env RELAY_DATA_DIR) and its permissions, or set tls.key and tls.cert`,
    );
  }
  return { ...made, generated: true, path: certFile };
}

function readUsablePair(keyFile: string, certFile: string): { key: string; cert: string } | null {
  try {
    const key = fs.readFileSync(keyFile, 'utf8');
    const cert = fs.readFileSync(certFile, 'utf8');
    const x509 = new crypto.X509Certificate(cert);
    if (!x509.checkPrivateKey(crypto.createPrivateKey(key))) return null;
    if (Date.parse(x509.validTo) <= Date.now()) return null;
    return { key, cert };
  } catch {
    return null;
  }
}

/**
 * A self-signed certificate for `hostname`: RSA 2048, sha256, valid from yesterday (clock skew)
 * for ten years. node:crypto cannot build certificates, so node-forge lays out the ASN.1;
 * the key pair and the signature come from node:crypto (OpenSSL, fast).
 */
export function makeSelfSigned(hostname: string, now = new Date(), serialBytes = crypto.randomBytes(16)): { key: string; cert: string } {
  if (!hostname) throw new TlsCertificateError('no host name given for the self-signed certificate: set delivery.heloName (env RELAY_HELO_NAME), or tls.key and tls.cert');
  const forge = loadForge();
  const pair = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey);
  // A positive serial in minimal DER: 16 random bytes, the top bit cleared and the first byte
  // never 0 (forge writes the bytes as given; a leading 0x00 before a byte under 0x80 is
  // "illegal padding" to OpenSSL, which then refused one certificate in about 256).
  const serial = Buffer.from(serialBytes);
  serial[0] = (serial[0] & 0x7f) || 0x01;
  cert.serialNumber = serial.toString('hex');
  const notBefore = new Date(now.getTime() - 24 * 3600 * 1000);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALID_YEARS);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const subject = [{ name: 'commonName', value: hostname }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const altName = net.isIP(hostname) ? { type: 7, ip: hostname } : { type: 2, value: hostname };
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [altName] },
  ]);
  // What forge's cert.sign does, with the RSA signature made by node:crypto: forge's pure-JS
  // RSA takes seconds under jest's VM, OpenSSL milliseconds.
  cert.signatureOid = cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption;
  const tbsAsn1 = (forge.pki as unknown as ForgeTbs).getTBSCertificate(cert); // untyped in @types/node-forge
  const tbs = Buffer.from(forge.asn1.toDer(tbsAsn1).getBytes(), 'binary');
  cert.signature = crypto.sign('sha256', tbs, pair.privateKey).toString('binary');
  return { key: pair.privateKey, cert: forge.pki.certificateToPem(cert) };
}

interface ForgeTbs {
  getTBSCertificate(cert: Forge.pki.Certificate): Forge.asn1.Asn1;
}

/**
 * node-forge, loaded only when a certificate is made: it is some 10 MB of memory once loaded,
 * and a relay with a configured or an already made certificate never needs it.
 */
function loadForge(): typeof Forge {
  return require('node-forge') as typeof Forge;
}

function writeAtomic(file: string, content: string, mode: number): void {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      fs.writeFileSync(fd, content);
      fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const dfd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
