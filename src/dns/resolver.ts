// The one DNS resolver of the relay. It honours `dns.servers` (host[:port], so tests can run
// a DNS server on a loopback port) and puts a timeout on every lookup. Every module that
// needs DNS gets it from here, so the whole relay asks the same servers.
import { promises as dnsPromises } from 'node:dns';
import { parseHostPort } from '../config/schema';
import { ptrOwnerName } from '../identity/reverse-name';

export interface MxRecord { exchange: string; priority: number }

/** An A or AAAA answer with its time to live in seconds. */
export interface AddressRecord { address: string; ttl: number }

export interface Resolver {
  mx(name: string): Promise<MxRecord[]>;
  a(name: string): Promise<string[]>;
  aaaa(name: string): Promise<string[]>;
  /** A (family 4) or AAAA (family 6) records with their TTLs. */
  addresses(name: string, family: 4 | 6): Promise<AddressRecord[]>;
  txt(name: string): Promise<string[]>;
  ptr(address: string): Promise<string[]>;
}

/** A lookup answered "this name or record does not exist": final, not a failure to retry. */
export function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

export function createResolver(options: { servers: string[]; timeoutSeconds: number }): Resolver {
  // c-ares retries each server `tries` times; one try per server keeps the timeout meaningful.
  const resolver = new dnsPromises.Resolver({ timeout: Math.max(1, Math.round(options.timeoutSeconds * 1000)), tries: 2 });
  if (options.servers.length) {
    resolver.setServers(options.servers.map((s) => {
      const { host, port } = parseHostPort(s, 53);
      return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    }));
  }
  return {
    mx: (name) => resolver.resolveMx(name),
    a: (name) => resolver.resolve4(name),
    aaaa: (name) => resolver.resolve6(name),
    addresses: (name, family) => (family === 4 ? resolver.resolve4(name, { ttl: true }) : resolver.resolve6(name, { ttl: true })),
    txt: async (name) => (await resolver.resolveTxt(name)).map((chunks) => chunks.join('')),
    // resolvePtr, not reverse(): reverse() answers from /etc/hosts too and reports every
    // failure (timeouts included) as ENOTFOUND, which would read as "no PTR record".
    ptr: (address) => resolver.resolvePtr(ptrOwnerName(address)),
  };
}

/**
 * `resolver` with a hard deadline on each lookup (c-ares retries a server, so one lookup can
 * otherwise take several timeouts) and, with `cache`, each question asked once: for a run
 * of checks such as `doctor`, not for a long-running relay whose answers change.
 */
export function boundedResolver(resolver: Resolver, timeoutMs: number, options: { cache?: boolean } = {}): Resolver {
  const answers = new Map<string, Promise<unknown>>();
  const bounded = <T>(kind: keyof Resolver, name: string, lookup: () => Promise<T>): Promise<T> => {
    const key = `${kind} ${name.toLowerCase()}`;
    const cached = options.cache ? answers.get(key) : undefined;
    if (cached) return cached as Promise<T>;
    const answer = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(Object.assign(new Error(`no DNS answer for ${name} within ${timeoutMs / 1000} s`), { code: 'ETIMEOUT' }));
      }, timeoutMs);
      timer.unref?.();
      lookup().then(resolve, reject).finally(() => clearTimeout(timer));
    });
    if (options.cache) {
      answer.catch(() => undefined);
      answers.set(key, answer);
    }
    return answer;
  };
  return {
    mx: (name) => bounded('mx', name, () => resolver.mx(name)),
    a: (name) => bounded('a', name, () => resolver.a(name)),
    aaaa: (name) => bounded('aaaa', name, () => resolver.aaaa(name)),
    addresses: (name, family) => bounded(family === 4 ? 'a' : 'aaaa', `${name} ttl`, () => resolver.addresses(name, family)),
    txt: (name) => bounded('txt', name, () => resolver.txt(name)),
    ptr: (address) => bounded('ptr', address, () => resolver.ptr(address)),
  };
}

/** What a failed lookup says, for a person: "timed out", "refused (EREFUSED)", ... */
export function describeDnsError(err: unknown): string {
  const code = (err as { code?: string })?.code;
  switch (code) {
    case 'ETIMEOUT': return 'the DNS server did not answer in time';
    case 'ECONNREFUSED': return 'the DNS server refused the connection';
    case 'EREFUSED': return 'the DNS server refused the query';
    case 'ESERVFAIL': return 'the DNS server answered SERVFAIL';
    default: return code ? `the lookup failed (${code})` : `the lookup failed (${(err as Error)?.message ?? err})`;
  }
}
