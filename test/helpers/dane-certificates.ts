// Certificates for DANE tests: a test CA, server certificates it issues, self-signed ones, and
// the TLSA record data that pins them. Keys from node:crypto (fast, native); node-forge
// builds and signs the X.509 certificates, as in sink.ts.
import * as crypto from 'node:crypto';
import forge from 'node-forge';

export interface TestCert {
  key: string;
  /** PEM of this certificate only */
  cert: string;
  /** PEM of this certificate followed by its issuers up to the CA (what a server sends) */
  chain: string;
  der: Buffer;
  spki: Buffer;
  forgeCert: forge.pki.Certificate;
  forgeKey: forge.pki.rsa.PrivateKey;
}

function newKey(): { privateKey: string; publicKey: string } {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
}

export interface CertOptions {
  /** DNS names (the first is the common name) */
  names: string[];
  /** the issuing CA; none: self-signed */
  issuer?: TestCert;
  ca?: boolean;
  /** valid from/to; default: yesterday to in a year */
  notBefore?: Date;
  notAfter?: Date;
}

export function makeCertificate(options: CertOptions): TestCert {
  const { privateKey, publicKey } = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = '01' + crypto.randomBytes(8).toString('hex');
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 24 * 3600 * 1000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 365 * 24 * 3600 * 1000);
  cert.setSubject([{ name: 'commonName', value: options.names[0] }]);
  cert.setIssuer(options.issuer ? options.issuer.forgeCert.subject.attributes : [{ name: 'commonName', value: options.names[0] }]);
  cert.setExtensions(options.ca
    ? [{ name: 'basicConstraints', cA: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true }, { name: 'subjectKeyIdentifier' }]
    : [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: options.names.map((value) => ({ type: 2, value })) },
    ]);
  const forgeKey = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  cert.sign(options.issuer ? options.issuer.forgeKey : forgeKey, forge.md.sha256.create());
  const pem = forge.pki.certificateToPem(cert);
  const x509 = new crypto.X509Certificate(pem);
  return {
    key: privateKey,
    cert: pem,
    chain: pem + (options.issuer ? options.issuer.chain : ''),
    der: x509.raw,
    spki: x509.publicKey.export({ type: 'spki', format: 'der' }),
    forgeCert: cert,
    forgeKey,
  };
}

/** TLSA certificate association data: selector 0 (certificate) or 1 (SPKI), matching type 0, 1, 2. */
export function tlsaData(cert: TestCert, selector: 0 | 1, matchingType: 0 | 1 | 2): string {
  const data = selector === 0 ? cert.der : cert.spki;
  if (matchingType === 0) return data.toString('hex');
  return crypto.createHash(matchingType === 1 ? 'sha256' : 'sha512').update(data).digest('hex');
}
