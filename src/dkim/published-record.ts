// Is a key's record published? Looks up <selector>._domainkey.<domain> TXT through the relay's
// resolver and compares its p= with the key's public key. The answer says exactly what DNS
// returned, because it is what a user reads when `keys activate` refuses.
import crypto from 'node:crypto';
import { Resolver } from '../dns/resolver';
import { dkimRecordValue, parseRecordValue, recordName } from './dns-record';

export type RecordStatus =
  /** a record with this key's p= */
  | 'match'
  /** NXDOMAIN, or the name has no TXT record */
  | 'missing'
  /** a DKIM record with another public key (or another k=) */
  | 'mismatch'
  /** p= is empty: the key is revoked (RFC 6376 3.6.1) */
  | 'revoked'
  /** TXT at the name that is not a valid DKIM key record */
  | 'malformed'
  /** the lookup failed: timeout, SERVFAIL, refused */
  | 'dns-error';

export interface RecordCheck {
  status: RecordStatus;
  /** One sentence on what DNS returned. */
  detail: string;
}

/** The public key a record for `key` must carry, as bytes (SPKI DER for RSA, raw 32 bytes for Ed25519). */
function expectedKeyBytes(key: crypto.KeyObject): { k: string; p: Buffer } {
  const tags = parseRecordValue(dkimRecordValue(key));
  return { k: tags.k ?? 'rsa', p: Buffer.from(tags.p, 'base64') };
}

/** The p= of a record as key bytes comparable with expectedKeyBytes, or null if it is not one. */
function publishedKeyBytes(k: string, p: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]+=*$/.test(p)) return null;
  const bytes = Buffer.from(p, 'base64');
  if (k === 'ed25519') return bytes.length === 32 ? bytes : null;
  // RSA: SubjectPublicKeyInfo as RFC 6376 says; some publish the bare PKCS#1 RSAPublicKey.
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return crypto.createPublicKey({ key: bytes, format: 'der', type }).export({ type: 'spki', format: 'der' });
    } catch {
      // try the next form
    }
  }
  return null;
}

function short(p: string): string {
  return p.length > 24 ? `${p.slice(0, 12)}...${p.slice(-8)}` : p;
}

/** Looks the record of `selector`/`domain` up and compares it with `key` (private or public). */
export async function checkPublishedRecord(resolver: Resolver, domain: string, selector: string, key: crypto.KeyObject): Promise<RecordCheck> {
  const name = recordName(selector, domain);
  const expected = expectedKeyBytes(key);
  let values: string[];
  try {
    values = await resolver.txt(name);
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'error';
    if (code === 'ENOTFOUND') return { status: 'missing', detail: `DNS has no record at ${name} (NXDOMAIN: the name does not exist)` };
    if (code === 'ENODATA') return { status: 'missing', detail: `DNS has no TXT record at ${name} (the name exists, with other record types)` };
    const why = code === 'ETIMEOUT' ? 'no answer in time (timeout)'
      : code === 'ESERVFAIL' ? 'the DNS server failed (SERVFAIL)'
        : code === 'EREFUSED' ? 'the DNS server refused the query (REFUSED)'
          : code === 'ECONNREFUSED' ? 'the DNS server is not reachable (connection refused)'
            : `the lookup failed (${code})`;
    return { status: 'dns-error', detail: `looking up TXT ${name} failed: ${why}; check dns.servers (RELAY_DNS_SERVERS) and try again` };
  }
  if (!values.length) return { status: 'missing', detail: `DNS has no TXT record at ${name}` };

  const findings: RecordCheck[] = [];
  for (const value of values) {
    let tags;
    try {
      tags = parseRecordValue(value);
    } catch (err) {
      findings.push({ status: 'malformed', detail: `the TXT record at ${name} is not a valid DKIM key record: ${(err as Error).message}` });
      continue;
    }
    const k = (tags.k ?? 'rsa').toLowerCase();
    if (tags.p === '') {
      findings.push({ status: 'revoked', detail: `the record at ${name} has an empty p=, which revokes the key (RFC 6376 3.6.1)` });
      continue;
    }
    if (k !== expected.k) {
      findings.push({ status: 'mismatch', detail: `the record at ${name} is for a k=${k} key, but this key is ${expected.k}` });
      continue;
    }
    const published = publishedKeyBytes(k, tags.p);
    if (!published) {
      findings.push({ status: 'malformed', detail: `the record at ${name} has p=${short(tags.p)}, which is not a valid ${k === 'rsa' ? 'RSA public key' : 'Ed25519 public key (32 bytes in base64)'}: was it pasted incompletely?` });
      continue;
    }
    if (published.equals(expected.p)) return { status: 'match', detail: `the record at ${name} has this key's public key` };
    findings.push({ status: 'mismatch', detail: `the record at ${name} has p=${short(tags.p)}, another public key than this key's` });
  }
  if (findings.length === 1) return findings[0];
  // Several TXT records: the DKIM-looking ones say most.
  const rank: RecordStatus[] = ['mismatch', 'revoked', 'malformed'];
  findings.sort((a, b) => rank.indexOf(a.status) - rank.indexOf(b.status));
  return { status: findings[0].status, detail: `${values.length} TXT records at ${name}, none with this key: ${findings.map((f) => f.detail).join('; ')}` };
}
