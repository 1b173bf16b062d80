// The key store as the signer sees it: for a signing domain, the keys to sign with.
// Layout (keys/README.md): <keysDir>/<domain>/<selector>.key, PKCS#8 PEM, mode 0600, with its
// state in <selector>.json (pending, active, retired; key-metadata.ts). Of the usable active
// keys the newest of each algorithm signs (stored-keys.ts chooseSigningKeys). The folder is
// read again at most every RESCAN_MS, so keys made, activated or retired by `dkim-relay keys`
// in another process sign (or stop) within seconds, without a restart.
import { Logger } from '../log';
import { SigningKey } from './signer';
import { chooseSigningKeys, StoredKey, storedKeys } from './stored-keys';

const RESCAN_MS = 2000;

interface CacheEntry { scannedAt: number; keys: SigningKey[] }

export class KeyStore {
  private readonly cache = new Map<string, CacheEntry>();
  /** Problems already logged, by key file: each is logged once until it changes. */
  private readonly reported = new Map<string, string>();
  constructor(private readonly keysDir: string, private readonly log?: Logger) {}

  /** Keys that sign mail of `domain` (lower case): at most one RSA and one Ed25519. */
  signingKeys(domain: string): SigningKey[] {
    const cached = this.cache.get(domain);
    if (cached && Date.now() - cached.scannedAt < RESCAN_MS) return cached.keys;
    const keys = this.scan(domain);
    this.cache.set(domain, { scannedAt: Date.now(), keys });
    return keys;
  }

  private scan(domain: string): SigningKey[] {
    // The domain comes from a From header: never let it walk out of the key store.
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(domain)) return [];
    const stored = storedKeys(this.keysDir, domain);
    for (const key of stored) this.report(key);
    const chosen = chooseSigningKeys(stored);
    const edOnly = !chosen.length && stored.some((k) => k.state === 'active' && k.privateKey && k.algorithm === 'ed25519');
    this.reportOnce(`${domain}/ed25519-only`, edOnly ? 'ed25519-only' : '', () => this.log?.error({ domain },
      `${domain} has an active Ed25519 key but no active RSA key, so its mail is not signed: Gmail, Outlook and Yahoo do not verify Ed25519. ` +
      `Make and activate an RSA key: dkim-relay keygen --domain ${domain}`));
    return chosen.map((k) => ({ domain, selector: k.selector, algorithm: k.algorithm!, privateKey: k.privateKey! }));
  }

  /** Logs a key that cannot sign (only pending-or-active ones matter: retired keys never sign). */
  private report(key: StoredKey): void {
    const problem = key.problem && key.state !== 'retired' ? key.problem : '';
    this.reportOnce(key.path, problem, () => this.log?.error({ file: key.path, domain: key.domain, selector: key.selector }, problem));
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
