// The TlsOutcome of one delivery connection, for the TLS reports. The transport fills one in
// for every session (and for a connection its TLS policy refused: error.tls); this adds what
// RFC 8460 asks about a connection without a policy that stayed in clear text: STARTTLS
// offered but not negotiated (a failed handshake, retried in clear) is validation-failure,
// RFC 8460 4.3's "general failure for a reason not matching a category above"; no STARTTLS
// offered is starttls-not-supported. RFC 8460 4.4 counts only sessions that negotiated TLS
// as successful.
import { Destination } from '../delivery/route';
import { TlsOutcome } from '../delivery/tls-outcome';
import { OpenResult, TlsDeferral } from '../delivery/transport';

export function tlsOutcomeOfOpen(opened: OpenResult, domain: string): TlsOutcome | undefined {
  // no connection, or refused before TLS: nothing about TLS to report
  if (!('session' in opened)) return opened.error.tls ? { ...opened.error.tls, domain } : undefined;
  const { session } = opened;
  const outcome = { ...session.tlsOutcome, domain };
  if (outcome.level !== 'none' || outcome.failure) return outcome;
  return {
    ...outcome,
    failure: session.starttlsOffered
      ? { result: 'validation-failure', reason: 'STARTTLS was offered but TLS could not be negotiated; the mail went in clear text' }
      : { result: 'starttls-not-supported', reason: 'the server does not offer STARTTLS' },
  };
}

/** A host the TLS policy ruled out before any connection (DANE: its DNSSEC does not validate). */
export function tlsOutcomeOfDeferral(deferral: TlsDeferral, destination: Destination, domain: string, at = Date.now()): TlsOutcome | undefined {
  if (!deferral.result) return undefined;
  return {
    domain, mxHost: destination.host, ip: destination.ip, at,
    policy: deferral.policy ?? { type: 'no-policy-found', domain },
    level: 'none', verified: false, failure: { result: deferral.result, reason: deferral.defer },
  };
}
