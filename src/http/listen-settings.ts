// Whether and where the HTTP listener opens (http.listen, http.token), checked before anything
// else starts. A listen address beyond loopback without a token is refused: the status page
// shows client addresses, senders and recipients, which are not for the whole network. Kept
// apart from the listener, so a relay without http.listen never loads it (nor prom-client).
import net from 'node:net';
import { parseListenAddress } from '../config/schema';
import { StartError } from '../start-errors';

export interface HttpSettings { host: string; port: number; token: string }

/** Loopback: 127.0.0.0/8, ::1 (also as ::ffff:127.x), localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** The listener's settings, or null when http.listen is empty; a StartError for an open listener without a token. */
export function httpSettings(config: { http: { listen: string; token: string } }): HttpSettings | null {
  const listen = config.http.listen.trim();
  if (!listen) return null;
  const { host, port } = parseListenAddress(listen);
  const token = config.http.token;
  if (!isLoopback(host) && !token) {
    throw new StartError(`http.listen (env RELAY_HTTP_LISTEN) is ${listen}, beyond loopback, and http.token (env RELAY_HTTP_TOKEN) is empty: ` +
      'the status page and metrics would be open to the network. Set RELAY_HTTP_TOKEN to a long random secret (for example: openssl rand -hex 32) ' +
      'and scrape with "Authorization: Bearer TOKEN", or listen on 127.0.0.1');
  }
  return { host, port, token };
}

