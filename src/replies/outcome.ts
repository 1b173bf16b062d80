// The one place where a delivery outcome is decided (DESIGN rule 6): 2xx delivered; 5xx
// failed for good; everything else (4xx, no connection, TLS or DNS trouble, timeouts)
// deferred, to be tried again. Moved here from delivery/classify.ts so bounce/ need not
// reach into delivery/.
import { verdictOf } from './verdict';

export type Outcome = 'delivered' | 'deferred' | 'failed';

export function outcomeOfCode(code: number | undefined): Outcome {
  if (code !== undefined && code >= 200 && code < 300) return 'delivered';
  if (code !== undefined && code >= 500 && code < 600) return 'failed';
  return 'deferred';
}

/** An error from nodemailer or the network: only an SMTP 5xx reply makes it permanent. */
export function outcomeOfError(err: unknown): Outcome {
  const code = (err as { responseCode?: number })?.responseCode;
  return outcomeOfCode(typeof code === 'number' ? code : undefined) === 'failed' ? 'failed' : 'deferred';
}

/** The reply text worth logging and keeping in the spool: the server's words, one line. */
export function describeError(err: unknown): string {
  const e = err as { response?: string; message?: string; code?: string };
  const text = e?.response || e?.message || String(err);
  return text.replace(/\s+/g, ' ').trim().slice(0, 500);
}

/**
 * A reply that says "you are sending too much, slow down": the destination is paused instead
 * of being tried again at once. A temporary reply of class rate-limit or reputation (any 421,
 * Outlook 4.7.650, Yahoo [TSnn], GMX/WEB.DE "policy restrictions", ...): see rules.ts.
 */
export function isThrottling(reply: string): boolean {
  return verdictOf(reply).throttle;
}
