// The sending identity at `serve` start: which HELO name to use and whether DNS backs it.
//
// When is a problem fatal? Only when the operator set something explicitly wrong, or asked
// for strictness:
//  - delivery.heloName (RELAY_HELO_NAME) set to something that is not a fully qualified domain
//    name (localhost, a bare host name, an IP address): the relay refuses to start, always.
//  - identity.strict (RELAY_IDENTITY_STRICT) on: every problem below refuses the start too.
// Everything else is one warning per problem, with its fix, and the relay starts:
//  - no delivery.localAddress (the OS chooses the source IP),
//  - a HELO name taken from the host name that is not fully qualified (the quick start on a
//    laptop: its embedded defaults must start, even with no network),
//  - no PTR, PTR name not the HELO name, HELO name not resolving (to the address), and DNS
//    that cannot answer (timeouts, no network): the lookups are bounded by dns.timeout.
// With delivery.smarthost set, receivers see the smarthost's identity, not this relay's: a
// configured HELO name is only checked for its form, and nothing is looked up or warned.
import net from 'node:net';
import os from 'node:os';
import { RelayConfig } from '../config/schema';
import { boundedResolver, Resolver } from '../dns/resolver';
import { Logger } from '../log';
import { IdentityFinding, judgeIdentity } from './identity-findings';
import { examineIdentity, heloOrigin, localAddresses } from './sending-identity';
import { fqdnProblem } from './helo-name';

/** The relay cannot start with this identity; the message says why and what to set. */
export class IdentityError extends Error {}

/** The source address of one family and the HELO name used from it. */
export interface SourceIdentity { family: 4 | 6; localAddress: string; heloName: string }

export interface SendingIdentity {
  /** The HELO name of the first source (IPv4 before IPv6), or the only one without a source. */
  heloName: string;
  localAddress: string | null;
  /** One per address in delivery.localAddress, IPv4 first; empty when the OS chooses. */
  sources: SourceIdentity[];
  /** Every check of the identity at start, passes included (none through a smarthost): the status page shows them. */
  findings: IdentityFinding[];
}

export async function establishIdentity(
  config: RelayConfig, resolver: Resolver, log: Logger,
  options: { hostname?: string; interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]> } = {},
): Promise<SendingIdentity> {
  const configured = config.delivery.heloName.trim();
  const problem = configured ? fqdnProblem(configured) : null;
  if (problem) {
    throw new IdentityError(
      `delivery.heloName (env RELAY_HELO_NAME) is "${configured}", which cannot be the HELO name: ${problem}. ` +
      'Set it to the fully qualified name that the PTR record of the sending IP gives (for example relay.example.net), or leave it empty to use that PTR name.',
    );
  }
  const smarthost = !!config.delivery.smarthost;
  const bounded = boundedResolver(resolver, Math.max(1, config.dns.timeout) * 1000);
  // Each family has its own identity: its address, its PTR, the HELO name from it.
  const addresses = localAddresses(config);
  const reports = await Promise.all((addresses.length ? addresses : [null]).map((localAddress) =>
    examineIdentity(config, bounded, { hostname: options.hostname, lookups: !smarthost, localAddress })));
  const sources = reports.filter((r) => r.localAddress).map((r) => ({
    family: (net.isIPv6(r.localAddress!) ? 6 : 4) as 4 | 6, localAddress: r.localAddress!, heloName: r.heloName,
  }));
  const identity: SendingIdentity = { heloName: reports[0].heloName, localAddress: reports[0].localAddress, sources, findings: [] };
  if (smarthost) {
    log.info({ helo: identity.heloName, localAddress: config.delivery.localAddress || null, smarthost: config.delivery.smarthost },
      'delivering through a smarthost: receivers see its identity, so PTR and FCrDNS of this relay are not checked');
    return identity;
  }

  // With two families, each finding says which address it is about.
  identity.findings = reports.flatMap((report) => judgeIdentity(report)
    .map((f) => (reports.length > 1 ? { ...f, detail: `IPv${net.isIPv6(report.localAddress!) ? 6 : 4} ${report.localAddress}: ${f.detail}` } : f)));
  const problems = identity.findings.filter((f) => f.status === 'warn' || f.status === 'fail' || f.status === 'error');
  if (problems.length && config.identity.strict) {
    throw new IdentityError([
      'the sending identity is not right, and identity.strict (env RELAY_IDENTITY_STRICT) refuses to start with it:',
      ...problems.map((p) => `  - ${p.detail}${p.fix ? `\n    fix: ${p.fix}` : ''}`),
      'Fix the records (dkim-relay doctor checks them all), or set RELAY_IDENTITY_STRICT=false to start with warnings.',
    ].join('\n'));
  }
  for (const p of problems) log.warn({ check: p.id, fix: p.fix ?? undefined }, `sending identity: ${p.detail}${p.fix ? `; fix: ${p.fix}` : ''}`);
  const unusedIpv6 = sources.some((s) => s.family === 6) ? null : globalIpv6(options.interfaces ?? os.networkInterfaces());
  if (unusedIpv6) {
    const fix = `give ${unusedIpv6} a PTR record naming a host name that resolves back to it, then add it: delivery.localAddress (env RELAY_LOCAL_ADDRESS) = ${[...addresses, unusedIpv6].join(',')}`;
    log.warn({ check: 'identity.ipv6', fix }, sources.length
      ? `sending identity: this host has the IPv6 address ${unusedIpv6}, but delivery.localAddress has no IPv6 address, so MX hosts with only AAAA records cannot be reached; fix: ${fix}`
      : `sending identity: this host has the IPv6 address ${unusedIpv6}, and with no delivery.localAddress the OS may send from it; Gmail refuses IPv6 mail without a PTR (550 5.7.25); fix: ${fix}`);
  }
  for (const report of reports) {
    log.info({ helo: report.heloName, from: heloOrigin(report), localAddress: report.localAddress ?? 'chosen by the OS' }, 'sending identity');
  }
  return identity;
}

/** A global IPv6 address of this host (not loopback, link-local fe80::/10 or unique-local fc00::/7), or null. */
function globalIpv6(interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string | null {
  for (const list of Object.values(interfaces)) {
    for (const i of list ?? []) {
      if (i.family === 'IPv6' && !i.internal && !/^(fe[89ab]|f[cd])/i.test(i.address) && i.address !== '::1') return i.address;
    }
  }
  return null;
}
