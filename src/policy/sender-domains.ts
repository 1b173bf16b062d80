// Which sender domains a client may use. A trusted-network client may send as any domain
// (the key store still decides what can be signed); an authenticated user only as the
// domains granted to it in the users file, checked on MAIL FROM and on the From header.
import { domainsShownIn } from './from-header';
import type { AuthorMailbox } from './header-rules';
import { Rejection } from './rejection';

export interface SenderIdentity {
  /** The authenticated user, or undefined for a trusted-network client. */
  user?: { name: string; domains: string[] };
}

export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

export function checkSenderDomain(identity: SenderIdentity, domain: string, where: string): void {
  if (!identity.user) return;
  if (identity.user.domains.includes(domain)) return;
  const allowed = identity.user.domains.join(', ') || 'none';
  throw new Rejection(550, '5.7.1',
    `user ${identity.user.name} is not allowed to send as ${domain || 'an address without a domain'} (${where}); ` +
    `its domains: ${allowed}. Add one with \`dkim-relay users add\` or use an allowed sender`);
}

export type DisplayNamePolicy = 'refuse' | 'allow';

/**
 * An authenticated user's From, Sender and Resent-* mailboxes must all be of its domains, and
 * (unless `displayNames` is 'allow') no name or comment in them may show an address of
 * another domain: `"x@other.test" <alice@example.test>` is displayed by many clients as if
 * x@other.test had sent it, under alice's signature. Trusted networks may send as anyone.
 */
export function checkAuthorFields(identity: SenderIdentity, authors: AuthorMailbox[], displayNames: DisplayNamePolicy): void {
  const user = identity.user;
  if (!user) return;
  for (const { field, mailbox } of authors) {
    checkSenderDomain(identity, mailbox.domain.toLowerCase(), `${field} header`);
    if (displayNames === 'allow') continue;
    const foreign = domainsShownIn(mailbox.displayText).find((shown) => !user.domains.includes(shown));
    if (foreign) {
      throw new Rejection(550, '5.7.1',
        `the display name of the ${field} header shows an address at ${foreign.replace(/[^\x20-\x7e]/g, '?')}, a domain user ${user.name} may not send as, ` +
        'and mail clients may show it as the sender; remove the address from the name ' +
        '(or allow it with signing.displayNameAddresses = allow, RELAY_DISPLAY_NAME_ADDRESSES)');
    }
  }
}
