// Where a recipient domain's mail goes: the configured smarthost, or the domain's MX hosts
// in priority order (RFC 5321 5.1), the domain itself when it has no MX (implicit MX), and
// nowhere when it publishes a null MX (RFC 7505). Host names are resolved here, through
// the relay's resolver, so nodemailer only ever gets IP addresses.
import net from 'node:net';
import { parseHostPort } from '../config/schema';
import { isNotFound, MxRecord, Resolver } from '../dns/resolver';

export interface Destination { host: string; ip: string; port: number }

export type Route =
  | { kind: 'hosts'; destinations: Destination[] }
  | { kind: 'unroutable'; permanent: boolean; reason: string };

export interface RouteOptions {
  resolver: Resolver;
  mxPort: number;
  smarthost: string;
  /** Address family of the fixed source address: only that family is reachable. */
  family?: 4 | 6;
}

export async function routeDomain(domain: string, options: RouteOptions): Promise<Route> {
  if (options.smarthost) {
    const { host, port } = parseHostPort(options.smarthost);
    return addressesOf([{ host, port }], options, `smarthost ${options.smarthost}`);
  }
  let mx: MxRecord[];
  try {
    mx = await options.resolver.mx(domain);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND') return { kind: 'unroutable', permanent: true, reason: `domain ${domain} does not exist (NXDOMAIN)` };
    if (code !== 'ENODATA') return { kind: 'unroutable', permanent: false, reason: `MX lookup for ${domain} failed (${code})` };
    mx = [];
  }
  if (mx.length === 1 && (mx[0].exchange === '' || mx[0].exchange === '.')) {
    return { kind: 'unroutable', permanent: true, reason: `domain ${domain} accepts no mail (null MX, RFC 7505)` };
  }
  const hosts = mx.length
    ? [...mx].sort((a, b) => a.priority - b.priority).map((r) => ({ host: r.exchange, port: options.mxPort }))
    : [{ host: domain, port: options.mxPort }];
  return addressesOf(hosts, options, `the mail hosts of ${domain}`);
}

async function addressesOf(hosts: { host: string; port: number }[], options: RouteOptions, what: string): Promise<Route> {
  const destinations: Destination[] = [];
  const problems: string[] = [];
  for (const { host, port } of hosts) {
    if (net.isIP(host)) {
      destinations.push({ host, ip: host, port });
      continue;
    }
    const lookups: Promise<string[]>[] = [];
    if (options.family !== 6) lookups.push(options.resolver.a(host));
    if (options.family !== 4) lookups.push(options.resolver.aaaa(host));
    const results = await Promise.allSettled(lookups);
    const found = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    for (const ip of found) destinations.push({ host, ip, port });
    if (!found.length) {
      const failed = results.find((r) => r.status === 'rejected' && !isNotFound(r.reason));
      problems.push(`${host}: ${failed ? `lookup failed (${((failed as PromiseRejectedResult).reason as NodeJS.ErrnoException).code})` : 'no address'}`);
    }
  }
  if (destinations.length) return { kind: 'hosts', destinations };
  return { kind: 'unroutable', permanent: false, reason: `no address for ${what}: ${problems.join('; ')}` };
}
