// The names an IP address has in reverse DNS: its PTR owner name under in-addr.arpa or
// ip6.arpa, and the same labels under a DNS blocklist zone (RFC 5782 2.1 and 2.4).
import net from 'node:net';

/** Reversed octets ("2.0.0.127") or reversed nibbles of the full IPv6 address. */
export function reversedLabels(ip: string): string {
  if (net.isIPv4(ip)) return ip.split('.').reverse().join('.');
  if (net.isIPv6(ip)) return expandIPv6(ip).join('').split('').reverse().join('.');
  throw new Error(`not an IP address: ${ip}`);
}

/** "2.0.0.127.in-addr.arpa" or the ip6.arpa nibble name, without a trailing dot. */
export function ptrOwnerName(ip: string): string {
  return `${reversedLabels(ip)}.${net.isIPv4(ip) ? 'in-addr.arpa' : 'ip6.arpa'}`;
}

/** Eight 4-digit hex groups; accepts "::" and an embedded IPv4 tail. */
export function expandIPv6(address: string): string[] {
  let addr = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    addr = addr.slice(0, -v4[1].length) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => g.padStart(4, '0'));
}

/** The same address in one canonical spelling, to compare A/AAAA answers with a configured IP. */
export function sameAddress(a: string, b: string): boolean {
  if (net.isIPv4(a) && net.isIPv4(b)) return a === b;
  if (net.isIPv6(a) && net.isIPv6(b)) return expandIPv6(a).join(':') === expandIPv6(b).join(':');
  return false;
}

/** The address a PTR owner name stands for ("2.0.0.127.in-addr.arpa" -> "127.0.0.2"), or null. */
export function addressOfPtrName(name: string): string | null {
  const n = name.toLowerCase().replace(/\.$/, '');
  const v4 = /^((?:\d{1,3}\.){3}\d{1,3})\.in-addr\.arpa$/.exec(n);
  if (v4) {
    const ip = v4[1].split('.').reverse().join('.');
    return net.isIPv4(ip) ? ip : null;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(n);
  if (v6) {
    const hex = v6[1].split('.').filter(Boolean).reverse().join('');
    return hex.match(/.{4}/g)!.join(':');
  }
  return null;
}
