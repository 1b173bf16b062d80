// Does a server's certificate chain match its TLSA records (RFC 6698, RFC 7671, RFC 7672)?
// Only the usages SMTP can use count: DANE-EE(3) pins the server's own certificate or key,
// and then names and dates do not matter (RFC 7672 3.1.1); DANE-TA(2) pins a certificate
// of the chain (or a key that signed it), and then the server certificate must chain to it,
// be within its dates and name the MX host or the TLSA base name (RFC 7672 3.1.2, 3.2.2).
// PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 3.1.3), as are unknown selectors
// and matching types.
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { TlsResultType } from '../tls-outcome';

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export type MatchResult =
  | { ok: true; matched: string }
  | { ok: false; result: TlsResultType; reason: string };

/** A record this relay can authenticate a server with. */
export function isUsable(r: TlsaRecord): boolean {
  return (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) && [0, 1, 2].includes(r.matchingType);
}

/** "3 1 1 1f2e..." as in a zone file (and RFC 8460 policy-string). */
export function presentation(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

function associated(data: Buffer, matchingType: number): Buffer {
  if (matchingType === 1) return createHash('sha256').update(data).digest();
  if (matchingType === 2) return createHash('sha512').update(data).digest();
  return data;
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  return associated(selected(cert, r.selector), r.matchingType).equals(r.data);
}

/**
 * chain: the server's certificates as it sent them, its own first, each followed by its
 * issuer where the server sent it. names: the reference identifiers for DANE-TA (the MX
 * host name, the TLSA base name). now: for the dates of a DANE-TA chain.
 */
export function matchChain(chain: X509Certificate[], records: TlsaRecord[], names: string[], now = new Date()): MatchResult {
  const usable = records.filter(isUsable);
  const [leaf] = chain;
  if (!leaf) return { ok: false, result: 'validation-failure', reason: 'the server sent no certificate' };
  const ee = usable.find((r) => r.usage === 3 && matches(leaf, r));
  if (ee) return { ok: true, matched: presentation(ee) };

  const problems: string[] = [];
  for (const ta of usable.filter((r) => r.usage === 2)) {
    // the trust anchor: a certificate of the chain above the server's, or (2 1 0) a bare key
    // that signed the topmost certificate sent
    let top = chain.findIndex((c, i) => i > 0 && matches(c, ta));
    let bareKey = false;
    if (top < 0 && ta.selector === 1 && ta.matchingType === 0) {
      try {
        bareKey = chain[chain.length - 1].verify(createPublicKey({ key: ta.data, format: 'der', type: 'spki' }));
      } catch {
        // not a key: no match
      }
      if (bareKey) top = chain.length - 1;
    }
    if (top < 0) continue;
    // each certificate below the anchor is issued and signed by the next one
    const below = chain.slice(0, top);
    const broken = below.find((c, i) => !(c.checkIssued(chain[i + 1]) && c.verify(chain[i + 1].publicKey)));
    if (broken) {
      problems.push(`certificate "${oneLine(broken.subject)}" is not signed by the next one of the chain`);
      continue;
    }
    const path = bareKey ? chain.slice(0, top + 1) : below;
    const expired = path.find((c) => now < new Date(c.validFrom) || now > new Date(c.validTo));
    if (expired) {
      return {
        ok: false, result: 'certificate-expired',
        reason: `the chain matches TLSA ${presentation(ta)}, but certificate "${oneLine(expired.subject)}" is valid only from ${expired.validFrom} to ${expired.validTo}`,
      };
    }
    const named = names.some((n) => leaf.checkHost(n) !== undefined);
    if (!named) {
      return {
        ok: false, result: 'certificate-host-mismatch',
        reason: `the chain matches TLSA ${presentation(ta)}, but the server certificate names none of ${names.join(', ')} (RFC 7672 3.2.2)`,
      };
    }
    return { ok: true, matched: presentation(ta) };
  }
  return {
    ok: false, result: 'tlsa-invalid',
    reason: `no TLSA record matches the certificate chain${problems.length ? ` (${problems.join('; ')})` : ''}; published: ${usable.map(presentation).join(', ')}`,
  };
}

function oneLine(subject: string): string {
  return subject.replace(/\n/g, ', ');
}
