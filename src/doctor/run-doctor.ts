// `dkim-relay doctor` as a library function: the relay's identity and blocklists, then for
// each signing domain (the key store's, or the one asked for) SPF, DKIM, DMARC and its MX,
// with the advice DNS cannot check. All lookups go through one resolver with a deadline on
// each and every question asked once; the groups run side by side.
import { RelayConfig } from '../config/schema';
import { boundedResolver, createResolver, Resolver } from '../dns/resolver';
import { domainNameProblem, normalizeDomainName } from '../dkim/dns-record';
import { storedDomains } from '../dkim/stored-keys';
import net from 'node:net';
import { examineIdentity, localAddresses } from '../identity/sending-identity';
import { domainAdvice, identityAdvice } from './advice';
import { blocklistChecks } from './blocklist-checks';
import { Check, CHECK_STATUSES, CheckStatus, DoctorCheck } from './check';
import { DoctorContext } from './context';
import { daneChecks } from './dane-checks';
import { dkimChecks } from './dkim-checks';
import { dmarcChecks } from './dmarc-checks';
import { domainChecks } from './domain-checks';
import { identityChecks } from './identity-checks';
import { spfChecks } from './spf-checks';

export interface DoctorOptions {
  /** Check this domain only (it need not be in the key store). */
  domain?: string;
  /** Instead of the one made from dns.servers (tests). */
  resolver?: Resolver;
  /** The machine's host name, the HELO name when neither it nor the PTR is configured (tests). */
  hostname?: string;
  /** Told when a group of checks starts: "SPF of example.org". */
  onProgress?: (step: string) => void;
}

export type DoctorSummary = Record<CheckStatus, number> & { ok: boolean };

export interface DoctorReport {
  /** Identity checks first (domain null), then each domain's in order. */
  checks: DoctorCheck[];
  summary: DoctorSummary;
  domains: string[];
  identity: { localAddress: string | null; heloName: string; sources: { localAddress: string; heloName: string }[] };
}

/** Thrown for a --domain that is no domain name; the CLI turns it into a usage error. */
export class DoctorDomainError extends Error {}

export async function runDoctor(config: RelayConfig, options: DoctorOptions = {}): Promise<DoctorReport> {
  let domains: string[];
  if (options.domain !== undefined) {
    const domain = normalizeDomainName(options.domain);
    const problem = domainNameProblem(domain);
    if (problem) throw new DoctorDomainError(problem);
    domains = [domain];
  } else {
    domains = storedDomains(config.keysDir);
  }

  const timeoutMs = Math.max(1, config.dns.timeout) * 1000;
  const resolver = boundedResolver(options.resolver ?? createResolver({ servers: config.dns.servers, timeoutSeconds: config.dns.timeout }), timeoutMs, { cache: true });
  const progress = options.onProgress ?? (() => undefined);

  progress('the sending identity (PTR, HELO)');
  // Each family has its own identity (delivery.localAddress with an IPv4 and an IPv6 address).
  const addresses = localAddresses(config);
  const identities = await Promise.all((addresses.length ? addresses : [null])
    .map((localAddress) => examineIdentity(config, resolver, { hostname: options.hostname, localAddress })));
  const identity = identities[0];
  // An SPF evaluation makes at most ~20 lookups, most of them one after the other.
  const ctx: DoctorContext = { config, resolver, identity, identities, spfTimeLimitMs: timeoutMs * 4 };

  const step = async (label: string, run: () => Promise<Check[]> | Check[]) => {
    progress(label);
    return run();
  };
  // With two families, the identity and blocklist checks run per address and say which.
  const perAddress = identities.map((report) => {
    const own = { ...ctx, identity: report };
    const label = identities.length > 1 ? `IPv${net.isIPv6(report.localAddress ?? '') ? 6 : 4} ${report.localAddress}: ` : '';
    return Promise.all([
      step(`the sending identity ${report.localAddress ?? ''} (FCrDNS, HELO SPF)`, () => identityChecks(own)),
      step(`blocklists ${report.localAddress ?? ''}`, () => blocklistChecks(own)),
    ]).then((groups) => groups.flat().map((c) => ({ ...c, detail: label + c.detail })));
  });
  const identityGroup = Promise.all([...perAddress, step('DANE: does the resolver validate DNSSEC', () => daneChecks(ctx))])
    .then((groups) => [...groups.flat(), ...identityAdvice(ctx)].map((c) => ({ domain: null, ...c })));
  const domainGroups = domains.map((domain) => Promise.all([
    step(`SPF of ${domain}`, () => spfChecks(ctx, domain)),
    step(`DKIM of ${domain}`, () => dkimChecks(ctx, domain)),
    step(`DMARC of ${domain}`, () => dmarcChecks(ctx, domain)),
    step(`MX of ${domain}`, () => domainChecks(ctx, domain)),
  ]).then((groups) => [...groups.flat(), ...domainAdvice(domain)].map((c) => ({ domain, ...c }))));

  const checks: DoctorCheck[] = (await Promise.all([identityGroup, ...domainGroups])).flat()
    .map(({ domain, id, status, detail, fix }) => ({ domain, id, status, detail, fix }));
  return { checks, summary: summarize(checks), domains, identity: {
    localAddress: identity.localAddress, heloName: identity.heloName,
    sources: identities.filter((r) => r.localAddress).map((r) => ({ localAddress: r.localAddress!, heloName: r.heloName })),
  } };
}

export function summarize(checks: Check[]): DoctorSummary {
  const counts = Object.fromEntries(CHECK_STATUSES.map((s) => [s, 0])) as Record<CheckStatus, number>;
  for (const c of checks) counts[c.status] += 1;
  return { ...counts, ok: counts.fail === 0 };
}
