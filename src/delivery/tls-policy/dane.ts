// DANE for SMTP (RFC 7672): what TLS an MX host's DNSSEC-signed TLSA records demand.
// Per MX host, before connecting:
//   1. the recipient domain's MX answer must be DNSSEC-validated (RFC 7672 2.2.1; for a
//      domain without MX, its own address records stand in) - else no DANE: an attacker who
//      can forge the MX can name any host;
//   2. the host's address records (A or AAAA, the family connected to) must be validated
//      (RFC 7672 2.2.2) - else no DANE;
//   3. its TLSA records at _PORT._tcp.HOST (port: delivery.mxPort, 25 in real life):
//      - validated, with usable DANE-EE/DANE-TA records: TLS required, the chain must match;
//      - validated, all unusable (PKIX-TA/EE, unknown parameters): TLS required, any
//        certificate (RFC 7672 2.2: "MUST be made via TLS, but authentication is not required");
//      - not validated (unsigned zone) or securely absent: no DANE;
//   a lookup that fails validation (the resolver answers SERVFAIL) in any step defers the host
//   (RFC 7672 2.2): the next MX host is tried, the recipient waits if none is left.
// CNAMEs are followed by the resolver; the TLSA base name is the MX host name as given.
// Answers are trusted only from a resolver on loopback (dns/dnssec-lookup.ts).
import type tls from 'node:tls';
import net from 'node:net';
import { X509Certificate } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { DnssecAnswer, DnssecLookup, DnsServer, format, resolverServers, trustedResolvers } from '../../dns/dnssec-lookup';
import { describeDnsError } from '../../dns/resolver';
import { TlsPolicyRef, TlsResultType } from '../tls-outcome';
import type { TlsDeferral, TlsRequirement } from '../transport';
import { isUsable, matchChain, presentation, TlsaRecord } from './dane-match';

export type DaneDecision =
  /** DANE does not apply to this host: opportunistic TLS or MTA-STS decide. */
  | { kind: 'none'; why: string }
  | { kind: 'require'; requirement: TlsRequirement & { policy: TlsPolicyRef } }
  /** Do not connect to this host now (RFC 7672 2.2). reply: for the log and the queue. */
  | { kind: 'defer'; result: TlsResultType; reply: string; policy: TlsPolicyRef };

export interface DaneOptions {
  /** dns.servers (empty: the system's) */
  servers: string[];
  timeoutMs: number;
  /** delivery.mxPort: the port of the TLSA name (_25._tcp) */
  mxPort: number;
}

export class Dane {
  readonly servers: DnsServer[];
  private readonly lookup: DnssecLookup;
  /** Why DANE cannot be used with these resolvers; null when it can. */
  readonly unusable: string | null;

  constructor(private readonly options: DaneOptions) {
    this.servers = resolverServers(options.servers);
    this.lookup = new DnssecLookup(this.servers, options.timeoutMs);
    const trust = trustedResolvers(this.servers);
    this.unusable = trust.ok ? null : trust.reason;
  }

  /** What DANE demands of a connection to `host` (an MX host of `domain`) over `family`. */
  async forHost(host: string, recipientDomain: string, family: 4 | 6): Promise<DaneDecision> {
    if (this.unusable) return { kind: 'none', why: this.unusable };
    if (net.isIP(host)) return { kind: 'none', why: 'an address has no TLSA records' };
    const base = host.replace(/\.$/, '').toLowerCase();
    // DNS knows an internationalized domain by its A-labels, as the route looked it up
    const domain = (domainToASCII(recipientDomain.normalize('NFC')) || recipientDomain).toLowerCase();
    const tlsaName = `_${this.options.mxPort}._tcp.${base}`;
    const policy: TlsPolicyRef = { type: 'tlsa', domain: base };
    const bogus = (what: string, answer: DnssecAnswer | null, err?: unknown): DaneDecision => ({
      kind: 'defer', result: 'dnssec-invalid', policy,
      reply: `DANE: the DNSSEC validation of ${what} failed (${err ? describeDnsError(err) : `the resolver ${answer!.server} answered ${answer!.rcode}`}); ${base} is not used until its DNS validates (RFC 7672 2.2)`,
    });
    const ask = async (name: string, type: 'MX' | 'A' | 'AAAA' | 'TLSA') => {
      try {
        return { answer: await this.lookup.query(name, type) };
      } catch (err) {
        return { err };
      }
    };

    // 1. the MX answer (or, for an implicit MX, the domain's addresses in step 2)
    if (base !== domain) {
      const mx = await ask(domain, 'MX');
      if ('err' in mx) return bogus(`the MX records of ${domain}`, null, mx.err);
      if (mx.answer.rcode === 'SERVFAIL') return bogus(`the MX records of ${domain}`, mx.answer);
      if (!mx.answer.authentic) return { kind: 'none', why: `the MX records of ${domain} are not DNSSEC-signed` };
    }
    // 2. the host's addresses
    const addressType = family === 6 ? 'AAAA' : 'A';
    const addresses = await ask(base, addressType);
    if ('err' in addresses) return bogus(`the ${addressType} records of ${base}`, null, addresses.err);
    if (addresses.answer.rcode === 'SERVFAIL') return bogus(`the ${addressType} records of ${base}`, addresses.answer);
    if (!addresses.answer.authentic) return { kind: 'none', why: `the ${addressType} records of ${base} are not DNSSEC-signed` };
    // 3. the TLSA records
    const tlsa = await ask(tlsaName, 'TLSA');
    if ('err' in tlsa) return bogus(`the TLSA records ${tlsaName}`, null, tlsa.err);
    if (tlsa.answer.rcode === 'SERVFAIL') return bogus(`the TLSA records ${tlsaName}`, tlsa.answer);
    const records: TlsaRecord[] = tlsa.answer.answers
      .filter((a) => a.type === 'TLSA')
      .map((a) => {
        const d = (a as { data: { usage: number; selector: number; matchingType: number; certificate: Buffer } }).data;
        return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: Buffer.from(d.certificate) };
      });
    if (!tlsa.answer.authentic) {
      return { kind: 'none', why: records.length ? `the TLSA records ${tlsaName} are not DNSSEC-signed: ignored` : `${base} has no DNSSEC-signed TLSA records` };
    }
    if (!records.length) return { kind: 'none', why: `${base} has no TLSA records (${tlsa.answer.rcode}, DNSSEC-validated)` };
    policy.string = records.map(presentation);
    const usable = records.filter(isUsable);
    if (!usable.length) {
      // RFC 7672 2.2: encryption is still required, authentication is not possible
      return { kind: 'require', requirement: { level: 'opportunistic', requireTls: true, policy, label: 'DANE' } };
    }
    return {
      kind: 'require',
      requirement: {
        level: 'dane',
        requireTls: true,
        policy,
        label: 'DANE',
        verify: (socket: tls.TLSSocket) => {
          const result = matchChain(peerChain(socket), usable, [base]);
          if (result.ok) return { ok: true };
          return { ok: false, result: result.result, reason: `the certificate of ${base} does not match its TLSA records: ${result.reason}` };
        },
      },
    };
  }

  /**
   * Does the resolver validate DNSSEC? Asks for the root's DNSKEY with DO set: a validating
   * resolver (with the root trust anchor, or in tests the test root's) answers with AD.
   */
  async checkResolver(): Promise<ResolverCheck> {
    const names = this.servers.map(format).join(', ') || '(none)';
    if (this.unusable) {
      return { ok: false, detail: `${this.unusable}; DANE is not used`, fix: RESOLVER_FIX };
    }
    try {
      const answer = await this.lookup.query('.', 'DNSKEY');
      if (answer.authentic) return { ok: true, detail: `the DNS resolver ${answer.server} validates DNSSEC (the root DNSKEY came with the AD bit): DANE is used` };
      return {
        ok: false,
        detail: `the DNS resolver ${answer.server} does not validate DNSSEC (no AD bit on the root DNSKEY, answer ${answer.rcode}): no TLSA record counts as signed, so DANE protects nothing`,
        fix: RESOLVER_FIX,
      };
    } catch (err) {
      return { ok: false, detail: `the DNS resolver ${names} could not be asked whether it validates DNSSEC: ${describeDnsError(err)}`, fix: RESOLVER_FIX };
    }
  }
}

export interface ResolverCheck { ok: boolean; detail: string; fix?: string }

export const RESOLVER_FIX = 'run a validating resolver on this machine, such as unbound listening on 127.0.0.1 (Debian: apt-get install unbound), and set dns.servers (env RELAY_DNS_SERVERS) to 127.0.0.1; or turn DANE off with delivery.dane (env RELAY_DANE) = off';

/** The server's certificates, its own first, each followed by its issuer as sent. */
export function peerChain(socket: tls.TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let cert = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  while (cert?.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate;
  }
  return chain;
}

/**
 * The queue runner's tlsPolicy from DANE alone: a requirement for a host with usable TLSA
 * records, a deferral for one whose DNSSEC fails, nothing (opportunistic) otherwise. With
 * MTA-STS next to it, DANE's answer comes first for a host that has one (RFC 8461 2).
 */
export function daneTlsPolicy(dane: Dane, log?: { debug: (obj: object, msg: string) => void }) {
  return async (destination: { host: string; ip: string }, domain: string): Promise<TlsRequirement | TlsDeferral | undefined> => {
    const decision = await dane.forHost(destination.host, domain, net.isIP(destination.ip) === 6 ? 6 : 4);
    if (decision.kind === 'require') return decision.requirement;
    if (decision.kind === 'defer') return { defer: decision.reply, result: decision.result, policy: decision.policy };
    log?.debug({ host: destination.host, domain, why: decision.why }, 'DANE does not apply to this host');
    return undefined;
  };
}
