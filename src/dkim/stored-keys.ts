// The keys in the key store as files: each <keysDir>/<domain>/<selector>.key with its state
// from <selector>.json (key-metadata.ts), and whatever keeps it from signing (a file others
// can read, an unreadable or damaged file). The signer's KeyStore, `keys list`, `keys
// activate|retire` and keygen all read the store through here, so they agree on every key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { domainNameProblem } from './dns-record';
import { KeyMetadata, KeyState, metadataPath, MetadataError, readMetadata } from './key-metadata';

export interface StoredKey {
  domain: string;
  selector: string;
  /** The private key file. */
  path: string;
  metadataPath: string;
  /** From the key file when it could be read, else from the metadata; null when neither could. */
  algorithm: 'rsa' | 'ed25519' | null;
  bits: number | null;
  /** 'unknown' when the metadata file is damaged: such a key never signs. */
  state: KeyState | 'unknown';
  created: string | null;
  activated: string | null;
  retired: string | null;
  /** No metadata file: a key from before key states, treated as active since its file time. */
  legacy: boolean;
  /**
   * The key, when its file is fine (it may still not sign: see state, and problem for a
   * damaged metadata file). Never printed or logged.
   */
  privateKey: crypto.KeyObject | null;
  /** Why this key cannot be used, with the fix: permissions, unreadable, damaged. */
  problem: string | null;
}

/** RFC 8301: verifiers must not accept RSA keys below 1024 bits. */
export const RSA_MIN_BITS = 1024;

/** Signing domains in the key store: its folders named like a domain, sorted. */
export function storedDomains(keysDir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(keysDir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.isDirectory() && domainNameProblem(e.name) === null).map((e) => e.name).sort();
}

/** Every key of `domain` (lower case, validated by the caller), sorted by selector. */
export function storedKeys(keysDir: string, domain: string): StoredKey[] {
  const dir = path.join(keysDir, domain);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.key') && !n.startsWith('.'));
  } catch {
    return [];
  }
  return names.sort().map((name) => readStoredKey(keysDir, domain, name.slice(0, -'.key'.length)));
}

/** One key; `problem` says "no such key" when its file does not exist. */
export function readStoredKey(keysDir: string, domain: string, selector: string): StoredKey {
  const file = path.join(keysDir, domain, `${selector}.key`);
  const key: StoredKey = {
    domain, selector, path: file, metadataPath: metadataPath(file),
    algorithm: null, bits: null, state: 'unknown', created: null, activated: null, retired: null,
    legacy: false, privateKey: null, problem: null,
  };
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    key.problem = (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? `there is no key ${file}`
      : `DKIM key ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    return key;
  }

  let meta: KeyMetadata | null = null;
  try {
    meta = readMetadata(key.metadataPath);
  } catch (err) {
    if (!(err instanceof MetadataError)) throw err;
    key.problem = `${err.message}: the key does not sign until its state is written again with \`dkim-relay keys activate ${domain} ${selector}\` or \`dkim-relay keys retire ${domain} ${selector}\``;
  }
  if (meta) {
    Object.assign(key, { algorithm: meta.algorithm, bits: meta.bits, state: meta.state, created: meta.created, activated: meta.activated, retired: meta.retired });
  } else if (!key.problem) {
    // A key from before key states: it signed before, so it goes on signing.
    const since = stat.mtime.toISOString();
    Object.assign(key, { legacy: true, state: 'active', created: since, activated: since });
  }

  const loaded = loadPrivateKey(file, stat);
  if ('problem' in loaded) {
    key.problem ??= loaded.problem;
    return key;
  }
  const { privateKey } = loaded;
  const algorithm = privateKey.asymmetricKeyType as 'rsa' | 'ed25519';
  const bits = algorithm === 'rsa' ? privateKey.asymmetricKeyDetails?.modulusLength ?? 0 : 256;
  let keyProblem: string | null = null;
  if (meta && meta.algorithm !== algorithm) {
    keyProblem = `DKIM key ${file} is an ${algorithm} key but ${key.metadataPath} says ${meta.algorithm}: the key file was replaced; retire this selector and make a new key with dkim-relay keygen`;
  } else if (algorithm === 'rsa' && bits < RSA_MIN_BITS) {
    keyProblem = `DKIM key ${file} has ${bits} bits, which verifiers reject (RFC 8301 minimum is 1024, providers want 2048): make a new key with dkim-relay keygen --domain ${domain}`;
  }
  key.algorithm = algorithm;
  key.bits = bits;
  key.created ??= stat.mtime.toISOString();
  key.problem ??= keyProblem;
  if (!keyProblem) key.privateKey = privateKey;
  return key;
}

// Parsed keys by file identity, so a re-scan every few seconds does not parse PEM again.
const parsed = new Map<string, { stamp: string; key: crypto.KeyObject }>();

function loadPrivateKey(file: string, stat: fs.Stats): { privateKey: crypto.KeyObject } | { problem: string } {
  const mode = stat.mode & 0o777;
  if (mode & 0o077) {
    return { problem: `DKIM key ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')}) and is not used: run \`chmod 600 ${file}\`` };
  }
  const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  const cached = parsed.get(file);
  if (cached && cached.stamp === stamp) return { privateKey: cached.key };
  let pem: Buffer;
  try {
    pem = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { problem: `DKIM key ${file} cannot be read (${code}): make it readable by the user the relay runs as (owner of the file, mode 600)` };
  }
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(pem);
  } catch {
    // Never pass on the parser's message: it may quote the key material.
    return { problem: `DKIM key ${file} is damaged or not a PEM private key: restore it from a backup, or make a new key with dkim-relay keygen` };
  }
  const type = privateKey.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') {
    return { problem: `DKIM key ${file} is a ${type} key; only RSA and Ed25519 keys sign: make one with dkim-relay keygen` };
  }
  parsed.set(file, { stamp, key: privateKey });
  return { privateKey };
}

/** When a key became active, for choosing the newest (ms; legacy keys: their file time). */
function activationTime(key: StoredKey): number {
  return Date.parse(key.activated ?? key.created ?? '') || 0;
}

/**
 * The keys that sign for a domain, RSA first: among the usable active keys of each algorithm
 * the one activated last (ties: created last, then the greater selector). Ed25519 only ever
 * signs next to RSA (DESIGN rule 7): without an active RSA key, none is chosen for it.
 */
export function chooseSigningKeys(keys: StoredKey[]): StoredKey[] {
  const newest = new Map<string, StoredKey>();
  for (const key of keys) {
    if (key.state !== 'active' || !key.privateKey || !key.algorithm) continue;
    const current = newest.get(key.algorithm);
    if (!current || compareAge(key, current) > 0) newest.set(key.algorithm, key);
  }
  const rsa = newest.get('rsa');
  const ed = newest.get('ed25519');
  return rsa ? (ed ? [rsa, ed] : [rsa]) : [];
}

function compareAge(a: StoredKey, b: StoredKey): number {
  return activationTime(a) - activationTime(b)
    || (Date.parse(a.created ?? '') || 0) - (Date.parse(b.created ?? '') || 0)
    || (a.selector < b.selector ? -1 : a.selector > b.selector ? 1 : 0);
}
