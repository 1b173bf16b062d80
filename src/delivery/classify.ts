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
