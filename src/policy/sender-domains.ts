// Which sender domains a client may use. A trusted-network client may send as any domain
// (the key store still decides what can be signed); an authenticated user only as the
// domains granted to it in the users file, checked on MAIL FROM and on the From header.
import { Rejection } from './rejection';

export interface SenderIdentity {
  /** The authenticated user, or undefined for a trusted-network client. */
  user?: { name: string; domains: string[] };
}

export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

export function checkSenderDomain(identity: SenderIdentity, domain: string, where: 'MAIL FROM' | 'From header'): void {
  if (!identity.user) return;
  if (identity.user.domains.includes(domain)) return;
  const allowed = identity.user.domains.join(', ') || 'none';
  throw new Rejection(550, '5.7.1',
    `user ${identity.user.name} is not allowed to send as ${domain || 'an address without a domain'} (${where}); ` +
    `its domains: ${allowed}. Add one with \`dkim-relay users add\` or use an allowed sender`);
}
