// The TlsOutcome of one delivery connection, for the TLS reports. A transport that decides a
// TLS policy (MTA-STS, DANE) hands its outcome over as `tlsOutcome` on the session (or on the
// refusal of a connection its policy did not allow); without one, the connection had no
// policy (no-policy-found, opportunistic TLS) and its outcome is read off the session:
// TLS negotiated: a successful session; clear text after STARTTLS was offered (a failed
// handshake, retried in clear, or a refused STARTTLS): validation-failure, RFC 8460 4.3's
// "general failure for a reason not matching a category above"; clear text without STARTTLS
// offered: starttls-not-supported.
import { Destination } from '../delivery/route';
import { TlsOutcome } from '../delivery/tls-outcome';
import { OpenResult } from '../delivery/transport';

export function tlsOutcomeOfOpen(opened: OpenResult, destination: Destination, domain: string, at = Date.now()): TlsOutcome | undefined {
  const given = 'session' in opened
    ? (opened.session as { tlsOutcome?: TlsOutcome }).tlsOutcome
    : ((opened.error as { tlsOutcome?: TlsOutcome }).tlsOutcome ?? (opened as { tlsOutcome?: TlsOutcome }).tlsOutcome);
  if (given) return given;
  if (!('session' in opened)) return undefined; // no connection, or refused before TLS: nothing about TLS to report
  const { session } = opened;
  const base = {
    domain, mxHost: destination.host, ip: destination.ip, policy: { type: 'no-policy-found' as const, domain }, at,
  };
  if (session.tls) return { ...base, level: 'opportunistic', verified: false };
  return {
    ...base,
    level: 'none',
    verified: false,
    failure: session.starttlsOffered
      ? { result: 'validation-failure', reason: 'STARTTLS was offered but TLS could not be negotiated; the mail went in clear text' }
      : { result: 'starttls-not-supported', reason: 'the server does not offer STARTTLS' },
  };
}
