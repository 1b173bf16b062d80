// What a recipient's domain must be for the relay to take the recipient: a domain name it can
// look up (MX, A/AAAA; internationalized names as their A-labels). Refused at RCPT, while the
// client is there to hear why, instead of a 250 followed by five days of retries:
// - address literals (user@[192.0.2.1], user@[IPv6:2001:db8::1]): this relay delivers by
//   domain (its MX routing, destination limits and TLS policies are per domain), and a literal
//   would let any client make the relay connect to any address, its own network included.
//   Postfix delivers to literals; no outbound signing relay's users need it.
// - names that cannot be looked up: empty labels, bad characters, a single label (localhost).
import { domainToASCII } from 'node:url';
import { Rejection } from './rejection';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkRecipientDomain(address: string): void {
  const at = address.lastIndexOf('@');
  const domain = at < 0 ? '' : address.slice(at + 1);
  if (!domain) throw new Rejection(550, '5.1.3', `recipient ${address} has no domain; use user@domain`);
  if (domain.startsWith('[')) {
    throw new Rejection(550, '5.1.2',
      `recipient ${address} is an address literal: this relay delivers only to domain names (looked up in DNS), never to a bare IP address; use the recipient's domain`);
  }
  const ascii = domainToASCII(domain.replace(/\.$/, '').normalize('NFC'));
  const labels = ascii.split('.');
  if (!ascii || ascii.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
    throw new Rejection(550, '5.1.2', `recipient ${address}: "${domain}" is not a domain name that can be looked up (labels of letters, digits and hyphens, at least two); check the address`);
  }
}
