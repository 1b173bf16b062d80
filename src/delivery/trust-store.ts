// The certificate authorities the relay trusts where it checks a certificate on its own
// behalf (WebPKI): Node's built-in Mozilla list plus the PEM file of delivery.caFile, so a
// private CA (a test's, or a company's) can be added without replacing the public ones.
// Used for MTA-STS policy fetches, MX certificates under MTA-STS, and TLS report POSTs.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';

export interface TrustStore {
  /** PEM certificates: the built-in roots, then the extra file's. */
  ca: string[];
  /** How many certificates came from the extra file. */
  extra: number;
  /** A TLS context trusting `ca`, TLS 1.2 at least: for connections that check certificates. */
  context(): tls.SecureContext;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The certificates of a PEM file; throws saying what is wrong (unreadable, no certificate,
 * a block that does not parse), so a bad delivery.caFile stops the start with that reason.
 */
export function readCaFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`delivery.caFile (env RELAY_DELIVERY_CA_FILE) ${file} cannot be read (${code ?? (err as Error).message}): give a readable PEM file of CA certificates, or leave it empty`);
  }
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (!blocks.length) {
    throw new Error(`delivery.caFile (env RELAY_DELIVERY_CA_FILE) ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----): give a PEM file of CA certificates, or leave it empty`);
  }
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`delivery.caFile (env RELAY_DELIVERY_CA_FILE) ${file}: certificate ${i + 1} does not parse (${(err as Error).message}): fix or remove it`);
    }
  });
  return blocks;
}

export function createTrustStore(caFile: string): TrustStore {
  const extra = caFile ? readCaFile(caFile) : [];
  const ca = [...tls.rootCertificates, ...extra];
  let context: tls.SecureContext | undefined;
  return {
    ca,
    extra: extra.length,
    context: () => (context ??= tls.createSecureContext({ ca, minVersion: 'TLSv1.2' })),
  };
}
