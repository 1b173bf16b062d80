// The key lifecycle (DESIGN.md "Key lifecycle"): a key is made *pending*, becomes *active*
// once its TXT record is seen in DNS with the key's own public key, and is *retired* by hand.
// Activation happens on `dkim-relay keys activate`, and in the running relay at start and
// every keys.checkInterval (activatePublishedKeys). State changes are written to the key's
// metadata file; the signer's KeyStore reads them within seconds, in any process.
import { Resolver } from '../dns/resolver';
import { domainNameProblem, normalizeDomainName } from './dns-record';
import { KeyMetadata, writeMetadata } from './key-metadata';
import { checkPublishedRecord, RecordCheck } from './published-record';
import { chooseSigningKeys, readStoredKey, StoredKey, storedDomains, storedKeys } from './stored-keys';

/** A lifecycle step that cannot be done; the message says why and what to do. */
export class KeyLifecycleError extends Error {}

/** Why mail of a domain is never signed with Ed25519 alone (DESIGN rule 7). */
export const ED25519_ONLY_REASON = 'Gmail, Outlook and Yahoo do not verify Ed25519 signatures, so an RSA key must always sign too';

/** A key as `keys list` shows it. */
export interface KeyReport {
  domain: string;
  selector: string;
  path: string;
  algorithm: 'rsa' | 'ed25519' | null;
  bits: number | null;
  state: StoredKey['state'];
  created: string | null;
  activated: string | null;
  retired: string | null;
  legacy: boolean;
  /** Whether mail of the domain is signed with this key now. */
  signing: boolean;
  /** Why the key cannot be used, or null. */
  problem: string | null;
  /** The DNS check; null when not asked for or the key cannot be read. */
  dns: RecordCheck | null;
}

/** Checks and normalizes a domain and selector given on the command line. */
export function keyName(domainInput: string, selectorInput: string): { domain: string; selector: string } {
  const domain = normalizeDomainName(domainInput);
  const domainProblem = domainNameProblem(domain);
  if (domainProblem) throw new KeyLifecycleError(domainProblem);
  const selector = selectorInput.trim().toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(selector)) {
    throw new KeyLifecycleError(`"${selectorInput}" is not a selector (lower-case letters, digits, hyphens and dots): \`dkim-relay keys list\` shows the keys`);
  }
  return { domain, selector };
}

function existingKey(keysDir: string, domain: string, selector: string): StoredKey {
  const key = readStoredKey(keysDir, domain, selector);
  if (key.problem?.startsWith('there is no key')) {
    throw new KeyLifecycleError(`there is no key with selector ${selector} for ${domain} in ${keysDir}: \`dkim-relay keys list\` shows the keys there`);
  }
  return key;
}

function metadataOf(key: StoredKey, changes: Partial<KeyMetadata>, now: Date): KeyMetadata {
  return {
    algorithm: key.algorithm!,
    bits: key.bits!,
    state: key.state === 'unknown' ? 'pending' : key.state,
    created: key.created ?? now.toISOString(),
    activated: key.activated,
    retired: key.retired,
    ...changes,
  };
}

export type Activation =
  | { activated: true; key: StoredKey; check: RecordCheck; alreadyActive: boolean }
  | { activated: false; key: StoredKey; check: RecordCheck | null; reason: string };

/** Activates a key if its record is in DNS with its public key; says why not otherwise. */
async function attemptActivation(keysDir: string, key: StoredKey, resolver: Resolver, now: Date): Promise<Activation> {
  const { domain, selector } = key;
  if (!key.privateKey) return { activated: false, key, check: null, reason: key.problem ?? `the key ${key.path} cannot be used` };
  if (key.state === 'active' && !key.problem) {
    return { activated: true, key, check: { status: 'match', detail: 'not checked' }, alreadyActive: true };
  }
  if (key.algorithm === 'ed25519') {
    const rsa = storedKeys(keysDir, domain).some((k) => k.algorithm === 'rsa' && k.state === 'active' && k.privateKey);
    if (!rsa) {
      return {
        activated: false, key, check: null,
        reason: `${domain} has no active RSA key, and an Ed25519 key never signs alone: ${ED25519_ONLY_REASON}. ` +
          `Activate an RSA key of ${domain} first (make one with \`dkim-relay keygen --domain ${domain}\` and publish its record)`,
      };
    }
  }
  const check = await checkPublishedRecord(resolver, domain, selector, key.privateKey);
  if (check.status !== 'match') {
    const fix = {
      missing: `publish the record (\`dkim-relay keys record ${domain} ${selector}\` prints it again), then run \`dkim-relay keys activate ${domain} ${selector}\` once it is visible`,
      mismatch: `the record at that name must carry this key: replace its value with the output of \`dkim-relay keys record ${domain} ${selector} --format value\``,
      revoked: `publish this key's record instead (\`dkim-relay keys record ${domain} ${selector}\`)`,
      malformed: `publish the value exactly as \`dkim-relay keys record ${domain} ${selector}\` prints it`,
      'dns-error': `try again when DNS answers`,
    }[check.status];
    return { activated: false, key, check, reason: `${check.detail}; ${fix}` };
  }
  // Written only if nobody changed the key meanwhile (a retire while DNS was asked wins).
  const current = readStoredKey(keysDir, domain, selector);
  // Activated meanwhile by the other side (a running relay's periodic check, or the CLI): done.
  if (current.state === 'active' && !current.problem) return { activated: true, key: current, check, alreadyActive: true };
  if (current.state !== key.state || current.retired !== key.retired) {
    return { activated: false, key: current, check, reason: `the key changed to ${current.state} while its record was checked; nothing done` };
  }
  writeMetadata(key.metadataPath, metadataOf(key, { state: 'active', activated: now.toISOString(), retired: null }, now));
  return { activated: true, key: readStoredKey(keysDir, domain, selector), check, alreadyActive: false };
}

/**
 * `keys activate`: makes a pending (or retired) key active once its record is in DNS.
 * Throws KeyLifecycleError saying what DNS returned when it refuses.
 */
export async function activateKey(keysDir: string, domainInput: string, selectorInput: string, resolver: Resolver, now = new Date()): Promise<Activation & { activated: true }> {
  const { domain, selector } = keyName(domainInput, selectorInput);
  const key = existingKey(keysDir, domain, selector);
  const result = await attemptActivation(keysDir, key, resolver, now);
  if (!result.activated) {
    throw new KeyLifecycleError(`the key ${selector} of ${domain} stays ${key.state === 'unknown' ? 'unused' : key.state}: ${result.reason}`);
  }
  return result;
}

export interface Retirement {
  key: StoredKey;
  alreadyRetired: boolean;
  /** Said to the user: the domain has no signing key left, etc. */
  warnings: string[];
}

/**
 * `keys retire`: the key stops signing (its record should stay published a while). Retiring
 * the last RSA key that signs for a domain stops all its mail, so it needs `force`.
 */
export function retireKey(keysDir: string, domainInput: string, selectorInput: string, now = new Date(), options: { force?: boolean } = {}): Retirement {
  const { domain, selector } = keyName(domainInput, selectorInput);
  const key = existingKey(keysDir, domain, selector);
  if (key.state === 'retired') return { key, alreadyRetired: true, warnings: [] };
  if (!key.algorithm) {
    throw new KeyLifecycleError(`${key.problem}. It never signs as it is; once its record is no longer needed, delete it: rm ${key.path}`);
  }
  const others = storedKeys(keysDir, domain).filter((k) => k.selector !== selector);
  const signingAfter = chooseSigningKeys(others);
  const warnings: string[] = [];
  if (key.state === 'active' && key.algorithm === 'rsa' && !signingAfter.some((k) => k.algorithm === 'rsa')) {
    const ed = others.filter((k) => k.algorithm === 'ed25519' && k.state === 'active');
    if (ed.length) {
      throw new KeyLifecycleError(
        `${selector} is the last active RSA key of ${domain}, and the Ed25519 key ${ed.map((k) => k.selector).join(', ')} must not sign alone: ` +
        `${ED25519_ONLY_REASON}. Activate another RSA key first (dkim-relay keygen --domain ${domain}, publish, dkim-relay keys activate), ` +
        `or retire the Ed25519 key too`);
    }
    const consequence = 'its mail is refused (or sent unsigned with signing.unsignedPolicy=relay) until another key is active';
    if (key.privateKey && !options.force) {
      throw new KeyLifecycleError(
        `${selector} is the last active RSA key of ${domain}: once it is retired ${domain} has no signing key, and ${consequence}. ` +
        `Make and activate its successor first (dkim-relay keygen --domain ${domain}, publish the record, dkim-relay keys activate), ` +
        `or retire it anyway with \`dkim-relay keys retire ${domain} ${selector} --force\``);
    }
    warnings.push(`${domain} has no active key now: ${consequence}`);
  }
  writeMetadata(key.metadataPath, metadataOf(key, { state: 'retired', retired: now.toISOString() }, now));
  return { key: readStoredKey(keysDir, domain, selector), alreadyRetired: false, warnings };
}

/** Every key in the store (or of one domain), with the DNS check when a resolver is given. */
export async function listKeys(keysDir: string, options: { domain?: string; resolver?: Resolver } = {}): Promise<KeyReport[]> {
  const domains = options.domain !== undefined ? [normalizeDomainName(options.domain)] : storedDomains(keysDir);
  const reports: KeyReport[] = [];
  for (const domain of domains) {
    const keys = storedKeys(keysDir, domain);
    const signing = new Set(chooseSigningKeys(keys).map((k) => k.selector));
    const dns = await Promise.all(keys.map((k) => (options.resolver && k.privateKey
      ? checkPublishedRecord(options.resolver, domain, k.selector, k.privateKey)
      : Promise.resolve(null))));
    keys.forEach((k, i) => reports.push({
      domain, selector: k.selector, path: k.path, algorithm: k.algorithm, bits: k.bits, state: k.state,
      created: k.created, activated: k.activated, retired: k.retired, legacy: k.legacy,
      signing: signing.has(k.selector), problem: k.problem, dns: dns[i],
    }));
  }
  return reports;
}

/** What one pass of activatePublishedKeys did with a pending key. */
export interface PendingOutcome {
  domain: string;
  selector: string;
  activated: boolean;
  check: RecordCheck | null;
  reason?: string;
}

/**
 * The relay's periodic check: every usable pending key whose record is now in DNS becomes
 * active. RSA keys go first, so an Ed25519 key published together with its domain's first
 * RSA key activates in the same pass.
 */
export async function activatePublishedKeys(keysDir: string, resolver: Resolver, now = new Date()): Promise<PendingOutcome[]> {
  const outcomes: PendingOutcome[] = [];
  for (const domain of storedDomains(keysDir)) {
    const pending = storedKeys(keysDir, domain).filter((k) => k.state === 'pending' && k.privateKey);
    pending.sort((a, b) => (a.algorithm === b.algorithm ? 0 : a.algorithm === 'rsa' ? -1 : 1));
    for (const key of pending) {
      const r = await attemptActivation(keysDir, key, resolver, now);
      outcomes.push(r.activated
        ? { domain, selector: key.selector, activated: true, check: r.check }
        : { domain, selector: key.selector, activated: false, check: r.check, reason: r.reason });
    }
  }
  return outcomes;
}
