// DKIM signing (RFC 6376), relaxed/relaxed, rsa-sha256 and ed25519-sha256 (RFC 8463).
// The body is hashed as it streams past (never held whole); the header section, which is
// small and already parsed by the intake, is signed at the end. The body hash is mailauth's
// (lib/dkim/body); the header side is ours (header-fields.ts: mailauth's lib/tools.js costs
// ~25 MB of RSS in modules a signer does not need). Beyond a plain signer this adds
// oversigning (h= names From once more than the message has it, so a second From cannot be
// added without breaking the signature) and one body hash shared by the RSA and the Ed25519
// signature.
import crypto from 'node:crypto';
import { dkimBody, BodyHasher } from 'mailauth/lib/dkim/body';
import { canonicalSignatureField, formatSignatureField, HeaderField, relaxedField, selectSignedFields, SignatureTags } from './header-fields';

export interface SigningKey {
  domain: string;
  selector: string;
  algorithm: 'rsa' | 'ed25519';
  privateKey: crypto.KeyObject;
}

/** Header fields signed when present. */
export const SIGNED_HEADERS = [
  'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc',
  'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Content-ID', 'Content-Description',
  'In-Reply-To', 'References', 'Resent-Date', 'Resent-From', 'Resent-Sender', 'Resent-To', 'Resent-Cc',
  'Resent-Message-ID', 'List-Id', 'List-Help', 'List-Unsubscribe', 'List-Unsubscribe-Post',
  'List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive', 'Feedback-ID', 'BIMI-Selector',
];

/** Signed once more than present: a message may carry at most one of each (RFC 5322 3.6). */
export const OVERSIGNED_HEADERS = ['From', 'Subject', 'Date', 'To', 'Cc', 'Reply-To', 'Message-ID'];

/** Streams the body through the relaxed sha256 body hash. */
export class BodyHash {
  private readonly hasher: BodyHasher = dkimBody('relaxed', 'sha256', false);
  update(chunk: Buffer): void {
    this.hasher.update(chunk);
  }
  digest(): string {
    return this.hasher.digest('base64');
  }
}

export class SigningError extends Error {}

/** crypto.sign with a callback: the private-key operation runs on libuv's thread pool, off the main thread. */
function signAsync(algorithm: string | null, data: Buffer, key: crypto.KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => crypto.sign(algorithm, data, key, (err, sig) => (err ? reject(err) : resolve(sig))));
}

/**
 * The DKIM-Signature header fields for a message, each ending in CRLF, to be put in front of
 * the header section. Rejects with SigningError when any signature cannot be made: a message
 * is never passed on as signed when it is not.
 */
export async function signHeaders(headers: HeaderField[], bodyHash: string, keys: SigningKey[], now = new Date()): Promise<string> {
  const selected = selectSignedFields(headers, SIGNED_HEADERS, OVERSIGNED_HEADERS);
  if (!selected.fields.some((h) => h.key === 'from')) throw new SigningError('the message has no From header to sign');
  // RFC 6376 3.7: each signed field canonicalized and followed by CRLF, the same for every key
  const signedFields = selected.fields.map((field) => relaxedField(field.line) + '\r\n').join('');
  const timestamp = Math.floor(now.getTime() / 1000);
  let out = '';
  for (const key of keys) {
    const tags: SignatureTags = {
      algorithm: key.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256',
      canonicalization: 'relaxed/relaxed',
      domain: key.domain,
      headers: selected.names,
      selector: key.selector,
      timestamp,
      bodyHash,
    };
    const name = `${key.selector}._domainkey.${key.domain}`;
    let canonicalizedHeader: Buffer;
    try {
      canonicalizedHeader = Buffer.from(signedFields + canonicalSignatureField(tags), 'latin1');
    } catch (err) {
      throw new SigningError(`cannot sign with ${name}: ${(err as Error).message}`);
    }
    let signature: Buffer;
    try {
      signature = key.algorithm === 'rsa'
        ? await signAsync('sha256', canonicalizedHeader, key.privateKey)
        // RFC 8463: Ed25519 signs the sha256 hash of the canonicalized header
        : await signAsync(null, crypto.createHash('sha256').update(canonicalizedHeader).digest(), key.privateKey);
    } catch (err) {
      throw new SigningError(`signing with ${name} failed: ${(err as Error).message}`);
    }
    out += formatSignatureField(tags, signature.toString('base64')) + '\r\n';
  }
  return out;
}
