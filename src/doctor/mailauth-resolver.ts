// mailauth's SPF and DMARC code asks DNS through a function `(name, type) => records`. This
// one answers through the relay's resolver, so those lookups honour dns.servers and its
// timeouts like every other lookup of the doctor.
import { Resolver } from '../dns/resolver';
import { addressOfPtrName } from '../identity/reverse-name';

export type MailauthResolver = (name: string, type: string) => Promise<unknown[]>;

export function mailauthResolver(resolver: Resolver): MailauthResolver {
  return async (name, type) => {
    switch (type.toUpperCase()) {
      case 'A': return resolver.a(name);
      case 'AAAA': return resolver.aaaa(name);
      case 'MX': return resolver.mx(name);
      // mailauth joins the character-strings of each record itself; ours are joined already.
      case 'TXT': return (await resolver.txt(name)).map((value) => [value]);
      case 'PTR': {
        const address = addressOfPtrName(name);
        if (!address) throw Object.assign(new Error(`${name} is not a reverse-DNS name`), { code: 'ENOTFOUND' });
        return resolver.ptr(address);
      }
      default:
        throw Object.assign(new Error(`the doctor does not look up ${type} records`), { code: 'ENOTIMP' });
    }
  };
}
