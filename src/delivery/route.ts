// Where a recipient domain's mail goes: the configured smarthost, or the domain's MX hosts
// in priority order (RFC 5321 5.1), the domain itself when it has no MX (implicit MX), and
// nowhere when it publishes a null MX (RFC 7505). Host names are resolved here, through
// the relay's resolver, so nodemailer only ever gets IP addresses.
// RouteCache keeps a found route for the TTL of its address records (at most a minute):
// a relay sending hundreds of messages a minute to one domain asks DNS once, not twice per
// message (c-ares, under Node's resolver, caches nothing).
import net from 'node:net';
import { parseHostPort } from '../config/schema';
import { isNotFound, MxRecord, Resolver } from '../dns/resolver';

export interface Destination { host: string; ip: string; port: number }

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
  let ttl = ROUTE_CACHE_MAX_SECONDS;
  for (const { host, port } of hosts) {
    if (net.isIP(host)) {
      destinations.push({ host, ip: host, port });
      continue;
    }
    const families = ([4, 6] as const).filter((f) => options.family === undefined || options.family === f);
    const results = await Promise.allSettled(families.map((f) => options.resolver.addresses(host, f)));
    const found = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    for (const { address, ttl: recordTtl } of found) {
      destinations.push({ host, ip: address, port });
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
