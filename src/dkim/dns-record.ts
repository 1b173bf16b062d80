// The DKIM key record in DNS (RFC 6376 3.6.1): the TXT value for a public key, the same value
// as a BIND zone-file line, and the way back from either text to its tags. `keygen` prints
// these; `keys activate` and `doctor` compare what DNS serves with the key on disk.
import crypto from 'node:crypto';

/** A TXT character-string holds at most 255 octets (RFC 1035 3.3.14); longer values are split. */
export const TXT_STRING_MAX = 255;

/**
 * The TXT value publishing `publicKey` (a private key is accepted too; its public half is used).
 * RSA: `p=` is the base64 SubjectPublicKeyInfo DER (RFC 6376 3.6.1).
 * Ed25519: `p=` is the base64 of the raw 32-byte key (RFC 8463 4.2), not SPKI.
 */
export function dkimRecordValue(publicKey: crypto.KeyObject): string {
  const key = publicKey.type === 'private' ? crypto.createPublicKey(publicKey) : publicKey;
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return `v=DKIM1; k=rsa; p=${key.export({ type: 'spki', format: 'der' }).toString('base64')}`;
    case 'ed25519': {
      const jwk = key.export({ format: 'jwk' });
      return `v=DKIM1; k=ed25519; p=${Buffer.from(jwk.x as string, 'base64url').toString('base64')}`;
    }
    default:
      throw new Error(`a ${key.asymmetricKeyType ?? key.type} key cannot be published for DKIM: only RSA and Ed25519 keys can`);
  }
}

/** The owner name of a key record, without the trailing dot: `<selector>._domainkey.<domain>`. */
export function recordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`;
}

/**
 * One BIND zone-file line: `S._domainkey.D. 3600 IN TXT ( "..." "..." )`, the value cut into
 * quoted strings of at most 255 characters that resolvers join back without separators.
 * Kept on one line so it can be pasted anywhere in a zone file (and grepped).
 */
export function zoneFileRecord(selector: string, domain: string, value: string, ttl = 3600): string {
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += TXT_STRING_MAX) {
    strings.push(`"${value.slice(i, i + TXT_STRING_MAX).replace(/[\\"]/g, (c) => `\\${c}`)}"`);
  }
  if (strings.length === 0) strings.push('""');
  return `${recordName(selector, domain)}. ${ttl} IN TXT ( ${strings.join(' ')} )`;
}

/** The tags of a key record; `p` is always there (empty means the key is revoked). */
export interface DkimRecordTags {
  v?: string;
  k?: string;
  p: string;
  [tag: string]: string | undefined;
}

/**
 * Reads a key record back from a zone-file line (`name TTL IN TXT ( "..." "..." )`), from the
 * quoted strings alone, or from the bare value as a DNS lookup returns it once joined. Quoted
 * strings are concatenated (everything outside them is ignored); whitespace inside `p=` is
 * dropped, as RFC 6376 3.6.1 allows folding there. Throws an Error saying what is wrong.
 */
export function parseRecordValue(text: string): DkimRecordTags {
  const value = text.includes('"') ? joinQuotedStrings(text) : text;
  const tags: Record<string, string> = {};
  for (const part of value.split(';')) {
    const item = part.trim();
    if (!item) continue;
    const eq = item.indexOf('=');
    if (eq < 1) throw new Error(`"${shorten(item)}" in the DKIM record is not a tag=value pair`);
    const name = item.slice(0, eq).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) throw new Error(`"${shorten(name)}" is not a DKIM record tag name`);
    if (name in tags) throw new Error(`the DKIM record has the tag ${name}= twice (RFC 6376 3.2 makes that invalid)`);
    let tagValue = item.slice(eq + 1).trim();
    if (name === 'p') tagValue = tagValue.replace(/\s+/g, '');
    tags[name] = tagValue;
  }
  if (tags.v !== undefined && tags.v !== 'DKIM1') {
    throw new Error(`the record says v=${shorten(tags.v)}: it is not a DKIM key record (those start with v=DKIM1)`);
  }
  if (tags.p === undefined) throw new Error('the DKIM record has no p= tag (the public key): it is not a DKIM key record');
  return tags as DkimRecordTags;
}

function joinQuotedStrings(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const start = text.indexOf('"', i);
    if (start < 0) break;
    let j = start + 1;
    let closed = false;
    while (j < text.length) {
      const c = text[j];
      if (c === '\\' && j + 1 < text.length) {
        out += text[j + 1];
        j += 2;
      } else if (c === '"') {
        closed = true;
        j += 1;
        break;
      } else {
        out += c;
        j += 1;
      }
    }
    if (!closed) throw new Error('the DKIM record has a quoted string without its closing quote');
    i = j;
  }
  return out;
}

function shorten(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/**
 * Why `name` is not a domain name a relay can sign for or grant, or null when it is one.
 * Expects the form normalizeDomainName returns (lower case, no trailing dot). ASCII only:
 * internationalized names are written in their xn-- form.
 */
export function domainNameProblem(name: string): string | null {
  const hint = 'use a domain name such as example.org';
  if (!name) return `the domain is empty: ${hint}`;
  if (/[^\x21-\x7e]/.test(name)) {
    return /\s/.test(name)
      ? `"${shorten(name)}" contains spaces: ${hint}`
      : `"${shorten(name)}" has characters outside ASCII: write an internationalized domain in its xn-- form (for example xn--bcher-kva.example)`;
  }
  if (name.length > 253) return `"${shorten(name)}" is longer than the 253 characters a domain name may have`;
  const labels = name.split('.');
  if (labels.length < 2) return `"${name}" is not a full domain name (it has no dot): ${hint}`;
  for (const label of labels) {
    if (!label) return `"${name}" has an empty label (two dots in a row, or a leading dot): ${hint}`;
    if (label.length > 63) return `"${shorten(name)}" has a label longer than 63 characters`;
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(label)) {
      return `"${shorten(name)}" is not a domain name: labels are letters, digits and inner hyphens; ${hint}`;
    }
  }
  return null;
}

/** Lower case, surrounding spaces and one trailing dot removed; validate with domainNameProblem. */
export function normalizeDomainName(input: string): string {
  return input.trim().toLowerCase().replace(/\.$/, '');
}
