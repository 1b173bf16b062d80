// `dkim-relay doctor` as a library function: the relay's identity and blocklists, then for
// each signing domain (the key store's, or the one asked for) SPF, DKIM, DMARC and its MX,
// with the advice DNS cannot check. All lookups go through one resolver with a deadline on
// each and every question asked once; the groups run side by side.
import { RelayConfig } from '../config/schema';
import { boundedResolver, createResolver, Resolver } from '../dns/resolver';
import { domainNameProblem, normalizeDomainName } from '../dkim/dns-record';
import { storedDomains } from '../dkim/stored-keys';
import { examineIdentity } from '../identity/sending-identity';
import { domainAdvice, identityAdvice } from './advice';
import { blocklistChecks } from './blocklist-checks';
import { Check, CHECK_STATUSES, CheckStatus, DoctorCheck } from './check';
import { DoctorContext } from './context';
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
  identity: { localAddress: string | null; heloName: string };
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
  const identity = await examineIdentity(config, resolver, { hostname: options.hostname });
  // An SPF evaluation makes at most ~20 lookups, most of them one after the other.
  const ctx: DoctorContext = { config, resolver, identity, spfTimeLimitMs: timeoutMs * 4 };

  const step = async (label: string, run: () => Promise<Check[]> | Check[]) => {
    progress(label);
    return run();
  };
  const identityGroup = Promise.all([
    step('the sending identity (FCrDNS, HELO SPF)', () => identityChecks(ctx)),
    step('blocklists', () => blocklistChecks(ctx)),
  ]).then((groups) => [...groups.flat(), ...identityAdvice(ctx)].map((c) => ({ domain: null, ...c })));
  const domainGroups = domains.map((domain) => Promise.all([
    step(`SPF of ${domain}`, () => spfChecks(ctx, domain)),
    step(`DKIM of ${domain}`, () => dkimChecks(ctx, domain)),
    step(`DMARC of ${domain}`, () => dmarcChecks(ctx, domain)),
    step(`MX of ${domain}`, () => domainChecks(ctx, domain)),
  ]).then((groups) => [...groups.flat(), ...domainAdvice(domain)].map((c) => ({ domain, ...c }))));

  const checks: DoctorCheck[] = (await Promise.all([identityGroup, ...domainGroups])).flat()
    .map(({ domain, id, status, detail, fix }) => ({ domain, id, status, detail, fix }));
  return { checks, summary: summarize(checks), domains, identity: { localAddress: identity.localAddress, heloName: identity.heloName } };
}

export function summarize(checks: Check[]): DoctorSummary {
  const counts = Object.fromEntries(CHECK_STATUSES.map((s) => [s, 0])) as Record<CheckStatus, number>;
  for (const c of checks) counts[c.status] += 1;
  return { ...counts, ok: counts.fail === 0 };
}
