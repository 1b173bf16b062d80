// The one DNS resolver of the relay. It honours `dns.servers` (host[:port], so tests can run
// a DNS server on a loopback port) and puts a timeout on every lookup. Every module that
// needs DNS gets it from here, so the whole relay asks the same servers.
import { promises as dnsPromises } from 'node:dns';
import { parseHostPort } from '../config/schema';

export interface MxRecord { exchange: string; priority: number }

export interface Resolver {
  mx(name: string): Promise<MxRecord[]>;
  a(name: string): Promise<string[]>;
  aaaa(name: string): Promise<string[]>;
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
    txt: async (name) => (await resolver.resolveTxt(name)).map((chunks) => chunks.join('')),
    ptr: (address) => resolver.reverse(address),
  };
}
