// What the HTTP side reads of the running relay: filled in by startRelay as each part comes
// up (so /readyz can say which one is missing), read-only for everything under http/.
import { QueueRunner } from '../delivery/queue-runner';
import { storedDomains, StoredKey, storedKeys } from '../dkim/stored-keys';
import { SendingIdentity } from '../identity/check-at-start';
import { RecentActivity } from './recent-activity';

export interface RelayState {
  startedAt: number;
  dataDir: string;
  keysDir: string;
  activity: RecentActivity;
  /** Set once the sending identity is established. */
  identity?: SendingIdentity;
  /** Set once the spool is open and the queue runs. */
  queue?: QueueRunner;
  /** True while the submission server listens. */
  submissionListening: boolean;
}

/** The keys a status page or scrape shows: no private key material leaves this function. */
export type KeySummary = Pick<StoredKey, 'domain' | 'selector' | 'algorithm' | 'bits' | 'state' | 'created' | 'activated' | 'retired' | 'problem'>;

const KEYS_CACHE_MS = 5000;
let keysCache: { keysDir: string; at: number; keys: KeySummary[] } | null = null;

/**
 * The key store's keys, read at most every 5 s (a scrape every second does not read the
 * folder every second). Synchronous, but never on a message's path: only for a scrape or page.
 */
export function keySummaries(keysDir: string, now = Date.now()): KeySummary[] {
  if (keysCache && keysCache.keysDir === keysDir && now - keysCache.at < KEYS_CACHE_MS) return keysCache.keys;
  const keys = storedDomains(keysDir).flatMap((domain) => storedKeys(keysDir, domain)).map((k) => ({
    domain: k.domain, selector: k.selector, algorithm: k.algorithm, bits: k.bits, state: k.state,
    created: k.created, activated: k.activated, retired: k.retired, problem: k.problem,
  }));
  keysCache = { keysDir, at: now, keys };
  return keys;
}
