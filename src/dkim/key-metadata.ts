// What the key store knows about a key besides the key itself: its state in the lifecycle
// (pending -> active -> retired, DESIGN.md "Key lifecycle") and when it got there. It lives
// next to the key as <keysDir>/<domain>/<selector>.json, written atomically (temporary file,
// fsync, rename, folder fsync), so a relay reading it while `dkim-relay keys` writes it sees
// the old state or the new one, never half a file.
import fs from 'node:fs';
import { replaceFileSync } from '../fs/durable-file';

export type KeyState = 'pending' | 'active' | 'retired';
export const KEY_STATES: readonly KeyState[] = ['pending', 'active', 'retired'];

export interface KeyMetadata {
  algorithm: 'rsa' | 'ed25519';
  /** RSA modulus length; 256 for Ed25519. */
  bits: number;
  state: KeyState;
  /** ISO 8601 times; null when the key has not been there (yet). */
  created: string;
  activated: string | null;
  retired: string | null;
}

/** The metadata file of a key file: `<selector>.key` -> `<selector>.json`. */
export function metadataPath(keyPath: string): string {
  return keyPath.replace(/\.key$/, '.json');
}

/** Thrown when a metadata file exists but is not what this file writes. */
export class MetadataError extends Error {}

/** The metadata of a key, null when the file does not exist (a key from before key states). */
export function readMetadata(file: string): KeyMetadata | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new MetadataError(`the key state file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new MetadataError(`the key state file ${file} is not valid JSON`);
  }
  const problem = metadataProblem(data);
  if (problem) throw new MetadataError(`the key state file ${file} is damaged: ${problem}`);
  return data as KeyMetadata;
}

function metadataProblem(data: unknown): string | null {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return 'it is not a JSON object';
  const m = data as Record<string, unknown>;
  if (m.algorithm !== 'rsa' && m.algorithm !== 'ed25519') return 'algorithm is not rsa or ed25519';
  if (!Number.isInteger(m.bits)) return 'bits is not a number';
  if (!KEY_STATES.includes(m.state as KeyState)) return `state is not one of ${KEY_STATES.join(', ')}`;
  for (const field of ['created', 'activated', 'retired']) {
    const v = m[field];
    if (v === null && field !== 'created') continue;
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) return `${field} is not a time`;
  }
  return null;
}

/** Writes the metadata of a key atomically: a reader sees the old file or the new one. */
export function writeMetadata(file: string, meta: KeyMetadata): void {
  replaceFileSync(file, `${JSON.stringify(meta, null, 2)}\n`, 0o600);
}
