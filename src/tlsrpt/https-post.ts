// Sends a TLS report to an https: rua (RFC 8460 5.4): one POST of the gzipped JSON with
// Content-Type application/tlsrpt+gzip. The server's certificate must validate for its name
// against the system's CAs plus delivery.caFile; a redirect is not followed (a failure, like
// any answer but 2xx); the whole exchange has a time limit. The host name is looked up with
// the relay's own resolver (dns.servers), as every other name the relay uses.
import https from 'node:https';
import net from 'node:net';
import { Resolver } from '../dns/resolver';

export interface PostOptions {
  resolver: Resolver;
  /** PEM CA certificates trusted (the system's plus delivery.caFile). */
  ca: string[];
  timeoutMs: number;
}

/** POSTs `body`; resolves with the HTTP status on 2xx, rejects with what went wrong otherwise. */
export function postReport(url: URL, body: Buffer, options: PostOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const lookup = (hostname: string, opts: { all?: boolean; family?: number }, callback: (...args: unknown[]) => void): void => {
      addressesOf(options.resolver, hostname).then((addresses) => {
        if (!addresses.length) return callback(Object.assign(new Error(`${hostname} has no A or AAAA record`), { code: 'ENOTFOUND' }));
        if (opts.all) return callback(null, addresses.map((address) => ({ address, family: net.isIP(address) })));
        return callback(null, addresses[0], net.isIP(addresses[0]));
      }, (err: Error) => callback(err));
    };
    const request = https.request(url, {
      method: 'POST',
      ca: options.ca,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      lookup: lookup as unknown as net.LookupFunction,
      agent: false,
      headers: { 'Content-Type': 'application/tlsrpt+gzip', 'Content-Length': body.length, 'User-Agent': 'dkim-relay' },
      timeout: options.timeoutMs,
    }, (response) => {
      response.resume(); // the answer's body is not needed
      response.on('end', () => undefined);
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) resolve(status);
      else if (status >= 300 && status < 400) reject(new Error(`answered ${status} (a redirect${response.headers.location ? ` to ${response.headers.location}` : ''}, not followed: RFC 8460 wants the report at the published URI)`));
      else reject(new Error(`answered ${status} ${response.statusMessage ?? ''}`.trim()));
    });
    const deadline = setTimeout(() => request.destroy(new Error(`no answer within ${options.timeoutMs / 1000} s`)), options.timeoutMs);
    deadline.unref();
    request.on('timeout', () => request.destroy(new Error(`no answer within ${options.timeoutMs / 1000} s`)));
    request.on('error', (err) => reject(err));
    request.on('close', () => clearTimeout(deadline));
    request.end(body);
  });
}

async function addressesOf(resolver: Resolver, host: string): Promise<string[]> {
  if (net.isIP(host)) return [host];
  const [v4, v6] = await Promise.allSettled([resolver.a(host), resolver.aaaa(host)]);
  const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (!out.length && v4.status === 'rejected') throw v4.reason as Error;
  return out;
}
