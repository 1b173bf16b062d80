// Why a domain's mail cannot be signed, said as what is true of its keys and what to do:
// no key at all, a key that is still pending (publish this record, then activate it), a key
// file that cannot be used (its problem names the fix), only an Ed25519 key, only retired
// keys. This is the text of the 550 a client gets, so it must not send anyone to keygen
// when a key is already there.
import { dkimRecordValue, recordName } from './dns-record';
import { StoredKey } from './stored-keys';

export function unsignedReason(domain: string, keys: StoredKey[]): string {
  const keygen = `\`dkim-relay keygen --domain ${domain}\``;
  const newestFirst = [...keys].sort((a, b) => (Date.parse(b.created ?? '') || 0) - (Date.parse(a.created ?? '') || 0));
  // RSA keys, and keys whose algorithm is unknown because their file cannot be read
  const rsa = newestFirst.filter((k) => k.algorithm !== 'ed25519' && k.state !== 'retired');
  const broken = rsa.find((k) => k.problem && k.state !== 'pending');
  if (broken) return `no usable DKIM key for ${domain}: ${broken.problem}`;
  const pending = rsa.find((k) => k.state === 'pending' && k.privateKey);
  if (pending) {
    return `the DKIM key ${pending.selector} of ${domain} is pending, so it does not sign yet: publish the TXT record ` +
      `${recordName(pending.selector, domain)} "${dkimRecordValue(pending.privateKey!)}", then run \`dkim-relay keys activate ${domain} ${pending.selector}\``;
  }
  const brokenPending = rsa.find((k) => k.state === 'pending');
  if (brokenPending) {
    return `no usable DKIM key for ${domain}: ${brokenPending.problem}; the key is also pending: then publish its record ` +
      `(\`dkim-relay keys record ${domain} ${brokenPending.selector}\`) and run \`dkim-relay keys activate ${domain} ${brokenPending.selector}\``;
  }
  if (keys.some((k) => k.algorithm === 'ed25519' && k.state !== 'retired')) {
    return `${domain} has only an Ed25519 key, which never signs alone (Gmail, Outlook and Yahoo do not verify Ed25519): make an RSA key with ${keygen} and publish its DNS record`;
  }
  if (keys.length) return `every DKIM key of ${domain} is retired: make a new one with ${keygen} and publish its DNS record`;
  return `no DKIM key for ${domain}: make one with ${keygen} and publish its DNS record`;
}
