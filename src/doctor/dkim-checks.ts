// Doctor checks of the DKIM keys of a domain, read from the key store (dkim/stored-keys.ts):
// something signs its mail (an active RSA key: Gmail, Outlook and Yahoo do not verify
// Ed25519); every active and pending key has its record published with the same p= and k=
// (dkim/published-record.ts, as `keys activate` compares); RSA keys have 2048 bits or more;
// no record says t=y. The fix is the exact record to publish (dkim/dns-record.ts).
import { dkimRecordValue, parseRecordValue, recordName, zoneFileRecord } from '../dkim/dns-record';
import { checkPublishedRecord } from '../dkim/published-record';
import { StoredKey, storedKeys } from '../dkim/stored-keys';
import { check, Check } from './check';
import { DoctorContext } from './context';

export async function dkimChecks(ctx: DoctorContext, domain: string): Promise<Check[]> {
  const keys = storedKeys(ctx.config.keysDir, domain).filter((k) => k.state !== 'retired');
  const checks: Check[] = [signingCheck(domain, keys)];
  for (const key of keys) checks.push(...await keyChecks(ctx, domain, key));
  return checks;
}

function signingCheck(domain: string, keys: StoredKey[]): Check {
  const usable = keys.filter((k) => !k.problem && k.privateKey);
  const activeRsa = usable.filter((k) => k.state === 'active' && k.algorithm === 'rsa');
  if (activeRsa.length) {
    return check('dkim.keys', 'pass', `${domain} is signed with the active RSA key ${activeRsa.map((k) => k.selector).join(', ')} (d=${domain}, aligned with From: addresses of ${domain})`);
  }
  const pendingRsa = usable.find((k) => k.state === 'pending' && k.algorithm === 'rsa');
  if (pendingRsa) {
    return check('dkim.keys', 'fail',
      `${domain} has no active RSA key, so its mail leaves unsigned (Gmail 5.7.26, Outlook 550 5.7.515); the key ${pendingRsa.selector} is pending: it becomes active once its record is in DNS`,
      `publish the record of ${pendingRsa.selector} (dkim.record:${pendingRsa.selector}), then: dkim-relay keys activate ${domain} ${pendingRsa.selector}`);
  }
  const why = keys.length ? 'none of its keys is an active RSA key that can sign (Ed25519 alone is not verified by Gmail, Outlook and Yahoo)' : 'the key store has no key for it';
  return check('dkim.keys', 'fail', `${domain} has no DKIM key that signs: ${why}; its mail fails DKIM (Gmail 5.7.26, Outlook 550 5.7.515)`,
    `dkim-relay keygen --domain ${domain}`);
}

async function keyChecks(ctx: DoctorContext, domain: string, key: StoredKey): Promise<Check[]> {
  const sel = key.selector;
  const state = key.state === 'unknown' ? 'of unknown state' : key.state;
  if (key.problem || !key.privateKey) {
    return [check(`dkim.key:${sel}`, 'fail', `the ${state} key ${sel} of ${domain} cannot be used: ${key.problem ?? 'its key file cannot be read'}`,
      `fix the key file ${key.path}, or retire the key and make a new one: dkim-relay keygen --domain ${domain}`)];
  }
  const checks: Check[] = [];
  const value = dkimRecordValue(key.privateKey);
  const line = zoneFileRecord(sel, domain, value);
  const name = recordName(sel, domain);

  const published = await checkPublishedRecord(ctx.resolver, domain, sel, key.privateKey);
  switch (published.status) {
    case 'match':
      checks.push(check(`dkim.record:${sel}`, 'pass', `the ${state} key ${sel} (${key.algorithm}) is published: ${published.detail}${key.state === 'pending'
        ? `; the relay activates it at its next check, or now with dkim-relay keys activate ${domain} ${sel}` : ''}`));
      break;
    case 'dns-error':
      checks.push(check(`dkim.record:${sel}`, 'error', `could not check the record of the ${state} key ${sel}: ${published.detail}`, 'check dns.servers (env RELAY_DNS_SERVERS), then run dkim-relay doctor again'));
      break;
    default: {
      const consequence = key.state === 'active' ? 'its signatures fail DKIM at every receiver' : 'it cannot become active';
      checks.push(check(`dkim.record:${sel}`, 'fail', `the ${state} key ${sel} of ${domain}: ${published.detail}; ${consequence}. Publish this TXT record at ${name}`, line));
    }
  }

  if (key.algorithm === 'rsa') {
    const bits = key.bits ?? 0;
    if (bits >= 2048) checks.push(check(`dkim.key-size:${sel}`, 'pass', `the key ${sel} is RSA with ${bits} bits`));
    else {
      checks.push(check(`dkim.key-size:${sel}`, 'warn', `the key ${sel} is RSA with ${bits} bits: Gmail and GMX want 2048 or more, and 1024-bit keys are being phased out`,
        `dkim-relay keygen --domain ${domain} --bits 2048, publish its record, then retire ${sel}`));
    }
  } else {
    checks.push(check(`dkim.key-size:${sel}`, 'pass', `the key ${sel} is Ed25519 (signed in addition to RSA)`));
  }

  if (published.status !== 'match') {
    checks.push(check(`dkim.testing:${sel}`, 'info', `not checked: the record of ${sel} is not published (dkim.record:${sel})`));
  } else {
    const flags = await publishedFlags(ctx, name);
    if (flags.includes('y')) {
      checks.push(check(`dkim.testing:${sel}`, 'warn', `the record of ${sel} says t=y (testing): verifiers may treat its signatures as unsigned mail`, line));
    } else {
      checks.push(check(`dkim.testing:${sel}`, 'pass', `the record of ${sel} is not in testing mode (no t=y)`));
    }
  }
  return checks;
}

/** The t= flags of the DKIM record(s) at `name` (the lookup is answered from the run's cache). */
async function publishedFlags(ctx: DoctorContext, name: string): Promise<string[]> {
  try {
    const values = await ctx.resolver.txt(name);
    return values.flatMap((v) => {
      try {
        return (parseRecordValue(v).t ?? '').split(':').map((f) => f.trim().toLowerCase());
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}
