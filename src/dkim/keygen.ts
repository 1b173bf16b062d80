// Making a DKIM key: a new private key written into the key store, and the TXT record that
// publishes its public half. Layout (keys/README.md): <keysDir>/<domain>/<selector>.key,
// PKCS#8 PEM, file mode 0600, domain folder 0700, with <selector>.json saying the key is
// *pending*: it signs only once its record is seen in DNS (key-lifecycle.ts). An existing key
// file is never replaced: its record may be published and mail signed with it may still be
// in transit.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { dkimRecordValue, domainNameProblem, normalizeDomainName, recordName } from './dns-record';
import { KeyMetadata, metadataPath } from './key-metadata';
import { storedKeys } from './stored-keys';
import { createFileSync } from '../fs/durable-file';

const generateKeyPair = promisify(crypto.generateKeyPair);

/** A key that cannot be made as asked; the message says why and what to do instead. */
export class KeygenError extends Error {}

export type KeyAlgorithm = 'rsa' | 'ed25519';

export const RSA_BITS = [2048, 3072, 4096] as const;

export interface KeygenOptions {
  domain: string;
  /** Default: a dated selector, see defaultSelectorBase. */
  selector?: string;
  /** Default rsa. */
  algorithm?: KeyAlgorithm;
  /** RSA modulus length, 2048 (default), 3072 or 4096; ignored for Ed25519. */
  bits?: number;
}

export interface GeneratedKey {
  domain: string;
  selector: string;
  algorithm: KeyAlgorithm;
  /** RSA modulus length; 256 for Ed25519. */
  bits: number;
  /** The key file. */
  path: string;
  /** The key's state file (<selector>.json); a new key is pending. */
  metadataPath: string;
  /** Where to publish the TXT record, without the trailing dot: <selector>._domainkey.<domain>. */
  recordName: string;
  /** The TXT value: v=DKIM1; k=...; p=... */
  recordValue: string;
}

/**
 * Why `selector` cannot be used, or null. Selectors are DNS labels in lower case:
 * [a-z0-9-], not starting or ending with a hyphen, dots between labels allowed (RFC 6376 3.1).
 */
export function selectorProblem(selector: string): string | null {
  const hint = 'use lower-case letters, digits and hyphens, with dots between parts (for example 2025-01 or mail.2025)';
  if (!selector) return `the selector is empty: ${hint}`;
  if (selector.length > 63 * 2) return `the selector "${selector.slice(0, 40)}..." is too long: keep it short`;
  for (const label of selector.split('.')) {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) return `"${selector}" is not a valid selector: ${hint}`;
  }
  return null;
}

/**
 * The default selector before collision suffixes: `<yyyymmdd>-rsa` or `<yyyymmdd>-ed` with the
 * date in UTC. The date makes rotation visible in DNS and in DKIM-Signature headers (s=);
 * the algorithm part keeps an RSA and an Ed25519 key made the same day apart. When
 * `<base>.key` exists, `<base>-2`, `<base>-3`... are tried in turn, so the default never
 * collides with an existing key of that domain.
 */
export function defaultSelectorBase(algorithm: KeyAlgorithm, now = new Date()): string {
  const d = now.toISOString().slice(0, 10).replace(/-/g, '');
  return `${d}-${algorithm === 'rsa' ? 'rsa' : 'ed'}`;
}

/**
 * Makes a key for `domain` and writes it to `<keysDir>/<domain>/<selector>.key`. Throws
 * KeygenError for anything the caller asked wrongly (bad domain, selector or size, key file
 * already there); other errors are file-system failures and carry their errno code.
 */
export async function generateKey(keysDir: string, options: KeygenOptions, now = new Date()): Promise<GeneratedKey> {
  const domain = normalizeDomainName(options.domain);
  const domainProblem = domainNameProblem(domain);
  if (domainProblem) throw new KeygenError(domainProblem);

  const algorithm = options.algorithm ?? 'rsa';
  if (algorithm !== 'rsa' && algorithm !== 'ed25519') {
    throw new KeygenError(`unknown key algorithm "${String(algorithm)}": use rsa or ed25519`);
  }
  let bits = 256;
  if (algorithm === 'rsa') {
    bits = options.bits ?? 2048;
    checkRsaBits(bits);
  }

  let selector: string | undefined;
  if (options.selector !== undefined) {
    selector = options.selector.trim().toLowerCase();
    const problem = selectorProblem(selector);
    if (problem) throw new KeygenError(problem);
  }

  // DESIGN rule 7: Ed25519 signs next to RSA, never instead.
  if (algorithm === 'ed25519' && !storedKeys(keysDir, domain).some((k) => k.algorithm === 'rsa' && (k.state === 'pending' || k.state === 'active'))) {
    throw new KeygenError(
      `${domain} has no RSA key, and an Ed25519 key never signs alone: Gmail, Outlook and Yahoo do not verify Ed25519 signatures, ` +
      `so an RSA key must always sign too. Make the RSA key first: dkim-relay keygen --domain ${domain}`);
  }

  const { privateKey, publicKey } = algorithm === 'rsa'
    ? await generateKeyPair('rsa', { modulusLength: bits })
    : await generateKeyPair('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  const domainDir = path.join(keysDir, domain);
  // Explicit modes: what mkdir makes without one is 0777 less the umask, 0777 under umask 000.
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(domainDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(domainDir, 0o700);

  // The pending state file goes in first: a key file without one counts as a key from before
  // key states, which signs; a new key must never sign before its record is published.
  const meta: KeyMetadata = { algorithm, bits, state: 'pending', created: now.toISOString(), activated: null, retired: null };
  const metaText = `${JSON.stringify(meta, null, 2)}\n`;
  const claim = (name: string): string | null => {
    const keyFile = path.join(domainDir, `${name}.key`);
    if (fs.existsSync(keyFile) || !createFileSync(metadataPath(keyFile), metaText)) return null;
    if (!createFileSync(keyFile, pem)) {
      fs.rmSync(metadataPath(keyFile), { force: true });
      return null;
    }
    return keyFile;
  };

  let file: string | null;
  if (selector !== undefined) {
    file = claim(selector);
    if (!file) {
      throw new KeygenError(
        `the key file ${path.join(domainDir, `${selector}.key`)} (or its state file ${selector}.json) already exists and is never overwritten: choose another --selector, or leave it out for a new dated one`,
      );
    }
  } else {
    const base = defaultSelectorBase(algorithm, now);
    for (let n = 1; ; n++) {
      selector = n === 1 ? base : `${base}-${n}`;
      file = claim(selector);
      if (file) break;
    }
  }

  return {
    domain,
    selector,
    algorithm,
    bits,
    path: file,
    metadataPath: metadataPath(file),
    recordName: recordName(selector, domain),
    recordValue: dkimRecordValue(publicKey),
  };
}

function checkRsaBits(bits: number): void {
  if (!Number.isInteger(bits)) throw new KeygenError(`"${bits}" is not a key size: use 2048, 3072 or 4096`);
  if (bits < 2048) {
    throw new KeygenError(
      `${bits}-bit keys are below what Gmail/Outlook/Yahoo expect (RFC 8301 sets 1024 bits as the minimum, providers want 2048): ` +
      'use --bits 2048 (the default), 3072 or 4096');
  }
  if (bits > 4096) {
    throw new KeygenError(`${bits}-bit keys are larger than verifiers accept (RFC 8301 asks for up to 4096); use 2048, 3072 or 4096`);
  }
  if (!(RSA_BITS as readonly number[]).includes(bits)) throw new KeygenError(`${bits} is not a supported key size: use 2048, 3072 or 4096`);
}

