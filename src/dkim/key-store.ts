// The key store as the signer sees it: for a signing domain, the keys to sign with.
// Layout (keys/README.md): <keysDir>/<domain>/<selector>.key, PKCS#8 PEM, mode 0600, with its
// state in <selector>.json (pending, active, retired; key-metadata.ts). Of the usable active
// keys the newest of each algorithm signs (stored-keys.ts chooseSigningKeys). The folder is
// read again at most every RESCAN_MS, so keys made, activated or retired by `dkim-relay keys`
// in another process sign (or stop) within seconds, without a restart. The running relay
// also checks every key of the store at start and every RESCAN_MS (watch), so a key that
// cannot be used is logged once, with its fix, before any mail needs it.
import fs from 'node:fs';
import { Logger } from '../log';
import { SigningKey } from './signer';
import { chooseSigningKeys, StoredKey, storedDomains, storedKeys } from './stored-keys';
import { unsignedReason } from './unsigned-reason';

const RESCAN_MS = 2000;
const DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;

interface CacheEntry {
  scannedAt: number;
  keys: SigningKey[];
  /** Nothing signs yet but a pending key exists: it may be activated any moment. */
  awaitingActivation: boolean;
}

export class KeyStore {
  private readonly cache = new Map<string, CacheEntry>();
  /** Problems already logged, by key file: each is logged once until it changes. */
  private readonly reported = new Map<string, string>();
  constructor(private readonly keysDir: string, private readonly log?: Logger) {}

  /** Keys that sign mail of `domain` (lower case): at most one RSA and one Ed25519. */
  signingKeys(domain: string): SigningKey[] {
    const cached = this.cache.get(domain);
    // A domain waiting for a pending key is read again at once: a key activated meanwhile (by
    // `keys activate` or the relay's own check) must sign now, not be refused for RESCAN_MS.
    if (cached && !cached.awaitingActivation && Date.now() - cached.scannedAt < RESCAN_MS) return cached.keys;
    return this.scan(domain);
  }

  /** Why mail of `domain` is not signed, and what to do: the reason of a 550. */
  whyUnsigned(domain: string): string {
    return unsignedReason(domain, DOMAIN.test(domain) ? storedKeys(this.keysDir, domain) : []);
  }

  /**
   * Checks every key of the store now and every `intervalMs`: each key that cannot be used
   * is logged once (again only after it changed), with its fix.
   */
  watch(intervalMs = RESCAN_MS): { stop(): void } {
    const checkAll = () => {
      const problem = keysDirProblem(this.keysDir);
      this.reportOnce('keysDir', problem, () => this.log?.error({ keysDir: this.keysDir }, problem));
      for (const domain of storedDomains(this.keysDir)) this.scan(domain);
    };
    checkAll();
    const timer = setInterval(checkAll, intervalMs);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  private scan(domain: string): SigningKey[] {
    // The domain comes from a From header: never let it walk out of the key store.
    if (!DOMAIN.test(domain)) return [];
    const stored = storedKeys(this.keysDir, domain);
    const chosen = chooseSigningKeys(stored);
    for (const key of stored) this.report(key, chosen);
    const edOnly = !chosen.length && stored.some((k) => k.state === 'active' && k.privateKey && k.algorithm === 'ed25519');
    this.reportOnce(`${domain}/ed25519-only`, edOnly ? 'ed25519-only' : '', () => this.log?.error({ domain },
      `${domain} has an active Ed25519 key but no active RSA key, so its mail is not signed: Gmail, Outlook and Yahoo do not verify Ed25519. ` +
      `Make and activate an RSA key: dkim-relay keygen --domain ${domain}`));
    const keys = chosen.map((k) => ({ domain, selector: k.selector, algorithm: k.algorithm!, privateKey: k.privateKey! }));
    const awaitingActivation = !keys.length && stored.some((k) => k.state === 'pending');
    this.cache.set(domain, { scannedAt: Date.now(), keys, awaitingActivation });
    return keys;
  }

  /**
   * Logs a key that cannot sign (only pending-or-active ones matter: retired keys never sign),
   * and what signs instead, so a fall-back to an older key is never silent.
   */
  private report(key: StoredKey, chosen: StoredKey[]): void {
    const problem = key.problem && key.state !== 'retired' ? key.problem : '';
    this.reportOnce(key.path, problem, () => {
      const instead = chosen.find((k) => k.algorithm === key.algorithm || (!key.algorithm && k.algorithm === 'rsa'));
      const consequence = key.state === 'pending' ? ''
        : instead ? `. Meanwhile ${key.domain} is signed with its ${since(instead) < since(key) ? 'older ' : ''}key ${instead.selector}`
          : chosen.some((k) => k.algorithm === 'rsa') ? '' : `. Until then mail from ${key.domain} cannot be signed`;
      this.log?.error({ file: key.path, domain: key.domain, selector: key.selector, state: key.state }, problem + consequence);
    });
  }

  private reportOnce(id: string, problem: string, log: () => void): void {
    if ((this.reported.get(id) ?? '') === problem) return;
    if (problem) {
      this.reported.set(id, problem);
      log();
    } else {
      this.reported.delete(id);
    }
  }
}

function since(key: StoredKey): number {
  return Date.parse(key.activated ?? key.created ?? '') || 0;
}

/** A key store that is not a folder this process can read: no key of it can sign. */
function keysDirProblem(keysDir: string): string {
  try {
    if (fs.statSync(keysDir).isDirectory()) {
      fs.readdirSync(keysDir);
      return '';
    }
    return `keysDir (env RELAY_KEYS_DIR) ${keysDir} is a file, not a folder, so no DKIM key signs: point keysDir at the key store folder`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return ''; // no key made yet: each domain's 550 says to run keygen
    return `keysDir (env RELAY_KEYS_DIR) ${keysDir} cannot be read (${code}), so no DKIM key signs: fix its owner and permissions`;
  }
}
