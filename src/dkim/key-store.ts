// The key store as the signer sees it: for a signing domain, the keys to sign with.
// Layout (keys/README.md): <keysDir>/<domain>/<selector>.key, PKCS#8 PEM, mode 0600.
// This is the minimal loader: the newest key file of each algorithm in the domain's folder
// signs. Key states (pending, active, retired) come with the key lifecycle; they belong
// behind `signingKeys`, which is the seam the rest of the relay uses.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Logger } from '../log';
import { SigningKey } from './signer';

const RESCAN_MS = 2000;

interface CacheEntry { scannedAt: number; keys: SigningKey[] }

export class KeyStore {
  private readonly cache = new Map<string, CacheEntry>();
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
    const dir = path.join(this.keysDir, domain);
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.key'));
    } catch {
      return [];
    }
    const newest = new Map<string, { key: SigningKey; mtime: number }>();
    for (const name of names) {
      const file = path.join(dir, name);
      const key = this.load(domain, name.slice(0, -'.key'.length), file);
      if (!key) continue;
      const mtime = fs.statSync(file).mtimeMs;
      const current = newest.get(key.key.algorithm);
      if (!current || mtime > current.mtime) newest.set(key.key.algorithm, { key: key.key, mtime });
    }
    // RSA first: every verifier understands it; Ed25519 is an addition (DESIGN rule 7).
    return ['rsa', 'ed25519'].map((a) => newest.get(a)?.key).filter((k): k is SigningKey => !!k);
  }

  private load(domain: string, selector: string, file: string): { key: SigningKey } | null {
    try {
      const mode = fs.statSync(file).mode & 0o777;
      if (mode & 0o077) {
        this.log?.error({ file, mode: mode.toString(8) }, `DKIM key ${file} is readable by others and is not used: run \`chmod 600 ${file}\``);
        return null;
      }
      const privateKey = crypto.createPrivateKey(fs.readFileSync(file));
      const type = privateKey.asymmetricKeyType;
      if (type !== 'rsa' && type !== 'ed25519') {
        this.log?.error({ file }, `DKIM key ${file} is a ${type} key; only RSA and Ed25519 keys sign`);
        return null;
      }
      return { key: { domain, selector, algorithm: type, privateKey } };
    } catch (err) {
      // Never log the key material or the parser's message that may quote it.
      this.log?.error({ file, code: (err as NodeJS.ErrnoException).code }, `DKIM key ${file} cannot be read or is not a PEM private key`);
      return null;
    }
  }
}
