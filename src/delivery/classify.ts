// The one place where a delivery outcome is decided (DESIGN rule 6): 2xx delivered; 5xx
// failed for good; everything else (4xx, no connection, TLS or DNS trouble, timeouts)
// deferred, to be tried again.
export type Outcome = 'delivered' | 'deferred' | 'failed';

export function classifyReply(code: number | undefined): Outcome {
  if (code !== undefined && code >= 200 && code < 300) return 'delivered';
  if (code !== undefined && code >= 500 && code < 600) return 'failed';
  return 'deferred';
}

/** An error from nodemailer or the network: only an SMTP 5xx reply makes it permanent. */
export function classifyError(err: unknown): Outcome {
  const code = (err as { responseCode?: number })?.responseCode;
  return classifyReply(typeof code === 'number' ? code : undefined) === 'failed' ? 'failed' : 'deferred';
}

/** The reply text worth logging and keeping in the spool: the server's words, one line. */
export function describeError(err: unknown): string {
  const e = err as { response?: string; message?: string; code?: string };
  const text = e?.response || e?.message || String(err);
  return text.replace(/\s+/g, ' ').trim().slice(0, 500);
}

/**
 * A reply that says "you are sending too much, slow down": the destination is paused instead
 * of being tried again at once. Any 421 (RFC 5321: service not available, closing), Outlook's
 * `451 4.7.650`/`4.7.500`-style throttling, Yahoo's `421 4.7.0 [TSnn]`, GMX/WEB.DE's "Reject
 * due to policy restrictions" and the usual "too many connections/messages" wording.
 */
export function isThrottling(reply: string): boolean {
  const code = /^(\d{3})/.exec(reply)?.[1];
  if (code === '421') return true;
  if (!code || code[0] !== '4') return false;
  return /\b4\.7\.(650|500)\b|\[TS0\d\]|policy restrictions|too many (connections|messages)|rate limit|try again later, closing/i.test(reply);
}

/** The enhanced status code (RFC 3463) in a reply, e.g. "5.1.1", if there is one. */
export function enhancedStatus(reply: string): string | undefined {
  return /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1];
}
