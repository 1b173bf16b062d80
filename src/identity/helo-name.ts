// The sending identity's name: the EHLO name used on delivery. The configured name, else
// the PTR name of the local address (found at start, sending-identity.ts), else the
// machine's host name. Receivers (GMX, MXToolbox, RFC 5321 4.1.1.1) want a fully qualified
// name that resolves, so fqdnProblem says why a name is not one.
import net from 'node:net';
import os from 'node:os';
import { RelayConfig } from '../config/schema';

export function heloName(config: RelayConfig): string {
  return config.delivery.heloName || os.hostname();
}

/** Why `name` cannot be a HELO name (not a fully qualified domain name), or null when it can. */
export function fqdnProblem(name: string): string | null {
  const n = name.trim().replace(/\.$/, '').toLowerCase();
  if (!n) return 'it is empty';
  if (net.isIP(n) || /^\[.*\]$/.test(n)) return 'it is an IP address; receivers want the name that the PTR record of the address gives';
  if (n === 'localhost' || n.endsWith('.localhost') || n === 'localhost.localdomain') {
    return 'it is localhost, which names every machine; receivers reject it';
  }
  if (!n.includes('.')) return 'it is a bare host name without a domain; receivers want a fully qualified name such as relay.example.net';
  if (n.length > 253) return 'it is longer than the 253 characters a domain name may have';
  for (const label of n.split('.')) {
    if (!label) return 'it has an empty label (two dots in a row, or a leading dot)';
    if (label.length > 63) return 'it has a label longer than 63 characters';
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(label)) return `the label "${label}" is not letters, digits and inner hyphens`;
  }
  if (/^\d+$/.test(n.split('.').pop()!)) return 'its last label is all digits, so it is no domain name';
  if (['local', 'localdomain', 'lan', 'home', 'internal', 'intranet', 'corp'].includes(n.split('.').pop()!)) {
    return `it ends in .${n.split('.').pop()}, a private name that does not exist in public DNS`;
  }
  return null;
}
