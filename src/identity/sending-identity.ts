// The sending identity as DNS shows it: the local address, its PTR names, the HELO name the
// relay uses (configured, else the PTR name, else the host name) and the addresses that name
// resolves to. The start check (check-at-start.ts) and `doctor` (doctor/identity-checks.ts)
// both judge this one report, so they never disagree about what DNS says.
import os from 'node:os';
import { parseLocalAddresses, RelayConfig } from '../config/schema';
import { describeDnsError, isNotFound, Resolver } from '../dns/resolver';
import { fqdnProblem } from './helo-name';
import { sameAddress } from './reverse-name';

export type NameLookup = { status: 'found'; names: string[] } | { status: 'missing' } | { status: 'error'; reason: string };
export type AddressLookup = { status: 'found'; addresses: string[] } | { status: 'missing' } | { status: 'error'; reason: string };

export interface IdentityReport {
  /** delivery.localAddress, null when the OS chooses the source address. */
  localAddress: string | null;
  heloName: string;
  /** Where the HELO name came from: delivery.heloName, the PTR record, or os.hostname(). */
  heloSource: 'configured' | 'ptr' | 'hostname';
  /** Why the HELO name is not a fully qualified domain name (then it is not looked up). */
  heloProblem: string | null;
  /** PTR of the local address; null without one. */
  ptr: NameLookup | null;
  /** A and AAAA of the HELO name; null when it was not looked up. */
  heloAddresses: AddressLookup | null;
  /** A and AAAA of each PTR name (at most MAX_PTR_NAMES). */
  ptrAddresses: Map<string, AddressLookup>;
}

/** Receivers look at a few PTR names at most; so does this. */
const MAX_PTR_NAMES = 5;

export async function lookupPtr(resolver: Resolver, ip: string): Promise<NameLookup> {
  try {
    const names = (await resolver.ptr(ip)).map((n) => n.toLowerCase().replace(/\.$/, '')).filter(Boolean);
    return names.length ? { status: 'found', names } : { status: 'missing' };
  } catch (err) {
    return isNotFound(err) ? { status: 'missing' } : { status: 'error', reason: describeDnsError(err) };
  }
}

/** A and AAAA together: found when either has addresses, missing when both say none. */
export async function lookupAddresses(resolver: Resolver, name: string): Promise<AddressLookup> {
  const answers = await Promise.allSettled([resolver.a(name), resolver.aaaa(name)]);
  const addresses = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
  if (addresses.length) return { status: 'found', addresses };
  const failure = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected' && !isNotFound(a.reason));
  return failure ? { status: 'error', reason: describeDnsError(failure.reason) } : { status: 'missing' };
}

/** Whether a lookup found `ip` among the addresses. */
export function confirms(lookup: AddressLookup | null | undefined, ip: string): boolean {
  return lookup?.status === 'found' && lookup.addresses.some((a) => sameAddress(a, ip));
}

export interface ExamineOptions {
  /** The machine's host name (tests set it). */
  hostname?: string;
  /** Skip every lookup when the HELO name is configured (smarthost delivery, where PTR does not count). */
  lookups?: boolean;
  /** The source address to examine (one of delivery.localAddress); default: the first given, IPv4 before IPv6. */
  localAddress?: string | null;
}

/** The addresses of delivery.localAddress, IPv4 first. */
export function localAddresses(config: RelayConfig): string[] {
  const byFamily = parseLocalAddresses(config.delivery.localAddress);
  return [byFamily[4], byFamily[6]].filter((a): a is string => !!a);
}

export async function examineIdentity(config: RelayConfig, resolver: Resolver, options: ExamineOptions = {}): Promise<IdentityReport> {
  const localAddress = options.localAddress !== undefined ? options.localAddress : localAddresses(config)[0] ?? null;
  const configured = config.delivery.heloName.trim().toLowerCase().replace(/\.$/, '');
  const hostname = (options.hostname ?? os.hostname()).toLowerCase();
  const report: IdentityReport = {
    localAddress, heloName: configured || hostname, heloSource: configured ? 'configured' : 'hostname',
    heloProblem: null, ptr: null, heloAddresses: null, ptrAddresses: new Map(),
  };
  if (options.lookups === false && configured) {
    report.heloProblem = fqdnProblem(configured);
    return report;
  }

  // The PTR and the configured name's addresses do not depend on each other: ask at once.
  const configuredProblem = configured ? fqdnProblem(configured) : null;
  const [ptr, configuredAddresses] = await Promise.all([
    localAddress ? lookupPtr(resolver, localAddress) : Promise.resolve(null),
    configured && !configuredProblem ? lookupAddresses(resolver, configured) : Promise.resolve(null),
  ]);
  report.ptr = ptr;
  if (ptr?.status === 'found') {
    const names = ptr.names.slice(0, MAX_PTR_NAMES);
    const lookups = await Promise.all(names.map((n) => (n === configured && configuredAddresses ? configuredAddresses : fqdnProblem(n) ? null : lookupAddresses(resolver, n))));
    names.forEach((n, i) => { if (lookups[i]) report.ptrAddresses.set(n, lookups[i]!); });
  }

  if (configured) {
    report.heloProblem = configuredProblem;
    report.heloAddresses = configuredAddresses;
    return report;
  }
  // No HELO name configured: the PTR name, preferring one that resolves back to the address.
  if (ptr?.status === 'found' && localAddress) {
    const usable = ptr.names.filter((n) => report.ptrAddresses.has(n));
    const chosen = usable.find((n) => confirms(report.ptrAddresses.get(n), localAddress)) ?? usable[0];
    if (chosen) {
      Object.assign(report, { heloName: chosen, heloSource: 'ptr', heloAddresses: report.ptrAddresses.get(chosen) ?? null });
      return report;
    }
  }
  report.heloProblem = fqdnProblem(hostname);
  if (!report.heloProblem) report.heloAddresses = await lookupAddresses(resolver, hostname);
  return report;
}

/** "the host name of this machine", ...: where the HELO name came from, for messages. */
export function heloOrigin(report: IdentityReport): string {
  switch (report.heloSource) {
    case 'configured': return 'delivery.heloName (RELAY_HELO_NAME)';
    case 'ptr': return `the PTR record of ${report.localAddress}`;
    default: return 'the host name of this machine, as delivery.heloName (RELAY_HELO_NAME) is not set';
  }
}
