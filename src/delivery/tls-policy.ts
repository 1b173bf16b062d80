// The TLS policy of a recipient domain, as delivery uses it: which of its MX hosts mail may go
// to, and what each connection must achieve in TLS (a TlsRequirement for the transport).
// MTA-STS (mta-sts.ts) makes one; DANE can wrap it per host (RFC 8461 2: DANE takes
// precedence for a host that has usable TLSA records).
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { Destination } from './route';
import { TlsCheck, TlsRequirement } from './transport';

export interface DomainTlsPolicy {
  /**
   * Part of the delivery site's key: jobs of domains whose policies differ never share a
   * connection (a session opened without checks must not carry mail an enforced policy covers).
   */
  key: string;
  /** The hosts mail may go to; refusal (the reply text) when none is left. */
  filter(destinations: Destination[]): { allowed: Destination[]; refusal?: string };
  requirement(destination: Destination): Promise<TlsRequirement>;
}

/** Where delivery asks for a domain's policy; undefined: none applies (opportunistic TLS). */
export interface TlsPolicySource {
  forDomain(domain: string): Promise<DomainTlsPolicy | undefined>;
}

/** OpenSSL's verify errors, as RFC 8460 result types. */
function resultOfVerifyError(code: string): 'certificate-expired' | 'certificate-not-trusted' | 'validation-failure' {
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'certificate-expired';
  if (/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY_LEAF|CERT_UNTRUSTED|CERT_CHAIN_TOO_LONG|INVALID_CA/.test(code)) return 'certificate-not-trusted';
  return 'validation-failure';
}

/**
 * Whether `name` is a DNS-ID of the certificate: subjectAltName only (no CN fallback), a
 * wildcard only as the whole left-most label (RFC 8461 3.3 and 4.1, RFC 6125).
 */
export function certificateNames(cert: tls.PeerCertificate | X509Certificate, name: string): boolean {
  try {
    const x509 = cert instanceof X509Certificate ? cert : new X509Certificate(cert.raw);
    return !!x509.checkHost(name, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false });
  } catch {
    return false;
  }
}

/**
 * WebPKI check of an MX certificate (RFC 8461 4.1): a chain to a trusted CA (the socket was
 * opened with the trust store, so OpenSSL's verdict is socket.authorized), TLS 1.2 or newer,
 * and the MX host name among its DNS names.
 */
export function webPkiVerify(host: string): (socket: tls.TLSSocket) => TlsCheck {
  const name = host.toLowerCase().replace(/\.$/, '');
  return (socket) => {
    const version = socket.getProtocol();
    if (version !== 'TLSv1.2' && version !== 'TLSv1.3') {
      return { ok: false, result: 'validation-failure', reason: `${name} speaks ${version ?? 'an unknown TLS version'}; TLS 1.2 or newer is required` };
    }
    const cert = socket.getPeerCertificate();
    if (!cert || !cert.raw) return { ok: false, result: 'validation-failure', reason: `${name} presented no certificate` };
    if (!socket.authorized) {
      // a code string such as CERT_HAS_EXPIRED (typed as Error by @types/node)
      const error = socket.authorizationError as unknown as string | { code?: string } | undefined;
      const code = typeof error === 'object' ? error?.code ?? 'unknown' : String(error);
      return { ok: false, result: resultOfVerifyError(code), reason: `the certificate of ${name} does not validate (${code}, issuer: ${cert.issuer?.CN ?? cert.issuer?.O ?? 'unknown'})` };
    }
    if (!certificateNames(cert, name)) {
      const names = (cert.subjectaltname ?? '').replace(/DNS:/g, '') || `CN ${cert.subject?.CN ?? 'none'}`;
      return { ok: false, result: 'certificate-host-mismatch', reason: `the certificate of ${name} does not name it (it names ${names})` };
    }
    return { ok: true };
  };
}
