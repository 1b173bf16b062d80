// Where a recipient domain's mail goes: the configured smarthost, or the domain's MX hosts
// in priority order (RFC 5321 5.1), the domain itself when it has no MX (implicit MX), and
// nowhere when it publishes a null MX (RFC 7505). Host names are resolved here, through
// the relay's resolver, so nodemailer only ever gets IP addresses.
// RouteCache keeps a found route for the TTL of its address records (at most a minute):
// a relay sending hundreds of messages a minute to one domain asks DNS once, not twice per
// message (c-ares, under Node's resolver, caches nothing).
// An internationalized domain is looked up by its A-labels (xn--...); the recipient's address
// itself is sent as the client gave it. Hosts of equal preference come in a fixed order here
// (by name, so the route and its site key are stable); orderForAttempt shuffles them for each
// connection (RFC 5321 5.1), so one host is not always first.
import net from 'node:net';
import { domainToASCII } from 'node:url';
import { parseHostPort } from '../config/schema';
import { isNotFound, MxRecord, Resolver } from '../dns/resolver';

export interface Destination {
  host: string; ip: string; port: number;
  /** MX preference (lower first); absent for a smarthost or an implicit MX. */
  priority?: number;
}

/** Longest time a route is reused, whatever the TTLs say (Node's MX lookup reports no TTL). */
const ROUTE_CACHE_MAX_SECONDS = 60;

export type Route =
  /** ttl: seconds the answer may be reused (the smallest TTL of the address records) */
  | { kind: 'hosts'; destinations: Destination[]; ttl: number }
  | { kind: 'unroutable'; permanent: boolean; reason: string };

export interface RouteOptions {
  resolver: Resolver;
  mxPort: number;
  smarthost: string;
  /** Families of the fixed source addresses: only these are reachable. Absent: both (the OS chooses). */
  families?: (4 | 6)[];
  /** Which family of a host is tried first (delivery.addressPreference); default ipv4. */
  preference?: 'ipv4' | 'ipv6' | 'any';
}

export async function routeDomain(name: string, options: RouteOptions): Promise<Route> {
  // '' for a name that has no A-label form (refused at RCPT already; kept for old spools)
  const domain = domainToASCII(name.normalize('NFC')) || name;
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
    ? [...mx].sort((a, b) => a.priority - b.priority || (a.exchange < b.exchange ? -1 : a.exchange > b.exchange ? 1 : 0))
      .map((r) => ({ host: r.exchange, port: options.mxPort, priority: r.priority }))
    : [{ host: domain, port: options.mxPort }];
  return addressesOf(hosts, options, `the mail hosts of ${domain}`);
}

async function addressesOf(hosts: { host: string; port: number; priority?: number }[], options: RouteOptions, what: string): Promise<Route> {
  const destinations: Destination[] = [];
  const problems: string[] = [];
  let ttl = ROUTE_CACHE_MAX_SECONDS;
  for (const { host, port, priority } of hosts) {
    if (net.isIP(host)) {
      destinations.push({ host, ip: host, port, priority });
      continue;
    }
    // The preferred family first: when it does not connect, the other is tried before the next host.
    const families = (options.preference === 'ipv6' ? [6, 4] as const : [4, 6] as const)
      .filter((f) => options.families === undefined || options.families.includes(f));
    const results = await Promise.allSettled(families.map((f) => options.resolver.addresses(host, f)));
    const found = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    for (const { address, ttl: recordTtl } of found) {
      destinations.push({ host, ip: address, port, priority });
      ttl = Math.min(ttl, recordTtl);
    }
    if (!found.length) {
      const failed = results.find((r) => r.status === 'rejected' && !isNotFound(r.reason));
      problems.push(`${host}: ${failed ? `lookup failed (${((failed as PromiseRejectedResult).reason as NodeJS.ErrnoException).code})` : 'no address'}`);
    }
  }
  if (destinations.length) return { kind: 'hosts', destinations, ttl };
  return { kind: 'unroutable', permanent: false, reason: `no address for ${what}: ${problems.join('; ')}` };
}

/**
 * The destinations in the order one connection tries them: by preference, the hosts of equal
 * preference shuffled (Fisher-Yates; `random` as Math.random), each host's addresses kept
 * together in their order (with mixFamilies, for addressPreference any: IPv6 first at random).
 */
export function orderForAttempt(destinations: Destination[], random: () => number = Math.random, mixFamilies = false): Destination[] {
  const groups: Destination[][] = [];
  for (const d of destinations) {
    const group = groups.find((g) => g[0].host === d.host);
    if (group) group.push(d);
    else groups.push([d]);
  }
  // addressPreference any: each host's IPv6 addresses first half of the time (stable within a family).
  if (mixFamilies) {
    for (const g of groups) {
      if (random() < 0.5) g.sort((a, b) => net.isIPv6(b.ip) as unknown as number - (net.isIPv6(a.ip) as unknown as number));
    }
  }
  const out: Destination[][] = [];
  for (let i = 0; i < groups.length;) {
    let j = i + 1;
    while (j < groups.length && groups[j][0].priority !== undefined && groups[j][0].priority === groups[i][0].priority) j++;
    const tier = groups.slice(i, j);
    for (let k = tier.length - 1; k > 0; k--) {
      const r = Math.floor(random() * (k + 1));
      [tier[k], tier[r]] = [tier[r], tier[k]];
    }
    out.push(...tier);
    i = j;
  }
  return out.flat();
}

/**
 * Routes by domain, each looked up once while its TTL lasts. Lookups of the same domain
 * running at the same time share one answer. Only found routes are kept: a failure is
 * asked again next time.
 */
export class RouteCache {
  private readonly routes = new Map<string, { route: Promise<Route>; expires: number }>();

  constructor(private readonly options: RouteOptions, private readonly now = () => Date.now()) {}

  route(domain: string): Promise<Route> {
    const key = domain.toLowerCase();
    const cached = this.routes.get(key);
    if (cached && cached.expires > this.now()) return cached.route;
    if (this.routes.size >= 1000) this.prune();
    const entry = { route: routeDomain(key, this.options), expires: Infinity }; // in flight: shared
    this.routes.set(key, entry);
    void entry.route.then((route) => {
      if (this.routes.get(key) !== entry) return;
      if (route.kind === 'hosts' && route.ttl > 0) entry.expires = this.now() + route.ttl * 1000;
      else this.routes.delete(key);
    }, () => {
      if (this.routes.get(key) === entry) this.routes.delete(key);
    });
    return entry.route;
  }

  private prune(): void {
    const now = this.now();
    for (const [key, entry] of this.routes) if (entry.expires <= now) this.routes.delete(key);
  }
}
