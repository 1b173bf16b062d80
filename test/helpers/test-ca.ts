// A certificate authority for tests: a root made once per process, and server certificates it
// issues for given DNS names (node:crypto makes the RSA keys, node-forge the X.509). Its PEM
// goes into a file for delivery.caFile (RELAY_DELIVERY_CA_FILE), so the relay trusts it.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';

export interface KeyAndCert { key: string; cert: string }

export interface TestCa {
  /** The root certificate (PEM). */
  cert: string;
  /** A file holding the root certificate, for RELAY_DELIVERY_CA_FILE. */
  file: string;
  /** A server certificate for `names` (DNS names; IPs also accepted), signed by this CA. */
  issue(names: string[], options?: { expired?: boolean }): Promise<KeyAndCert>;
}

async function rsaKey(): Promise<{ privateKey: string; publicKey: string }> {
  return promisify(crypto.generateKeyPair)('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
}

/**
 * A forge signing key whose RSA operation is node:crypto's: forge's own (pure JS) takes
 * seconds on a busy machine. forge hands it the SHA-256 digest of the TBS certificate.
 */
function nativeSigner(privateKeyPem: string): forge.pki.rsa.PrivateKey {
  const sha256DigestInfo = Buffer.from('3031300d060960864801650304020105000420', 'hex');
  return {
    sign(md: forge.md.MessageDigest) {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const signature = crypto.privateEncrypt({ key: privateKeyPem, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.concat([sha256DigestInfo, digest]));
      return signature.toString('binary');
    },
  } as unknown as forge.pki.rsa.PrivateKey;
}

function serial(): string {
  return '01' + crypto.randomBytes(8).toString('hex'); // leading 01: positive
}

/** A new CA (each call: another one, which the relay does not trust unless given its file). */
export async function createTestCa(name = 'dkim-relay test CA'): Promise<TestCa> {
  const { privateKey, publicKey } = await rsaKey();
  const caKey = nativeSigner(privateKey);
  const root = forge.pki.createCertificate();
  root.publicKey = forge.pki.publicKeyFromPem(publicKey);
  root.serialNumber = serial();
  root.validity.notBefore = new Date(Date.now() - 24 * 3600 * 1000);
  root.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600 * 1000);
  const subject = [{ name: 'commonName', value: name }];
  root.setSubject(subject);
  root.setIssuer(subject);
  root.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  root.sign(caKey, forge.md.sha256.create());
  const cert = forge.pki.certificateToPem(root);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-ca-'));
  const file = path.join(dir, 'ca.pem');
  fs.writeFileSync(file, cert);
  return {
    cert,
    file,
    async issue(names, options = {}) {
      const leafKeys = await rsaKey();
      const leaf = forge.pki.createCertificate();
      leaf.publicKey = forge.pki.publicKeyFromPem(leafKeys.publicKey);
      leaf.serialNumber = serial();
      const day = 24 * 3600 * 1000;
      leaf.validity.notBefore = new Date(Date.now() - (options.expired ? 30 : 1) * day);
      leaf.validity.notAfter = new Date(Date.now() + (options.expired ? -1 : 90) * day);
      leaf.setSubject([{ name: 'commonName', value: names[0] }]);
      leaf.setIssuer(root.subject.attributes);
      leaf.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'authorityKeyIdentifier', keyIdentifier: root.generateSubjectKeyIdentifier().getBytes() },
        { name: 'subjectAltName', altNames: names.map((n) => (/^[\d.]+$/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
      ]);
      leaf.sign(caKey, forge.md.sha256.create());
      return { key: leafKeys.privateKey, cert: forge.pki.certificateToPem(leaf) };
    },
  };
}
